/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_XFRM_H
#define XG_XFRM_H

/**
 * @file
 * The XFRM control plane: the SAD/SPD model and the NETLINK_XFRM message
 * handlers that program it, with the Linux kernel's semantics.
 *
 * Thread-safety: an xg_xfrm instance is owned by one control thread. No
 * function here may be called concurrently on the same instance. The data
 * plane never reads this model; it reads tables compiled from it.
 */

#include <stddef.h>
#include <stdint.h>

struct xg_xfrm;
struct xg_xfrm_dump;

/** Who sent a request, as the netlink layer would know it. */
struct xg_xfrm_peer {
	uint32_t portid;
	int ext_ack;   /**< NETLINK_EXT_ACK was enabled on the client socket */
	int cap_ack;   /**< NETLINK_CAP_ACK was enabled */
	void *opaque;  /**< passed back to the output callbacks */
};

/** Where the handlers send what they produce. Messages are copied. */
struct xg_xfrm_ops {
	/** One unicast netlink message for @p peer. */
	void (*unicast)(void *opaque, const void *msg, size_t len);
	/** One multicast event for every member of group mask @p group. */
	void (*multicast)(void *ctx, uint32_t group, const void *msg, size_t len);
	/** A dump was started for @p peer; the caller drives it with
	 *  xg_xfrm_dump_next() and owns it until xg_xfrm_dump_free(). */
	void (*dump_start)(void *opaque, struct xg_xfrm_dump *d);
	void *ctx;
};

/**
 * Create an empty SAD/SPD.
 * @return the instance, or NULL on allocation failure.
 */
struct xg_xfrm *xg_xfrm_create(const struct xg_xfrm_ops *ops);

/** Free every SA and policy (keys wiped) and the instance. */
void xg_xfrm_destroy(struct xg_xfrm *x);

/**
 * Handle one datagram of netlink requests as the kernel's netlink_rcv_skb()
 * and xfrm_user_rcv_msg() do: messages are processed in order; each failure
 * is answered with NLMSG_ERROR, each success with an ack when NLM_F_ACK is
 * set; a truncated message ends the datagram silently.
 *
 * @return number of messages handled.
 */
int xg_xfrm_rcv(struct xg_xfrm *x, const struct xg_xfrm_peer *peer, const void *dgram,
		size_t len);

/**
 * Produce the next message of a dump into @p buf.
 * @return its length; 0 when the dump is over (NLMSG_DONE was produced in
 *         @p buf and *done set) or @p cap is too small.
 */
size_t xg_xfrm_dump_next(struct xg_xfrm *x, struct xg_xfrm_dump *d, void *buf, size_t cap,
			 int *done);

/** Abort or finish a dump: releases its place in the walk. */
void xg_xfrm_dump_free(struct xg_xfrm *x, struct xg_xfrm_dump *d);

/** Object counts, for logs and tests. */
void xg_xfrm_counts(const struct xg_xfrm *x, uint32_t *nsa, uint32_t *npol);

#endif /* XG_XFRM_H */
