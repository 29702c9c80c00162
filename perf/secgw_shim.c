/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * LD_PRELOAD shim for DPDK 22.11's examples/ipsec-secgw on virtual ports.
 *
 * ipsec-secgw always asks for RX checksum offload (IPv4, UDP, TCP: 0xe) and
 * exits when a port lacks it, although its data path never reads the
 * resulting mbuf flags.  net_pcap and net_null offer none, so this shim adds
 * the three bits to every answer of rte_eth_dev_info_get().
 *
 * Interposition works for both callers that matter: ipsec-secgw itself and
 * librte_ethdev's own checks (rte_eth_dev_configure, rx_queue_setup), since
 * Debian's librte_ethdev.so.23 calls rte_eth_dev_info_get through its PLT
 * (objdump -d shows "call rte_eth_dev_info_get@plt").  The shim is
 * unversioned, which satisfies the DPDK_23 versioned references.
 * secgw.py checks that it took effect ("port N configuring rx_offloads=0xe").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_ethdev.h>

#define SHIM_RX_OFFLOADS (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | \
			  RTE_ETH_RX_OFFLOAD_UDP_CKSUM | \
			  RTE_ETH_RX_OFFLOAD_TCP_CKSUM)

typedef int (*info_get_fn)(uint16_t, struct rte_eth_dev_info *);

int
rte_eth_dev_info_get(uint16_t port_id, struct rte_eth_dev_info *dev_info)
{
	static info_get_fn real;
	int ret;

	if (real == NULL) {
		real = (info_get_fn)dlsym(RTLD_NEXT, "rte_eth_dev_info_get");
		if (real == NULL) {
			fprintf(stderr, "secgw_shim: %s\n", dlerror());
			abort();
		}
	}
	ret = real(port_id, dev_info);
	if (ret == 0)
		dev_info->rx_offload_capa |= SHIM_RX_OFFLOADS;
	return ret;
}
