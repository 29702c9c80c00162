/* SPDX-License-Identifier: BSD-3-Clause */
/* Print xfrmgw's counters, all zero, in /proc/net/xfrm_stat format (the
 * MIB part only, or everything with -x). Compared with Linux's file. */
#include <stdio.h>
#include <string.h>

#include "xg_stats.h"

int
main(int argc, char **argv)
{
	struct xg_stats s;
	char buf[8192];
	int n;

	memset(&s, 0, sizeof(s));
	n = xg_stats_format(&s, argc > 1 && strcmp(argv[1], "-x") == 0, buf, sizeof(buf));
	if (n < 0 || (size_t)n >= sizeof(buf))
		return 1;
	fputs(buf, stdout);
	return 0;
}
