/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_LOG_H
#define XG_LOG_H

/**
 * @file
 * Control-plane change log (logtype xfrmgw.xfrm) and the /xfrmgw/log
 * telemetry command that changes log levels at run time.
 */

#include <stddef.h>

#include "xg_server.h"

/** An observer for xg_server_set_observer(): logs changes, refusals, requests. */
void xg_log_observe(void *arg, enum xg_server_seen what, int pid, const void *msg, size_t len);

/** Register /xfrmgw/log. */
void xg_log_init(void);

#endif
