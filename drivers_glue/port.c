/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Port setup. Offloads are requested only where the port advertises them, so
 * the same code runs on virtual devices that offer none.
 */

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_devargs.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mempool.h>
#include <rte_security.h>

#include "xg_port.h"

RTE_LOG_REGISTER(xg_port_logtype, xfrmgw.port, INFO);
#define PORT_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, xg_port_logtype, "port: " fmt "\n", ##__VA_ARGS__)

#define NB_RXD 1024
#define NB_TXD 1024

/* What rte_security the port offers: xg_offload_attach() puts the SAs
 * it can run there (inline protocol). */
static void
log_security(uint16_t port)
{
	const struct rte_security_capability *c;
	void *ctx = rte_eth_dev_get_sec_ctx(port);
	unsigned int n = 0;

	if (ctx == NULL)
		return;
	for (c = rte_security_capabilities_get(ctx); c && c->action; c++)
		n += c->protocol == RTE_SECURITY_PROTOCOL_IPSEC;
	PORT_LOG(INFO, "port %u: rte_security offers %u IPsec capabilities", port, n);
}

static int
port_init(uint16_t port, struct rte_mempool *pool, uint16_t nrxq, uint16_t ntxq)
{
	struct rte_eth_conf conf = { 0 };
	struct rte_eth_dev_info info;
	uint16_t nb_rxd = NB_RXD, nb_txd = NB_TXD, q;
	int rc;

	rc = rte_eth_dev_info_get(port, &info);
	if (rc)
		return rc;
	/* net_tap wants as many rx as tx queues; each worker polls the one
	 * with its number (the kernel spreads flows over them). */
	if (strcmp(info.driver_name, "net_tap") == 0)
		nrxq = ntxq;
	nrxq = RTE_MIN(nrxq, info.max_rx_queues);
	ntxq = RTE_MIN(ntxq, info.max_tx_queues);
	if (nrxq > 1 && info.flow_type_rss_offloads) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = info.flow_type_rss_offloads &
						   (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	}
	/* Inline IPsec needs the security offloads on from the start. */
	if (rte_eth_dev_get_sec_ctx(port)) {
		conf.rxmode.offloads |= info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SECURITY;
		conf.txmode.offloads |= info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_SECURITY;
	}
	rc = rte_eth_dev_configure(port, nrxq, ntxq, &conf);
	if (!rc)
		rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	for (q = 0; !rc && q < nrxq; q++)
		rc = rte_eth_rx_queue_setup(port, q, nb_rxd, rte_eth_dev_socket_id(port), NULL,
					    pool);
	for (q = 0; !rc && q < ntxq; q++)
		rc = rte_eth_tx_queue_setup(port, q, nb_txd, rte_eth_dev_socket_id(port), NULL);
	if (!rc)
		rc = rte_eth_dev_start(port);
	if (rc)
		return rc;
	/* Virtual ports may not support promiscuous mode; that is not fatal. */
	rte_eth_promiscuous_enable(port);
	PORT_LOG(INFO, "port %u (%s) started, %u rx / %u tx queues", port, info.driver_name,
		 nrxq, ntxq);
	log_security(port);
	return 0;
}

int
xg_ports_init(struct rte_mempool *pool, uint16_t nrxq, uint16_t ntxq)
{
	uint16_t port;
	int n = 0, rc;

	RTE_ETH_FOREACH_DEV(port) {
		rc = port_init(port, pool, nrxq, ntxq);
		if (rc) {
			PORT_LOG(ERR, "port %u: setup failed: %s", port, rte_strerror(-rc));
			return rc;
		}
		n++;
	}
	return n;
}

/* net_af_packet reports its link up from start to stop whatever the
 * kernel interface does: ask the kernel (carrier, which reads as an error
 * while the interface is down). -1: not such a port, or no answer. */
static int
af_packet_carrier(uint16_t port)
{
	const struct rte_devargs *da;
	struct rte_eth_dev_info info;
	const char *args, *p;
	char ifname[IF_NAMESIZE], path[64 + IF_NAMESIZE];
	size_t len;
	FILE *f;
	int c;

	if (rte_eth_dev_info_get(port, &info) || info.device == NULL ||
	    strcmp(info.driver_name, "net_af_packet") != 0)
		return -1;
	da = rte_dev_devargs(info.device);
	args = da ? da->args : NULL;
	p = args ? strstr(args, "iface=") : NULL;
	if (p == NULL)
		return -1;
	p += 6;
	len = strcspn(p, ",");
	if (len == 0 || len >= sizeof(ifname))
		return -1;
	memcpy(ifname, p, len);
	ifname[len] = '\0';
	snprintf(path, sizeof(path), "/sys/class/net/%s/carrier", ifname);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	c = fgetc(f);
	fclose(f);
	return c == '1';
}

/* Each port's link as last seen: 0 not yet, 1 down, 2 up. */
static uint8_t link_seen[RTE_MAX_ETHPORTS];

void
xg_ports_watch(void)
{
	struct rte_eth_link link;
	uint16_t port;
	uint8_t now;
	int c;

	RTE_ETH_FOREACH_DEV(port) {
		/* _nowait: a PMD that would sleep for the answer returns
		 * what it last knew; the control thread never blocks here. */
		if (rte_eth_link_get_nowait(port, &link))
			continue;
		c = af_packet_carrier(port);
		if (c >= 0 && link.link_status)
			link.link_status = (uint16_t)c;
		now = link.link_status ? 2 : 1;
		if (now == link_seen[port])
			continue;
		if (link.link_status)
			PORT_LOG(NOTICE, "port %u: link up, %u Mbps", port, link.link_speed);
		else
			PORT_LOG(WARNING, "port %u: link down", port);
		link_seen[port] = now;
	}
}

void
xg_ports_close(void)
{
	uint16_t port;

	RTE_ETH_FOREACH_DEV(port) {
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}
}
