/* SPDX-License-Identifier: BSD-3-Clause */
/* Data-path lookups in a published snapshot (any lcore, read-only). */

#include <netinet/in.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_fib.h>
#include <rte_fib6.h>

#include "xg_dp.h"

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

const struct xg_dp_neigh *
xg_dp_neigh(const struct xg_routes *dp, uint8_t family, const uint8_t *addr, uint16_t port)
{
	uint32_t i;

	for (i = 0; i < dp->nneigh; i++)
		if (dp->neigh[i].port == port && same(&dp->neigh[i].addr, family, addr))
			return &dp->neigh[i];
	return NULL;
}

bool
xg_dp_is_local(const struct xg_routes *dp, uint8_t family, const uint8_t *addr)
{
	uint16_t p;
	int i;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++)
		for (i = 0; i < dp->port[p].naddr; i++)
			if (same(&dp->port[p].addr[i], family, addr))
				return true;
	return false;
}
