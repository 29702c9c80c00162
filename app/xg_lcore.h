/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_LCORE_H
#define XG_LCORE_H

/**
 * @file
 * Worker lcores: one poll loop each, owning its rx queues, sending on its
 * own tx queue of every port, reading the published data-plane snapshot
 * and reporting a quiescent state after every round.
 */

#include <stdbool.h>
#include <stdint.h>

#include <rte_rcu_qsbr.h>

#include "xg_config.h"
#include "xg_stats.h"

struct xg_dp;

/** How busy a worker is: rounds of its poll loop, those that received
 *  something, the cycles they took and the longest one. Written by the
 *  worker only, read by telemetry (64-bit stores, no atomics needed). */
struct xg_lcore_load {
	uint64_t rounds;
	uint64_t busy_rounds;
	uint64_t busy_cycles;
	uint64_t max_round_cycles;     /**< since start or the last reset */
	uint64_t reset_seen;           /**< the xg_shared.load_reset it follows */
};

static inline void
xg_lcore_round(struct xg_lcore_load *l, uint64_t cycles, bool busy)
{
	l->rounds++;
	if (busy) {
		l->busy_rounds++;
		l->busy_cycles += cycles;
	}
	if (cycles > l->max_round_cycles)
		l->max_round_cycles = cycles;
}

struct xg_worker {
	unsigned int lcore;
	unsigned int tid;              /**< RCU thread id = worker index */
	uint16_t txq;                  /**< its tx queue on every port */
	uint16_t nrxq;
	struct xg_cfg_rxq rxq[XG_CFG_MAX_RXQ];
	struct xg_stats *stats;
	struct rte_ring *learn;        /**< neighbours seen, for the control thread */
	struct rte_ring *acquire;      /**< struct xg_acq_req, for the control thread */
	struct rte_ring *mapping;      /**< struct xg_map_req, for the control thread */
	struct xg_lcore_load load;
	uint32_t frag_max;             /**< packets its reassembly table may hold (0: 512) */
};

/** What every worker reads. The control thread writes dp (release). */
struct xg_shared {
	struct xg_dp *dp;
	struct rte_mempool *pool;      /**< for packets the workers originate */
	struct rte_rcu_qsbr *qsbr;
	uint64_t now;                  /**< wall-clock second, kept by the control thread */
	uint64_t load_reset;           /**< bumped to restart the workers' longest round */
	volatile int stop;
};

extern struct xg_shared xg_shared;

/**
 * One round of the poll loop for a burst already received: the same
 * stages (layer 2, inbound ESP, forwarding) and transmission as
 * xg_worker_main() runs for each rx_burst, for tests and fuzz targets that
 * feed packets themselves, in bursts of at most 32. Takes ownership of
 * the packets of @p mb: every one is sent or freed before it returns
 * (fragments still waiting for the rest of their packet included).
 * Thread-safety: as a worker; never concurrently with @p w's own loop.
 */
struct rte_mbuf;
void xg_worker_rx_once(struct xg_worker *w, uint16_t port, struct rte_mbuf **mb, uint16_t n);

/** The poll loop (rte_eal_remote_launch entry); arg is a struct xg_worker. */
int xg_worker_main(void *arg);

#endif /* XG_LCORE_H */
