/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Telemetry endpoints that show the XFRM model and the data-plane
 * snapshot: /xfrmgw/sa, /xfrmgw/policy, /xfrmgw/port (docs/telemetry.md).
 *
 * rte_telemetry calls its handlers on its own threads (one per client).
 * The model and the snapshots belong to the control thread, which may
 * change or free them at any time, so these handlers only post the
 * request and wait: the control thread answers it between two polls of
 * the XFRM socket (xg_tel_serve()), after folding the workers' counters
 * into the model, so that the numbers are those `ip -s xfrm state` shows.
 * No lock is taken on the fast path; the mailbox is between the telemetry
 * threads and the control thread only.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_security.h>
#include <rte_telemetry.h>

#include "xg_dp.h"
#include "xg_lcore.h"
#include "xg_server.h"
#include "xg_telemetry.h"
#include "xg_xfrm.h"

#define MAX_LIST 512            /* RTE_TEL_MAX_ARRAY_ENTRIES */
#define WAIT_MS 2000            /* a control thread busier than this: EBUSY */

RTE_LOG_REGISTER(xg_tel_logtype, xfrmgw.telemetry, INFO);

typedef int (*tel_fn)(const char *params, struct rte_tel_data *d);

static struct {
	struct xg_server *srv;
	const struct xg_routes *const *routes;
	const unsigned int *lcore;     /* of each worker */
	unsigned int nworkers;
	void (*report)(void *arg);     /* workers' counters into the model */
	void *report_arg;
} ctl;

/* The mailbox: one request at a time (clients queue on `serial`); the
 * control thread runs it holding `lock`, so a waiter that gives up can
 * never leave it writing into a reply that is gone. */
static pthread_mutex_t serial = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static struct {
	tel_fn fn;
	const char *params;
	struct rte_tel_data *d;
	int rc;
	int pending, done;
} mb;

void
xg_tel_serve(void)
{
	if (!__atomic_load_n(&mb.pending, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&lock);
	if (mb.pending && !mb.done) {
		if (ctl.report)
			ctl.report(ctl.report_arg);
		mb.rc = mb.fn(mb.params, mb.d);
		mb.done = 1;
		__atomic_store_n(&mb.pending, 0, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&done_cv);
	}
	pthread_mutex_unlock(&lock);
}

static int
ask(tel_fn fn, const char *params, struct rte_tel_data *d)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&serial);
	pthread_mutex_lock(&lock);
	mb.fn = fn;
	mb.params = params;
	mb.d = d;
	mb.done = 0;
	__atomic_store_n(&mb.pending, 1, __ATOMIC_RELEASE);
	while (!mb.done)
		if (pthread_cond_timedwait(&done_cv, &lock, &until) == ETIMEDOUT && !mb.done) {
			__atomic_store_n(&mb.pending, 0, __ATOMIC_RELEASE);
			mb.rc = -EBUSY;
			rte_log(RTE_LOG_WARNING, xg_tel_logtype,
				"telemetry: the control thread did not answer within %d ms\n", WAIT_MS);
			break;
		}
	rc = mb.rc;
	pthread_mutex_unlock(&lock);
	pthread_mutex_unlock(&serial);
	return rc;
}

/* ---- formatting ---------------------------------------------------- */

static void
addr_str(uint16_t family, const void *a, char *buf, size_t cap)
{
	if (family == AF_INET || family == AF_INET6)
		inet_ntop(family, a, buf, (socklen_t)cap);
	else
		snprintf(buf, cap, "any");
}

static const char *
mode_str(uint8_t mode)
{
	switch (mode) {
	case XFRM_MODE_TRANSPORT: return "transport";
	case XFRM_MODE_TUNNEL: return "tunnel";
	case XFRM_MODE_BEET: return "beet";
	default: return "other";
	}
}

static const char *
proto_str(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_ESP: return "esp";
	case IPPROTO_AH: return "ah";
	case IPPROTO_COMP: return "comp";
	default: return "other";
	}
}

/* "0x1000", "4096" or a bad number (-EINVAL). */
static int
parse_u32(const char *s, size_t len, uint32_t *v)
{
	char buf[16], *end;
	unsigned long n;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = 0;
	errno = 0;
	if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))
		n = strtoul(buf + 2, &end, 16);
	else
		n = strtoul(buf, &end, 10);
	if (*end || errno || n > UINT32_MAX || buf[0] == '-' || buf[0] == '+' ||
	    (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X') && buf[2] == 0))
		return -EINVAL;
	*v = (uint32_t)n;
	return 0;
}

/* Double the array *@p arr of *@p cap elements of @p size (256 at first). */
static int
grow(void **arr, unsigned int *cap, size_t size)
{
	unsigned int n = *cap ? *cap * 2 : 256;
	void *p = realloc(*arr, n * size);

	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* {"count": N, "truncated": 0|1, NAME: the first MAX_LIST of them}. */
static int
list_reply(struct rte_tel_data *d, unsigned int n, const char *name, struct rte_tel_data *list)
{
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "count", n);
	rte_tel_data_add_dict_u64(d, "truncated", n > MAX_LIST);
	rte_tel_data_add_dict_container(d, name, list, 0);
	return 0;
}

/* ---- /xfrmgw/sa ------------------------------------------------------ */

struct sa_key {
	uint32_t spi;                  /* host order */
	uint16_t family;
	uint8_t daddr[16];
};

struct sa_walk {
	struct sa_key *keys;
	unsigned int n, cap;
	int err;
	/* One SA wanted: */
	const struct sa_key *want;
	bool want_dst;
	struct xg_sa_view hit;         /* first match by dst */
	unsigned int nhit;
	struct rte_tel_data *d;
};

static int
key_cmp(const void *a, const void *b)
{
	const struct sa_key *x = a, *y = b;

	if (x->spi != y->spi)
		return x->spi < y->spi ? -1 : 1;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	return memcmp(x->daddr, y->daddr, 16);
}

static void
sa_key_of(const struct xg_sa_view *v, struct sa_key *k)
{
	memset(k, 0, sizeof(*k));
	k->spi = ntohl(v->id->spi);
	k->family = v->family;
	memcpy(k->daddr, &v->id->daddr, v->family == AF_INET ? 4 : 16);
}

static void
collect_sa(void *arg, const struct xg_sa_view *v)
{
	struct sa_walk *w = arg;

	if (w->n == w->cap && grow((void **)&w->keys, &w->cap, sizeof(*w->keys))) {
		w->err = -ENOMEM;
		return;
	}
	sa_key_of(v, &w->keys[w->n++]);
}

static int
sa_list(const char *params, struct rte_tel_data *d)
{
	struct sa_walk w = { 0 };
	struct rte_tel_data *a;
	unsigned int i;
	char spi[16 + INET6_ADDRSTRLEN];
	bool shared;

	(void)params;
	xg_xfrm_foreach(xg_server_xfrm(ctl.srv), collect_sa, NULL, &w);
	if (w.err) {
		free(w.keys);
		return w.err;
	}
	qsort(w.keys, w.n, sizeof(*w.keys), key_cmp);
	a = rte_tel_data_alloc();
	if (a == NULL) {
		free(w.keys);
		return -ENOMEM;
	}
	rte_tel_data_start_array(a, RTE_TEL_STRING_VAL);
	for (i = 0; i < w.n && i < MAX_LIST; i++) {
		/* An SPI several SAs share: each as "SPI,DST", a parameter
		 * that names it alone. */
		shared = (i > 0 && w.keys[i - 1].spi == w.keys[i].spi) ||
			 (i + 1 < w.n && w.keys[i + 1].spi == w.keys[i].spi);
		snprintf(spi, sizeof(spi), "0x%08x", w.keys[i].spi);
		if (shared) {
			strcat(spi, ",");
			addr_str(w.keys[i].family, w.keys[i].daddr, spi + strlen(spi),
				 sizeof(spi) - strlen(spi));
		}
		rte_tel_data_add_array_string(a, spi);
	}
	free(w.keys);
	return list_reply(d, w.n, "sas", a);
}

static void
find_sa(void *arg, const struct xg_sa_view *v)
{
	struct sa_walk *w = arg;
	struct sa_key k;

	sa_key_of(v, &k);
	if (k.spi != w->want->spi)
		return;
	if (w->want_dst && (k.family != w->want->family || memcmp(k.daddr, w->want->daddr, 16)))
		return;
	if (w->nhit == 0 || key_cmp(&k, &w->keys[0]) < 0) {
		w->hit = *v;
		w->keys[0] = k;
	}
	w->nhit++;
}

static void
add_drop(struct rte_tel_data *drops, enum xg_stat s, uint64_t v)
{
	rte_tel_data_add_dict_u64(drops, xg_stat_name(s), v);
}

static bool
stat_inbound(enum xg_stat s)
{
	return strncmp(xg_stat_name(s), "XfrmIn", 6) == 0;
}

static int
sa_show(const struct xg_sa_view *v, unsigned int same, struct rte_tel_data *d)
{
	const struct xg_sa_rt *rt = xg_shared.dp ? xg_dp_sa_by_uid(xg_shared.dp, v->uid) : NULL;
	struct rte_tel_data *drops = rte_tel_data_alloc(), *replay = rte_tel_data_alloc();
	struct rte_tel_data *lcores = rte_tel_data_alloc();
	int in = rt ? rt->inbound : -1;   /* -1: not in the data plane */
	uint64_t seq = 0;
	char buf[INET6_ADDRSTRLEN + 8], alg[2 * 64 + 2];
	unsigned int i;

	if (drops == NULL || replay == NULL || lcores == NULL) {
		rte_tel_data_free(drops);
		rte_tel_data_free(replay);
		rte_tel_data_free(lcores);
		return -ENOMEM;
	}
	rte_tel_data_start_dict(d);
	snprintf(buf, sizeof(buf), "0x%08x", ntohl(v->id->spi));
	rte_tel_data_add_dict_string(d, "spi", buf);
	addr_str(v->family, &v->id->daddr, buf, sizeof(buf));
	rte_tel_data_add_dict_string(d, "dst", buf);
	addr_str(v->family, v->saddr, buf, sizeof(buf));
	rte_tel_data_add_dict_string(d, "src", buf);
	rte_tel_data_add_dict_string(d, "proto", proto_str(v->id->proto));
	rte_tel_data_add_dict_string(d, "dir", in < 0 ? "none" : in ? "in" : "out");
	rte_tel_data_add_dict_string(d, "mode", mode_str(v->mode));
	rte_tel_data_add_dict_u64(d, "reqid", v->reqid);
	rte_tel_data_add_dict_string(d, "encap", v->encap ? "espinudp" : "none");
	rte_tel_data_add_dict_u64(d, "encap_sport", v->encap ? ntohs(v->encap->encap_sport) : 0);
	rte_tel_data_add_dict_u64(d, "encap_dport", v->encap ? ntohs(v->encap->encap_dport) : 0);
	/* Names only: the keys never leave the model. */
	if (v->aead)
		snprintf(alg, sizeof(alg), "%.64s", v->aead->alg_name);
	else if (v->ealg && v->aalg)
		snprintf(alg, sizeof(alg), "%.64s+%.64s", v->ealg->alg_name, v->aalg->alg_name);
	else if (v->ealg)
		snprintf(alg, sizeof(alg), "%.64s", v->ealg->alg_name);
	else if (v->aalg)
		snprintf(alg, sizeof(alg), "%.64s", v->aalg->alg_name);
	else
		snprintf(alg, sizeof(alg), "none");
	rte_tel_data_add_dict_string(d, "alg", alg);
	rte_tel_data_add_dict_string(d, "offload",
				     rt && rt->off.action == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL ?
				     "inline" : "cpu");
	rte_tel_data_add_dict_u64(d, "esn", (v->flags & XFRM_STATE_ESN) != 0);
	rte_tel_data_add_dict_u64(d, "packets", v->packets);
	rte_tel_data_add_dict_u64(d, "bytes", v->bytes);
	rte_tel_data_add_dict_u64(d, "add_time", v->add_time);
	rte_tel_data_add_dict_u64(d, "use_time", v->use_time);
	if (same > 1)
		rte_tel_data_add_dict_u64(d, "same_spi", same);

	rte_tel_data_start_dict(drops);
	if (in != 0) {
		add_drop(drops, XG_STAT_IN_STATE_SEQ_ERROR, v->replay);
		add_drop(drops, XG_STAT_IN_STATE_PROTO_ERROR, v->integrity_failed);
	}
	for (i = 0; i < XG_SA_NDROPS; i++)
		if (in < 0 || (in == 1) == stat_inbound(xg_sa_drop_stat[i]))
			add_drop(drops, xg_sa_drop_stat[i], v->drops[i]);
	rte_tel_data_add_dict_container(d, "drops", drops, 0);

	/* The live sequence numbers: the model's are a second old. */
	if (rt && in == 1)
		seq = __atomic_load_n(&rt->esp.replay.top, __ATOMIC_RELAXED);
	else if (rt)
		seq = __atomic_load_n(&rt->esp.seq, __ATOMIC_RELAXED);
	else
		seq = v->iseq ? v->iseq : v->oseq;
	rte_tel_data_start_dict(replay);
	rte_tel_data_add_dict_u64(replay, "window", v->replay_window);
	rte_tel_data_add_dict_u64(replay, "seq", seq);
	rte_tel_data_add_dict_u64(replay, "seq_hi", (v->flags & XFRM_STATE_ESN) ? seq >> 32 : 0);
	rte_tel_data_add_dict_u64(replay, "replay_dropped", v->replay);
	rte_tel_data_add_dict_container(d, "replay", replay, 0);

	rte_tel_data_start_array(lcores, RTE_TEL_U64_VAL);
	for (i = 0; i < ctl.nworkers && i < 64; i++)
		if (v->workers >> i & 1)
			rte_tel_data_add_array_u64(lcores, ctl.lcore[i]);
	rte_tel_data_add_dict_container(d, "lcores", lcores, 0);
	return 0;
}

/* "SPI" or "SPI,DST". */
static int
sa_one(const char *params, struct rte_tel_data *d)
{
	const char *comma = strchr(params, ',');
	struct sa_key want, first;
	struct sa_walk w = { 0 };
	char dst[INET6_ADDRSTRLEN];
	size_t len;

	memset(&want, 0, sizeof(want));
	if (parse_u32(params, comma ? (size_t)(comma - params) : strlen(params), &want.spi))
		return -EINVAL;
	if (comma) {
		len = strlen(comma + 1);
		if (len == 0 || len >= sizeof(dst))
			return -EINVAL;
		memcpy(dst, comma + 1, len + 1);
		if (inet_pton(AF_INET, dst, want.daddr) == 1)
			want.family = AF_INET;
		else if (inet_pton(AF_INET6, dst, want.daddr) == 1)
			want.family = AF_INET6;
		else
			return -EINVAL;
		w.want_dst = true;
	}
	w.want = &want;
	w.keys = &first;
	xg_xfrm_foreach(xg_server_xfrm(ctl.srv), find_sa, NULL, &w);
	if (w.nhit == 0)
		return -ENOENT;
	return sa_show(&w.hit, w.nhit, d);
}

static int
tel_sa(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return ask(params && *params ? sa_one : sa_list, params, d);
}

/* ---- /xfrmgw/policy -------------------------------------------------- */

struct pol_walk {
	uint32_t *idx;
	unsigned int n, cap;
	int err;
	uint32_t want;
	bool found;
	struct xg_pol_view hit;
};

static void
collect_pol(void *arg, const struct xg_pol_view *v)
{
	struct pol_walk *w = arg;

	if (w->n == w->cap && grow((void **)&w->idx, &w->cap, sizeof(*w->idx))) {
		w->err = -ENOMEM;
		return;
	}
	w->idx[w->n++] = v->index;
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int
pol_list(const char *params, struct rte_tel_data *d)
{
	struct pol_walk w = { 0 };
	struct rte_tel_data *a;
	unsigned int i;

	(void)params;
	xg_xfrm_foreach(xg_server_xfrm(ctl.srv), NULL, collect_pol, &w);
	if (w.err) {
		free(w.idx);
		return w.err;
	}
	qsort(w.idx, w.n, sizeof(*w.idx), u32_cmp);
	a = rte_tel_data_alloc();
	if (a == NULL) {
		free(w.idx);
		return -ENOMEM;
	}
	rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
	for (i = 0; i < w.n && i < MAX_LIST; i++)
		rte_tel_data_add_array_u64(a, w.idx[i]);
	free(w.idx);
	return list_reply(d, w.n, "policies", a);
}

static void
find_pol(void *arg, const struct xg_pol_view *v)
{
	struct pol_walk *w = arg;

	if (v->index == w->want && !w->found) {
		w->found = true;
		w->hit = *v;
	}
}

static void
prefix_str(uint16_t family, const xfrm_address_t *a, uint8_t len, char *buf, size_t cap)
{
	char s[INET6_ADDRSTRLEN];

	addr_str(family, a, s, sizeof(s));
	if (family == AF_INET || family == AF_INET6)
		snprintf(buf, cap, "%s/%u", s, len);
	else
		snprintf(buf, cap, "any");
}

static int
pol_show(const struct xg_pol_view *v, struct rte_tel_data *d)
{
	static const char *const dirs[] = { "in", "out", "fwd" };
	const struct xfrm_selector *sel = v->sel;
	const struct xg_dp *dp = xg_shared.dp;
	char buf[160], a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
	uint32_t i;

	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "index", v->index);
	rte_tel_data_add_dict_string(d, "dir", v->dir < 3 ? dirs[v->dir] : "other");
	rte_tel_data_add_dict_string(d, "action", v->action == XFRM_POLICY_BLOCK ? "block" : "allow");
	rte_tel_data_add_dict_u64(d, "priority", v->priority);
	prefix_str(sel->family, &sel->saddr, sel->prefixlen_s, buf, sizeof(buf));
	rte_tel_data_add_dict_string(d, "src", buf);
	prefix_str(sel->family, &sel->daddr, sel->prefixlen_d, buf, sizeof(buf));
	rte_tel_data_add_dict_string(d, "dst", buf);
	rte_tel_data_add_dict_u64(d, "proto", sel->proto);
	rte_tel_data_add_dict_u64(d, "sport", ntohs(sel->sport));
	rte_tel_data_add_dict_u64(d, "dport", ntohs(sel->dport));
	if (v->ntmpl) {
		const struct xfrm_user_tmpl *t = &v->tmpl[0];

		addr_str(t->family, &t->saddr, a, sizeof(a));
		addr_str(t->family, &t->id.daddr, b, sizeof(b));
		if (t->mode == XFRM_MODE_TUNNEL)
			snprintf(buf, sizeof(buf), "%s tunnel %s -> %s reqid %u", proto_str(t->id.proto),
				 a, b, t->reqid);
		else
			snprintf(buf, sizeof(buf), "%s %s reqid %u", proto_str(t->id.proto),
				 mode_str(t->mode), t->reqid);
	} else {
		buf[0] = 0;
	}
	rte_tel_data_add_dict_string(d, "tmpl", buf);
	buf[0] = 0;
	for (i = 0; dp && i < dp->npols; i++)
		if (dp->pols[i].index == v->index && dp->pols[i].sa) {
			snprintf(buf, sizeof(buf), "0x%08x", ntohl(dp->pols[i].sa->esp.spi));
			break;
		}
	rte_tel_data_add_dict_string(d, "sa", buf);
	rte_tel_data_add_dict_u64(d, "add_time", v->add_time);
	rte_tel_data_add_dict_u64(d, "use_time", v->use_time);
	return 0;
}

static int
pol_one(const char *params, struct rte_tel_data *d)
{
	struct pol_walk w = { 0 };

	if (parse_u32(params, strlen(params), &w.want))
		return -EINVAL;
	xg_xfrm_foreach(xg_server_xfrm(ctl.srv), NULL, find_pol, &w);
	if (!w.found)
		return -ENOENT;
	return pol_show(&w.hit, d);
}

static int
tel_policy(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return ask(params && *params ? pol_one : pol_list, params, d);
}

/* ---- /xfrmgw/port ---------------------------------------------------- */

static int
port_fill(uint16_t port, struct rte_tel_data *d)
{
	const struct xg_routes *rt = ctl.routes ? *ctl.routes : NULL;
	struct rte_eth_dev_info info;
	struct rte_ether_addr mac;
	struct rte_eth_stats st;
	struct rte_eth_link link;
	char name[RTE_ETH_NAME_MAX_LEN], buf[XG_CFG_MAX_ADDRS * (INET6_ADDRSTRLEN + 5) + 1];
	uint16_t mtu = 0;
	int64_t exc_of = -1;
	size_t off = 0;

	if (!rte_eth_dev_is_valid_port(port) || rte_eth_dev_info_get(port, &info))
		return -ENODEV;
	rte_tel_data_start_dict(d);
	if (rte_eth_dev_get_name_by_port(port, name))
		name[0] = 0;
	rte_tel_data_add_dict_string(d, "name", name);
	rte_tel_data_add_dict_string(d, "driver", info.driver_name ? info.driver_name : "");
	memset(&link, 0, sizeof(link));
	rte_eth_link_get_nowait(port, &link);
	rte_tel_data_add_dict_u64(d, "link", link.link_status);
	rte_tel_data_add_dict_u64(d, "speed_mbps",
				  link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed);
	buf[0] = 0;
	if (rt && port < XG_CFG_MAX_PORTS) {
		const struct xg_dp_port *p = &rt->port[port];

		mtu = p->mtu;
		exc_of = p->exc_of ? (int64_t)p->exc_of - 1 : -1;
		for (unsigned int i = 0; i < p->naddr && off < sizeof(buf); i++) {
			char a[INET6_ADDRSTRLEN];

			addr_str(p->addr[i].family, p->addr[i].family == AF_INET ?
				 (const void *)&p->addr[i].v4 : (const void *)p->addr[i].v6.s6_addr,
				 a, sizeof(a));
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s/%u", i ? " " : "",
						a, p->addr[i].plen);
		}
	}
	if (mtu == 0)
		rte_eth_dev_get_mtu(port, &mtu);
	rte_tel_data_add_dict_u64(d, "mtu", mtu);
	if (rte_eth_macaddr_get(port, &mac) == 0) {
		char m[RTE_ETHER_ADDR_FMT_SIZE];

		rte_ether_format_addr(m, sizeof(m), &mac);
		rte_tel_data_add_dict_string(d, "mac", m);
	}
	rte_tel_data_add_dict_string(d, "addrs", buf);
	rte_tel_data_add_dict_int(d, "exception_of", (int)exc_of);
	memset(&st, 0, sizeof(st));
	rte_eth_stats_get(port, &st);
	rte_tel_data_add_dict_u64(d, "rx_packets", st.ipackets);
	rte_tel_data_add_dict_u64(d, "tx_packets", st.opackets);
	rte_tel_data_add_dict_u64(d, "rx_bytes", st.ibytes);
	rte_tel_data_add_dict_u64(d, "tx_bytes", st.obytes);
	rte_tel_data_add_dict_u64(d, "rx_nombuf", st.rx_nombuf);
	rte_tel_data_add_dict_u64(d, "imissed", st.imissed);
	rte_tel_data_add_dict_u64(d, "ierrors", st.ierrors);
	rte_tel_data_add_dict_u64(d, "oerrors", st.oerrors);
	return 0;
}

static int
port_all(const char *params, struct rte_tel_data *d)
{
	uint16_t port;

	(void)params;
	rte_tel_data_start_dict(d);
	RTE_ETH_FOREACH_DEV(port) {
		struct rte_tel_data *p = rte_tel_data_alloc();
		char name[16];
		int rc;

		if (p == NULL)
			return -ENOMEM;
		rc = port_fill(port, p);
		if (rc) {
			rte_tel_data_free(p);
			return rc;
		}
		snprintf(name, sizeof(name), "port%u", port);
		rte_tel_data_add_dict_container(d, name, p, 0);
	}
	return 0;
}

static int
port_one(const char *params, struct rte_tel_data *d)
{
	uint32_t port;

	if (parse_u32(params, strlen(params), &port) || port >= RTE_MAX_ETHPORTS)
		return -EINVAL;
	return port_fill((uint16_t)port, d);
}

static int
tel_port(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	return ask(params && *params ? port_one : port_all, params, d);
}

void
xg_tel_init(const struct xg_tel_ctx *c)
{
	ctl.srv = c->srv;
	ctl.routes = c->routes;
	ctl.lcore = c->lcore;
	ctl.nworkers = c->nworkers;
	ctl.report = c->report;
	ctl.report_arg = c->report_arg;
	rte_telemetry_register_cmd("/xfrmgw/sa", tel_sa,
				   "SAs: list of SPIs; with ,SPI[,DST]: counters, drops by reason, "
				   "replay state, lcores");
	rte_telemetry_register_cmd("/xfrmgw/policy", tel_policy,
				   "Policies: list of indexes; with ,INDEX: selector, action, template, SA");
	rte_telemetry_register_cmd("/xfrmgw/port", tel_port,
				   "Ports: link, addresses, MTU, packets and drops; with ,PORT: one port");
}
