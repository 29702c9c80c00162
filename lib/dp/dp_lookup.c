/* SPDX-License-Identifier: BSD-3-Clause */
/* Data-path lookups in a published snapshot (any lcore, read-only). */

#include <netinet/in.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>

#include "xg_dp.h"
#include "xg_prefix.h"

const struct xg_dp_nh *
xg_dp_route(const struct xg_routes *dp, uint8_t family, const uint8_t *dst)
{
	uint64_t nh = 0;

	if (family == AF_INET) {
		uint32_t a;

		memcpy(&a, dst, 4);
		a = rte_be_to_cpu_32(a);
		rte_fib_lookup_bulk(dp->fib4, &a, &nh, 1);
	} else {
		uint8_t a[1][RTE_FIB6_IPV6_ADDR_SIZE];

		memcpy(a[0], dst, 16);
		rte_fib6_lookup_bulk(dp->fib6, a, &nh, 1);
	}
	return nh ? &dp->nh[nh - 1] : NULL;
}

static bool
same(const struct xg_cfg_prefix *p, uint8_t family, const uint8_t *addr)
{
	return p->family == family &&
	       memcmp(family == AF_INET ? (const void *)&p->v4 : (const void *)&p->v6, addr,
		      family == AF_INET ? 4 : 16) == 0;
}

struct learnt_key {
	uint16_t port;
	uint8_t family;
	uint8_t pad;
	uint8_t addr[16];
};

static void
learnt_key(struct learnt_key *k, uint16_t port, uint8_t family, const uint8_t *addr)
{
	memset(k, 0, sizeof(*k));
	k->port = port;
	k->family = family;
	memcpy(k->addr, addr, family == AF_INET ? 4 : 16);
}

/* A MAC fits in the hash's data pointer: no allocation per neighbour. */
static uintptr_t
mac_pack(const uint8_t *mac)
{
	uintptr_t v = 0;
	int i;

	for (i = 0; i < 6; i++)
		v = v << 8 | mac[i];
	return v | (uintptr_t)1 << 48;   /* never 0 */
}

bool
xg_dp_neigh(const struct xg_routes *dp, uint8_t family, const uint8_t *addr, uint16_t port,
	    struct rte_ether_addr *mac)
{
	struct learnt_key k;
	void *data;
	uintptr_t v;
	uint32_t i;
	int b;

	for (i = 0; i < dp->nneigh; i++)
		if (dp->neigh[i].port == port && same(&dp->neigh[i].addr, family, addr)) {
			*mac = dp->neigh[i].mac;
			return true;
		}
	learnt_key(&k, port, family, addr);
	if (dp->learnt == NULL || rte_hash_lookup_data(dp->learnt, &k, &data) < 0)
		return false;
	v = (uintptr_t)data;
	for (b = 5; b >= 0; b--, v >>= 8)
		mac->addr_bytes[b] = (uint8_t)v;
	return true;
}

void
xg_dp_learn(struct xg_routes *dp, const struct xg_neigh_seen *n)
{
	struct learnt_key k;

	if (dp->learnt == NULL || n->port >= XG_CFG_MAX_PORTS ||
	    !xg_dp_on_link(dp, n->port, n->family, n->addr))
		return;
	learnt_key(&k, n->port, n->family, n->addr);
	/* Updating a key's data is atomic for lock-free readers. */
	rte_hash_add_key_data(dp->learnt, &k, (void *)mac_pack(n->mac));
}

static bool
in_prefix(const struct xg_cfg_prefix *p, const uint8_t *addr)
{
	return xg_prefix_match(p->family == AF_INET ? (const void *)&p->v4 : p->v6.s6_addr, addr,
			       p->plen);
}

bool
xg_dp_on_link(const struct xg_routes *dp, uint16_t port, uint8_t family, const uint8_t *addr)
{
	int i;

	for (i = 0; port < XG_CFG_MAX_PORTS && i < dp->port[port].naddr; i++)
		if (dp->port[port].addr[i].family == family && in_prefix(&dp->port[port].addr[i], addr))
			return true;
	return false;
}

const struct xg_cfg_prefix *
xg_dp_port_addr(const struct xg_routes *dp, uint16_t port, uint8_t family)
{
	int i;

	for (i = 0; port < XG_CFG_MAX_PORTS && i < dp->port[port].naddr; i++)
		if (dp->port[port].addr[i].family == family)
			return &dp->port[port].addr[i];
	return NULL;
}

int
xg_dp_local_port(const struct xg_routes *dp, uint8_t family, const uint8_t *addr)
{
	uint32_t i;

	/* Constant sizes: memcmp() becomes a compare or two. */
	for (i = 0; i < dp->nlocal; i++)
		if (dp->local[i].family == family &&
		    (family == AF_INET ? memcmp(dp->local[i].addr, addr, 4) :
					 memcmp(dp->local[i].addr, addr, 16)) == 0)
			return dp->local[i].port;
	return -1;
}

bool
xg_dp_is_local(const struct xg_routes *dp, uint8_t family, const uint8_t *addr)
{
	return xg_dp_local_port(dp, family, addr) >= 0;
}

const enum xg_stat xg_sa_drop_stat[XG_SA_NDROPS] = {
	XG_STAT_IN_HDR_ERROR, XG_STAT_IN_STATE_MODE_ERROR, XG_STAT_IN_STATE_MISMATCH,
	XG_STAT_IN_STATE_EXPIRED, XG_STAT_IN_TMPL_MISMATCH, XG_STAT_OUT_STATE_MODE_ERROR,
	XG_STAT_OUT_STATE_SEQ_ERROR, XG_STAT_OUT_STATE_PROTO_ERROR, XG_STAT_OUT_STATE_EXPIRED,
	XG_STAT_OUT_TOO_BIG, XG_STAT_PMTU_ICMP,
};
