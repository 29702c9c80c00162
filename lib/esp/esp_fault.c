/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Crypto fault injection, compiled only with -Dfault_injection=true (the
 * fault tests' builds; production builds have none of this file).
 * XFRMGW_FAULT_CRYPTO="every=N", read once at startup, makes every Nth
 * crypto operation of the process report failure after it ran: the
 * callers then take their real error path (drop, counter, mbuf freed).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>
#include <rte_log.h>

#include "esp_priv.h"

static uint64_t every;   /* 0: no faults */
static uint64_t ops;     /* operations so far, all lcores */

RTE_INIT(esp_fault_init)
{
	const char *e = getenv("XFRMGW_FAULT_CRYPTO");
	char *end;

	if (e == NULL || strncmp(e, "every=", 6) != 0)
		return;
	every = strtoull(e + 6, &end, 10);
	if (*end)
		every = 0;
}

void
esp_fault_apply(struct esp_vec *v, uint32_t n)
{
	uint64_t first;
	uint32_t i;

	if (every == 0 || n == 0)
		return;
	/* A run takes its block of numbers at once: with one worker the
	 * failing operations are exactly every Nth. */
	first = __atomic_fetch_add(&ops, n, __ATOMIC_RELAXED);
	for (i = 0; i < n; i++)
		if ((first + i + 1) % every == 0)
			v->st[i] = -1;
}
