/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the XFRM netlink parser, validators and handlers of
 * lib/xfrm, through xg_xfrm_rcv() and the dump API, on a fresh model per
 * input.
 *
 * The input is a list of records, not raw datagrams: a byte-level fuzzer
 * would spend its time failing length checks. Each record names a message
 * type, flags, the fixed part and attributes; the harness writes
 * consistent netlink lengths unless a record asks it to lie. SPIs, reqids,
 * policy indexes and addresses are folded into small ranges (unless a
 * record asks for raw values) so that later messages find what earlier ones
 * made: updates, deletes, dumps with deletes between their steps, NEWAE on
 * a live ESN SA. Every datagram and every reply sits in an exact-size
 * malloc() buffer, so ASan sees a read or write one byte past it.
 *
 * Record layout (missing bytes read as zero):
 *   u8 op      low 5 bits: type - XFRM_MSG_BASE (values past XFRM_MSG_MAX:
 *              a tick, a data-plane report, an acquire or a mapping call)
 *   u8 flags   F_* below
 *   u8 fixlen  with F_RAWLEN: the fixed part's length; else the type's own
 *   u8 nattr
 *   with F_HIGH: u8 high byte of nlmsg_flags (NLM_F_DUMP is 0x03, REPLACE 0x01)
 *   fixed part, then per attribute: u8 atype, u8 len (bit 7 of atype: a
 *              second length byte, the high one, follows), len bytes, and
 *              with bit 6 of atype an s8 added to nla_len; atype & 63 is the
 *              attribute type
 *   with F_LIE: s8 delta added to nlmsg_len after everything is written
 */

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/xfrm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "xg_xfrm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	F_NOREQ = 1 << 0,    /* without NLM_F_REQUEST */
	F_ACK = 1 << 1,
	F_HIGH = 1 << 2,     /* a u8 of high flags (DUMP, REPLACE, EXCL...) follows */
	F_LIE = 1 << 3,      /* nlmsg_len off by a signed delta */
	F_BATCH = 1 << 4,    /* the next record goes into the same datagram */
	F_RAW = 1 << 5,      /* no folding of SPIs, addresses, indexes */
	F_RAWLEN = 1 << 6,   /* fixed part of fixlen bytes, not the type's size */
	F_STEP = 1 << 7,     /* step the open dumps once after this datagram */
};

#define MAX_DUMPS 4
#define DGRAM_MAX 16384
#define DUMP_BUF 4096

struct state {
	struct xg_xfrm *x;
	struct xg_xfrm_dump *dumps[MAX_DUMPS];
	unsigned int ndumps;
	bool listening;
	unsigned long replies;
};

/* Bytes [from, to) of @p p must be zero: padding that leaves the daemon
 * must not carry stale memory (key material was there before). */
static void
zeroed(const uint8_t *p, size_t from, size_t to, uint16_t type, const char *what)
{
	size_t i;

	for (i = from; i < to; i++)
		if (p[i]) {
			fprintf(stderr, "fuzz_xfrm: message type %u: %s padding byte %zu is %#x\n",
				type, what, i, p[i]);
			abort();
		}
}

/* The tail padding of the fixed parts xfrmgw sends most (the kernel
 * zeroes the struct before filling it in) and of every attribute (the
 * bytes between nla_len and its 4-byte alignment). Selectors and SA ids
 * are not checked: the kernel echoes their padding as the client sent it. */
static void
check_padding(const uint8_t *msg, size_t len, uint16_t type)
{
	const uint8_t *p = msg + NLMSG_HDRLEN;
	size_t plen = len - NLMSG_HDRLEN, fixed = 0, off;

	if (type == XFRM_MSG_NEWSA || type == XFRM_MSG_UPDSA) {
		fixed = sizeof(struct xfrm_usersa_info);
		if (plen < fixed)
			abort();
		zeroed(p, offsetof(struct xfrm_usersa_info, flags) + 1, fixed, type, "usersa_info");
	} else if (type == XFRM_MSG_NEWPOLICY || type == XFRM_MSG_UPDPOLICY) {
		fixed = sizeof(struct xfrm_userpolicy_info);
		if (plen < fixed)
			abort();
		zeroed(p, offsetof(struct xfrm_userpolicy_info, share) + 1, fixed, type,
		       "userpolicy_info");
	} else {
		return;
	}
	for (off = NLMSG_ALIGN(fixed); off + NLA_HDRLEN <= plen;) {
		struct nlattr a;
		size_t end;

		memcpy(&a, p + off, sizeof(a));
		if (a.nla_len < NLA_HDRLEN || off + a.nla_len > plen) {
			fprintf(stderr, "fuzz_xfrm: message type %u: bad nla_len at %zu\n", type,
				off);
			abort();
		}
		end = off + NLA_ALIGN(a.nla_len);
		zeroed(p, off + a.nla_len, end < plen ? end : plen, type, "attribute");
		off = end;
	}
}

static void
check_msgs(const void *msg, size_t len)
{
	struct nlmsghdr h;

	/* Every message handed out is exactly one netlink message whose
	 * length is what was written: a longer nlmsg_len would make the
	 * client read past it, a shorter one hides uninitialised bytes. */
	if (len < NLMSG_HDRLEN || len > 65535)
		abort();
	memcpy(&h, msg, sizeof(h));
	if (h.nlmsg_len != len) {
		fprintf(stderr, "fuzz_xfrm: message type %u: nlmsg_len %u, %zu bytes handed out\n",
			h.nlmsg_type, h.nlmsg_len, len);
		abort();
	}
	check_padding(msg, len, h.nlmsg_type);
}

/* Sequence numbers of the ALLOCSPI requests of this input. */
static uint8_t allocspi_seq[8192];

static bool
is_allocspi(uint32_t seq)
{
	return seq / 8 < sizeof(allocspi_seq) && (allocspi_seq[seq / 8] >> (seq % 8) & 1);
}

/* ALLOCSPI never hands out SPI 0 (CVE-2025-39965's shape). */
static void
check_allocspi(const uint8_t *msg, size_t len)
{
	struct nlmsghdr h;
	struct xfrm_usersa_info u;

	memcpy(&h, msg, sizeof(h));
	if (h.nlmsg_type != XFRM_MSG_NEWSA || !is_allocspi(h.nlmsg_seq) ||
	    len < NLMSG_HDRLEN + sizeof(u))
		return;
	memcpy(&u, msg + NLMSG_HDRLEN, sizeof(u));
	if (u.id.spi == 0) {
		fprintf(stderr, "fuzz_xfrm: ALLOCSPI answered SPI 0\n");
		abort();
	}
}

static void
on_unicast(void *opaque, const void *msg, size_t len)
{
	struct state *s = opaque;
	/* Copy into an exact-size buffer: the reader sees no more than len. */
	void *copy = malloc(len);

	check_msgs(msg, len);
	check_allocspi(msg, len);
	memcpy(copy, msg, len);
	free(copy);
	s->replies++;
}

static void
on_multicast(void *ctx, uint32_t group, const void *msg, size_t len)
{
	(void)ctx;
	(void)group;
	check_msgs(msg, len);
}

static void
on_dump_start(void *opaque, struct xg_xfrm_dump *d)
{
	struct state *s = opaque;

	if (s->ndumps == MAX_DUMPS) {
		/* A client that went away mid-dump: abort it at once. */
		xg_xfrm_dump_free(s->x, d);
		return;
	}
	s->dumps[s->ndumps++] = d;
}

static uint32_t
on_acq_expires(void *ctx)
{
	(void)ctx;
	return 5;
}

static bool
on_listening(void *ctx, uint32_t group)
{
	struct state *s = ctx;

	(void)group;
	return s->listening;
}

/* One step of dump @p i into an exact-size buffer; false when it ended. */
static bool
dump_step(struct state *s, unsigned int i, size_t cap)
{
	uint8_t *buf = malloc(cap);
	int done = 0;
	size_t len;

	len = xg_xfrm_dump_next(s->x, s->dumps[i], buf, cap, &done);
	if (len > cap)
		abort();
	if (len)
		check_msgs(buf, len);
	free(buf);
	if (len && !done)
		return true;
	xg_xfrm_dump_free(s->x, s->dumps[i]);
	s->dumps[i] = s->dumps[--s->ndumps];
	return false;
}

/* Fold a value into a handful so that messages refer to each other. */
static void
fold_addr(xfrm_address_t *a, uint16_t family)
{
	uint8_t k = (uint8_t)(ntohl(a->a6[3]) & 3);

	memset(a, 0, sizeof(*a));
	if (family == AF_INET6) {
		a->a6[0] = htonl(0x20010db8u);
		a->a6[3] = htonl(k);
	} else {
		a->a4 = htonl(0xc0000200u + k);
	}
}

static uint16_t
fold_family(uint16_t f)
{
	static const uint16_t fam[4] = { AF_INET, AF_INET6, AF_INET, AF_UNSPEC };

	return fam[f & 3];
}

static void
fold_sel(struct xfrm_selector *sel)
{
	sel->family = fold_family(sel->family);
	fold_addr(&sel->daddr, sel->family);
	fold_addr(&sel->saddr, sel->family);
	/* Keep the occasional out-of-range prefix: that is a check too. */
	sel->prefixlen_d %= 160;
	sel->prefixlen_s %= 160;
}

static void
fold_id(struct xfrm_id *id, uint16_t family)
{
	fold_addr(&id->daddr, family);
	id->spi = htonl(0x100u + (ntohl(id->spi) & 3));
	if (id->proto & 0x80)
		id->proto = (uint8_t)(id->proto & 0x7f);
	else
		id->proto = IPPROTO_ESP;
}

static void
fold_sa(struct xfrm_usersa_info *u)
{
	u->family = fold_family(u->family);
	fold_sel(&u->sel);
	fold_id(&u->id, u->family);
	fold_addr(&u->saddr, u->family);
	u->reqid &= 3;
	u->mode %= 5;
	u->replay_window &= 0x3f;
}

static void
fold_pol(struct xfrm_userpolicy_info *p)
{
	fold_sel(&p->sel);
	/* Index: a few, with any direction in its low 3 bits. */
	p->index &= 0x1f;
	p->dir &= 3;
}

static void
fold_fixed(uint16_t type, void *f, size_t len)
{
	switch (type) {
	case XFRM_MSG_NEWSA:
	case XFRM_MSG_UPDSA:
		if (len >= sizeof(struct xfrm_usersa_info))
			fold_sa(f);
		break;
	case XFRM_MSG_DELSA:
	case XFRM_MSG_GETSA:
		if (len >= sizeof(struct xfrm_usersa_id)) {
			struct xfrm_usersa_id *u = f;

			u->family = fold_family(u->family);
			fold_addr(&u->daddr, u->family);
			u->spi = htonl(0x100u + (ntohl(u->spi) & 3));
			u->proto = IPPROTO_ESP;
		}
		break;
	case XFRM_MSG_NEWPOLICY:
	case XFRM_MSG_UPDPOLICY:
		if (len >= sizeof(struct xfrm_userpolicy_info))
			fold_pol(f);
		break;
	case XFRM_MSG_DELPOLICY:
	case XFRM_MSG_GETPOLICY:
	case XFRM_MSG_MIGRATE:
		if (len >= sizeof(struct xfrm_userpolicy_id)) {
			struct xfrm_userpolicy_id *u = f;

			fold_sel(&u->sel);
			u->index &= 0x1f;
			u->dir &= 3;
		}
		break;
	case XFRM_MSG_ALLOCSPI:
		if (len >= sizeof(struct xfrm_userspi_info)) {
			struct xfrm_userspi_info *u = f;

			fold_sa(&u->info);
			/* Ranges around the SPIs in use, 0 included. */
			u->min &= 0x103;
			u->max &= 0x107;
		}
		break;
	case XFRM_MSG_NEWAE:
	case XFRM_MSG_GETAE:
		if (len >= sizeof(struct xfrm_aevent_id)) {
			struct xfrm_aevent_id *u = f;

			u->sa_id.family = fold_family(u->sa_id.family);
			fold_addr(&u->sa_id.daddr, u->sa_id.family);
			fold_addr(&u->saddr, u->sa_id.family);
			u->sa_id.spi = htonl(0x100u + (ntohl(u->sa_id.spi) & 3));
			u->sa_id.proto = IPPROTO_ESP;
			u->reqid &= 3;
		}
		break;
	case XFRM_MSG_EXPIRE:
		if (len >= sizeof(struct xfrm_user_expire))
			fold_sa(&((struct xfrm_user_expire *)f)->state);
		break;
	case XFRM_MSG_POLEXPIRE:
		if (len >= sizeof(struct xfrm_user_polexpire))
			fold_pol(&((struct xfrm_user_polexpire *)f)->pol);
		break;
	case XFRM_MSG_ACQUIRE:
		if (len >= sizeof(struct xfrm_user_acquire)) {
			struct xfrm_user_acquire *u = f;

			fold_sel(&u->sel);
			fold_id(&u->id, u->sel.family);
			fold_addr(&u->saddr, u->sel.family);
			fold_pol(&u->policy);
		}
		break;
	}
}

/* Append one message of @p type to @p dg (its end at *off). */
static void
put_msg(struct in *in, uint16_t type, uint8_t flags, uint8_t *dg, size_t *off, uint32_t seq)
{
	uint8_t fixlen = take8(in), nattr = take8(in), i;
	uint8_t high = (flags & F_HIGH) ? take8(in) : 0;
	size_t flen = (flags & F_RAWLEN) ? fixlen : xg_xfrm_msg_min(type);
	size_t start = *off, end;
	struct nlmsghdr h = { 0 };
	/* Aligned, for fold_fixed()'s casts. */
	uint64_t fixed[64];

	if (start + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(fixed)) > DGRAM_MAX)
		return;
	take(in, fixed, flen);
	if (!(flags & F_RAW))
		fold_fixed(type, fixed, flen);
	memcpy(dg + start + NLMSG_HDRLEN, fixed, flen);
	end = start + NLMSG_HDRLEN + NLMSG_ALIGN(flen);
	for (i = 0; i < nattr && in->n; i++) {
		uint8_t atype = take8(in);
		size_t alen = take8(in);
		struct nlattr a;

		if (atype & 0x80)
			alen |= (size_t)take8(in) << 8;
		if (end + NLA_HDRLEN + NLA_ALIGN(alen) > DGRAM_MAX)
			break;
		a.nla_type = atype & 63;
		a.nla_len = (uint16_t)(NLA_HDRLEN + alen);
		take(in, dg + end + NLA_HDRLEN, alen);
		if (atype & 0x40)
			a.nla_len = (uint16_t)(a.nla_len + (int8_t)take8(in));
		memcpy(dg + end, &a, sizeof(a));
		end += NLA_HDRLEN + NLA_ALIGN(alen);
	}
	h.nlmsg_len = (uint32_t)(end - start);
	if (flags & F_LIE)
		h.nlmsg_len = (uint32_t)((int32_t)h.nlmsg_len + (int8_t)take8(in));
	h.nlmsg_type = type;
	if (type == XFRM_MSG_ALLOCSPI && seq / 8 < sizeof(allocspi_seq))
		allocspi_seq[seq / 8] |= (uint8_t)(1u << (seq % 8));
	h.nlmsg_flags = (uint16_t)((flags & F_NOREQ ? 0 : NLM_F_REQUEST) |
				   (flags & F_ACK ? NLM_F_ACK : 0) |
				   high << 8);
	h.nlmsg_seq = seq;
	h.nlmsg_pid = 0;
	memcpy(dg + start, &h, sizeof(h));
	*off = end;
}

static void
report_fn(void *arg, uint64_t uid, struct xg_sa_use *use)
{
	struct in *in = arg;

	use->packets = uid & 1 ? take8(in) : 0;
	use->bytes = use->packets * 1400u;
	use->oseq = (uint64_t)take8(in) << (take8(in) & 63);
	use->iseq = use->oseq;
	use->seen[0] = 0xffu;
	use->replay = take8(in) & 1;
}

/* The calls the data plane makes on the model, between requests. */
static void
dp_call(struct state *s, uint8_t op, struct in *in, uint64_t *now)
{
	struct xg_flow f = { 0 };
	xfrm_address_t a;

	switch (op & 3) {
	case 0:
		*now += take8(in);
		xg_xfrm_tick(s->x, *now);
		break;
	case 1:
		xg_xfrm_report_use(s->x, report_fn, in);
		break;
	case 2:
		f.family = fold_family(take8(in));
		f.proto = take8(in);
		take(in, &f.saddr, sizeof(f.saddr));
		take(in, &f.daddr, sizeof(f.daddr));
		fold_addr(&f.saddr, f.family);
		fold_addr(&f.daddr, f.family);
		take(in, &a, sizeof(a));
		fold_addr(&a, f.family);
		xg_xfrm_acquire(s->x, take8(in) & 0x1f, &f, &a);
		break;
	case 3:
		take(in, &a, sizeof(a));
		fold_addr(&a, a.a6[0] & 1 ? AF_INET6 : AF_INET);
		xg_xfrm_mapping(s->x, take8(in) & 7, &a, htons(take8(in)), *now);
		break;
	}
}

static void
send_dgram(struct state *s, const struct xg_xfrm_peer *peer, const uint8_t *dg, size_t len)
{
	/* Exact size: a read past the datagram is an ASan report. */
	uint8_t *copy = malloc(len ? len : 1);

	memcpy(copy, dg, len);
	xg_xfrm_rcv(s->x, peer, copy, len);
	free(copy);
}

static void
dump_all(struct state *s, const struct xg_xfrm_peer *peer, uint8_t *dg, uint32_t seq)
{
	static const uint16_t types[2] = { XFRM_MSG_GETSA, XFRM_MSG_GETPOLICY };
	struct nlmsghdr h = { 0 };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		h.nlmsg_len = NLMSG_HDRLEN;
		h.nlmsg_type = types[i];
		h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		h.nlmsg_seq = seq;
		memcpy(dg, &h, sizeof(h));
		send_dgram(s, peer, dg, NLMSG_HDRLEN);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct xg_xfrm_ops tmpl = {
		.unicast = on_unicast,
		.multicast = on_multicast,
		.dump_start = on_dump_start,
		.acq_expires = on_acq_expires,
		.listening = on_listening,
	};
	struct xg_xfrm_ops ops = tmpl;
	struct in in = { data, size };
	struct state s = { 0 };
	struct xg_xfrm_peer peer = { .portid = 4242, .opaque = &s };
	uint8_t *dg = malloc(DGRAM_MAX);
	size_t off = 0;
	uint64_t now = 1000;
	uint32_t seq = 1;
	uint8_t mode = take8(&in);
	unsigned int i;

	memset(allocspi_seq, 0, sizeof(allocspi_seq));
	ops.ctx = &s;
	peer.ext_ack = mode & 1;
	peer.cap_ack = (mode >> 1) & 1;
	s.listening = (mode >> 2) & 1;
	s.x = xg_xfrm_create(&ops);
	if (s.x == NULL)
		abort();
	while (in.n) {
		uint8_t op = take8(&in), flags = take8(&in);
		uint16_t type = (uint16_t)(XFRM_MSG_BASE + (op & 0x1f));

		if (type > XFRM_MSG_MAX) {
			dp_call(&s, op, &in, &now);
			continue;
		}
		put_msg(&in, type, flags, dg, &off, seq++);
		if ((flags & F_BATCH) && in.n && off < DGRAM_MAX / 2)
			continue;
		send_dgram(&s, &peer, dg, off);
		off = 0;
		if (flags & F_STEP)
			for (i = 0; i < s.ndumps; i++)
				if (!dump_step(&s, i, (op & 0x20) ? 64 + (op & 0xc0) : DUMP_BUF))
					i--;
	}
	if (off)
		send_dgram(&s, &peer, dg, off);
	/* Finish the dumps still open, then dump whatever is left: every SA
	 * and policy the input made is filled into a message once. */
	while (s.ndumps)
		while (dump_step(&s, 0, DUMP_BUF))
			;
	dump_all(&s, &peer, dg, seq);
	while (s.ndumps)
		while (dump_step(&s, 0, DUMP_BUF))
			;
	xg_xfrm_destroy(s.x);
	free(dg);
	return 0;
}
