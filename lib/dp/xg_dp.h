/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_DP_H
#define XG_DP_H

/**
 * @file
 * The data plane's tables: one immutable snapshot compiled from the XFRM
 * model and the configuration, read by every worker, replaced as a whole
 * by the control thread through RCU when the model changes.
 *
 * Thread-safety: xg_dp_build()/xg_dp_free() on the control thread only;
 * a published snapshot is read-only, and the SA runtime objects in it are
 * written only as documented on struct xg_sa_rt.
 */

#include <stdbool.h>
#include <stdint.h>

#include <linux/xfrm.h>

#include <rte_ether.h>
#include <rte_prefetch.h>

#include "xg_config.h"
#include "xg_esp.h"
#include "xg_offload.h"
#include "xg_spd.h"
#include "xg_stats.h"
#include "xg_xfrm.h"

struct xg_xfrm;
struct rte_hash;
struct rte_fib;
struct rte_fib6;

/** SA at run time. The replay window (inbound) is written by the one lcore
 *  that receives the SA's packets; the sequence counter (outbound) and the
 *  counters are updated atomically. What every packet reads or writes
 *  comes first (prefetched as a block, see xg_sa_rt_prefetch()); the ESP
 *  state, whose replay bitmap is large, comes last. */
struct xg_sa_rt {
	uint64_t packets, bytes;
	/* Hard lifetime: the SA stops once its counters reach these (the
	 * model then sends the hard EXPIRE and deletes it). */
	uint64_t hard_packets, hard_bytes;
	struct xg_offload_sess off;   /**< inline protocol on a port, else CPU */
	bool inbound;
	uint8_t mode;                 /**< XFRM_MODE_TUNNEL / _TRANSPORT */
	bool sel_any;                 /**< selector family unset: any inner packet */
	/* ESP-in-UDP (RFC 3948): the SA's source port << 16 | destination
	 * port, each in network order; one word, so that an UPDSA with new
	 * ports never shows half of it. */
	bool encap;
	uint32_t encap_ports;
	uint16_t hdr_len;             /**< headers ESP adds before the trailer (props.header_len) */
	uint16_t family;              /**< outer family */
	uint32_t reqid;
	uint8_t daddr[16], saddr[16]; /**< SA endpoints (outer), network order */
	struct xg_spd_rule sel;       /**< inbound: the inner packet must match */
	uint64_t replay_fail, integrity_fail;
	uint64_t drops[XG_SA_NDROPS]; /**< by xg_sa_drop_index() (drop path only) */
	uint64_t workers;             /**< bit i: worker i carried one of its packets */
	uint64_t map_tsc;             /**< inbound: when a MAPPING was last asked for */
	/* Control thread only: identity, owner and what was reported so far. */
	uint64_t uid;
	const struct xg_dp *owner;    /**< the snapshot that frees it */
	uint64_t rep_packets, rep_bytes, rep_replay, rep_integrity;
	uint64_t rep_drops[XG_SA_NDROPS];
	struct xg_esp_sa esp;
};

/** The counters of /xfrmgw/stats a packet of one SA can be dropped under,
 *  besides XfrmInStateSeqError and XfrmInStateProtoError (replay_fail,
 *  integrity_fail): xg_sa_rt.drops[i] counts xg_sa_drop_stat[i]. */
extern const enum xg_stat xg_sa_drop_stat[XG_SA_NDROPS];

/** Index of @p why in xg_sa_rt.drops, or -1 when not counted per SA. */
static inline int
xg_sa_drop_index(enum xg_stat why)
{
	switch (why) {
	case XG_STAT_IN_HDR_ERROR: return 0;
	case XG_STAT_IN_STATE_MODE_ERROR: return 1;
	case XG_STAT_IN_STATE_MISMATCH: return 2;
	case XG_STAT_IN_STATE_EXPIRED: return 3;
	case XG_STAT_IN_TMPL_MISMATCH: return 4;
	case XG_STAT_OUT_STATE_MODE_ERROR: return 5;
	case XG_STAT_OUT_STATE_SEQ_ERROR: return 6;
	case XG_STAT_OUT_STATE_PROTO_ERROR: return 7;
	case XG_STAT_OUT_STATE_EXPIRED: return 8;
	case XG_STAT_OUT_TOO_BIG: return 9;
	case XG_STAT_PMTU_ICMP: return 10;
	default: return -1;
	}
}

/** Start loading what a packet of @p sa reads: its hot block and the ESP
 *  state and keys (a burst issues these for every SA before the first
 *  is processed). */
static inline void
xg_sa_rt_prefetch(const struct xg_sa_rt *sa)
{
	rte_prefetch0(sa);
	rte_prefetch0((const uint8_t *)sa + 64);
	rte_prefetch0((const uint8_t *)sa + 128);
	xg_esp_prefetch(&sa->esp);
}

/** Policy at run time: the SPD returns an index into these. */
struct xg_pol_rt {
	uint8_t action;               /**< XFRM_POLICY_ALLOW / _BLOCK */
	uint8_t dir;
	uint8_t ntmpl;
	uint32_t index;               /**< the model's policy index */
	uint64_t acq_tsc;             /**< out, no SA: when a worker last asked for one */
	uint64_t use_time;            /**< wall-clock second a packet last matched it */
	struct xfrm_user_tmpl tmpl;   /**< the first template (bundles: later) */
	struct xg_sa_rt *sa;          /**< out: the SA the template selects, or NULL */
};

struct xg_dp_port {
	bool up;
	uint16_t exc;                 /**< its exception TAP's port + 1, 0: none */
	uint16_t exc_of;              /**< an exception TAP: its port + 1 */
	struct rte_ether_addr mac;
	uint16_t mtu;                 /**< IP packet bytes the port carries */
	uint8_t naddr;
	struct xg_cfg_prefix addr[XG_CFG_MAX_ADDRS];
};

struct xg_dp_nh {
	uint16_t port;
	bool has_gw;
	struct xg_cfg_prefix gw;
};

struct xg_dp_neigh {
	struct xg_cfg_prefix addr;
	struct rte_ether_addr mac;
	uint16_t port;
};

/** Ports, routes and neighbours: built once from the configuration (they
 *  do not change with the SAD/SPD), shared by every snapshot. */
struct xg_routes {
	struct rte_fib *fib4;
	struct rte_fib6 *fib6;
	struct xg_dp_nh nh[XG_CFG_MAX_ROUTES + XG_CFG_MAX_PORTS * XG_CFG_MAX_ADDRS];
	uint32_t nnh;
	struct xg_dp_neigh neigh[XG_CFG_MAX_NEIGH];
	uint32_t nneigh;
	struct xg_dp_port port[XG_CFG_MAX_PORTS];
	/* Every port address in one short array: "is it ours?" is asked of
	 * every packet, so it must not walk all ports. */
	struct {
		uint8_t family;
		uint16_t port;
		uint8_t addr[16];
	} local[XG_CFG_MAX_PORTS * XG_CFG_MAX_ADDRS];
	uint32_t nlocal;
	/* Learnt neighbours: written by the control thread only, read by the
	 * workers without locks (rte_hash lock-free reader concurrency). */
	struct rte_hash *learnt;
};

/** A neighbour seen by a worker (ARP, neighbour discovery), for the
 *  control thread to record. */
struct xg_neigh_seen {
	uint16_t port;
	uint8_t family;
	uint8_t mac[6];
	uint8_t addr[16];
	uint8_t pad[7];
};

struct xg_dp {
	uint64_t generation;          /**< of the model it was built from */
	uint64_t pol_generation;      /**< its policy generation, the same */
	const struct xg_routes *rt;
	struct xg_spd *spd;
	/* The rules spd was compiled from: a snapshot whose rules are the
	 * same takes the SPD over instead of compiling it again (an ACL of
	 * 100000 rules takes over a second). The newest holder frees it. */
	struct xg_spd_rule *rules;
	uint32_t nrules;
	bool spd_owned;
	struct xg_pol_rt *pols;
	uint32_t npols;
	struct xg_sa_rt **sas;
	uint32_t nsas;
	struct rte_hash *sad_in;      /**< (spi, daddr, family) -> struct xg_sa_rt * */
	bool default_block[3];        /**< XFRM_POLICY_IN/OUT/FWD without a policy: block */
	struct xg_sa_rt **by_uid;     /**< sas sorted by uid, for xg_dp_sa_by_uid() */
	uint64_t *refused;            /**< uids of SAs the crypto device refused */
	uint32_t nrefused, caprefused;
};

/** An outbound packet that found no SA: a worker's request for an
 *  ACQUIRE, for the control thread (addresses and ports network order). */
struct xg_acq_req {
	uint32_t index;               /**< policy */
	uint8_t family, proto;
	uint16_t sport, dport;
	uint8_t tmpl_family;
	uint8_t pad[3];
	uint8_t saddr[16], daddr[16];
	uint8_t tmpl_daddr[16];
};

/** An inbound ESP-in-UDP packet from a new outer source: a worker's
 *  request for XFRM_MSG_MAPPING (address and port in network order). */
struct xg_map_req {
	uint64_t uid;                 /**< the SA */
	uint8_t family;
	uint8_t pad;
	uint16_t sport;
	uint8_t saddr[16];
	uint8_t pad2[4];
};

/** Key of the inbound SA hash: 32 bytes, a size rte_hash compares with
 *  vector instructions (other sizes go through memcmp()). */
struct xg_sad_key {
	uint32_t spi;
	uint16_t family;
	uint16_t pad;
	uint8_t daddr[16];
	uint8_t pad2[8];
};

/** Build ports, routes and neighbours from @p cfg. NULL on failure (*err). */
struct xg_routes *xg_routes_build(const struct xg_config *cfg, int *err);

void xg_routes_free(struct xg_routes *r);

/**
 * Compile the model into new tables using the routes @p rt.
 * @param seq  a number unique among live snapshots (names DPDK objects)
 * @return the tables, or NULL (errno-style reason in *err)
 */
struct xg_dp *xg_dp_build(const struct xg_xfrm *x, const struct xg_routes *rt,
			  struct xg_dp *prev, unsigned int seq, int *err);

/** Build only if the policies compile to @p prev's SPD (only SAs changed). */
#define XG_DP_SAME_SPD 1u

/**
 * xg_dp_build() with @p flags: with XG_DP_SAME_SPD, fail with -EAGAIN,
 * nothing built and @p prev untouched, when the SPD would have to be
 * compiled anew (a policy changed since @p prev, or no @p prev).
 */
struct xg_dp *xg_dp_build_flags(const struct xg_xfrm *x, const struct xg_routes *rt,
				struct xg_dp *prev, unsigned int seq, unsigned int flags,
				int *err);

/**
 * Free tables no worker can still see. SA runtime objects that a newer
 * snapshot took over (same SA, same direction: their sequence counter and
 * replay window must live on) stay; the others are freed, keys wiped.
 */
void xg_dp_free(struct xg_dp *dp);

/** Route lookup: the next hop for @p dst of @p family, or NULL. */
const struct xg_dp_nh *xg_dp_route(const struct xg_routes *rt, uint8_t family,
				   const uint8_t *dst);

/** Link-layer address of @p addr on @p port: static, else learnt. */
bool xg_dp_neigh(const struct xg_routes *rt, uint8_t family, const uint8_t *addr, uint16_t port,
		 struct rte_ether_addr *mac);

/** Record a neighbour a worker saw. Control thread only. */
void xg_dp_learn(struct xg_routes *rt, const struct xg_neigh_seen *n);

/** Is @p addr inside a prefix of @p port's own addresses (on link)? */
bool xg_dp_on_link(const struct xg_routes *rt, uint16_t port, uint8_t family,
		   const uint8_t *addr);

/** The port's first address of @p family, or NULL. */
const struct xg_cfg_prefix *xg_dp_port_addr(const struct xg_routes *rt, uint16_t port,
					   uint8_t family);

/** The port that owns address @p addr, or -1 if it is not the gateway's. */
int xg_dp_local_port(const struct xg_routes *rt, uint8_t family, const uint8_t *addr);

/** The SA runtime object of model SA @p uid in @p dp, or NULL: a binary
 *  search on immutable data, safe on workers too. */
struct xg_sa_rt *xg_dp_sa_by_uid(const struct xg_dp *dp, uint64_t uid);

/** Is @p addr one of the gateway's own addresses (on any port)? */
bool xg_dp_is_local(const struct xg_routes *rt, uint8_t family, const uint8_t *addr);

#endif /* XG_DP_H */
