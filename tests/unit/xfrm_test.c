/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the netlink codec and the SAD/SPD model: every message type's
 * minimum size, attribute length rules, truncated and oversized messages,
 * and the model's identities, index generation and dumps.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xfrm_priv.h"

#include "check.h"

/* What the handlers produced for the last request. */
static uint8_t out[64][XG_MSG_MAX];
static size_t outlen[64];
static int nout, nevents;
static uint8_t last_event[XG_MSG_MAX];
static uint32_t last_group;
static size_t last_event_len;
static int bad_event_len;       /* events whose nlmsg_len is not their size */
static struct xg_xfrm_dump *dump;

static void
on_unicast(void *opaque, const void *msg, size_t len)
{
	(void)opaque;
	if (nout < 64) {
		memcpy(out[nout], msg, len);
		outlen[nout++] = len;
	}
}

static void
on_multicast(void *ctx, uint32_t group, const void *msg, size_t len)
{
	(void)ctx;
	struct nlmsghdr h;

	memcpy(&h, msg, sizeof(h));
	bad_event_len += h.nlmsg_len != len;
	memcpy(last_event, msg, len < sizeof(last_event) ? len : sizeof(last_event));
	last_event_len = len;
	last_group = group;
	nevents++;
}

static void
on_dump(void *opaque, struct xg_xfrm_dump *d)
{
	(void)opaque;
	dump = d;
}

static const struct xg_xfrm_peer peer = { .portid = 4242, .ext_ack = 1 };

/* A request under construction. */
struct msg {
	uint8_t buf[4096];
	struct xg_nlbuf b;
};

/* NLMSG_DATA() casts the const away (clang -Wcast-qual). */
static const void *
msg_data(const struct nlmsghdr *nlh)
{
	return (const uint8_t *)nlh + NLMSG_HDRLEN;
}

static struct nlmsghdr *
msg_start(struct msg *m, uint16_t type, uint16_t flags, const void *fixed, size_t len)
{
	struct nlmsghdr *nlh;

	memset(m, 0, sizeof(*m));
	m->b.buf = m->buf;
	m->b.cap = sizeof(m->buf);
	nlh = xg_nl_put_hdr(&m->b, type, NLM_F_REQUEST | flags, 7, peer.portid, len);
	if (len && fixed)
		memcpy(NLMSG_DATA(nlh), fixed, len);
	return nlh;
}

static int
send_raw(struct xg_xfrm *x, struct msg *m)
{
	struct nlmsgerr e;

	nout = 0;
	xg_xfrm_rcv(x, &peer, m->buf, m->b.len);
	if (nout == 0)
		return 1;   /* no answer at all */
	if (((struct nlmsghdr *)out[0])->nlmsg_type != NLMSG_ERROR)
		return 0;   /* a data reply */
	memcpy(&e, NLMSG_DATA((struct nlmsghdr *)out[0]), sizeof(e));
	return e.error;
}

static int
send_msg(struct xg_xfrm *x, struct msg *m)
{
	xg_nl_end(&m->b);
	return send_raw(x, m);
}

static struct xfrm_usersa_info
gcm_sa_info(uint32_t spi)
{
	struct xfrm_usersa_info p;

	memset(&p, 0, sizeof(p));
	p.family = AF_INET;
	p.id.proto = IPPROTO_ESP;
	p.id.spi = htonl(spi);
	p.id.daddr.a4 = htonl(0x0a000002);
	p.saddr.a4 = htonl(0x0a000001);
	p.mode = XFRM_MODE_TUNNEL;
	p.lft.soft_byte_limit = p.lft.hard_byte_limit = UINT64_MAX;
	p.lft.soft_packet_limit = p.lft.hard_packet_limit = UINT64_MAX;
	return p;
}

static void
put_gcm(struct msg *m, const char *name, uint32_t keybits, uint32_t icv)
{
	/* Header and key in one buffer: a struct with the header first and
	 * the key after it is a GNU extension clang warns about. */
	uint8_t buf[sizeof(struct xfrm_algo_aead) + 36];
	struct xfrm_algo_aead a;

	memset(&a, 0, sizeof(a));
	strcpy(a.alg_name, name);
	a.alg_key_len = keybits;
	a.alg_icv_len = icv;
	memcpy(buf, &a, sizeof(a));
	memset(buf + sizeof(a), 0x5a, sizeof(buf) - sizeof(a));
	xg_nl_put(&m->b, XFRMA_ALG_AEAD, buf, sizeof(a) + keybits / 8);
}

static int
add_gcm_sa(struct xg_xfrm *x, uint32_t spi)
{
	struct xfrm_usersa_info p = gcm_sa_info(spi);
	struct msg m;

	msg_start(&m, XFRM_MSG_NEWSA, NLM_F_ACK, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	return send_msg(x, &m);
}

static int
get_sa(struct xg_xfrm *x, uint32_t spi)
{
	struct xfrm_usersa_id id = { .spi = htonl(spi), .family = AF_INET,
				     .proto = IPPROTO_ESP };
	struct msg m;

	id.daddr.a4 = htonl(0x0a000002);
	msg_start(&m, XFRM_MSG_GETSA, 0, &id, sizeof(id));
	return send_msg(x, &m);
}

static uint64_t use_packets;

static void
give_packets(void *arg, uint64_t uid, struct xg_sa_use *u)
{
	(void)arg;
	(void)uid;
	u->packets = use_packets;
	u->bytes = use_packets * 100;
	u->use_time = (uint64_t)time(NULL);
}

/* The last event was an EXPIRE of @p spi with @p hard. */
static bool
expired(uint32_t spi, int hard)
{
	const struct nlmsghdr *nlh = (const void *)last_event;
	const struct xfrm_user_expire *ue = msg_data(nlh);

	return nlh->nlmsg_type == XFRM_MSG_EXPIRE && last_group == 1u << (XFRMNLGRP_EXPIRE - 1) &&
	       nlh->nlmsg_pid == 0 && nlh->nlmsg_seq == 0 && ue->state.id.spi == htonl(spi) &&
	       ue->hard == hard && nlh->nlmsg_len == NLMSG_LENGTH(sizeof(*ue));
}

/* Soft and hard lifetimes by packets and by add time. */
static void
test_lifetimes(struct xg_xfrm *x)
{
	struct xfrm_usersa_info p = gcm_sa_info(0x700);
	uint64_t now = (uint64_t)time(NULL);
	struct msg m;
	int before;

	p.lft.soft_packet_limit = 10;
	p.lft.hard_packet_limit = 20;
	msg_start(&m, XFRM_MSG_NEWSA, NLM_F_ACK, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	CHECK(send_msg(x, &m) == 0);
	p = gcm_sa_info(0x701);
	p.lft.soft_add_expires_seconds = 100;
	p.lft.hard_add_expires_seconds = 200;
	msg_start(&m, XFRM_MSG_NEWSA, NLM_F_ACK, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	CHECK(send_msg(x, &m) == 0);

	before = nevents;
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents == before);   /* nothing due */
	use_packets = 10;
	xg_xfrm_report_use(x, give_packets, NULL);
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents == before + 1 && expired(0x700, 0));
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents == before + 1);   /* soft once only */
	use_packets = 9;
	xg_xfrm_report_use(x, give_packets, NULL);
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents == before + 1);   /* 19 < 20 */
	use_packets = 1;
	xg_xfrm_report_use(x, give_packets, NULL);
	CHECK(xg_xfrm_tick(x, now) == 1 && nevents == before + 2 && expired(0x700, 1));
	CHECK(get_sa(x, 0x700) == -ESRCH && get_sa(x, 0x701) == 0);

	CHECK(xg_xfrm_tick(x, now + 99) == 0 && nevents == before + 2);
	CHECK(xg_xfrm_tick(x, now + 101) == 0 && expired(0x701, 0));
	CHECK(xg_xfrm_tick(x, now + 201) == 1 && expired(0x701, 1));
	CHECK(get_sa(x, 0x701) == -ESRCH && nevents == before + 4);
}

/* ALLOCSPI: a larval state with the one SPI of the range, then ENOENT
 * for the same SPI; UPDSA fills the larval state in. */
static void
test_allocspi(struct xg_xfrm *x)
{
	struct xfrm_userspi_info u;
	struct xfrm_usersa_info p = gcm_sa_info(0x800);
	const struct xfrm_usersa_info *r;
	struct msg m;

	memset(&u, 0, sizeof(u));
	u.info = p;
	u.info.id.spi = 0;
	u.min = u.max = 0x800;
	msg_start(&m, XFRM_MSG_ALLOCSPI, 0, &u, sizeof(u));
	CHECK(send_msg(x, &m) == 0);
	r = NLMSG_DATA((struct nlmsghdr *)out[0]);
	CHECK(((struct nlmsghdr *)out[0])->nlmsg_type == XFRM_MSG_NEWSA);
	CHECK(r->id.spi == htonl(0x800) && r->lft.hard_add_expires_seconds == 30);
	CHECK(get_sa(x, 0x800) == 0);
	msg_start(&m, XFRM_MSG_ALLOCSPI, 0, &u, sizeof(u));
	CHECK(send_msg(x, &m) == -ENOENT);
	u.min = 0x900;
	msg_start(&m, XFRM_MSG_ALLOCSPI, 0, &u, sizeof(u));
	CHECK(send_msg(x, &m) == -EINVAL);   /* min > max */
	msg_start(&m, XFRM_MSG_UPDSA, NLM_F_ACK, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	CHECK(send_msg(x, &m) == 0);
	CHECK(get_sa(x, 0x800) == 0);
	r = NLMSG_DATA((struct nlmsghdr *)out[0]);
	CHECK(r->lft.hard_add_expires_seconds == 0);   /* the real SA now */
}

static bool listening;
static uint32_t listening_more;   /* further groups someone listens to */

static bool
on_listening(void *ctx, uint32_t group)
{
	(void)ctx;
	return (listening && group == 1u << (XFRMNLGRP_ACQUIRE - 1)) || (group & listening_more);
}

static void
give_seq(void *arg, uint64_t uid, struct xg_sa_use *u)
{
	(void)arg;
	(void)uid;
	u->iseq = 5;
	u->seen[0] = 0x1f;
}

/* Replay events for an AEVENTS listener: one when the counters moved by
 * replay_maxdiff, none while they stand still. */
static void
test_aevents(struct xg_xfrm *x)
{
	const struct nlmsghdr *nlh = (const void *)last_event;
	const struct xfrm_aevent_id *id = msg_data(nlh);
	uint64_t now = (uint64_t)time(NULL);
	int before;

	CHECK(add_gcm_sa(x, 0xae0) == 0);
	before = nevents;
	xg_xfrm_report_use(x, give_seq, NULL);
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents == before);   /* nobody listens */
	listening_more = 1u << (XFRMNLGRP_AEVENTS - 1);
	CHECK(xg_xfrm_tick(x, now) == 0 && nevents > before);
	CHECK(nlh->nlmsg_type == XFRM_MSG_NEWAE && id->flags == XFRM_AE_CR &&
	      last_group == listening_more);
	before = nevents;
	CHECK(xg_xfrm_tick(x, now + 5) == 0 && nevents == before);   /* no change since */
	listening_more = 0;
}

/* ACQUIRE: one per template while a larval state stands; none without a
 * listener; the message carries the flow, the policy and its template. */
static void
test_acquire(struct xg_xfrm *x)
{
	struct {
		struct xfrm_userpolicy_info p;
		struct nlattr a;
		struct xfrm_user_tmpl t;
	} req;
	const struct nlmsghdr *nlh = (const void *)last_event;
	const struct xfrm_user_acquire *ua = msg_data(nlh);
	xfrm_address_t local;
	struct xg_flow f;
	struct msg m;
	uint32_t index;
	int before;

	memset(&req, 0, sizeof(req));
	req.p.sel.family = AF_INET;
	req.p.sel.daddr.a4 = htonl(0x0a020000);
	req.p.sel.prefixlen_d = 16;
	req.p.dir = XFRM_POLICY_OUT;
	req.p.lft.soft_byte_limit = UINT64_MAX;
	req.t.family = AF_INET;
	req.t.id.proto = IPPROTO_ESP;
	req.t.id.daddr.a4 = htonl(0xc0000202);
	req.t.mode = XFRM_MODE_TUNNEL;
	req.t.reqid = 77;
	req.t.aalgos = req.t.ealgos = req.t.calgos = ~0u;
	msg_start(&m, XFRM_MSG_NEWPOLICY, NLM_F_ACK, &req.p, sizeof(req.p));
	xg_nl_put(&m.b, XFRMA_TMPL, &req.t, sizeof(req.t));
	CHECK(send_msg(x, &m) == 0);
	index = ((const struct xfrm_userpolicy_info *)msg_data(nlh))->index;   /* its event */
	CHECK(nlh->nlmsg_type == XFRM_MSG_NEWPOLICY && index != 0);

	memset(&f, 0, sizeof(f));
	f.family = AF_INET;
	f.proto = IPPROTO_ICMP;
	f.sport = htons(8);
	f.saddr.a4 = htonl(0x0a010001);
	f.daddr.a4 = htonl(0x0a020005);
	memset(&local, 0, sizeof(local));
	local.a4 = htonl(0xc0000201);
	before = nevents;
	listening = false;
	CHECK(xg_xfrm_acquire(x, index, &f, &local) == -ESRCH && nevents == before);
	CHECK(xg_xfrm_acquire(x, index + 8, &f, &local) == -ESRCH);   /* no such policy */
	listening = true;
	CHECK(xg_xfrm_acquire(x, index, &f, &local) == 0 && nevents == before + 1);
	CHECK(nlh->nlmsg_type == XFRM_MSG_ACQUIRE && last_group == 1u << (XFRMNLGRP_ACQUIRE - 1));
	CHECK(ua->sel.daddr.a4 == f.daddr.a4 && ua->sel.prefixlen_d == 32 &&
	      ua->sel.sport == htons(8) && ua->sel.sport_mask == 0xffff &&
	      ua->sel.proto == IPPROTO_ICMP);
	CHECK(ua->id.daddr.a4 == req.t.id.daddr.a4 && ua->saddr.a4 == local.a4 &&
	      ua->id.spi == 0 && ua->policy.index == index && ua->policy.dir == XFRM_POLICY_OUT);
	CHECK(ua->seq != 0 && ua->aalgos == ~0u);
	/* In progress: no second ACQUIRE, for this flow or another one. */
	CHECK(xg_xfrm_acquire(x, index, &f, &local) == -EAGAIN && nevents == before + 1);
	f.daddr.a4 = htonl(0x0a020006);
	CHECK(xg_xfrm_acquire(x, index, &f, &local) == -EAGAIN && nevents == before + 1);
	listening = false;
}

static void
test_parse(void)
{
	struct xg_nla tb[XG_ATTR_MAX + 1];
	struct xg_extack ext = { 0 };
	struct msg m;
	struct nlmsghdr *nlh;
	uint32_t v = 5;

	/* Shorter than the fixed header. */
	nlh = msg_start(&m, XFRM_MSG_NEWSA, 0, NULL, 8);
	xg_nl_end(&m.b);
	CHECK(xg_nl_parse(nlh, sizeof(struct xfrm_usersa_info), tb, XG_ATTR_MAX, xg_xfrma_policy,
			  &ext) == -EINVAL);
	/* A u32 attribute with 2 bytes: -ERANGE and the offset of the attribute. */
	nlh = msg_start(&m, XFRM_MSG_FLUSHPOLICY, 0, NULL, 0);
	xg_nl_put(&m.b, XFRMA_IF_ID, &v, 2);
	xg_nl_end(&m.b);
	CHECK(xg_nl_parse(nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &ext) == -ERANGE);
	CHECK(ext.bad_attr_off == NLMSG_HDRLEN);
	/* Duplicates: the last wins; unknown types are ignored. */
	nlh = msg_start(&m, XFRM_MSG_FLUSHPOLICY, 0, NULL, 0);
	xg_nl_put_u32(&m.b, XFRMA_IF_ID, 1);
	xg_nl_put_u32(&m.b, 200, 1);
	xg_nl_put_u32(&m.b, XFRMA_IF_ID, 2);
	xg_nl_end(&m.b);
	CHECK(xg_nl_parse(nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &ext) == 0);
	CHECK(xg_attr_u32(&tb[XFRMA_IF_ID]) == 2);
	/* nla_len past the message end: the walk stops, no error. */
	nlh = msg_start(&m, XFRM_MSG_FLUSHPOLICY, 0, NULL, 0);
	xg_nl_put_u32(&m.b, XFRMA_IF_ID, 1);
	xg_nl_end(&m.b);
	((struct nlattr *)NLMSG_DATA(nlh))->nla_len = 64;
	CHECK(xg_nl_parse(nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &ext) == 0);
	CHECK(tb[XFRMA_IF_ID].data == NULL);
}

/* Every attribute with a length rule: one byte short is -ERANGE at that
 * attribute, the exact minimum parses. */
static void
test_attr_lengths(void)
{
	uint8_t payload[600];
	struct xg_nla tb[XG_ATTR_MAX + 1];
	int type;

	memset(payload, 0x11, sizeof(payload));
	for (type = 1; type <= XG_ATTR_MAX; type++) {
		uint16_t min = xg_xfrma_policy[type].minlen;
		struct xg_extack ext = { 0 };
		struct nlmsghdr *nlh;
		struct msg m;

		if (min == 0)
			continue;
		nlh = msg_start(&m, XFRM_MSG_FLUSHPOLICY, 0, NULL, 0);
		xg_nl_put(&m.b, (uint16_t)type, payload, min - 1u);
		xg_nl_end(&m.b);
		CHECK(xg_nl_parse(nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &ext) == -ERANGE);
		CHECK(ext.bad_attr_off == NLMSG_HDRLEN);
		nlh = msg_start(&m, XFRM_MSG_FLUSHPOLICY, 0, NULL, 0);
		xg_nl_put(&m.b, (uint16_t)type, payload, min);
		xg_nl_end(&m.b);
		CHECK(xg_nl_parse(nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &ext) == 0);
		CHECK(tb[type].data != NULL && tb[type].len == min);
	}
}

/* A datagram whose second message claims more bytes than remain: the first
 * is answered, the second dropped without an answer, like the kernel. */
static void
test_oversized(struct xg_xfrm *x)
{
	uint8_t zero[4] = { 0 };
	uint8_t dgram[128];
	struct msg m;
	size_t len;

	msg_start(&m, XFRM_MSG_GETSPDINFO, 0, zero, 4);
	xg_nl_end(&m.b);
	len = m.b.len;
	memcpy(dgram, m.buf, len);
	memcpy(dgram + len, m.buf, len);
	((struct nlmsghdr *)(dgram + len))->nlmsg_len = 100;
	nout = 0;
	CHECK(xg_xfrm_rcv(x, &peer, dgram, 2 * len) == 1);
	CHECK(nout == 1 && ((struct nlmsghdr *)out[0])->nlmsg_type == XFRM_MSG_NEWSPDINFO);
	/* Truncated header: nothing at all. */
	nout = 0;
	CHECK(xg_xfrm_rcv(x, &peer, dgram, NLMSG_HDRLEN - 1) == 0 && nout == 0);
}

/* Each message type answers -EINVAL when shorter than its fixed part. */
static void
test_min_sizes(struct xg_xfrm *x)
{
	static const struct {
		uint16_t type;
		size_t min;
	} t[] = {
		{ XFRM_MSG_NEWSA, sizeof(struct xfrm_usersa_info) },
		{ XFRM_MSG_UPDSA, sizeof(struct xfrm_usersa_info) },
		{ XFRM_MSG_DELSA, sizeof(struct xfrm_usersa_id) },
		{ XFRM_MSG_GETSA, sizeof(struct xfrm_usersa_id) },
		{ XFRM_MSG_NEWPOLICY, sizeof(struct xfrm_userpolicy_info) },
		{ XFRM_MSG_UPDPOLICY, sizeof(struct xfrm_userpolicy_info) },
		{ XFRM_MSG_DELPOLICY, sizeof(struct xfrm_userpolicy_id) },
		{ XFRM_MSG_GETPOLICY, sizeof(struct xfrm_userpolicy_id) },
		{ XFRM_MSG_FLUSHSA, sizeof(struct xfrm_usersa_flush) },
		{ XFRM_MSG_GETSADINFO, sizeof(uint32_t) },
		{ XFRM_MSG_GETSPDINFO, sizeof(uint32_t) },
	};
	uint8_t zero[256] = { 0 };
	struct msg m;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct nlmsghdr *nlh = msg_start(&m, t[i].type, 0, zero, t[i].min - 1);

		/* Unaligned on purpose: the length, not the padding, counts. */
		nlh->nlmsg_len = NLMSG_LENGTH(t[i].min - 1);
		CHECK(send_raw(x, &m) == -EINVAL);
	}
	/* Unknown type above XFRM_MSG_MAX. */
	msg_start(&m, XFRM_MSG_MAX + 1, 0, zero, 4);
	CHECK(send_msg(x, &m) == -EINVAL);
	/* A control type without ack flag: no answer, like the kernel. */
	msg_start(&m, NLMSG_NOOP, 0, zero, 0);
	CHECK(send_msg(x, &m) == 1);
}

static void
test_sa_lifecycle(struct xg_xfrm *x)
{
	struct xfrm_usersa_id id;
	struct xfrm_usersa_info got;
	struct msg m;
	struct nlmsghdr *r;

	CHECK(add_gcm_sa(x, 0x100) == 0);
	CHECK(add_gcm_sa(x, 0x100) == -EEXIST);
	memset(&id, 0, sizeof(id));
	id.daddr.a4 = htonl(0x0a000002);
	id.spi = htonl(0x100);
	id.family = AF_INET;
	id.proto = IPPROTO_ESP;
	msg_start(&m, XFRM_MSG_GETSA, 0, &id, sizeof(id));
	CHECK(send_msg(x, &m) == 0);
	r = (struct nlmsghdr *)out[0];
	CHECK(r->nlmsg_type == XFRM_MSG_NEWSA && r->nlmsg_pid == peer.portid && r->nlmsg_seq == 7);
	CHECK(!(r->nlmsg_flags & NLM_F_MULTI));
	memcpy(&got, NLMSG_DATA(r), sizeof(got));
	CHECK(got.id.spi == htonl(0x100) && got.sel.family == AF_INET);
	msg_start(&m, XFRM_MSG_DELSA, 0, &id, sizeof(id));
	CHECK(send_msg(x, &m) == 1);   /* success without NLM_F_ACK: silence */
	msg_start(&m, XFRM_MSG_DELSA, 0, &id, sizeof(id));
	CHECK(send_msg(x, &m) == -ESRCH);
	id.proto = 0;
	msg_start(&m, XFRM_MSG_GETSA, 0, &id, sizeof(id));
	CHECK(send_msg(x, &m) == -EINVAL);   /* non-SPI protocol needs XFRMA_SRCADDR */
}

static void
test_sa_refusals(struct xg_xfrm *x)
{
	struct xfrm_usersa_info p = gcm_sa_info(0x200);
	struct msg m;

	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(foo))", 160, 128);
	CHECK(send_msg(x, &m) == -ENOSYS);
	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 136, 128);   /* 13-byte key */
	CHECK(send_msg(x, &m) == -EINVAL);
	/* Key length larger than the attribute holds. */
	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	((struct xfrm_algo_aead *)(m.buf + m.b.len - 20 - sizeof(struct xfrm_algo_aead)))
		->alg_key_len = 4000;
	CHECK(send_msg(x, &m) == -EINVAL);
	p.id.proto = IPPROTO_AH;
	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	CHECK(send_msg(x, &m) == -EINVAL);   /* AH without AUTH */
	p = gcm_sa_info(0x201);
	p.family = 99;
	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	CHECK(send_msg(x, &m) == -EINVAL);
	p = gcm_sa_info(0x202);
	p.sel.family = AF_INET;
	p.sel.prefixlen_d = 33;
	msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
	put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
	CHECK(send_msg(x, &m) == -EINVAL);
	{
		struct xfrm_replay_state_esn esn = { .bmp_len = 129, .replay_window = 32 };

		p = gcm_sa_info(0x203);
		p.flags = XFRM_STATE_ESN;
		msg_start(&m, XFRM_MSG_NEWSA, 0, &p, sizeof(p));
		put_gcm(&m, "rfc4106(gcm(aes))", 160, 128);
		xg_nl_put(&m.b, XFRMA_REPLAY_ESN_VAL, &esn, sizeof(esn));
		CHECK(send_msg(x, &m) == -EINVAL);   /* bmp_len > 128 */
	}
	{
		uint32_t nsa, npol;

		xg_xfrm_counts(x, &nsa, &npol);
		CHECK(nsa == 0);
	}
}

static int
add_policy(struct xg_xfrm *x, uint8_t dir, uint8_t plen, uint32_t index, uint16_t type)
{
	struct xfrm_userpolicy_info p;
	struct msg m;

	memset(&p, 0, sizeof(p));
	p.sel.family = AF_INET;
	p.sel.prefixlen_d = plen;
	p.dir = dir;
	p.index = index;
	p.lft.soft_byte_limit = UINT64_MAX;
	msg_start(&m, type, NLM_F_ACK, &p, sizeof(p));
	return send_msg(x, &m);
}

static uint32_t
policy_index_of_last_event(struct xg_xfrm *x, uint8_t dir, uint8_t plen)
{
	struct xfrm_userpolicy_id id;
	struct xfrm_userpolicy_info got;
	struct msg m;

	memset(&id, 0, sizeof(id));
	id.sel.family = AF_INET;
	id.sel.prefixlen_d = plen;
	id.dir = dir;
	msg_start(&m, XFRM_MSG_GETPOLICY, 0, &id, sizeof(id));
	if (send_msg(x, &m) != 0)
		return 0;
	memcpy(&got, NLMSG_DATA((struct nlmsghdr *)out[0]), sizeof(got));
	return got.index;
}

static void
test_policy_index(struct xg_xfrm *x)
{
	CHECK(add_policy(x, XFRM_POLICY_IN, 1, 0, XFRM_MSG_NEWPOLICY) == 0);
	CHECK(policy_index_of_last_event(x, XFRM_POLICY_IN, 1) == 8);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 2, 0, XFRM_MSG_NEWPOLICY) == 0);
	CHECK(policy_index_of_last_event(x, XFRM_POLICY_OUT, 2) == 9);
	CHECK(add_policy(x, XFRM_POLICY_IN, 3, 0, XFRM_MSG_NEWPOLICY) == 0);
	CHECK(policy_index_of_last_event(x, XFRM_POLICY_IN, 3) == 16);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 2, 0, XFRM_MSG_NEWPOLICY) == -EEXIST);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 2, 0, XFRM_MSG_UPDPOLICY) == 0);
	CHECK(policy_index_of_last_event(x, XFRM_POLICY_OUT, 2) == 9);   /* kept on update */
	CHECK(add_policy(x, XFRM_POLICY_FWD, 4, 0x1001, XFRM_MSG_NEWPOLICY) == -EINVAL);
	CHECK(add_policy(x, XFRM_POLICY_FWD, 4, 0x1002, XFRM_MSG_NEWPOLICY) == 0);
	CHECK(policy_index_of_last_event(x, XFRM_POLICY_FWD, 4) == 0x1002);
	CHECK(add_policy(x, 3, 5, 0, XFRM_MSG_NEWPOLICY) == -EINVAL);   /* socket dir */
}

/* A dump must survive deletions between its reads and never repeat. */
static void
test_dump_resume(struct xg_xfrm *x)
{
	uint8_t buf[XG_MSG_MAX];
	struct xfrm_usersa_info got;
	struct xfrm_usersa_id id;
	struct msg m;
	uint32_t seen = 0;
	int done = 0, parts = 0;
	uint32_t spi;

	for (spi = 0x300; spi < 0x308; spi++)
		CHECK(add_gcm_sa(x, spi) == 0);
	dump = NULL;
	msg_start(&m, XFRM_MSG_GETSA, NLM_F_DUMP, NULL, 0);
	CHECK(send_msg(x, &m) == 1);   /* no ack for a dump */
	CHECK(dump != NULL);
	while (dump && !done) {
		size_t len = xg_xfrm_dump_next(x, dump, buf, sizeof(buf), &done);
		struct nlmsghdr *r = (struct nlmsghdr *)buf;

		CHECK(len > 0);
		if (done) {
			CHECK(r->nlmsg_type == NLMSG_DONE && (r->nlmsg_flags & NLM_F_MULTI));
			break;
		}
		CHECK(r->nlmsg_flags & NLM_F_MULTI);
		memcpy(&got, NLMSG_DATA(r), sizeof(got));
		spi = ntohl(got.id.spi);
		CHECK(!(seen & (1u << (spi - 0x300))));
		seen |= 1u << (spi - 0x300);
		parts++;
		if (parts == 2) {
			/* Delete the SA the walk stands after and the next one. */
			memset(&id, 0, sizeof(id));
			id.daddr.a4 = htonl(0x0a000002);
			id.family = AF_INET;
			id.proto = IPPROTO_ESP;
			id.spi = got.id.spi;
			msg_start(&m, XFRM_MSG_DELSA, 0, &id, sizeof(id));
			CHECK(send_msg(x, &m) == 1);
			id.spi = htonl(spi - 1);
			msg_start(&m, XFRM_MSG_DELSA, 0, &id, sizeof(id));
			CHECK(send_msg(x, &m) == 1);
		}
	}
	CHECK(parts == 7);   /* 8 SAs, one deleted before the walk reached it */
	xg_xfrm_dump_free(x, dump);
	dump = NULL;
}

static void
test_ack_format(void)
{
	struct xg_extack ext = { .msg = "Invalid policy direction" };
	struct nlmsghdr req = { .nlmsg_len = NLMSG_LENGTH(64), .nlmsg_seq = 3 };
	uint8_t buf[512], reqbuf[NLMSG_LENGTH(64)] = { 0 };
	struct nlmsghdr *r = (struct nlmsghdr *)buf;
	size_t len;

	memcpy(reqbuf, &req, sizeof(req));
	len = xg_nl_build_ack(buf, sizeof(buf), (struct nlmsghdr *)reqbuf, -EINVAL, 9, 0, 1, &ext);
	CHECK(len == r->nlmsg_len);
	CHECK(r->nlmsg_type == NLMSG_ERROR && r->nlmsg_pid == 9 && r->nlmsg_seq == 3);
	CHECK(r->nlmsg_flags == NLM_F_ACK_TLVS);   /* request echoed: not capped */
	CHECK(len == NLMSG_LENGTH(sizeof(struct nlmsgerr) + 64) +
			     NLA_ALIGN(NLA_HDRLEN + strlen(ext.msg) + 1));
	len = xg_nl_build_ack(buf, sizeof(buf), (struct nlmsghdr *)reqbuf, 0, 9, 0, 1, &ext);
	CHECK(r->nlmsg_flags == (NLM_F_CAPPED | NLM_F_ACK_TLVS));
	len = xg_nl_build_ack(buf, sizeof(buf), (struct nlmsghdr *)reqbuf, 0, 9, 0, 0, &ext);
	CHECK(len == NLMSG_LENGTH(sizeof(struct nlmsgerr)) && r->nlmsg_flags == NLM_F_CAPPED);
}

/* A second tick while a dump is parked in the SA list and someone
 * listens for AEVENTS: the walker is no SA and must be skipped before any
 * field is read (found by tests/fuzz/fuzz_xfrm). The stray read is past
 * the dump's allocation: ASan builds (-Db_sanitize=address) report it,
 * others read garbage silently. */
static void
test_tick_during_dump(struct xg_xfrm *x)
{
	uint8_t buf[XG_MSG_MAX];
	struct msg m;
	int done = 0, before;

	CHECK(add_gcm_sa(x, 0x7800) == 0);
	CHECK(add_gcm_sa(x, 0x7801) == 0);
	dump = NULL;
	msg_start(&m, XFRM_MSG_GETSA, NLM_F_DUMP, NULL, 0);
	CHECK(send_msg(x, &m) == 1);
	CHECK(dump != NULL);
	CHECK(xg_xfrm_dump_next(x, dump, buf, sizeof(buf), &done) > 0 && !done);
	listening_more = 1u << (XFRMNLGRP_AEVENTS - 1);
	before = nevents;
	xg_xfrm_tick(x, (uint64_t)time(NULL));
	CHECK(nevents == before);      /* no counter moved: no NEWAE */
	listening_more = 0;
	while (!done && xg_xfrm_dump_next(x, dump, buf, sizeof(buf), &done) > 0)
		;
	xg_xfrm_dump_free(x, dump);
	dump = NULL;
}

/* The FLUSHSA event: nlmsg_len 20 for its 1-byte payload, as the
 * kernel's nlmsg_end() sets it (found by tests/fuzz/fuzz_xfrm). */
static void
test_flush_event(struct xg_xfrm *x)
{
	struct xfrm_usersa_flush f = { .proto = 0 };
	const struct nlmsghdr *nlh = (const void *)last_event;
	struct msg m;

	CHECK(add_gcm_sa(x, 0x7700) == 0);
	msg_start(&m, XFRM_MSG_FLUSHSA, NLM_F_ACK, &f, sizeof(f));
	CHECK(send_msg(x, &m) == 0);
	CHECK(nlh->nlmsg_type == XFRM_MSG_FLUSHSA);
	CHECK(last_event_len == NLMSG_SPACE(sizeof(f)) && nlh->nlmsg_len == last_event_len);
}

/* The policy generation moves with policy changes only: the data plane
 * may publish SA changes behind a big SPD without compiling it. */
static void
test_policy_generation(struct xg_xfrm *x)
{
	struct xfrm_usersa_flush f = { .proto = 0 };
	struct xfrm_userpolicy_id id;
	uint64_t g = xg_xfrm_generation(x), pg = xg_xfrm_policy_generation(x);
	struct msg m;

	CHECK(add_gcm_sa(x, 0x7800) == 0);
	CHECK(xg_xfrm_generation(x) != g && xg_xfrm_policy_generation(x) == pg);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 12, 0, XFRM_MSG_NEWPOLICY) == 0);
	CHECK(xg_xfrm_policy_generation(x) == pg + 1);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 12, 0, XFRM_MSG_UPDPOLICY) == 0);
	CHECK(xg_xfrm_policy_generation(x) == pg + 2);
	CHECK(add_policy(x, XFRM_POLICY_OUT, 12, 0, XFRM_MSG_NEWPOLICY) == -EEXIST);
	CHECK(xg_xfrm_policy_generation(x) == pg + 2);   /* refused: no change */
	memset(&id, 0, sizeof(id));
	id.sel.family = AF_INET;
	id.sel.prefixlen_d = 12;
	id.dir = XFRM_POLICY_OUT;
	msg_start(&m, XFRM_MSG_DELPOLICY, NLM_F_ACK, &id, sizeof(id));
	CHECK(send_msg(x, &m) == 0);
	CHECK(xg_xfrm_policy_generation(x) == pg + 3);
	g = xg_xfrm_generation(x);
	msg_start(&m, XFRM_MSG_FLUSHSA, NLM_F_ACK, &f, sizeof(f));
	CHECK(send_msg(x, &m) == 0);
	CHECK(xg_xfrm_generation(x) != g && xg_xfrm_policy_generation(x) == pg + 3);
}

int
main(void)
{
	struct xg_xfrm_ops ops = {
		.unicast = on_unicast, .multicast = on_multicast, .dump_start = on_dump,
		.listening = on_listening,
	};
	struct xg_xfrm *x = xg_xfrm_create(&ops);

	test_parse();
	test_ack_format();
	test_attr_lengths();
	test_min_sizes(x);
	test_oversized(x);
	test_sa_lifecycle(x);
	test_sa_refusals(x);
	test_policy_index(x);
	test_dump_resume(x);
	test_lifetimes(x);
	test_allocspi(x);
	test_acquire(x);
	test_aevents(x);
	test_tick_during_dump(x);
	test_flush_event(x);
	test_policy_generation(x);
	CHECK(nevents > 0);
	CHECK(bad_event_len == 0);
	xg_xfrm_destroy(x);
	return CHECK_REPORT();
}
