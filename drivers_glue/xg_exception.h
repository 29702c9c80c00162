/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_EXCEPTION_H
#define XG_EXCEPTION_H

/**
 * @file
 * Exception path to the Linux kernel: one net_tap interface per port that
 * asks for it ([port N] exception = IFNAME), with the port's MAC address
 * and IP addresses on the kernel side.
 *
 * Thread-safety: main thread, at start-up.
 */

#include <stdint.h>

#include "xg_config.h"

/**
 * Create the TAP ethdev for @p phys (before the ports are configured);
 * @p ifname was checked by the configuration parser.
 * @return its port id, or a negative errno.
 */
int xg_exception_create(uint16_t phys, const char *ifname);

/** Put @p n addresses on the kernel side of @p ifname (rtnetlink). */
int xg_exception_addrs(const char *ifname, const struct xg_cfg_prefix *addr, int n);

#endif /* XG_EXCEPTION_H */
