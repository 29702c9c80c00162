/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Configuration file: rte_cfgfile does the INI syntax, this file the
 * meaning. Each section kind has one parser; every value is checked and
 * every error names its section and key.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cfgfile.h>

#include "xg_config.h"

struct ctx {
	struct rte_cfgfile *f;
	struct xg_config *cfg;
	char *err;
	size_t errlen;
};

static int
fail(struct ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return (errno || *end || *v > max) ? -EINVAL : 0;
}

int
xg_cfg_parse_prefix(const char *s, struct xg_cfg_prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long plen;

	if (alen >= INET6_ADDRSTRLEN)
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, buf, &p->v4) == 1)
		p->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, &p->v6) == 1)
		p->family = AF_INET6;
	else
		return -EINVAL;
	plen = p->family == AF_INET ? 32 : 128;
	if (slash && parse_uint(slash + 1, plen, &plen))
		return -EINVAL;
	p->plen = (uint8_t)plen;
	return 0;
}

static int
parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;
	int i;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		   &tail) != 6)
		return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	return 0;
}

/* Section header "kind ARG": the argument after the first space. */
static const char *
section_arg(const char *sec, const char *kind)
{
	size_t n = strlen(kind);

	if (strncmp(sec, kind, n) != 0 || sec[n] != ' ' || sec[n + 1] == '\0')
		return NULL;
	return sec + n + 1;
}

static int
get_port(struct ctx *c, const char *sec, const char *val, uint16_t *port)
{
	unsigned long v;

	if (parse_uint(val, XG_CFG_MAX_PORTS - 1, &v))
		return fail(c, -EINVAL, "[%s] port: '%s' is not a port number below %d", sec, val,
			    XG_CFG_MAX_PORTS);
	*port = (uint16_t)v;
	return 0;
}

static int
parse_addr_list(struct ctx *c, const char *sec, const char *key, const char *val,
		struct xg_cfg_port *p, uint8_t family)
{
	char buf[CFG_VALUE_LEN], *tok, *save;

	snprintf(buf, sizeof(buf), "%s", val);
	for (tok = strtok_r(buf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
		struct xg_cfg_prefix a;

		if (xg_cfg_parse_prefix(tok, &a) || a.family != family)
			return fail(c, -EINVAL, "[%s] %s: '%s' is not an %s address/length", sec,
				    key, tok, family == AF_INET ? "IPv4" : "IPv6");
		if (p->naddr == XG_CFG_MAX_ADDRS)
			return fail(c, -E2BIG, "[%s] more than %d addresses", sec, XG_CFG_MAX_ADDRS);
		p->addr[p->naddr++] = a;
	}
	return 0;
}

/* A Linux interface name: 1..15 of [A-Za-z0-9_.-]. */
static bool
ifname_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < 16 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789_.-") == n;
}

static int
parse_port(struct ctx *c, const char *sec, const char *arg, struct rte_cfgfile_entry *e,
	   int n)
{
	struct xg_cfg_port *p;
	unsigned long id, v;
	int i, rc = 0;

	if (parse_uint(arg, XG_CFG_MAX_PORTS - 1, &id))
		return fail(c, -EINVAL, "[%s]: '%s' is not a port number below %d", sec, arg,
			    XG_CFG_MAX_PORTS);
	p = &c->cfg->port[id];
	p->present = true;
	for (i = 0; i < n && !rc; i++) {
		if (strcmp(e[i].name, "ipv4") == 0)
			rc = parse_addr_list(c, sec, e[i].name, e[i].value, p, AF_INET);
		else if (strcmp(e[i].name, "ipv6") == 0)
			rc = parse_addr_list(c, sec, e[i].name, e[i].value, p, AF_INET6);
		else if (strcmp(e[i].name, "mtu") == 0) {
			if (parse_uint(e[i].value, 9600, &v) || v < 576)
				return fail(c, -EINVAL, "[%s] mtu: '%s' is not 576..9600", sec,
					    e[i].value);
			p->mtu = (uint16_t)v;
		} else if (strcmp(e[i].name, "exception") == 0) {
			if (!ifname_ok(e[i].value))
				return fail(c, -EINVAL, "[%s] exception: '%s' is not an interface name",
					    sec, e[i].value);
			snprintf(p->exception, sizeof(p->exception), "%s", e[i].value);
		} else
			return fail(c, -EINVAL, "[%s]: unknown key '%s'", sec, e[i].name);
	}
	return rc;
}

static int
route_dst(struct ctx *c, const char *sec, const char *val, struct xg_cfg_prefix *dst)
{
	if (strcmp(val, "default") == 0)
		return xg_cfg_parse_prefix("0.0.0.0/0", dst);
	if (strcmp(val, "default6") == 0)
		return xg_cfg_parse_prefix("::/0", dst);
	if (xg_cfg_parse_prefix(val, dst))
		return fail(c, -EINVAL, "[%s] prefix: '%s' is not ADDRESS/LENGTH", sec, val);
	return 0;
}

static int
parse_route(struct ctx *c, const char *sec, struct rte_cfgfile_entry *e, int n)
{
	struct xg_cfg_route r = { .port = UINT16_MAX };
	bool has_dst = false;
	int i;

	if (c->cfg->nroutes == XG_CFG_MAX_ROUTES)
		return fail(c, -E2BIG, "[%s]: more than %d routes", sec, XG_CFG_MAX_ROUTES);
	for (i = 0; i < n; i++) {
		if (strcmp(e[i].name, "prefix") == 0) {
			if (route_dst(c, sec, e[i].value, &r.dst))
				return -EINVAL;
			has_dst = true;
		} else if (strcmp(e[i].name, "via") == 0) {
			if (xg_cfg_parse_prefix(e[i].value, &r.via) || strchr(e[i].value, '/'))
				return fail(c, -EINVAL, "[%s] via: '%s' is not an address", sec,
					    e[i].value);
			r.has_via = true;
		} else if (strcmp(e[i].name, "port") == 0) {
			if (get_port(c, sec, e[i].value, &r.port))
				return -EINVAL;
		} else {
			return fail(c, -EINVAL, "[%s]: unknown key '%s'", sec, e[i].name);
		}
	}
	if (!has_dst || r.port == UINT16_MAX)
		return fail(c, -EINVAL, "[%s]: 'prefix' and 'port' are required", sec);
	if (r.has_via && r.via.family != r.dst.family)
		return fail(c, -EINVAL, "[%s]: 'via' and 'prefix' are of different families", sec);
	c->cfg->route[c->cfg->nroutes++] = r;
	return 0;
}

static int
parse_neigh(struct ctx *c, const char *sec, struct rte_cfgfile_entry *e, int n)
{
	struct xg_cfg_neigh nb = { .port = UINT16_MAX };
	bool has_addr = false, has_mac = false;
	int i;

	if (c->cfg->nneigh == XG_CFG_MAX_NEIGH)
		return fail(c, -E2BIG, "[%s]: more than %d neighbours", sec, XG_CFG_MAX_NEIGH);
	for (i = 0; i < n; i++) {
		if (strcmp(e[i].name, "address") == 0) {
			if (xg_cfg_parse_prefix(e[i].value, &nb.addr) || strchr(e[i].value, '/'))
				return fail(c, -EINVAL, "[%s] address: '%s' is not an address", sec,
					    e[i].value);
			has_addr = true;
		} else if (strcmp(e[i].name, "mac") == 0) {
			if (parse_mac(e[i].value, nb.mac))
				return fail(c, -EINVAL, "[%s] mac: '%s' is not XX:XX:XX:XX:XX:XX",
					    sec, e[i].value);
			has_mac = true;
		} else if (strcmp(e[i].name, "port") == 0) {
			if (get_port(c, sec, e[i].value, &nb.port))
				return -EINVAL;
		} else {
			return fail(c, -EINVAL, "[%s]: unknown key '%s'", sec, e[i].name);
		}
	}
	if (!has_addr || !has_mac || nb.port == UINT16_MAX)
		return fail(c, -EINVAL, "[%s]: 'address', 'mac' and 'port' are required", sec);
	c->cfg->neigh[c->cfg->nneigh++] = nb;
	return 0;
}

static int
parse_rxq(struct ctx *c, const char *sec, const char *tok, struct xg_cfg_rxq *q)
{
	unsigned long port, queue;
	char buf[32], *colon;

	snprintf(buf, sizeof(buf), "%s", tok);
	colon = strchr(buf, ':');
	if (colon == NULL)
		return fail(c, -EINVAL, "[%s] rx: '%s' is not PORT:QUEUE", sec, tok);
	*colon = '\0';
	if (parse_uint(buf, XG_CFG_MAX_PORTS - 1, &port) || parse_uint(colon + 1, 1023, &queue))
		return fail(c, -EINVAL, "[%s] rx: '%s' is not PORT:QUEUE", sec, tok);
	q->port = (uint16_t)port;
	q->queue = (uint16_t)queue;
	return 0;
}

static bool
rxq_taken(const struct xg_config *cfg, const struct xg_cfg_rxq *q)
{
	int w, i;

	for (w = 0; w < cfg->nworkers; w++)
		for (i = 0; i < cfg->worker[w].nrxq; i++)
			if (cfg->worker[w].rxq[i].port == q->port &&
			    cfg->worker[w].rxq[i].queue == q->queue)
				return true;
	return false;
}

static int
parse_worker(struct ctx *c, const char *sec, const char *arg, struct rte_cfgfile_entry *e,
	     int n)
{
	struct xg_cfg_worker *w;
	char buf[CFG_VALUE_LEN], *tok, *save;
	unsigned long lcore;
	int i;

	if (parse_uint(arg, 1023, &lcore))
		return fail(c, -EINVAL, "[%s]: '%s' is not an lcore id", sec, arg);
	if (c->cfg->nworkers == XG_CFG_MAX_WORKERS)
		return fail(c, -E2BIG, "[%s]: more than %d workers", sec, XG_CFG_MAX_WORKERS);
	w = &c->cfg->worker[c->cfg->nworkers];
	memset(w, 0, sizeof(*w));
	w->lcore = (unsigned int)lcore;
	for (i = 0; i < n; i++) {
		if (strcmp(e[i].name, "rx") != 0)
			return fail(c, -EINVAL, "[%s]: unknown key '%s'", sec, e[i].name);
		snprintf(buf, sizeof(buf), "%s", e[i].value);
		for (tok = strtok_r(buf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
			struct xg_cfg_rxq q;

			if (parse_rxq(c, sec, tok, &q))
				return -EINVAL;
			/* A queue has exactly one poller: that is what keeps the
			 * fast path free of locks. */
			if (rxq_taken(c->cfg, &q))
				return fail(c, -EINVAL, "[%s] rx: %u:%u is polled by another worker",
					    sec, q.port, q.queue);
			if (w->nrxq == XG_CFG_MAX_RXQ)
				return fail(c, -E2BIG, "[%s]: more than %d rx queues", sec,
					    XG_CFG_MAX_RXQ);
			w->rxq[w->nrxq++] = q;
		}
	}
	c->cfg->nworkers++;
	return 0;
}

/* [control]: socket = PATH (absolute), socket_group = NAME|GID. */
static int
parse_control(struct ctx *c, const char *sec, const struct rte_cfgfile_entry *e, int n)
{
	struct xg_cfg_control *ctl = &c->cfg->control;
	int i;

	for (i = 0; i < n; i++) {
		if (strcmp(e[i].name, "socket") == 0) {
			if (e[i].value[0] != '/' || strlen(e[i].value) >= sizeof(ctl->socket))
				return fail(c, -EINVAL, "[%s] socket: an absolute path of at most %zu "
					    "bytes: %s", sec, sizeof(ctl->socket) - 1, e[i].value);
			strcpy(ctl->socket, e[i].value);
		} else if (strcmp(e[i].name, "socket_group") == 0) {
			if (strlen(e[i].value) >= sizeof(ctl->socket_group) ||
			    strspn(e[i].value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					       "0123456789_.-") != strlen(e[i].value))
				return fail(c, -EINVAL, "[%s] socket_group: not a group name or number: "
					    "%s", sec, e[i].value);
			strcpy(ctl->socket_group, e[i].value);
		} else {
			return fail(c, -EINVAL, "[%s]: unknown key %s (socket, socket_group)", sec,
				    e[i].name);
		}
	}
	return 0;
}

static int
parse_section(struct ctx *c, const char *sec)
{
	struct rte_cfgfile_entry *e;
	const char *arg;
	int n, rc;

	n = rte_cfgfile_section_num_entries(c->f, sec);
	if (n < 0)
		return fail(c, -EINVAL, "[%s]: unreadable section", sec);
	e = calloc((size_t)n + 1, sizeof(*e));
	if (e == NULL)
		return fail(c, -ENOMEM, "out of memory");
	if (rte_cfgfile_section_entries(c->f, sec, e, n) != n)
		rc = fail(c, -EINVAL, "[%s]: unreadable section", sec);
	else if ((arg = section_arg(sec, "port")) != NULL)
		rc = parse_port(c, sec, arg, e, n);
	else if (section_arg(sec, "route"))
		rc = parse_route(c, sec, e, n);
	else if (section_arg(sec, "neighbour"))
		rc = parse_neigh(c, sec, e, n);
	else if ((arg = section_arg(sec, "worker")) != NULL)
		rc = parse_worker(c, sec, arg, e, n);
	else if (strcmp(sec, "control") == 0)
		rc = parse_control(c, sec, e, n);
	else
		rc = fail(c, -EINVAL, "[%s]: unknown section (control, port N, route NAME, "
			  "neighbour NAME, worker LCORE)", sec);
	free(e);
	return rc;
}

/* rte_cfgfile skips lines it cannot read (text without '=', a key with
 * no value) instead of refusing them; a gateway must not start on a file
 * it half understood. Every line must be blank, a comment, a section
 * header or KEY = VALUE. */
static int
lint(struct ctx *c, const char *path, FILE *f)
{
	char line[CFG_NAME_LEN + CFG_VALUE_LEN + 64];
	int no = 0;

	while (fgets(line, sizeof(line), f)) {
		char *p = line, *end, *eq;

		no++;
		p[strcspn(p, ";#\n")] = '\0';
		while (*p == ' ' || *p == '\t' || *p == '\r')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*p == '\0')
			continue;
		if (*p == '[') {
			if (end[-1] != ']')
				return fail(c, -EINVAL, "%s:%d: unterminated section header", path, no);
			continue;
		}
		eq = strchr(p, '=');
		if (eq == NULL || eq == p || eq[1 + strspn(eq + 1, " \t")] == '\0')
			return fail(c, -EINVAL, "%s:%d: expected KEY = VALUE", path, no);
	}
	return 0;
}

int
xg_config_load(const char *path, struct xg_config *cfg, char *err, size_t errlen)
{
	struct ctx c = { .cfg = cfg, .err = err, .errlen = errlen };
	char **names = NULL;
	int n, i, rc = 0;
	FILE *probe;

	memset(cfg, 0, sizeof(*cfg));
	probe = fopen(path, "r");
	if (probe == NULL)
		return fail(&c, -errno, "%s: %s", path, strerror(errno));
	rc = lint(&c, path, probe);
	fclose(probe);
	if (rc)
		return rc;
	c.f = rte_cfgfile_load(path, 0);
	if (c.f == NULL)
		return fail(&c, -EINVAL, "%s: not a valid INI file", path);
	n = rte_cfgfile_num_sections(c.f, NULL, 0);
	if (n > 0) {
		names = calloc((size_t)n, sizeof(*names));
		for (i = 0; names && i < n && rc == 0; i++)
			if ((names[i] = malloc(CFG_NAME_LEN)) == NULL)
				rc = fail(&c, -ENOMEM, "out of memory");
		if (rc == 0 && (names == NULL || rte_cfgfile_sections(c.f, names, n) != n))
			rc = fail(&c, -ENOMEM, "%s: cannot list sections", path);
	}
	for (i = 0; rc == 0 && i < n; i++)
		rc = parse_section(&c, names[i]);
	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	rte_cfgfile_close(c.f);
	return rc;
}
