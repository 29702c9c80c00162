/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_STATS_H
#define XG_STATS_H

/**
 * @file
 * Data-plane counters: one cache-aligned block per lcore, written only by
 * that lcore without atomics, summed by the control plane when read. A sum
 * read while workers run is a consistent lower bound of each counter (every
 * 64-bit store is atomic on the supported CPUs).
 *
 * Thread-safety: xg_stats_inc/add on a block only from its lcore;
 * xg_stats_sum and the formatters from any thread.
 */

#include <stddef.h>
#include <stdint.h>

enum xg_stat {
#define XG_MIB(id, name, meaning) XG_STAT_##id,
#define XG_CNT(id, name, meaning) XG_STAT_##id,
#include "xg_mib.def"
	XG_STAT_MAX
};

/** Number of counters that belong to the Linux XFRM MIB (they come first). */
extern const unsigned int xg_stat_mib_count;

struct xg_stats {
	uint64_t c[XG_STAT_MAX];
} __attribute__((aligned(64)));

static inline void
xg_stats_add(struct xg_stats *s, enum xg_stat id, uint64_t n)
{
	s->c[id] += n;
}

/** Name of a counter ("XfrmInNoStates"), or NULL for an invalid id. */
const char *xg_stat_name(enum xg_stat id);

/** Sum @p n per-lcore blocks into @p out. */
void xg_stats_sum(const struct xg_stats *blocks, size_t n, struct xg_stats *out);

/**
 * Format the MIB counters exactly as Linux's /proc/net/xfrm_stat
 * ("%-24s\t%lu\n" per line), then, if @p extended, xfrmgw's own counters in
 * the same format.
 * @return the length the full text needs (as snprintf).
 */
int xg_stats_format(const struct xg_stats *s, int extended, char *buf, size_t cap);

#endif /* XG_STATS_H */
