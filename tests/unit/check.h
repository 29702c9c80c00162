/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_TEST_CHECK_H
#define XG_TEST_CHECK_H

/* The unit tests' one assertion: count, report the first failures, go on.
 * Each test ends with CHECK_REPORT(), whose "N passed, N failed" line CI reads. */

#include <stdio.h>

static int failures, checks;

#define CHECK(cond)                                                                   \
	do {                                                                          \
		checks++;                                                             \
		if (!(cond)) {                                                        \
			failures++;                                                   \
			if (failures < 20)                                            \
				fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
					__LINE__, #cond);                             \
		}                                                                     \
	} while (0)

#define CHECK_REPORT()                                                                \
	(printf("%d passed, %d failed\n", checks - failures, failures), failures ? 1 : 0)

#endif /* XG_TEST_CHECK_H */
