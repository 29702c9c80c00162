/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_PREFIX_H
#define XG_PREFIX_H

/**
 * @file
 * Address prefix comparison, as the kernel's addr_match(): do the first
 * @p plen bits of two network-order addresses agree? Pure, any thread.
 */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline bool
xg_prefix_match(const void *a, const void *b, uint8_t plen)
{
	const uint8_t *x = a, *y = b;
	uint8_t full = plen / 8, rem = plen % 8, i;

	/* A loop, not memcmp(): a few bytes per packet, no library call. */
	for (i = 0; i < full; i++)
		if (x[i] != y[i])
			return false;
	return !rem || ((x[full] ^ y[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

#endif /* XG_PREFIX_H */
