/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exception path: for a port so configured, a net_tap interface on the
 * Linux side that carries the port's MAC address and IP addresses, so that
 * the kernel (and an IKE daemon on it) owns the address like any host.
 * Workers hand it what is for the gateway itself and is not theirs (IKE,
 * NAT-T keepalives, ICMP echo, ARP/ND answers for the kernel's requests);
 * what the kernel sends on it leaves by the port unchanged.
 */

#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>

#include <rte_bus_vdev.h>
#include <rte_ethdev.h>
#include <rte_log.h>

#include "xg_exception.h"

RTE_LOG_REGISTER(xg_exc_logtype, xfrmgw.exception, INFO);
#define EXC_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, xg_exc_logtype, "exception: " fmt "\n", ##__VA_ARGS__)

int
xg_exception_create(uint16_t phys, const char *ifname)
{
	struct rte_ether_addr mac;
	char dev[32], args[96];
	uint16_t port;
	int rc;

	rc = rte_eth_macaddr_get(phys, &mac);
	if (rc)
		return rc;
	snprintf(dev, sizeof(dev), "net_tap_xg%u", phys);
	snprintf(args, sizeof(args), "iface=%s,mac=" RTE_ETHER_ADDR_PRT_FMT, ifname,
		 RTE_ETHER_ADDR_BYTES(&mac));
	rc = rte_vdev_init(dev, args);
	if (rc)
		return rc;
	rc = rte_eth_dev_get_port_by_name(dev, &port);
	if (rc)
		return rc;
	EXC_LOG(INFO, "port %u: exception interface %s is port %u", phys, ifname, port);
	return port;
}

/* One RTM_NEWADDR, acknowledged. */
static int
add_addr(struct mnl_socket *nl, unsigned int ifindex, const struct xg_cfg_prefix *a,
	 uint32_t seq)
{
	char buf[8192];   /* MNL_SOCKET_BUFFER_SIZE's bound (it is not a constant) */
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	size_t alen = a->family == AF_INET ? 4 : 16;
	const void *addr = a->family == AF_INET ? (const void *)&a->v4 : (const void *)&a->v6;
	struct ifaddrmsg *ifa;
	ssize_t n;

	nlh->nlmsg_type = RTM_NEWADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = a->family;
	ifa->ifa_prefixlen = a->plen;
	/* The address is the port's, already in use: no duplicate detection. */
	ifa->ifa_flags = a->family == AF_INET6 ? IFA_F_NODAD : 0;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, alen, addr);
	mnl_attr_put(nlh, IFA_ADDRESS, alen, addr);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0)
		return -errno;
	return 0;
}

int
xg_exception_addrs(const char *ifname, const struct xg_cfg_prefix *addr, int n)
{
	unsigned int ifindex = if_nametoindex(ifname);
	struct mnl_socket *nl;
	uint32_t seq = (uint32_t)time(NULL);
	int i, rc = 0;

	if (ifindex == 0)
		return -ENODEV;
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (nl == NULL)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		rc = -errno;
	for (i = 0; !rc && i < n; i++) {
		rc = add_addr(nl, ifindex, &addr[i], seq + (uint32_t)i);
		if (rc)
			EXC_LOG(ERR, "%s: cannot add address %d: %s", ifname, i, strerror(-rc));
	}
	mnl_socket_close(nl);
	return rc;
}
