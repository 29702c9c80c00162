/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Logging: one INFO line per change of the SAD/SPD (logtype xfrmgw.xfrm),
 * taken from the events the model multicasts, so that every change is
 * logged once, whoever made it (a client, a lifetime, an expiry);
 * requests at DEBUG; refused changes at INFO with their errno. Names,
 * addresses, SPIs and algorithm names only: never a key (the attributes
 * that carry keys are read for their algorithm name alone).
 *
 * /xfrmgw/log lists the xfrmgw.* logtypes and their levels ("NAME:LEVEL");
 * /xfrmgw/log,PATTERN:LEVEL changes them at run time.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netlink.h>
#include <linux/xfrm.h>

#include <rte_common.h>
#include <rte_log.h>
#include <rte_telemetry.h>

#include "xg_log.h"

RTE_LOG_REGISTER(xg_xfrm_logtype, xfrmgw.xfrm, INFO);
#define XLOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, xg_xfrm_logtype, "xfrm: " fmt "\n", ##__VA_ARGS__)

static const char *
msg_name(uint16_t type)
{
	static const char *const names[] = {
		[XFRM_MSG_NEWSA - XFRM_MSG_BASE] = "NEWSA",
		[XFRM_MSG_DELSA - XFRM_MSG_BASE] = "DELSA",
		[XFRM_MSG_GETSA - XFRM_MSG_BASE] = "GETSA",
		[XFRM_MSG_NEWPOLICY - XFRM_MSG_BASE] = "NEWPOLICY",
		[XFRM_MSG_DELPOLICY - XFRM_MSG_BASE] = "DELPOLICY",
		[XFRM_MSG_GETPOLICY - XFRM_MSG_BASE] = "GETPOLICY",
		[XFRM_MSG_ALLOCSPI - XFRM_MSG_BASE] = "ALLOCSPI",
		[XFRM_MSG_ACQUIRE - XFRM_MSG_BASE] = "ACQUIRE",
		[XFRM_MSG_EXPIRE - XFRM_MSG_BASE] = "EXPIRE",
		[XFRM_MSG_UPDPOLICY - XFRM_MSG_BASE] = "UPDPOLICY",
		[XFRM_MSG_UPDSA - XFRM_MSG_BASE] = "UPDSA",
		[XFRM_MSG_POLEXPIRE - XFRM_MSG_BASE] = "POLEXPIRE",
		[XFRM_MSG_FLUSHSA - XFRM_MSG_BASE] = "FLUSHSA",
		[XFRM_MSG_FLUSHPOLICY - XFRM_MSG_BASE] = "FLUSHPOLICY",
		[XFRM_MSG_NEWAE - XFRM_MSG_BASE] = "NEWAE",
		[XFRM_MSG_GETAE - XFRM_MSG_BASE] = "GETAE",
		[XFRM_MSG_REPORT - XFRM_MSG_BASE] = "REPORT",
		[XFRM_MSG_MIGRATE - XFRM_MSG_BASE] = "MIGRATE",
		[XFRM_MSG_NEWSADINFO - XFRM_MSG_BASE] = "NEWSADINFO",
		[XFRM_MSG_GETSADINFO - XFRM_MSG_BASE] = "GETSADINFO",
		[XFRM_MSG_NEWSPDINFO - XFRM_MSG_BASE] = "NEWSPDINFO",
		[XFRM_MSG_GETSPDINFO - XFRM_MSG_BASE] = "GETSPDINFO",
		[XFRM_MSG_MAPPING - XFRM_MSG_BASE] = "MAPPING",
		[XFRM_MSG_SETDEFAULT - XFRM_MSG_BASE] = "SETDEFAULT",
		[XFRM_MSG_GETDEFAULT - XFRM_MSG_BASE] = "GETDEFAULT",
	};
	unsigned int i = (unsigned int)type - XFRM_MSG_BASE;

	if (type >= XFRM_MSG_BASE && i < RTE_DIM(names) && names[i])
		return names[i];
	return "?";
}

/* Requests that change something; the others are read-only. */
static bool
is_change(uint16_t type)
{
	switch (type) {
	case XFRM_MSG_GETSA: case XFRM_MSG_GETPOLICY: case XFRM_MSG_GETAE:
	case XFRM_MSG_GETSADINFO: case XFRM_MSG_GETSPDINFO: case XFRM_MSG_GETDEFAULT:
		return false;
	default:
		return true;
	}
}

static void
addr(uint16_t family, const xfrm_address_t *a, char *buf, size_t cap)
{
	if ((family != AF_INET && family != AF_INET6) ||
	    inet_ntop(family, a, buf, (socklen_t)cap) == NULL)
		snprintf(buf, cap, "any");
}

static const char *
mode_name(uint8_t m)
{
	return m == XFRM_MODE_TUNNEL ? "tunnel" : m == XFRM_MODE_TRANSPORT ? "transport" :
	       m == XFRM_MODE_BEET ? "beet" : "other";
}

static const char *
dir_name(uint8_t d)
{
	return d == XFRM_POLICY_IN ? "in" : d == XFRM_POLICY_OUT ? "out" :
	       d == XFRM_POLICY_FWD ? "fwd" : "?";
}

/* The algorithm names among the attributes after @p off, "+"-joined. */
static void
alg_names(const struct nlmsghdr *h, size_t off, char *buf, size_t cap)
{
	const uint8_t *p = (const uint8_t *)h + NLMSG_ALIGN(off);
	const uint8_t *end = (const uint8_t *)h + h->nlmsg_len;
	size_t n = 0;

	buf[0] = 0;
	while (p + sizeof(struct nlattr) <= end) {
		const struct nlattr *a = (const struct nlattr *)p;
		uint16_t type = a->nla_type & NLA_TYPE_MASK;

		if (a->nla_len < sizeof(*a) || p + a->nla_len > end)
			break;
		/* Every algorithm attribute starts with char alg_name[64]. */
		if ((type == XFRMA_ALG_AEAD || type == XFRMA_ALG_CRYPT || type == XFRMA_ALG_AUTH ||
		     type == XFRMA_ALG_AUTH_TRUNC || type == XFRMA_ALG_COMP) &&
		    a->nla_len >= sizeof(*a) + 64 && n < cap) {
			char name[65];

			/* ALG_AUTH and ALG_AUTH_TRUNC name the same algorithm. */
			snprintf(name, sizeof(name), "%.64s", (const char *)(a + 1));
			if (strstr(buf, name) == NULL)
				n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "+" : "", name);
		}
		p += NLA_ALIGN(a->nla_len);
	}
	if (buf[0] == 0)
		snprintf(buf, cap, "none");
}

static void
log_sa(const char *what, int pid, const struct nlmsghdr *h, const struct xfrm_usersa_info *sa,
       size_t off)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], alg[160];

	addr(sa->family, &sa->saddr, s, sizeof(s));
	addr(sa->family, &sa->id.daddr, d, sizeof(d));
	alg_names(h, off, alg, sizeof(alg));
	XLOG(INFO, "%s SA spi 0x%08x proto %u %s -> %s %s reqid %u alg %s (pid %d)", what,
	     ntohl(sa->id.spi), sa->id.proto, s, d, mode_name(sa->mode), sa->reqid, alg, pid);
}

static void
log_sel(const char *what, int pid, const struct xfrm_selector *sel, uint8_t dir, uint32_t index,
	const char *extra)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];

	addr(sel->family, &sel->saddr, s, sizeof(s));
	addr(sel->family, &sel->daddr, d, sizeof(d));
	XLOG(INFO, "%s policy index %u dir %s %s/%u -> %s/%u proto %u%s (pid %d)", what, index,
	     dir_name(dir), s, sel->prefixlen_s, d, sel->prefixlen_d, sel->proto, extra, pid);
}

#define HAS(h, T) ((h)->nlmsg_len >= NLMSG_LENGTH(sizeof(T)))
/* NLMSG_DATA() casts the const away. */
#define DATA(h) ((const void *)((const char *)(h) + NLMSG_HDRLEN))

static void
log_event(int pid, const struct nlmsghdr *h)
{
	const void *b = DATA(h);
	char d[INET6_ADDRSTRLEN], extra[64];

	switch (h->nlmsg_type) {
	case XFRM_MSG_NEWSA:
	case XFRM_MSG_UPDSA:
		if (HAS(h, struct xfrm_usersa_info))
			log_sa(h->nlmsg_type == XFRM_MSG_NEWSA ? "added" : "updated", pid, h, b,
			       NLMSG_LENGTH(sizeof(struct xfrm_usersa_info)));
		return;
	case XFRM_MSG_DELSA:
		if (HAS(h, struct xfrm_usersa_id)) {
			const struct xfrm_usersa_id *id = b;

			addr(id->family, &id->daddr, d, sizeof(d));
			XLOG(INFO, "deleted SA spi 0x%08x proto %u dst %s (pid %d)", ntohl(id->spi),
			     id->proto, d, pid);
		}
		return;
	case XFRM_MSG_EXPIRE:
		if (HAS(h, struct xfrm_user_expire)) {
			const struct xfrm_user_expire *e = b;

			addr(e->state.family, &e->state.id.daddr, d, sizeof(d));
			XLOG(INFO, "%s expire of SA spi 0x%08x dst %s%s", e->hard ? "hard" : "soft",
			     ntohl(e->state.id.spi), d, e->hard ? ": deleted" : "");
		}
		return;
	case XFRM_MSG_FLUSHSA:
		XLOG(INFO, "flushed SAs proto %u (pid %d)",
		     HAS(h, struct xfrm_usersa_flush) ?
		     ((const struct xfrm_usersa_flush *)b)->proto : 0, pid);
		return;
	case XFRM_MSG_NEWPOLICY:
	case XFRM_MSG_UPDPOLICY:
		if (HAS(h, struct xfrm_userpolicy_info)) {
			const struct xfrm_userpolicy_info *p = b;

			snprintf(extra, sizeof(extra), " action %s priority %u",
				 p->action == XFRM_POLICY_BLOCK ? "block" : "allow", p->priority);
			log_sel(h->nlmsg_type == XFRM_MSG_NEWPOLICY ? "added" : "updated", pid,
				&p->sel, p->dir, p->index, extra);
		}
		return;
	case XFRM_MSG_DELPOLICY:
		if (HAS(h, struct xfrm_userpolicy_id)) {
			const struct xfrm_userpolicy_id *p = b;

			log_sel("deleted", pid, &p->sel, p->dir, p->index, "");
		}
		return;
	case XFRM_MSG_POLEXPIRE:
		if (HAS(h, struct xfrm_user_polexpire)) {
			const struct xfrm_user_polexpire *e = b;

			log_sel(e->hard ? "hard expire of" : "soft expire of", pid, &e->pol.sel,
				e->pol.dir, e->pol.index, e->hard ? ": deleted" : "");
		}
		return;
	case XFRM_MSG_FLUSHPOLICY:
		XLOG(INFO, "flushed policies (pid %d)", pid);
		return;
	case XFRM_MSG_ACQUIRE:
		if (HAS(h, struct xfrm_user_acquire)) {
			const struct xfrm_user_acquire *a = b;

			/* The message has no family of its own: an IPv4
			 * address fills the first word only. */
			addr(a->id.daddr.a6[1] | a->id.daddr.a6[2] | a->id.daddr.a6[3] ?
			     AF_INET6 : AF_INET, &a->id.daddr, d, sizeof(d));
			XLOG(INFO, "ACQUIRE sent for policy %u: no SA towards %s", a->policy.index, d);
		}
		return;
	case XFRM_MSG_MAPPING:
		if (HAS(h, struct xfrm_user_mapping)) {
			const struct xfrm_user_mapping *m = b;
			char o[INET6_ADDRSTRLEN], n[INET6_ADDRSTRLEN];

			addr(m->id.family, &m->old_saddr, o, sizeof(o));
			addr(m->id.family, &m->new_saddr, n, sizeof(n));
			XLOG(INFO, "NAT-T peer of SA spi 0x%08x moved: %s:%u -> %s:%u",
			     ntohl(m->id.spi), o, ntohs(m->old_sport), n, ntohs(m->new_sport));
		}
		return;
	case XFRM_MSG_NEWAE:
		/* Replay-state events follow traffic: not a change of the tables. */
		XLOG(DEBUG, "NEWAE event (pid %d)", pid);
		return;
	default:
		XLOG(INFO, "%s (pid %d)", msg_name(h->nlmsg_type), pid);
		return;
	}
}

void
xg_log_observe(void *arg, enum xg_server_seen what, int pid, const void *msg, size_t len)
{
	const struct nlmsghdr *h = msg;

	(void)arg;
	if (len < sizeof(*h) || h->nlmsg_len > len || h->nlmsg_len < sizeof(*h))
		return;
	switch (what) {
	case XG_SEEN_REQUEST:
		XLOG(DEBUG, "request %s (%u) from pid %d, %u bytes", msg_name(h->nlmsg_type),
		     h->nlmsg_type, pid, h->nlmsg_len);
		return;
	case XG_SEEN_EVENT:
		log_event(pid, h);
		return;
	case XG_SEEN_ERROR:
		if (HAS(h, struct nlmsgerr)) {
			const struct nlmsgerr *e = DATA(h);

			if (is_change(e->msg.nlmsg_type))
				XLOG(INFO, "%s from pid %d refused: %s", msg_name(e->msg.nlmsg_type),
				     pid, strerror(-e->error));
			else
				XLOG(DEBUG, "%s from pid %d: %s", msg_name(e->msg.nlmsg_type), pid,
				     strerror(-e->error));
		}
		return;
	}
}

/* ---- /xfrmgw/log ------------------------------------------------------ */

static const char *const level_names[] = {
	[RTE_LOG_EMERG] = "emerg", [RTE_LOG_ALERT] = "alert", [RTE_LOG_CRIT] = "critical",
	[RTE_LOG_ERR] = "error", [RTE_LOG_WARNING] = "warning", [RTE_LOG_NOTICE] = "notice",
	[RTE_LOG_INFO] = "info", [RTE_LOG_DEBUG] = "debug",
};

static int
parse_level(const char *s)
{
	char *end;
	long n;
	int i;

	for (i = RTE_LOG_EMERG; i <= (int)RTE_LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "err") == 0)
		return RTE_LOG_ERR;
	if (strcmp(s, "crit") == 0)
		return RTE_LOG_CRIT;
	n = strtol(s, &end, 10);
	if (*s && !*end && n >= RTE_LOG_EMERG && n <= (long)RTE_LOG_DEBUG)
		return (int)n;
	return -EINVAL;
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* The xfrmgw.* logtypes and their levels, from rte_log_dump() (22.11 has
 * no iterator): lines "id N: NAME, level is LEVEL". */
static int
list_types(struct rte_tel_data *d, const char *pattern)
{
	char *text = NULL, *line, *save = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	if (f == NULL)
		return -ENOMEM;
	rte_log_dump(f);
	fclose(f);
	/* "NAME:LEVEL" strings, as they are set (dict keys may not hold a dot). */
	rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char entry[80];
		char name[64];
		int type;

		if (sscanf(line, " id %d: %63[^,], level is", &type, name) != 2 ||
		    strncmp(name, "xfrmgw.", 7) != 0 ||
		    (pattern && fnmatch(pattern, name, 0) != 0))
			continue;
		snprintf(entry, sizeof(entry), "%s:%s", name,
			 level_names[rte_log_get_level((uint32_t)type)]);
		rte_tel_data_add_array_string(d, entry);
	}
	free(text);
	return 0;
}

/* "" lists; "PATTERN:LEVEL" sets every logtype PATTERN (fnmatch, as EAL's
 * --log-level) matches, then lists those. Only xfrmgw.* types. */
static int
tel_log(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char pattern[64];
	const char *colon;
	int level, rc;

	(void)cmd;
	pthread_mutex_lock(&log_lock);
	if (params == NULL || *params == 0) {
		rc = list_types(d, NULL);
		goto out;
	}
	colon = strrchr(params, ':');
	rc = -EINVAL;
	if (colon == NULL || colon == params || (size_t)(colon - params) >= sizeof(pattern))
		goto out;
	memcpy(pattern, params, (size_t)(colon - params));
	pattern[colon - params] = 0;
	level = parse_level(colon + 1);
	if (level < 0 || strncmp(pattern, "xfrmgw.", 7) != 0)
		goto out;
	if (rte_log_set_level_pattern(pattern, (uint32_t)level) < 0)
		goto out;
	XLOG(NOTICE, "log level of %s set to %s (telemetry)", pattern, level_names[level]);
	rc = list_types(d, pattern);
out:
	pthread_mutex_unlock(&log_lock);
	return rc;
}

void
xg_log_init(void)
{
	rte_telemetry_register_cmd("/xfrmgw/log", tel_log,
				   "xfrmgw logtypes and levels; ,PATTERN:LEVEL sets them "
				   "(e.g. xfrmgw.xfrm:debug)");
}
