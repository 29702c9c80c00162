/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_LCORE_H
#define XG_LCORE_H

/**
 * @file
 * Worker lcores: one poll loop each, owning its rx queues, sending on its
 * own tx queue of every port, reading the published data-plane snapshot
 * and reporting a quiescent state after every round.
 */

#include <stdint.h>

#include <rte_rcu_qsbr.h>

#include "xg_config.h"
#include "xg_stats.h"

struct xg_dp;

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
};

/** What every worker reads. The control thread writes dp (release). */
struct xg_shared {
	struct xg_dp *dp;
	struct rte_mempool *pool;      /**< for packets the workers originate */
	struct rte_rcu_qsbr *qsbr;
	uint64_t now;                  /**< wall-clock second, kept by the control thread */
	volatile int stop;
};

extern struct xg_shared xg_shared;

/** The poll loop (rte_eal_remote_launch entry); arg is a struct xg_worker. */
int xg_worker_main(void *arg);

#endif /* XG_LCORE_H */
