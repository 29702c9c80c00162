/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_FUZZ_INPUT_H
#define XG_FUZZ_INPUT_H

/* The fuzzer's input, read front to back by the structure-aware
 * harnesses: past its end every read yields zeros. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t
take8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

/* Up to @p len bytes into @p dst, the rest of its @p len bytes zeroed.
 * @return the bytes taken from the input. */
static inline size_t
take(struct in *in, void *dst, size_t len)
{
	size_t k = len < in->n ? len : in->n;

	memset(dst, 0, len);
	memcpy(dst, in->p, k);
	in->p += k;
	in->n -= k;
	return k;
}

#endif
