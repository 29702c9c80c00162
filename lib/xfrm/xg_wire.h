/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_WIRE_H
#define XG_WIRE_H

/**
 * @file
 * Framing between libxfrmgw-preload.so and the xfrmgw XFRM socket.
 *
 * The transport is an AF_UNIX SOCK_SEQPACKET socket, so one datagram is one
 * unit in both directions, exactly like a netlink socket.
 *
 * Client -> server: plain netlink datagrams (one or more nlmsghdr each, as a
 * netlink socket accepts them), plus control messages that tell the server
 * what the client's netlink address is. A control message is a single
 * nlmsghdr of type XG_WIRE_CTL (below NLMSG_MIN_TYPE, which the kernel never
 * dispatches) whose payload is struct xg_wire_ctl with the magic set. The
 * client sends one right after connecting and again on every bind(),
 * membership change or change of NETLINK_EXT_ACK / NETLINK_CAP_ACK; each
 * replaces the previous one. No answer is sent.
 *
 * Server -> client: every datagram starts with struct xg_wire_hdr followed by
 * exactly one netlink message. The preload library strips the header and
 * turns `group` into the nl_groups of the sockaddr_nl source address (0 for
 * unicast), as netlink_recvmsg() does.
 */

#include <stdint.h>

#define XG_WIRE_CTL 0x0e          /**< nlmsg_type of a control message */
#define XG_WIRE_CTL_MAGIC 0x58474331u /**< "XGC1" */
#define XG_WIRE_HDR_MAGIC 0x58474831u /**< "XGH1" */
#define XG_WIRE_MAX_MSG 4096      /**< largest netlink message the server sends */

/** Payload of an XG_WIRE_CTL message. */
struct xg_wire_ctl {
	uint32_t magic;   /**< XG_WIRE_CTL_MAGIC */
	uint32_t portid;  /**< netlink port id of the client socket (never 0) */
	uint32_t groups;  /**< bitmask of joined groups, bit (g - 1) for group g */
	uint32_t pid;     /**< process id, for logs */
	uint32_t nlflags; /**< XG_WIRE_F_* socket options the client set */
};

#define XG_WIRE_F_EXT_ACK 1u  /**< NETLINK_EXT_ACK is on */
#define XG_WIRE_F_CAP_ACK 2u  /**< NETLINK_CAP_ACK is on */
/** Servers accept the 16-byte form without nlflags (flags then 0). */
#define XG_WIRE_CTL_MINLEN 16

/** Prefix of every server -> client datagram. */
struct xg_wire_hdr {
	uint32_t magic;   /**< XG_WIRE_HDR_MAGIC */
	uint32_t group;   /**< 0 for unicast, else the group bit mask (1 << (g - 1)) */
};

#endif /* XG_WIRE_H */
