/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_NL_H
#define XG_NL_H

/**
 * @file
 * Netlink codec: bounds-checked parsing of requests and building of replies.
 *
 * Pure functions over caller-owned buffers: nothing here allocates, blocks or
 * keeps state, so every function is safe to call from any thread on distinct
 * buffers, and the parser can be fuzzed on its own.
 *
 * Parsing follows the kernel's nlmsg_parse_deprecated(): attributes are walked
 * after the fixed header; a truncated tail ends the walk silently; types above
 * the policy's maximum are ignored; an attribute shorter than its policy
 * length fails with -ERANGE; the last of duplicated attributes wins.
 */

#include <stddef.h>
#include <stdint.h>
#include <linux/netlink.h>

#define XG_NL_MAX_ATTR 40

/** Kind of an attribute, as the kernel's nla_policy type. */
enum xg_nla_kind {
	XG_NLA_BINARY = 0,  /**< NLA_UNSPEC with a minimum length */
	XG_NLA_U8,
	XG_NLA_U32,
	XG_NLA_U64,
};

/** Minimum payload length of one attribute type; 0 means "any length". */
struct xg_nla_policy {
	uint16_t minlen;
	uint8_t kind;       /**< enum xg_nla_kind */
};

/** An attribute found in a request: points into the request buffer. */
struct xg_nla {
	const uint8_t *data;
	uint16_t len;     /**< payload length (nla_len - NLA_HDRLEN) */
	uint16_t offset;  /**< offset of the attribute header in the message */
};

/** Extended-ack information collected while handling one request. */
struct xg_extack {
	const char *msg;      /**< static string, or NULL */
	uint32_t bad_attr_off; /**< offset of the offending attribute, 0 if none */
	uint8_t bad_attr_kind; /**< its enum xg_nla_kind, for NLMSGERR_ATTR_POLICY */
};

/**
 * Parse the attributes that follow a fixed header of @p hdrlen bytes.
 *
 * @param nlh     message (aligned copy; nlh->nlmsg_len already checked to be
 *                within the datagram)
 * @param hdrlen  fixed payload size for this message type
 * @param tb      array of @p maxtype + 1 entries, zeroed on entry by callee
 * @param maxtype highest attribute type the policy knows
 * @param pol     minimum lengths, @p maxtype + 1 entries
 * @param ext     filled on failure
 * @return 0, -EINVAL when nlmsg_len < NLMSG_LENGTH(hdrlen), -ERANGE when an
 *         attribute is shorter than its policy length.
 */
int xg_nl_parse(const struct nlmsghdr *nlh, size_t hdrlen, struct xg_nla *tb, int maxtype,
		const struct xg_nla_policy *pol, struct xg_extack *ext);

/** Output buffer for building one netlink message. Caller owns @p buf. */
struct xg_nlbuf {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int overflow;   /**< set when a put did not fit; the message is then invalid */
};

/** Start a message; returns the header inside @p b or NULL if it does not fit. */
struct nlmsghdr *xg_nl_put_hdr(struct xg_nlbuf *b, uint16_t type, uint16_t flags, uint32_t seq,
			       uint32_t pid, size_t payload);
/** Reserve an attribute of @p len bytes (zero-filled); NULL if it does not fit. */
void *xg_nl_reserve(struct xg_nlbuf *b, uint16_t type, size_t len);
/** Append an attribute copied from @p data. */
int xg_nl_put(struct xg_nlbuf *b, uint16_t type, const void *data, size_t len);
int xg_nl_put_u32(struct xg_nlbuf *b, uint16_t type, uint32_t v);
/** Finish the message started at offset 0 of @p b: sets nlmsg_len. */
void xg_nl_end(struct xg_nlbuf *b);

/**
 * Build the NLMSG_ERROR answer the kernel's netlink_ack() sends.
 *
 * @param req      the request (its nlmsg_len bytes are echoed when err != 0
 *                 and @p cap_ack is 0)
 * @param err      0 or a negative errno
 * @param portid   the requester's port id
 * @param ext_ack  the requester enabled NETLINK_EXT_ACK
 * @return length of the message built in @p out, 0 if @p cap is too small
 */
size_t xg_nl_build_ack(uint8_t *out, size_t cap, const struct nlmsghdr *req, int err,
		       uint32_t portid, int cap_ack, int ext_ack, const struct xg_extack *ext);

/** Build NLMSG_DONE (payload int 0, NLM_F_MULTI). Returns its length. */
size_t xg_nl_build_done(uint8_t *out, size_t cap, uint32_t seq, uint32_t portid);

#endif /* XG_NL_H */
