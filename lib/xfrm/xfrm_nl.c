/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Netlink codec. Validation is bounds only; meaning is the handlers' job.
 */

#include <errno.h>
#include <string.h>

#include "xg_nl.h"

int
xg_nl_parse(const struct nlmsghdr *nlh, size_t hdrlen, struct xg_nla *tb, int maxtype,
	    const struct xg_nla_policy *pol, struct xg_extack *ext)
{
	const uint8_t *base = (const uint8_t *)nlh;
	size_t off, end;

	memset(tb, 0, sizeof(*tb) * (size_t)(maxtype + 1));
	if (nlh->nlmsg_len < NLMSG_LENGTH(hdrlen)) {
		ext->msg = "Invalid header length";
		return -EINVAL;
	}
	end = nlh->nlmsg_len;
	off = NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen);
	/* The kernel walks attributes only while a whole header fits and
	 * nla_len stays inside the message; a bad tail is ignored, not refused. */
	while (off + NLA_HDRLEN <= end) {
		struct nlattr nla;
		uint16_t type, plen;

		memcpy(&nla, base + off, sizeof(nla));
		if (nla.nla_len < NLA_HDRLEN || nla.nla_len > end - off)
			break;
		type = nla.nla_type & NLA_TYPE_MASK;
		plen = (uint16_t)(nla.nla_len - NLA_HDRLEN);
		if (type <= maxtype) {
			if (plen < pol[type].minlen) {
				ext->msg = "Attribute failed policy validation";
				ext->bad_attr_off = (uint32_t)off;
				ext->bad_attr_kind = pol[type].kind;
				return -ERANGE;
			}
			tb[type].data = base + off + NLA_HDRLEN;
			tb[type].len = plen;
			tb[type].offset = (uint16_t)off;
		}
		off += NLA_ALIGN(nla.nla_len);
	}
	/* Not an error for these legacy families, but the kernel still leaves
	 * the text in the extended ack, where a later error may replace it. */
	if (off < end)
		ext->msg = "bytes leftover after parsing attributes";
	return 0;
}

struct nlmsghdr *
xg_nl_put_hdr(struct xg_nlbuf *b, uint16_t type, uint16_t flags, uint32_t seq, uint32_t pid,
	      size_t payload)
{
	size_t need = NLMSG_SPACE(payload);
	struct nlmsghdr *nlh;

	if (b->len + need > b->cap) {
		b->overflow = 1;
		return NULL;
	}
	nlh = (struct nlmsghdr *)(b->buf + b->len);
	memset(nlh, 0, need);
	nlh->nlmsg_len = (uint32_t)NLMSG_LENGTH(payload);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = pid;
	b->len += need;
	return nlh;
}

void *
xg_nl_reserve(struct xg_nlbuf *b, uint16_t type, size_t len)
{
	size_t need = NLA_ALIGN(NLA_HDRLEN + len);
	struct nlattr nla;
	uint8_t *p;

	if (len > 0xffff - NLA_HDRLEN || b->len + need > b->cap) {
		b->overflow = 1;
		return NULL;
	}
	p = b->buf + b->len;
	memset(p, 0, need);
	nla.nla_len = (uint16_t)(NLA_HDRLEN + len);
	nla.nla_type = type;
	memcpy(p, &nla, sizeof(nla));
	b->len += need;
	return p + NLA_HDRLEN;
}

int
xg_nl_put(struct xg_nlbuf *b, uint16_t type, const void *data, size_t len)
{
	void *p = xg_nl_reserve(b, type, len);

	if (p == NULL)
		return -EMSGSIZE;
	if (len)
		memcpy(p, data, len);
	return 0;
}

int
xg_nl_put_u32(struct xg_nlbuf *b, uint16_t type, uint32_t v)
{
	return xg_nl_put(b, type, &v, sizeof(v));
}

void
xg_nl_end(struct xg_nlbuf *b)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)b->buf;

	/* Like nlmsg_end(): the length covers the padding of the last
	 * attribute, because every put already reserved aligned space. */
	nlh->nlmsg_len = (uint32_t)b->len;
}

/* NLMSGERR_ATTR_POLICY describes an integer attribute's policy; the kernel
 * writes nothing for length-only (binary) attributes. */
#define POLICY_TLV_LEN (NLA_HDRLEN + 2 * NLA_ALIGN(NLA_HDRLEN + 8) + NLA_ALIGN(NLA_HDRLEN + 4))

static size_t
ack_tlv_len(int err, const struct xg_extack *ext)
{
	size_t n = 0;

	if (ext->msg)
		n += NLA_ALIGN(NLA_HDRLEN + strlen(ext->msg) + 1);
	if (err && ext->bad_attr_off) {
		n += NLA_ALIGN(NLA_HDRLEN + sizeof(uint32_t));
		if (ext->bad_attr_kind != XG_NLA_BINARY)
			n += POLICY_TLV_LEN;
	}
	return n;
}

static void
put_policy(struct xg_nlbuf *b, uint8_t kind)
{
	static const uint64_t max[] = { 0, UINT8_MAX, UINT32_MAX, UINT64_MAX };
	static const uint32_t type[] = { 0, NL_ATTR_TYPE_U8, NL_ATTR_TYPE_U32, NL_ATTR_TYPE_U64 };
	uint64_t zero = 0;
	struct nlattr nest = { .nla_len = POLICY_TLV_LEN,
			       .nla_type = NLA_F_NESTED | NLMSGERR_ATTR_POLICY };

	if (b->len + NLA_HDRLEN > b->cap) {
		b->overflow = 1;
		return;
	}
	memcpy(b->buf + b->len, &nest, sizeof(nest));
	b->len += NLA_HDRLEN;
	xg_nl_put(b, NL_POLICY_TYPE_ATTR_MIN_VALUE_U, &zero, sizeof(zero));
	xg_nl_put(b, NL_POLICY_TYPE_ATTR_MAX_VALUE_U, &max[kind], sizeof(max[kind]));
	xg_nl_put_u32(b, NL_POLICY_TYPE_ATTR_TYPE, type[kind]);
}

size_t
xg_nl_build_ack(uint8_t *out, size_t cap, const struct nlmsghdr *req, int err, uint32_t portid,
		int cap_ack, int ext_ack, const struct xg_extack *ext)
{
	struct xg_nlbuf b = { .buf = out, .cap = cap };
	size_t echo = 0, tlv = ext_ack ? ack_tlv_len(err, ext) : 0;
	uint16_t flags = 0;
	struct nlmsgerr e;
	struct nlmsghdr *nlh;
	int full = err && !cap_ack;

	if (full)
		echo = req->nlmsg_len - NLMSG_HDRLEN;
	/* One reply must fit one datagram of at most cap bytes: cap the echo
	 * rather than lose the answer (the client still gets the errno). */
	if (NLMSG_SPACE(sizeof(e) + echo) + tlv > cap)
		echo = 0, full = 0;
	/* The kernel's flag says whether the request was echoed, even when its
	 * payload was empty (a bare header): NLM_F_CAPPED only when it was not. */
	if (!full)
		flags |= NLM_F_CAPPED;
	if (tlv)
		flags |= NLM_F_ACK_TLVS;
	nlh = xg_nl_put_hdr(&b, NLMSG_ERROR, flags, req->nlmsg_seq, portid, sizeof(e) + echo);
	if (nlh == NULL)
		return 0;
	e.error = err;
	memcpy(&e.msg, req, sizeof(e.msg));
	memcpy(NLMSG_DATA(nlh), &e, sizeof(e));
	if (echo)
		memcpy((uint8_t *)NLMSG_DATA(nlh) + sizeof(e), (const uint8_t *)req + NLMSG_HDRLEN,
		       echo);
	if (tlv && ext->msg)
		xg_nl_put(&b, NLMSGERR_ATTR_MSG, ext->msg, strlen(ext->msg) + 1);
	if (tlv && err && ext->bad_attr_off) {
		xg_nl_put_u32(&b, NLMSGERR_ATTR_OFFS, ext->bad_attr_off);
		if (ext->bad_attr_kind != XG_NLA_BINARY)
			put_policy(&b, ext->bad_attr_kind);
	}
	xg_nl_end(&b);
	return b.overflow ? 0 : b.len;
}

size_t
xg_nl_build_done(uint8_t *out, size_t cap, uint32_t seq, uint32_t portid)
{
	struct xg_nlbuf b = { .buf = out, .cap = cap };
	struct nlmsghdr *nlh = xg_nl_put_hdr(&b, NLMSG_DONE, NLM_F_MULTI, seq, portid, sizeof(int));

	return nlh ? b.len : 0;
}
