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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/xfrm.h>

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
	/** Optional: the lifetime of a new larval state in seconds (the
	 *  host's net.core.xfrm_acq_expires), read when one is made; without
	 *  it, the value of xg_xfrm_set_acq_expires(). */
	uint32_t (*acq_expires)(void *ctx);
	/** Optional: does anyone listen on group mask @p group? Without it,
	 *  nobody does (ACQUIRE is sent only to listeners, as the kernel's
	 *  km_is_alive() check). */
	bool (*listening)(void *ctx, uint32_t group);
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

/** Read-only view of one SA, for compilers of fast-path tables. */
struct xg_sa_view {
	const struct xfrm_id *id;
	const xfrm_address_t *saddr;
	const struct xfrm_selector *sel;
	uint16_t family;
	uint8_t mode;
	uint8_t flags;                  /**< XFRM_STATE_* */
	uint32_t reqid;
	uint32_t replay_window;         /**< legacy or ESN window */
	uint64_t oseq;                  /**< last outbound sequence number */
	uint64_t iseq;                  /**< last inbound sequence number (replay state) */
	uint64_t add_time;
	/** Hard byte and packet limits left (XFRM_INF: none), from the SA's
	 *  limits less what was reported so far. */
	uint64_t bytes_left, packets_left;
	const struct xfrm_algo_aead *aead;
	const struct xfrm_algo_auth *aalg;
	const struct xfrm_algo *ealg;
	const struct xfrm_encap_tmpl *encap;   /**< NULL: plain ESP */
	uint32_t mark_v, mark_m, if_id;
	uint64_t uid;                   /**< unique for the daemon's life */
	/* What was reported so far (what GETSA shows), for telemetry. */
	uint64_t packets, bytes, use_time;
	uint32_t replay, integrity_failed;
	const uint64_t *drops;          /**< XG_SA_NDROPS data-plane drop counters */
	uint64_t workers;               /**< bit i: worker i carried a packet of it */
};

/** Drop counters the data plane keeps per SA beyond replay and
 *  integrity (which xfrm_usersa_info carries): the model only adds them
 *  up across table rebuilds; their meaning is the data plane's. */
#define XG_SA_NDROPS 11

/** What the data plane saw on one SA since the last report. */
struct xg_sa_use {
	uint64_t bytes, packets;
	uint32_t replay, integrity_failed;
	uint64_t drops[XG_SA_NDROPS];
	uint64_t workers;               /**< OR'ed into the SA's set */
	uint64_t oseq;                  /**< outbound: last sequence number sent */
	uint64_t use_time;              /**< wall-clock second of the last packet, 0: none */
	/** Inbound, when known (else 0): the highest sequence number received
	 *  and which of the 4096 below it were: bit i of seen[] is iseq - i. */
	uint64_t iseq;
	uint32_t seen[128];
};

/** Read-only view of one policy. */
struct xg_pol_view {
	const struct xfrm_selector *sel;
	uint8_t dir, action, type;
	uint32_t priority, index;
	uint64_t order;                 /**< insertion order (older first) */
	uint8_t ntmpl;
	const struct xfrm_user_tmpl *tmpl;
	uint32_t mark_v, mark_m, if_id;
	uint64_t add_time, use_time;
};

/** Changes so far: differs after every change of the SAD or SPD. */
uint64_t xg_xfrm_generation(const struct xg_xfrm *x);

/**
 * Policy changes so far, those announced to XFRMNLGRP_POLICY (new, updated,
 * deleted and flushed policies, defaults): a hint that the SPD changed.
 * Policies removed by a hard POLEXPIRE or rewritten by MIGRATE do not move it.
 */
uint64_t xg_xfrm_policy_generation(const struct xg_xfrm *x);

/** The fixed part of an XFRM request of @p type (the kernel's
 *  xfrm_msg_min[]), 0 for a type outside XFRM_MSG_BASE..XFRM_MSG_MAX. */
size_t xg_xfrm_msg_min(uint16_t type);

/** Call @p fn for every SA, then @p pfn for every policy (either may be NULL). */
void xg_xfrm_foreach(const struct xg_xfrm *x, void (*fn)(void *arg, const struct xg_sa_view *v),
		     void (*pfn)(void *arg, const struct xg_pol_view *v), void *arg);

/**
 * Report data-plane use: @p fn is called for every SA and fills @p use
 * (zeroed) with what happened since its last report; the model adds it to
 * the SA's current lifetime and stats, as GETSA and dumps show them.
 */
void xg_xfrm_report_use(struct xg_xfrm *x,
			void (*fn)(void *arg, uint64_t uid, struct xg_sa_use *use), void *arg);

/**
 * Have @p fn called before a datagram of requests is handled when one of
 * its requests may show or copy SA counters or sequence numbers (GETSA,
 * dumps, GETAE, NEWAE, DELSA, FLUSHSA, EXPIRE, MIGRATE, ...): the data plane
 * reports its counters there, so that they are fresh and nothing is lost
 * when an SA goes away. Datagrams of only NEWSA/UPDSA/ALLOCSPI and policy
 * requests skip it (the caller reports before rebuilding its tables).
 */
void xg_xfrm_set_prelude(struct xg_xfrm *x, void (*fn)(void *arg), void *arg);

/**
 * Lifetimes, as the kernel's per-SA timer and xfrm_state_check_expire():
 * an SA past a soft limit (add time, use time, bytes, packets) gets one
 * XFRM_MSG_EXPIRE with hard 0 on group XFRMNLGRP_EXPIRE; past a hard
 * limit it gets one with hard 1 and is deleted. Byte and packet limits see
 * what xg_xfrm_report_use() reported so far. Policies likewise by add
 * and use time (XFRM_MSG_POLEXPIRE; a soft one repeated every 30 s).
 * Call about once a second with the wall-clock time.
 * @return the number of SAs and policies deleted.
 */
unsigned int xg_xfrm_tick(struct xg_xfrm *x, uint64_t now);

/** Policy @p index matched a packet at wall-clock second @p when (its
 *  curlft.use_time, which GETPOLICY shows and charon's inactivity and
 *  DPD checks read). */
void xg_xfrm_policy_used(struct xg_xfrm *x, uint32_t index, uint64_t when);

/** The lifetime of larval states (ALLOCSPI) when ops.acq_expires is not
 *  set, in seconds; default 30. */
void xg_xfrm_set_acq_expires(struct xg_xfrm *x, uint32_t seconds);

/** Does a packet of direction @p dir (XFRM_POLICY_IN/OUT/FWD) that no
 *  policy matches get blocked (SETDEFAULT)? The default is accept. */
bool xg_xfrm_default_block(const struct xg_xfrm *x, uint8_t dir);

/** An outbound packet that found no SA; addresses and ports in network
 *  order, as in struct xfrm_selector (ICMP: type and code as ports). */
struct xg_flow {
	uint16_t family;
	uint8_t proto;
	uint16_t sport, dport;
	xfrm_address_t saddr, daddr;
};

/**
 * xfrm_state_find() for an outbound packet of @p flow that out policy
 * @p index sent to its first template and the data plane found no SA for.
 * Unless a state for the template exists (valid, or larval: an acquire in
 * progress) or nobody listens on XFRMNLGRP_ACQUIRE, make a larval state
 * with the flow as selector and a new acquire sequence number (it lives
 * net.core.xfrm_acq_expires seconds) and send XFRM_MSG_ACQUIRE.
 * @param local  the gateway's address towards the template's destination,
 *               used when the template names no source
 * @return 0 when an ACQUIRE was sent; -EAGAIN in progress, -EEXIST a
 *         state exists, -ESRCH no listener or no such policy.
 */
int xg_xfrm_acquire(struct xg_xfrm *x, uint32_t index, const struct xg_flow *flow,
		    const xfrm_address_t *local);

/**
 * An inbound ESP-in-UDP packet of SA @p uid came genuine from outer source
 * @p saddr / @p sport (network order) other than the SA's: send
 * XFRM_MSG_MAPPING on XFRMNLGRP_MAPPING (km_new_mapping()), at most once
 * per XFRMA_MTIMER_THRESH seconds and source port when the SA has one.
 * @return 0 sent, -ESRCH no such SA, -EINVAL not ESP-in-UDP, -EAGAIN held back.
 */
int xg_xfrm_mapping(struct xg_xfrm *x, uint64_t uid, const xfrm_address_t *saddr,
		    uint16_t sport, uint64_t now);

/** Object counts, for logs and tests. */
void xg_xfrm_counts(const struct xg_xfrm *x, uint32_t *nsa, uint32_t *npol);

#endif /* XG_XFRM_H */
