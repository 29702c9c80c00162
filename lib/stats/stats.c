/* SPDX-License-Identifier: BSD-3-Clause */
#include <stdio.h>

#include "xg_stats.h"

static const char *const names[XG_STAT_MAX] = {
#define XG_MIB(id, name, meaning) [XG_STAT_##id] = name,
#define XG_CNT(id, name, meaning) [XG_STAT_##id] = name,
#include "xg_mib.def"
};

const unsigned int xg_stat_mib_count = 0
#define XG_MIB(id, name, meaning) + 1
#define XG_CNT(id, name, meaning)
#include "xg_mib.def"
	;

const char *
xg_stat_name(enum xg_stat id)
{
	return (unsigned int)id < XG_STAT_MAX ? names[id] : NULL;
}

void
xg_stats_sum(const struct xg_stats *blocks, size_t n, struct xg_stats *out)
{
	size_t i;
	int k;

	for (k = 0; k < XG_STAT_MAX; k++)
		out->c[k] = 0;
	for (i = 0; i < n; i++)
		for (k = 0; k < XG_STAT_MAX; k++)
			out->c[k] += blocks[i].c[k];
}

int
xg_stats_format(const struct xg_stats *s, int extended, char *buf, size_t cap)
{
	unsigned int k, end = extended ? XG_STAT_MAX : xg_stat_mib_count;
	size_t len = 0;

	for (k = 0; k < end; k++) {
		int n = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0,
				 "%-24s\t%lu\n", names[k], (unsigned long)s->c[k]);

		if (n < 0)
			return n;
		len += (size_t)n;
	}
	return (int)len;
}
