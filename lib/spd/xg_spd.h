/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_SPD_H
#define XG_SPD_H

/**
 * @file
 * The data plane's SPD: the XFRM policies compiled into rte_acl contexts,
 * one per address family and direction, answering "which policy applies to
 * this packet" for a burst at a time.
 *
 * Semantics are the kernel's xfrm_policy_lookup(): a selector matches on
 * source and destination prefixes, protocol (0 = any) and source/destination
 * port under a mask (for ICMP the type and code); among matching policies
 * the lowest priority value wins, and among equals the one installed first.
 * rte_acl wants the highest priority to win and unique priorities to be
 * deterministic, so rules are ranked once at build time.
 *
 * Packets are not classified in place: xg_spd_key_v4/v6() extract a compact
 * key (protocol, addresses, ports as the kernel's flow decoding sees them,
 * behind IPv4 options and IPv6 extension headers), and the keys are
 * classified.
 *
 * Thread-safety: xg_spd_build()/xg_spd_free() on the control thread; an
 * xg_spd is immutable once built, and any number of lcores may classify
 * against it concurrently. Replacing it is the caller's job (RCU).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum xg_spd_dir { XG_SPD_IN = 0, XG_SPD_OUT = 1, XG_SPD_FWD = 2, XG_SPD_NDIR = 3 };

/** One policy, as the builder wants it (addresses and ports in network order). */
struct xg_spd_rule {
	uint8_t family;        /**< AF_INET or AF_INET6 */
	uint8_t dir;           /**< enum xg_spd_dir */
	uint8_t proto;         /**< 0: any */
	uint8_t splen, dplen;
	uint8_t saddr[16], daddr[16];
	uint16_t sport, sport_mask, dport, dport_mask;
	uint32_t priority;     /**< XFRM priority: smaller wins */
	uint64_t order;        /**< insertion order: smaller wins a priority tie */
	uint32_t id;           /**< returned by classify; must not be UINT32_MAX */
};

/** Key of an IPv4 packet; layout fixed by the ACL field definitions. */
struct xg_spd_key4 {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t saddr, daddr;
	uint16_t sport, dport;
};

/** Key of an IPv6 packet. */
struct xg_spd_key6 {
	uint8_t proto;
	uint8_t pad[3];
	uint8_t saddr[16], daddr[16];
	uint16_t sport, dport;
};

struct xg_spd;

/** Result of classify when no policy matches. */
#define XG_SPD_NO_MATCH UINT32_MAX

/**
 * Compile @p n rules (any families and directions) into a new SPD.
 * @param name  unique prefix for the rte_acl context names
 * @return the SPD, or NULL (rte_errno-style reason in *err: -EINVAL, -ENOMEM)
 */
struct xg_spd *xg_spd_build(const char *name, const struct xg_spd_rule *rules, size_t n,
			    int *err);

/** Free an SPD no lcore can still be using. */
void xg_spd_free(struct xg_spd *spd);

/** Number of rules compiled for @p family / @p dir. */
uint32_t xg_spd_count(const struct xg_spd *spd, uint8_t family, enum xg_spd_dir dir);

/**
 * Extract the key of an IPv4 packet starting at its IP header.
 * @return false for a header too short or inconsistent to classify.
 */
bool xg_spd_key_v4(const uint8_t *ip, size_t len, struct xg_spd_key4 *key);

/** Same for IPv6, walking extension headers to the upper-layer protocol. */
bool xg_spd_key_v6(const uint8_t *ip, size_t len, struct xg_spd_key6 *key);

/**
 * Does one rule's selector match a key (xfrm_selector_match())? For single
 * selectors such as an SA's, where building an ACL would not pay.
 */
bool xg_spd_rule_match(const struct xg_spd_rule *r, uint8_t family, const void *key);

/**
 * Classify @p n keys (all of @p family) in direction @p dir.
 * @param keys  pointers to struct xg_spd_key4 or xg_spd_key6
 * @param ids   out: the rule id of each, or XG_SPD_NO_MATCH
 */
void xg_spd_classify(const struct xg_spd *spd, uint8_t family, enum xg_spd_dir dir,
		     const void *const keys[], uint32_t ids[], uint32_t n);

#endif /* XG_SPD_H */
