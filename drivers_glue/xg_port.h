/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_PORT_H
#define XG_PORT_H

/**
 * @file
 * Ethdev setup for whatever ports EAL probed (PCI NICs or vdevs such as
 * net_null, net_pcap, net_tap, net_af_packet, net_ring).
 *
 * Thread-safety: call from the main lcore before workers start, and
 * xg_ports_close() after they stopped.
 */

#include <stdint.h>

struct rte_mempool;

/**
 * Configure every available port with @p nrxq receive and @p ntxq transmit
 * queues on @p pool, start it and enable promiscuous mode where supported.
 * @return number of ports started, or a negative errno.
 */
int xg_ports_init(struct rte_mempool *pool, uint16_t nrxq, uint16_t ntxq);

/**
 * Log each port whose link went up or down since the last call (the first
 * call logs every port's state). Polled rather than on LSC interrupts: the
 * virtual PMDs used here (af_packet, pcap) have none. Control thread only.
 */
void xg_ports_watch(void);

/** Stop and close every port. */
void xg_ports_close(void);

#endif /* XG_PORT_H */
