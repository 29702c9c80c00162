/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef SPD_PRIV_H
#define SPD_PRIV_H

#include <stdint.h>

#include "xg_spd.h"

#define SPD4_NFIELDS 5    /* proto, src, dst, sport, dport */
#define SPD6_NFIELDS 11   /* proto, 4 src words, 4 dst words, sport, dport */

struct rte_acl_ctx;

/* One family and direction: the ACL context and the rule id of each slot. */
struct spd_table {
	struct rte_acl_ctx *ctx;   /* NULL when there are no rules */
	uint32_t *ids;
	uint32_t n;
};

struct xg_spd {
	struct spd_table t[2][XG_SPD_NDIR];   /* [AF_INET6?][dir] */
};

#endif /* SPD_PRIV_H */
