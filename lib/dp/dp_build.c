/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Compile the XFRM model and the configuration into a data-plane snapshot
 * (control thread only). Nothing here runs per packet.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include "xg_dp.h"
#include "xg_xfrm.h"

RTE_LOG_REGISTER(xg_dp_logtype, xfrmgw.dp, INFO);

#define MAX_SAS (1u << 20)

/* b->rt[i] of an SA the crypto device cannot run: it stays out of this
 * snapshot (its packets are dropped as having no state), the others go in. */
static struct xg_sa_rt unusable;

struct build {
	struct xg_dp *dp;
	struct xg_dp *prev;              /* its SA runtime objects are taken over */
	struct xg_sa_view *sav;          /* every SA, newest first */
	uint32_t nsav, capsav;
	struct xg_sa_rt **rt;            /* rt[i] for sav[i], NULL until used */
	/* sav indices by (proto, mode, family, reqid), newest first:
	 * head[hash] and next[i], -1 ends a chain. */
	int32_t *head, *next;
	uint32_t hmask;
	uint32_t capsas;                 /* of dp->sas */
	struct xg_spd_rule *rules;
	uint32_t nrules, caprules, cappols;
	int err;
};

static int
grow(void **arr, uint32_t *cap, uint32_t need, size_t elt)
{
	void *p;
	uint32_t n = *cap ? *cap : 64;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*arr, (size_t)n * elt);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static void
collect_sa(void *arg, const struct xg_sa_view *v)
{
	struct build *b = arg;

	if (b->err || grow((void **)&b->sav, &b->capsav, b->nsav + 1, sizeof(*v))) {
		b->err = -ENOMEM;
		return;
	}
	b->sav[b->nsav++] = *v;
}

static void
sel_to_rule(const struct xfrm_selector *s, struct xg_spd_rule *r)
{
	memset(r, 0, sizeof(*r));
	r->family = (uint8_t)s->family;
	r->proto = s->proto;
	r->splen = s->prefixlen_s;
	r->dplen = s->prefixlen_d;
	memcpy(r->saddr, &s->saddr, 16);
	memcpy(r->daddr, &s->daddr, 16);
	r->sport = s->sport;
	r->sport_mask = s->sport_mask;
	r->dport = s->dport;
	r->dport_mask = s->dport_mask;
}

/* Policies a plain packet can meet: main type, no mark, no interface id
 * (packets here carry neither). */
static void
collect_pol(void *arg, const struct xg_pol_view *v)
{
	struct build *b = arg;
	struct xg_dp *dp = b->dp;
	struct xg_spd_rule *r;
	struct xg_pol_rt *p;

	if (b->err || v->type != XFRM_POLICY_TYPE_MAIN || v->mark_v || v->if_id)
		return;
	if (grow((void **)&b->rules, &b->caprules, b->nrules + 1, sizeof(*r)) ||
	    grow((void **)&dp->pols, &b->cappols, b->nrules + 1, sizeof(*p))) {
		b->err = -ENOMEM;
		return;
	}
	r = &b->rules[b->nrules];
	sel_to_rule(v->sel, r);
	r->dir = v->dir;
	r->priority = v->priority;
	r->order = v->order;
	r->id = b->nrules;
	p = &dp->pols[b->nrules++];
	memset(p, 0, sizeof(*p));
	p->action = v->action;
	p->dir = v->dir;
	p->index = v->index;
	p->ntmpl = v->ntmpl;
	if (v->ntmpl)
		p->tmpl = v->tmpl[0];
}

static bool
addr_zero(const void *a)
{
	static const uint8_t z[16];

	return memcmp(a, z, 16) == 0;
}

static bool
addr_eq(const void *a, const void *b, uint16_t family)
{
	return memcmp(a, b, family == AF_INET ? 4 : 16) == 0;
}

static uint32_t
tmpl_hash(uint8_t proto, uint8_t mode, uint16_t family, uint32_t reqid)
{
	uint32_t h = (reqid ^ ((uint32_t)proto << 24 | (uint32_t)mode << 16 | family)) *
		     0x9e3779b1u;

	return h ^ (h >> 16);
}

/* Index the SAs templates can name: one pass, oldest first, so that each
 * chain lists the newest first as sav does. */
static int
index_sas(struct build *b)
{
	uint32_t n = 64, i;

	while (n < b->nsav * 2)
		n *= 2;
	b->head = malloc(n * sizeof(*b->head));
	b->next = malloc((b->nsav ? b->nsav : 1) * sizeof(*b->next));
	if (b->head == NULL || b->next == NULL)
		return -ENOMEM;
	memset(b->head, 0xff, n * sizeof(*b->head));
	b->hmask = n - 1;
	for (i = b->nsav; i-- > 0;) {
		const struct xg_sa_view *s = &b->sav[i];
		uint32_t h = tmpl_hash(s->id->proto, s->mode, s->family, s->reqid) & b->hmask;

		b->next[i] = b->head[h];
		b->head[h] = (int32_t)i;
	}
	return 0;
}

static bool
sa_fits(const struct xg_sa_view *s, const struct xfrm_user_tmpl *t)
{
	if (s->id->proto != t->id.proto || s->mode != t->mode || s->family != t->family)
		return false;
	if ((t->reqid && s->reqid != t->reqid) || (t->id.spi && s->id->spi != t->id.spi))
		return false;
	if (s->mark_v || s->if_id)
		return false;
	if (!addr_zero(&t->id.daddr) && !addr_eq(&t->id.daddr, &s->id->daddr, s->family))
		return false;
	return addr_zero(&t->saddr) || addr_eq(&t->saddr, s->saddr, s->family);
}

/* xfrm_state_find(), reduced: the newest SA the template names. A template
 * with a reqid (charon's, ip's with "reqid") is looked up in the index;
 * without one every SA is a candidate. */
static int
tmpl_match(const struct build *b, const struct xfrm_user_tmpl *t)
{
	int32_t i;

	if (t->reqid == 0) {
		for (i = 0; (uint32_t)i < b->nsav; i++)
			if (sa_fits(&b->sav[i], t))
				return i;
		return -1;
	}
	i = b->head[tmpl_hash(t->id.proto, t->mode, t->family, t->reqid) & b->hmask];
	for (; i >= 0; i = b->next[i])
		if (sa_fits(&b->sav[i], t))
			return i;
	return -1;
}

static int
alg_cfg(const struct xg_sa_view *v, struct xg_esp_cfg *c)
{
	if (v->aead) {
		uint32_t kb = v->aead->alg_key_len / 8;

		c->aead = strcmp(v->aead->alg_name, "rfc4106(gcm(aes))") == 0 ?
				  XG_AEAD_AES_GCM : XG_AEAD_CHACHA20_POLY1305;
		c->key_len = (uint8_t)(kb - 4);
		memcpy(c->key, v->aead->alg_key, c->key_len);
		memcpy(c->salt, v->aead->alg_key + c->key_len, 4);
		c->icv_bytes = (uint8_t)(v->aead->alg_icv_len / 8);
		return 0;
	}
	if (v->ealg == NULL || v->aalg == NULL)
		return -EINVAL;   /* ESP without integrity: not run here */
	c->cipher = strcmp(v->ealg->alg_name, "cbc(aes)") == 0 ? XG_CIPHER_AES_CBC :
		    strcmp(v->ealg->alg_name, "rfc3686(ctr(aes))") == 0 ? XG_CIPHER_AES_CTR :
									  XG_CIPHER_NULL;
	c->key_len = (uint8_t)(v->ealg->alg_key_len / 8);
	if (c->cipher == XG_CIPHER_AES_CTR) {
		c->key_len -= 4;
		memcpy(c->salt, v->ealg->alg_key + c->key_len, 4);
	}
	memcpy(c->key, v->ealg->alg_key, c->key_len);
	c->auth = strcmp(v->aalg->alg_name, "hmac(sha1)") == 0 ? XG_AUTH_SHA1 :
		  strcmp(v->aalg->alg_name, "hmac(sha256)") == 0 ? XG_AUTH_SHA256 :
		  strcmp(v->aalg->alg_name, "hmac(sha384)") == 0 ? XG_AUTH_SHA384 :
								   XG_AUTH_SHA512;
	c->auth_key_len = (uint8_t)(v->aalg->alg_key_len / 8);
	memcpy(c->auth_key, v->aalg->alg_key, c->auth_key_len);
	c->icv_bytes = (uint8_t)(v->aalg->alg_trunc_len / 8);
	return 0;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

/* Hard byte/packet limits in the object's own counter space: what it has
 * reported is in the model's current lifetime already. */
static void
set_limits(struct xg_sa_rt *rt, const struct xg_sa_view *v)
{
	rt->encap = v->encap != NULL;
	__atomic_store_n(&rt->encap_ports,
			 v->encap ? (uint32_t)v->encap->encap_sport << 16 | v->encap->encap_dport : 0,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&rt->hard_packets, sat_add(rt->rep_packets, v->packets_left),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&rt->hard_bytes, sat_add(rt->rep_bytes, v->bytes_left), __ATOMIC_RELAXED);
}

/* The port an SA's packets leave by (outbound) or arrive on (inbound):
 * where an offload session for it has to live. -1: none. */
static int
sa_port(const struct xg_routes *rt, const struct xg_esp_cfg *c)
{
	const struct xg_dp_nh *nh;

	if (!c->outbound)
		return xg_dp_local_port(rt, c->family, c->daddr);
	nh = xg_dp_route(rt, c->family, c->daddr);
	return nh ? nh->port : -1;
}

static bool
was_refused(const struct xg_dp *dp, uint64_t uid)
{
	uint32_t i;

	for (i = 0; dp && i < dp->nrefused; i++)
		if (dp->refused[i] == uid)
			return true;
	return false;
}

/* Keys and algorithms never change under an SA's identity: one the device
 * refused once is neither tried nor logged again. */
static struct xg_sa_rt *
refuse(struct build *b, const struct xg_sa_view *v, int rc)
{
	struct xg_dp *dp = b->dp;

	if (!was_refused(b->prev, v->uid))
		rte_log(RTE_LOG_WARNING, xg_dp_logtype,
			"dp: SA spi 0x%08x: not in the data plane: %s\n",
			rte_be_to_cpu_32(v->id->spi), strerror(-rc));
	if (grow((void **)&dp->refused, &dp->caprefused, dp->nrefused + 1,
		 sizeof(*dp->refused)))
		return NULL;
	dp->refused[dp->nrefused++] = v->uid;
	return &unusable;
}

/* The runtime object of an SA: the previous snapshot's, or a new one.
 * NULL: out of memory; &unusable: the device refused its keys or
 * algorithms (a lookaside device without ChaCha20-Poly1305, say). */
static struct xg_sa_rt *
make_rt(struct build *b, const struct xg_sa_view *v, bool inbound)
{
	struct xg_sa_rt *rt = b->prev ? xg_dp_sa_by_uid(b->prev, v->uid) : NULL;
	struct xg_esp_cfg c;
	int rc, port;

	/* Keys never change under an SA's identity: the old object, with its
	 * sequence counter and replay window, carries on. */
	if (rt && rt->inbound == inbound) {
		rt->owner = b->dp;
		set_limits(rt, v);   /* UPDSA may have changed them */
		return rt;
	}
	if (was_refused(b->prev, v->uid))
		return refuse(b, v, -EIO);
	rt = rte_zmalloc("xg_sa_rt", sizeof(*rt), RTE_CACHE_LINE_SIZE);
	if (rt == NULL)
		return NULL;
	memset(&c, 0, sizeof(c));
	c.outbound = !inbound;
	c.tunnel = v->mode == XFRM_MODE_TUNNEL;
	c.esn = v->flags & XFRM_STATE_ESN;
	c.family = (uint8_t)v->family;
	memcpy(c.saddr, v->saddr, 16);
	memcpy(c.daddr, &v->id->daddr, 16);
	c.spi = v->id->spi;
	c.replay_window = v->replay_window;
	c.seq = v->oseq;
	rc = alg_cfg(v, &c);
	if (rc == 0)
		rc = xg_esp_sa_init(&rt->esp, &c);
	if (rc == 0 && inbound)
		xg_replay_seed(&rt->esp.replay, v->iseq);
	/* A port with inline IPsec takes the SA; the workers find it again
	 * from the uid the port hands back with each decrypted packet. */
	port = rc || v->encap ? -1 : sa_port(b->dp->rt, &c);   /* no inline NAT-T */
	if (port >= 0)
		xg_offload_attach(&rt->off, (uint16_t)port, &c, (void *)(uintptr_t)v->uid);
	explicit_bzero(&c, sizeof(c));
	if (rc) {
		rte_free(rt);
		return refuse(b, v, rc);
	}
	rt->inbound = inbound;
	set_limits(rt, v);
	/* esp_init_state(): ESP header, IV, the outer header in tunnel mode,
	 * the UDP header with NAT-T. */
	rt->hdr_len = (uint16_t)(8 + rt->esp.iv_len + (rt->encap ? 8 : 0) +
				 (v->mode == XFRM_MODE_TUNNEL ? (v->family == AF_INET ? 20 : 40) : 0));
	rt->uid = v->uid;
	rt->owner = b->dp;
	rt->mode = v->mode;
	rt->reqid = v->reqid;
	rt->family = v->family;
	memcpy(rt->daddr, &v->id->daddr, 16);
	memcpy(rt->saddr, v->saddr, 16);
	sel_to_rule(v->sel, &rt->sel);
	rt->sel_any = v->sel->family == AF_UNSPEC;
	return rt;
}

/* An object make_rt() gave that the snapshot cannot list: the previous
 * snapshot's goes back to it, a new one is destroyed. */
static void
unmake_rt(struct build *b, struct xg_sa_rt *rt)
{
	if (b->prev && xg_dp_sa_by_uid(b->prev, rt->uid) == rt) {
		rt->owner = b->prev;
		return;
	}
	xg_offload_detach(&rt->off);
	xg_esp_sa_fini(&rt->esp);
	rte_free(rt);
}

static int
add_sa(struct build *b, struct xg_sa_rt *rt)
{
	struct xg_dp *dp = b->dp;

	if (dp->nsas == MAX_SAS ||
	    grow((void **)&dp->sas, &b->capsas, dp->nsas + 1, sizeof(*dp->sas))) {
		unmake_rt(b, rt);
		return dp->nsas == MAX_SAS ? -E2BIG : -ENOMEM;
	}
	dp->sas[dp->nsas++] = rt;
	return 0;
}

/* Outbound SAs: the ones the out policies' templates select. */
static int
bind_out_sas(struct build *b)
{
	uint32_t i;

	for (i = 0; i < b->nrules; i++) {
		struct xg_pol_rt *p = &b->dp->pols[i];
		int k;

		if (p->dir != XFRM_POLICY_OUT || p->ntmpl == 0)
			continue;
		k = tmpl_match(b, &p->tmpl);
		if (k < 0)
			continue;   /* no SA yet: packets are dropped as XfrmOutNoStates */
		if (b->rt[k] == NULL) {
			struct xg_sa_rt *rt = make_rt(b, &b->sav[k], false);
			int rc = rt == NULL ? -ENOMEM : rt == &unusable ? 0 : add_sa(b, rt);

			if (rc)
				return rc;
			b->rt[k] = rt;
		}
		if (b->rt[k] != &unusable)
			p->sa = b->rt[k];
	}
	return 0;
}

/* Every other SA receives: keyed by SPI, destination and family. */
static int
add_in_sas(struct build *b, unsigned int seq)
{
	struct rte_hash_parameters hp = {
		.entries = RTE_MAX(b->nsav, 64u),
		.key_len = sizeof(struct xg_sad_key),
		.hash_func = rte_hash_crc,
		.socket_id = SOCKET_ID_ANY,
	};
	char name[32];
	uint32_t i;
	int rc;

	snprintf(name, sizeof(name), "xg_sad%u", seq);
	hp.name = name;
	b->dp->sad_in = rte_hash_create(&hp);
	if (b->dp->sad_in == NULL)
		return -ENOMEM;
	for (i = 0; i < b->nsav; i++) {
		const struct xg_sa_view *v = &b->sav[i];
		struct xg_sad_key key;
		struct xg_sa_rt *rt;

		if (b->rt[i] || v->id->proto != IPPROTO_ESP || v->mark_v || v->if_id)
			continue;
		memset(&key, 0, sizeof(key));
		key.spi = v->id->spi;
		key.family = v->family;
		memcpy(key.daddr, &v->id->daddr, v->family == AF_INET ? 4 : 16);
		/* The newest SA with this key wins, as a kernel lookup finds it. */
		if (rte_hash_lookup(b->dp->sad_in, &key) >= 0)
			continue;
		rt = make_rt(b, v, true);
		if (rt == NULL)
			return -ENOMEM;
		b->rt[i] = rt;
		if (rt == &unusable)
			continue;
		rc = add_sa(b, rt);
		if (rc)
			return rc;
		/* Listed in dp->sas now: a failed build hands it back or frees it. */
		if (rte_hash_add_key_data(b->dp->sad_in, &key, rt))
			return -ENOMEM;
	}
	return 0;
}

static uint32_t
add_nh(struct xg_routes *dp, uint16_t port, const struct xg_cfg_prefix *gw)
{
	struct xg_dp_nh *nh = &dp->nh[dp->nnh];

	nh->port = port;
	nh->has_gw = gw != NULL;
	if (gw)
		nh->gw = *gw;
	return ++dp->nnh;   /* 0 is "no route" */
}

static int
add_route(struct xg_routes *dp, const struct xg_cfg_prefix *dst, uint32_t nh)
{
	if (dst->family == AF_INET) {
		uint32_t a = rte_be_to_cpu_32(dst->v4.s_addr);

		a = dst->plen ? a & (UINT32_MAX << (32 - dst->plen)) : 0;
		return rte_fib_add(dp->fib4, a, dst->plen, nh);
	}
	return rte_fib6_add(dp->fib6, dst->v6.s6_addr, dst->plen, nh);
}

static int
build_routes(struct xg_routes *dp, const struct xg_config *cfg)
{
	/* DIR24-8 with 2-byte next hops: 32 MiB, once for the daemon's life. */
	struct rte_fib_conf c4 = { .type = RTE_FIB_DIR24_8, .default_nh = 0, .max_routes = 4096,
				   .dir24_8 = { .nh_sz = RTE_FIB_DIR24_8_2B, .num_tbl8 = 64 } };
	struct rte_fib6_conf c6 = { .type = RTE_FIB6_TRIE, .default_nh = 0, .max_routes = 4096,
				    .trie = { .nh_sz = RTE_FIB6_TRIE_2B, .num_tbl8 = 256 } };
	uint16_t p;
	int i, rc = 0;

	dp->fib4 = rte_fib_create("xg_fib4", SOCKET_ID_ANY, &c4);
	dp->fib6 = rte_fib6_create("xg_fib6", SOCKET_ID_ANY, &c6);
	if (dp->fib4 == NULL || dp->fib6 == NULL)
		return -ENOMEM;
	/* Connected prefixes of the port addresses, then the static routes. */
	for (p = 0; p < XG_CFG_MAX_PORTS && rc == 0; p++)
		for (i = 0; i < cfg->port[p].naddr && rc == 0; i++)
			rc = add_route(dp, &cfg->port[p].addr[i], add_nh(dp, p, NULL));
	for (i = 0; i < cfg->nroutes && rc == 0; i++) {
		const struct xg_cfg_route *r = &cfg->route[i];

		rc = add_route(dp, &r->dst, add_nh(dp, r->port, r->has_via ? &r->via : NULL));
	}
	return rc;
}

static void
build_ports(struct xg_routes *dp, const struct xg_config *cfg)
{
	uint16_t p;
	int i;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++) {
		if (!rte_eth_dev_is_valid_port(p))
			continue;
		dp->port[p].up = true;
		rte_eth_macaddr_get(p, &dp->port[p].mac);
		/* The configured MTU, else what the port says, else Ethernet's. */
		dp->port[p].mtu = cfg->port[p].mtu;
		if (dp->port[p].mtu == 0 && rte_eth_dev_get_mtu(p, &dp->port[p].mtu) != 0)
			dp->port[p].mtu = RTE_ETHER_MTU;
		dp->port[p].naddr = cfg->port[p].naddr;
		memcpy(dp->port[p].addr, cfg->port[p].addr, sizeof(dp->port[p].addr));
		for (i = 0; i < cfg->port[p].naddr; i++) {
			const struct xg_cfg_prefix *a = &cfg->port[p].addr[i];

			dp->local[dp->nlocal].family = a->family;
			dp->local[dp->nlocal].port = p;
			memcpy(dp->local[dp->nlocal++].addr,
			       a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6,
			       a->family == AF_INET ? 4 : 16);
		}
	}
	for (i = 0; i < cfg->nneigh; i++) {
		dp->neigh[i].addr = cfg->neigh[i].addr;
		memcpy(dp->neigh[i].mac.addr_bytes, cfg->neigh[i].mac, 6);
		dp->neigh[i].port = cfg->neigh[i].port;
	}
	dp->nneigh = cfg->nneigh;
}

struct xg_routes *
xg_routes_build(const struct xg_config *cfg, int *err)
{
	struct xg_routes *r = rte_zmalloc("xg_routes", sizeof(*r), RTE_CACHE_LINE_SIZE);
	int rc;

	if (r == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	rc = build_routes(r, cfg);
	if (rc == 0) {
		struct rte_hash_parameters hp = {
			.name = "xg_neigh", .entries = 4096, .key_len = 20,
			.hash_func = rte_jhash, .socket_id = SOCKET_ID_ANY,
			.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
		};

		r->learnt = rte_hash_create(&hp);
		rc = r->learnt ? 0 : -ENOMEM;
	}
	if (rc) {
		xg_routes_free(r);
		*err = rc;
		return NULL;
	}
	build_ports(r, cfg);
	return r;
}

void
xg_routes_free(struct xg_routes *r)
{
	if (r == NULL)
		return;
	rte_fib_free(r->fib4);
	rte_fib6_free(r->fib6);
	rte_hash_free(r->learnt);
	rte_free(r);
}

static int
uid_cmp(const void *a, const void *b)
{
	uint64_t x = (*(struct xg_sa_rt *const *)a)->uid, y = (*(struct xg_sa_rt *const *)b)->uid;

	return x < y ? -1 : x > y;
}

struct xg_sa_rt *
xg_dp_sa_by_uid(const struct xg_dp *dp, uint64_t uid)
{
	uint32_t lo = 0, hi = dp->nsas;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;

		if (dp->by_uid[mid]->uid == uid)
			return dp->by_uid[mid];
		if (dp->by_uid[mid]->uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
index_uids(struct xg_dp *dp)
{
	dp->by_uid = malloc(sizeof(*dp->by_uid) * (dp->nsas ? dp->nsas : 1));
	if (dp->by_uid == NULL)
		return -ENOMEM;
	if (dp->nsas == 0)
		return 0;   /* dp->sas may be NULL: no memcpy from it */
	memcpy(dp->by_uid, dp->sas, sizeof(*dp->sas) * dp->nsas);
	qsort(dp->by_uid, dp->nsas, sizeof(*dp->by_uid), uid_cmp);
	return 0;
}

/* Whether the rules collected compile to @p prev's SPD. */
static bool
same_rules(const struct xg_dp *prev, const struct xg_spd_rule *rules, uint32_t n)
{
	return prev && prev->nrules == n &&
	       (n == 0 || memcmp(prev->rules, rules, n * sizeof(*rules)) == 0);
}

/* The SPD of the rules collected: the previous snapshot's when they are
 * the same (only SAs changed), else a new one. */
static int
take_spd(struct build *b, unsigned int seq)
{
	const struct xg_dp *prev = b->prev;
	char name[32];
	int rc = 0;

	b->dp->rules = b->rules;
	b->dp->nrules = b->nrules;
	b->rules = NULL;
	if (prev && prev->spd && prev->spd_owned &&
	    same_rules(prev, b->dp->rules, b->dp->nrules)) {
		b->dp->spd = prev->spd;
		b->prev->spd_owned = false;
		b->dp->spd_owned = true;
		return 0;
	}
	snprintf(name, sizeof(name), "xgspd%u", seq);
	b->dp->spd = xg_spd_build(name, b->dp->rules, b->dp->nrules, &rc);
	b->dp->spd_owned = b->dp->spd != NULL;
	return rc;
}

struct xg_dp *
xg_dp_build(const struct xg_xfrm *x, const struct xg_routes *rt, struct xg_dp *prev,
	    unsigned int seq, int *err)
{
	return xg_dp_build_flags(x, rt, prev, seq, 0, err);
}

struct xg_dp *
xg_dp_build_flags(const struct xg_xfrm *x, const struct xg_routes *rt, struct xg_dp *prev,
		  unsigned int seq, unsigned int flags, int *err)
{
	struct build b = { .prev = prev };
	uint8_t d;
	int rc;

	b.dp = rte_zmalloc("xg_dp", sizeof(*b.dp), RTE_CACHE_LINE_SIZE);
	if (b.dp == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	b.dp->generation = xg_xfrm_generation(x);
	b.dp->pol_generation = xg_xfrm_policy_generation(x);
	for (d = 0; d < 3; d++)
		b.dp->default_block[d] = xg_xfrm_default_block(x, d);
	b.dp->rt = rt;
	xg_xfrm_foreach(x, collect_sa, collect_pol, &b);
	rc = b.err;
	/* Checked before anything costly is made (crypto sessions, ACL). */
	if (rc == 0 && (flags & XG_DP_SAME_SPD) && !same_rules(prev, b.rules, b.nrules))
		rc = -EAGAIN;
	b.rt = calloc(b.nsav ? b.nsav : 1, sizeof(*b.rt));
	if (rc == 0 && b.rt == NULL)
		rc = -ENOMEM;
	b.dp->npols = b.nrules;
	if (rc == 0)
		rc = index_sas(&b);
	if (rc == 0)
		rc = bind_out_sas(&b);
	if (rc == 0)
		rc = add_in_sas(&b, seq);
	if (rc == 0)
		rc = index_uids(b.dp);
	if (rc == 0)
		rc = take_spd(&b, seq);
	free(b.head);
	free(b.next);
	free(b.rt);
	free(b.rules);   /* NULL once the snapshot holds them */
	free(b.sav);
	if (rc) {
		uint32_t i;

		/* Hand taken-over objects back before freeing what was built. */
		for (i = 0; prev && i < b.dp->nsas; i++)
			if (xg_dp_sa_by_uid(prev, b.dp->sas[i]->uid) == b.dp->sas[i])
				b.dp->sas[i]->owner = prev;
		xg_dp_free(b.dp);
		*err = rc;
		return NULL;
	}
	return b.dp;
}

void
xg_dp_free(struct xg_dp *dp)
{
	uint32_t i;

	if (dp == NULL)
		return;
	for (i = 0; i < dp->nsas; i++) {
		if (dp->sas[i]->owner != dp)
			continue;   /* taken over by a newer snapshot */
		xg_offload_detach(&dp->sas[i]->off);
		xg_esp_sa_fini(&dp->sas[i]->esp);
		rte_free(dp->sas[i]);
	}
	free(dp->sas);
	free(dp->by_uid);
	free(dp->refused);
	free(dp->pols);
	if (dp->spd_owned)
		xg_spd_free(dp->spd);
	free(dp->rules);
	rte_hash_free(dp->sad_in);
	rte_free(dp);
}
