/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_CONFIG_H
#define XG_CONFIG_H

/**
 * @file
 * The optional configuration file (DPDK rte_cfgfile INI format). Without
 * one, xfrmgw runs on embedded defaults: every port EAL probes, no
 * addresses, no static routes or neighbours, one rx queue per port polled by
 * the workers in turn. conf/xfrmgw.conf documents every key.
 *
 *   [port N]       ipv4 = A/LEN ...   ipv6 = A/LEN ...   mtu = BYTES
 *   [route NAME]   prefix = A/LEN | default | default6   via = ADDR   port = N
 *   [neighbour NAME] address = ADDR   mac = XX:XX:XX:XX:XX:XX   port = N
 *   [worker LCORE] rx = PORT:QUEUE ...
 *
 * Unknown sections and keys are errors: a typo must not silently leave a
 * gateway without its routes.
 *
 * Thread-safety: parse at start-up, on one thread; the result is read-only.
 */

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>

#define XG_CFG_MAX_PORTS 32
#define XG_CFG_MAX_ADDRS 8
#define XG_CFG_MAX_ROUTES 1024
#define XG_CFG_MAX_NEIGH 1024
#define XG_CFG_MAX_WORKERS 128
#define XG_CFG_MAX_RXQ 64

/** An IPv4 or IPv6 address (network order) with a prefix length. */
struct xg_cfg_prefix {
	uint8_t family;   /**< AF_INET or AF_INET6 */
	uint8_t plen;
	union {
		struct in_addr v4;
		struct in6_addr v6;
	};
};

struct xg_cfg_port {
	bool present;     /**< a [port N] section exists */
	uint16_t mtu;     /**< 0: the port's default */
	char exception[16];  /**< exception TAP interface name, "" for none */
	uint8_t naddr;
	struct xg_cfg_prefix addr[XG_CFG_MAX_ADDRS];
};

struct xg_cfg_route {
	struct xg_cfg_prefix dst;
	bool has_via;
	struct xg_cfg_prefix via;   /**< plen is the full length */
	uint16_t port;
};

struct xg_cfg_neigh {
	struct xg_cfg_prefix addr;
	uint8_t mac[6];
	uint16_t port;
};

struct xg_cfg_rxq {
	uint16_t port;
	uint16_t queue;
};

struct xg_cfg_worker {
	unsigned int lcore;
	uint16_t nrxq;
	struct xg_cfg_rxq rxq[XG_CFG_MAX_RXQ];
};

/** [control]: the XFRM socket (command-line options win over these). */
struct xg_cfg_control {
	char socket[108];             /**< "" : not set (sizeof sun_path) */
	char socket_group[64];        /**< group name or number, "" : not set */
};

struct xg_config {
	struct xg_cfg_control control;
	struct xg_cfg_port port[XG_CFG_MAX_PORTS];
	uint16_t nroutes, nneigh, nworkers;
	struct xg_cfg_route route[XG_CFG_MAX_ROUTES];
	struct xg_cfg_neigh neigh[XG_CFG_MAX_NEIGH];
	struct xg_cfg_worker worker[XG_CFG_MAX_WORKERS];
};

/**
 * Load and validate @p path into @p cfg (zeroed first).
 * @param err     buffer for a one-line error naming the section and key
 * @return 0, or -EINVAL (bad content), -ENOENT/-EIO (file), -E2BIG (limits)
 */
int xg_config_load(const char *path, struct xg_config *cfg, char *err, size_t errlen);

/** Parse "A/LEN" (or a bare address, full length). @return 0 or -EINVAL. */
int xg_cfg_parse_prefix(const char *s, struct xg_cfg_prefix *p);

#endif /* XG_CONFIG_H */
