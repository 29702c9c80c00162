/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_TELEMETRY_H
#define XG_TELEMETRY_H

/**
 * @file
 * /xfrmgw/sa, /xfrmgw/policy and /xfrmgw/port: answered by the control
 * thread (xg_tel_serve() from its loop), asked by rte_telemetry's threads.
 */

struct xg_server;
struct xg_routes;

struct xg_tel_ctx {
	struct xg_server *srv;
	const struct xg_routes *const *routes;  /**< *routes may be NULL (no workers) */
	const unsigned int *lcore;              /**< lcore of each worker */
	unsigned int nworkers;
	void (*report)(void *arg);              /**< fold the workers' counters into the model */
	void *report_arg;
};

/** Register the commands; @p c is copied. */
void xg_tel_init(const struct xg_tel_ctx *c);

/** Control thread: answer a pending request, if any (cheap when none). */
void xg_tel_serve(void);

#endif
