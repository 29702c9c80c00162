/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Request dispatch: the kernel's netlink_rcv_skb() loop, xfrm_user_rcv_msg()
 * dispatch table with minimum sizes and attribute policy, acks, and the
 * resumable dumps.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xfrm_priv.h"

#define MSG_INDEX(t) ((t) - XFRM_MSG_BASE)

const struct xg_nla_policy xg_xfrma_policy[XG_ATTR_MAX + 1] = {
	[XFRMA_SA] = { sizeof(struct xfrm_usersa_info) },
	[XFRMA_POLICY] = { sizeof(struct xfrm_userpolicy_info) },
	[XFRMA_LASTUSED] = { sizeof(uint64_t), XG_NLA_U64 },
	[XFRMA_ALG_AUTH_TRUNC] = { sizeof(struct xfrm_algo_auth) },
	[XFRMA_ALG_AEAD] = { sizeof(struct xfrm_algo_aead) },
	[XFRMA_ALG_AUTH] = { sizeof(struct xfrm_algo) },
	[XFRMA_ALG_CRYPT] = { sizeof(struct xfrm_algo) },
	[XFRMA_ALG_COMP] = { sizeof(struct xfrm_algo) },
	[XFRMA_ENCAP] = { sizeof(struct xfrm_encap_tmpl) },
	[XFRMA_TMPL] = { sizeof(struct xfrm_user_tmpl) },
	[XFRMA_SEC_CTX] = { sizeof(struct xfrm_user_sec_ctx) },
	[XFRMA_LTIME_VAL] = { sizeof(struct xfrm_lifetime_cur) },
	[XFRMA_REPLAY_VAL] = { sizeof(struct xfrm_replay_state) },
	[XFRMA_REPLAY_THRESH] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_ETIMER_THRESH] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_SRCADDR] = { sizeof(xfrm_address_t) },
	[XFRMA_COADDR] = { sizeof(xfrm_address_t) },
	[XFRMA_POLICY_TYPE] = { sizeof(struct xfrm_userpolicy_type) },
	[XFRMA_MIGRATE] = { sizeof(struct xfrm_user_migrate) },
	[XFRMA_KMADDRESS] = { sizeof(struct xfrm_user_kmaddress) },
	[XFRMA_MARK] = { sizeof(struct xfrm_mark) },
	[XFRMA_TFCPAD] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_REPLAY_ESN_VAL] = { sizeof(struct xfrm_replay_state_esn) },
	[XFRMA_SA_EXTRA_FLAGS] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_PROTO] = { sizeof(uint8_t), XG_NLA_U8 },
	[XFRMA_ADDRESS_FILTER] = { sizeof(struct xfrm_address_filter) },
	[XFRMA_OFFLOAD_DEV] = { sizeof(struct xfrm_user_offload) },
	[XFRMA_SET_MARK] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_SET_MARK_MASK] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_IF_ID] = { sizeof(uint32_t), XG_NLA_U32 },
	[XFRMA_MTIMER_THRESH] = { sizeof(uint32_t), XG_NLA_U32 },
};

static const struct xg_nla_policy spd_policy[XFRMA_SPD_MAX + 1] = {
	[XFRMA_SPD_IPV4_HTHRESH] = { sizeof(struct xfrmu_spdhthresh) },
	[XFRMA_SPD_IPV6_HTHRESH] = { sizeof(struct xfrmu_spdhthresh) },
};

struct link {
	int (*doit)(struct xg_req *r);
	int (*dump)(struct xg_req *r);
	uint16_t min;               /* xfrm_msg_min: fixed payload size */
	bool spd_attrs;             /* NEWSPDINFO has its own attribute space */
};

static const struct link links[MSG_INDEX(XFRM_MSG_MAX) + 1] = {
	[MSG_INDEX(XFRM_MSG_NEWSA)] = { xg_sa_new, NULL, sizeof(struct xfrm_usersa_info), false },
	[MSG_INDEX(XFRM_MSG_UPDSA)] = { xg_sa_new, NULL, sizeof(struct xfrm_usersa_info), false },
	[MSG_INDEX(XFRM_MSG_DELSA)] = { xg_sa_del, NULL, sizeof(struct xfrm_usersa_id), false },
	[MSG_INDEX(XFRM_MSG_GETSA)] = { xg_sa_get, xg_sa_dump_start,
					sizeof(struct xfrm_usersa_id), false },
	[MSG_INDEX(XFRM_MSG_NEWPOLICY)] = { xg_pol_new, NULL,
					    sizeof(struct xfrm_userpolicy_info), false },
	[MSG_INDEX(XFRM_MSG_UPDPOLICY)] = { xg_pol_new, NULL,
					    sizeof(struct xfrm_userpolicy_info), false },
	[MSG_INDEX(XFRM_MSG_DELPOLICY)] = { xg_pol_get, NULL,
					    sizeof(struct xfrm_userpolicy_id), false },
	[MSG_INDEX(XFRM_MSG_GETPOLICY)] = { xg_pol_get, xg_pol_dump_start,
					    sizeof(struct xfrm_userpolicy_id), false },
	[MSG_INDEX(XFRM_MSG_ALLOCSPI)] = { xg_sa_allocspi, NULL,
					   sizeof(struct xfrm_userspi_info), false },
	[MSG_INDEX(XFRM_MSG_ACQUIRE)] = { xg_acquire_request, NULL,
					  sizeof(struct xfrm_user_acquire), false },
	[MSG_INDEX(XFRM_MSG_EXPIRE)] = { xg_sa_expire, NULL,
					 sizeof(struct xfrm_user_expire), false },
	[MSG_INDEX(XFRM_MSG_POLEXPIRE)] = { xg_pol_expire, NULL,
					    sizeof(struct xfrm_user_polexpire), false },
	[MSG_INDEX(XFRM_MSG_FLUSHSA)] = { xg_sa_flush, NULL, sizeof(struct xfrm_usersa_flush),
					  false },
	[MSG_INDEX(XFRM_MSG_FLUSHPOLICY)] = { xg_pol_flush, NULL, 0, false },
	[MSG_INDEX(XFRM_MSG_NEWAE)] = { xg_ae_new, NULL, sizeof(struct xfrm_aevent_id),
					false },
	[MSG_INDEX(XFRM_MSG_GETAE)] = { xg_ae_get, NULL, sizeof(struct xfrm_aevent_id),
					false },
	[MSG_INDEX(XFRM_MSG_REPORT)] = { NULL, NULL, sizeof(struct xfrm_user_report), false },
	[MSG_INDEX(XFRM_MSG_MIGRATE)] = { xg_migrate, NULL,
					  sizeof(struct xfrm_userpolicy_id), false },
	[MSG_INDEX(XFRM_MSG_NEWSADINFO)] = { NULL, NULL, 0, false },
	[MSG_INDEX(XFRM_MSG_GETSADINFO)] = { xg_sadinfo_get, NULL, sizeof(uint32_t), false },
	[MSG_INDEX(XFRM_MSG_NEWSPDINFO)] = { xg_spdinfo_set, NULL, sizeof(uint32_t), true },
	[MSG_INDEX(XFRM_MSG_GETSPDINFO)] = { xg_spdinfo_get, NULL, sizeof(uint32_t), false },
	[MSG_INDEX(XFRM_MSG_MAPPING)] = { NULL, NULL, sizeof(struct xfrm_user_mapping), false },
	[MSG_INDEX(XFRM_MSG_SETDEFAULT)] = { xg_default_set, NULL,
					     sizeof(struct xfrm_userpolicy_default), false },
	[MSG_INDEX(XFRM_MSG_GETDEFAULT)] = { xg_default_get, NULL,
					     sizeof(struct xfrm_userpolicy_default), false },
};

void
xg_walk_init(struct xg_walk *head)
{
	head->prev = head->next = head;
	head->walker = false;
}

void
xg_walk_add_head(struct xg_walk *head, struct xg_walk *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}

static void
walk_add_before(struct xg_walk *pos, struct xg_walk *n)
{
	xg_walk_add_head(pos->prev, n);
}

void
xg_walk_del(struct xg_walk *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

void
xg_attr_copy(void *dst, size_t len, const struct xg_nla *a)
{
	size_t n = a->len < len ? a->len : len;

	memset(dst, 0, len);
	memcpy(dst, a->data, n);
}

uint32_t
xg_attr_u32(const struct xg_nla *a)
{
	uint32_t v;

	xg_attr_copy(&v, sizeof(v), a);
	return v;
}

void
xg_mark_get(const struct xg_nla *tb, struct xfrm_mark *m)
{
	if (tb[XFRMA_MARK].data)
		xg_attr_copy(m, sizeof(*m), &tb[XFRMA_MARK]);
	else
		m->v = m->m = 0;
}

int
xg_selector_verify(const struct xfrm_selector *sel, uint16_t family, bool allow_unspec,
		   const char *bad_family, struct xg_extack *e)
{
	uint8_t max = family == AF_INET ? 32 : 128;

	if (family == AF_UNSPEC && allow_unspec)
		return 0;
	if (family != AF_INET && family != AF_INET6) {
		e->msg = bad_family;
		return -EINVAL;
	}
	if (sel->prefixlen_d > max || sel->prefixlen_s > max) {
		e->msg = family == AF_INET ?
				 "Invalid prefix length in selector (must be <= 32 for IPv4)" :
				 "Invalid prefix length in selector (must be <= 128 for IPv6)";
		return -EINVAL;
	}
	return 0;
}

int
xg_sec_ctx_verify(const struct xg_nla *tb, struct xg_extack *e)
{
	struct xfrm_user_sec_ctx u;

	if (!tb[XFRMA_SEC_CTX].data)
		return 0;
	xg_attr_copy(&u, sizeof(u), &tb[XFRMA_SEC_CTX]);
	if (u.len > tb[XFRMA_SEC_CTX].len || u.len != sizeof(u) + u.ctx_len) {
		e->msg = "Invalid security context length";
		return -EINVAL;
	}
	return 0;
}

bool
xg_addr_equal(const xfrm_address_t *a, const xfrm_address_t *b, uint16_t family)
{
	if (family == AF_INET6)
		return memcmp(a, b, sizeof(*a)) == 0;
	return a->a4 == b->a4;
}

bool
xg_addr_any(const xfrm_address_t *a, uint16_t family)
{
	static const xfrm_address_t zero;

	return memcmp(a, &zero, family == AF_INET ? 4 : 16) == 0;
}

void
xg_put_mark_if_id(struct xg_nlbuf *b, const struct xfrm_mark *m, uint32_t if_id)
{
	if (m->v || m->m)
		xg_nl_put(b, XFRMA_MARK, m, sizeof(*m));
	if (if_id)
		xg_nl_put_u32(b, XFRMA_IF_ID, if_id);
}

void
xg_reply(struct xg_req *r, const void *msg, size_t len)
{
	r->x->ops.unicast(r->peer->opaque, msg, len);
}

void
xg_notify(struct xg_xfrm *x, uint32_t group, const void *msg, size_t len)
{
	/* Every change of the SAD or SPD is announced, and only changes are:
	 * this is where the data plane learns it has to recompile. */
	x->generation++;
	if (group & (1u << (XFRMNLGRP_POLICY - 1)))
		x->pol_generation++;
	if (x->ops.multicast)
		x->ops.multicast(x->ops.ctx, group, msg, len);
}

struct xg_xfrm *
xg_xfrm_create(const struct xg_xfrm_ops *ops)
{
	struct xg_xfrm *x = calloc(1, sizeof(*x));
	int d;

	if (x == NULL)
		return NULL;
	x->ops = *ops;
	xg_walk_init(&x->sa_all);
	xg_walk_init(&x->pol_all);
	/* Initial sizes of the kernel's hashes, reported by GET*INFO. */
	x->sad_hmask = 7;
	x->pol_idx_hmask = 7;
	for (d = 0; d < XFRM_POLICY_MAX; d++)
		x->pol_hmask[d] = 7;
	x->acq_expires = 30;
	for (d = 0; d < 3; d++)
		x->policy_default[d] = XFRM_USERPOLICY_ACCEPT;
	x->hthresh4.lbits = x->hthresh4.rbits = 32;
	x->hthresh6.lbits = x->hthresh6.rbits = 128;
	return x;
}

void
xg_xfrm_destroy(struct xg_xfrm *x)
{
	struct xg_walk *w, *next;

	if (x == NULL)
		return;
	for (w = x->sa_all.next; w != &x->sa_all; w = next) {
		next = w->next;
		if (!w->walker)
			xg_sa_free(xg_sa_of(w));
	}
	for (w = x->pol_all.next; w != &x->pol_all; w = next) {
		next = w->next;
		if (!w->walker)
			free(xg_pol_of(w));
	}
	free(x->pol_bysel);
	free(x);
}

void
xg_xfrm_set_prelude(struct xg_xfrm *x, void (*fn)(void *arg), void *arg)
{
	x->prelude = fn;
	x->prelude_arg = arg;
}

void
xg_xfrm_counts(const struct xg_xfrm *x, uint32_t *nsa, uint32_t *npol)
{
	*nsa = x->nsa;
	*npol = x->pol_count[0] + x->pol_count[1] + x->pol_count[2];
}

static void
send_ack(struct xg_req *r, int err)
{
	uint8_t buf[XG_MSG_MAX];
	size_t len;

	len = xg_nl_build_ack(buf, sizeof(buf), r->nlh, err, r->peer->portid, r->peer->cap_ack,
			      r->peer->ext_ack, &r->ext);
	if (len)
		xg_reply(r, buf, len);
	/* The echoed request may hold key material. */
	explicit_bzero(buf, len);
}

size_t
xg_xfrm_msg_min(uint16_t type)
{
	if (type < XFRM_MSG_BASE || type > XFRM_MSG_MAX)
		return 0;
	return links[MSG_INDEX(type)].min;
}

/* xfrm_user_rcv_msg(): returns 1 when a dump was started (no ack). */
static int
handle(struct xg_req *r)
{
	uint16_t type = r->nlh->nlmsg_type;
	const struct link *l;
	int err;

	if (type > XFRM_MSG_MAX)
		return -EINVAL;
	l = &links[MSG_INDEX(type)];
	if ((type == XFRM_MSG_GETSA || type == XFRM_MSG_GETPOLICY) &&
	    (r->nlh->nlmsg_flags & NLM_F_DUMP)) {
		err = l->dump(r);
		return err ? err : 1;
	}
	if (l->spd_attrs)
		err = xg_nl_parse(r->nlh, l->min, r->tb, XFRMA_SPD_MAX, spd_policy, &r->ext);
	else
		err = xg_nl_parse(r->nlh, l->min, r->tb, XG_ATTR_MAX, xg_xfrma_policy, &r->ext);
	if (err)
		return err;
	if (l->doit == NULL)
		return -EINVAL;
	return l->doit(r);
}

/* rcv_one()'s storage must hold every fixed header of the table above. */
_Static_assert(sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_usersa_info) &&
	       sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_user_expire) &&
	       sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_user_polexpire) &&
	       sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_userspi_info) &&
	       sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_user_report) &&
	       sizeof(struct xfrm_user_acquire) >= sizeof(struct xfrm_user_mapping),
	       "the largest fixed XFRM header is xfrm_user_acquire");

/* One message: header already known to fit in the datagram. */
static void
rcv_one(struct xg_xfrm *x, const struct xg_xfrm_peer *peer, const struct nlmsghdr *nlh)
{
	/* Aligned storage for the fixed header (the largest is
	 * xfrm_user_acquire): they hold 64-bit fields and the message may
	 * sit at any 4-byte offset. */
	uint64_t fixed[sizeof(struct xfrm_user_acquire) / 8 + 1];
	struct xg_req r = { .x = x, .peer = peer, .nlh = nlh, .data = fixed };
	size_t plen = nlh->nlmsg_len - NLMSG_HDRLEN;
	int err;

	memset(fixed, 0, sizeof(fixed));
	/* Not NLMSG_DATA(): it casts the const away (clang -Wcast-qual). */
	memcpy(fixed, (const uint8_t *)nlh + NLMSG_HDRLEN,
	       plen < sizeof(fixed) ? plen : sizeof(fixed));
	if (!(nlh->nlmsg_flags & NLM_F_REQUEST) || nlh->nlmsg_type < NLMSG_MIN_TYPE)
		err = 0;
	else
		err = handle(&r);
	if (err == 1)
		return;
	if (err || (nlh->nlmsg_flags & NLM_F_ACK))
		send_ack(&r, err);
	explicit_bzero(fixed, sizeof(fixed));
}

/* Requests that neither show an SA's counters nor copy its sequence
 * numbers: they need no report of the workers' counters first. Installing
 * SAs and policies by the thousand must not pull every SA's counters
 * before each datagram. */
static bool
reads_no_counters(uint16_t type)
{
	switch (type) {
	case XFRM_MSG_NEWSA:       /* a new SA, or a larval one replaced */
	case XFRM_MSG_UPDSA:       /* echoes the request, keeps the counters */
	case XFRM_MSG_ALLOCSPI:
	case XFRM_MSG_NEWPOLICY:
	case XFRM_MSG_UPDPOLICY:
	case XFRM_MSG_DELPOLICY:
	case XFRM_MSG_GETPOLICY:
	case XFRM_MSG_FLUSHPOLICY:
	case XFRM_MSG_POLEXPIRE:
	case XFRM_MSG_GETSADINFO:
	case XFRM_MSG_GETSPDINFO:
	case XFRM_MSG_NEWSPDINFO:
	case XFRM_MSG_SETDEFAULT:
	case XFRM_MSG_GETDEFAULT:
		return true;
	}
	return false;
}

/* Does any request of the datagram read SA counters (GETSA, dumps,
 * GETAE, DELSA's event, EXPIRE, MIGRATE, ...)? */
static bool
wants_counters(const uint8_t *p, size_t len)
{
	while (len >= NLMSG_HDRLEN) {
		struct nlmsghdr hdr;
		size_t msglen;

		memcpy(&hdr, p, sizeof(hdr));
		if (hdr.nlmsg_len < NLMSG_HDRLEN || len < hdr.nlmsg_len)
			return false;
		if ((hdr.nlmsg_flags & NLM_F_REQUEST) && hdr.nlmsg_type >= NLMSG_MIN_TYPE &&
		    !reads_no_counters(hdr.nlmsg_type))
			return true;
		msglen = NLMSG_ALIGN(hdr.nlmsg_len);
		if (msglen >= len)
			return false;
		p += msglen;
		len -= msglen;
	}
	return false;
}

int
xg_xfrm_rcv(struct xg_xfrm *x, const struct xg_xfrm_peer *peer, const void *dgram, size_t len)
{
	const uint8_t *p = dgram;
	int n = 0;

	if (x->prelude && wants_counters(p, len))
		x->prelude(x->prelude_arg);
	/* netlink_rcv_skb(): stop silently at a header that lies about its
	 * length; the parser then only ever sees whole messages. The copy
	 * keeps each message 8-byte aligned for the fixed-header casts. */
	while (len >= NLMSG_HDRLEN) {
		struct nlmsghdr hdr;
		size_t msglen;
		uint64_t *copy;

		memcpy(&hdr, p, sizeof(hdr));
		if (hdr.nlmsg_len < NLMSG_HDRLEN || len < hdr.nlmsg_len)
			break;
		copy = malloc(hdr.nlmsg_len);
		if (copy == NULL)
			break;
		memcpy(copy, p, hdr.nlmsg_len);
		rcv_one(x, peer, (const struct nlmsghdr *)copy);
		explicit_bzero(copy, hdr.nlmsg_len);
		free(copy);
		n++;
		msglen = NLMSG_ALIGN(hdr.nlmsg_len);
		if (msglen > len)
			msglen = len;
		p += msglen;
		len -= msglen;
	}
	return n;
}

static struct xg_walk *
dump_head(struct xg_xfrm *x, const struct xg_xfrm_dump *d)
{
	return d->kind == XG_DUMP_SA ? &x->sa_all : &x->pol_all;
}

static size_t
dump_one(struct xg_xfrm_dump *d, struct xg_walk *w, struct xg_nlbuf *b)
{
	if (d->kind == XG_DUMP_SA) {
		if (!xg_sa_dump_match(d, xg_sa_of(w)))
			return 0;
		return xg_sa_fill(xg_sa_of(w), b, XFRM_MSG_NEWSA, NLM_F_MULTI, d->seq, d->portid);
	}
	return xg_pol_fill(xg_pol_of(w), b, XFRM_MSG_NEWPOLICY, NLM_F_MULTI, d->seq, d->portid);
}

size_t
xg_xfrm_dump_next(struct xg_xfrm *x, struct xg_xfrm_dump *d, void *buf, size_t cap, int *done)
{
	struct xg_walk *head = dump_head(x, d);
	struct xg_nlbuf b = { .buf = buf, .cap = cap };
	struct xg_walk *w;

	*done = 0;
	w = d->started ? d->walker.next : head->next;
	if (d->started)
		xg_walk_del(&d->walker);
	for (; w != head; w = w->next) {
		size_t len;

		if (w->walker)
			continue;
		len = dump_one(d, w, &b);
		if (len) {
			/* Park the walker right after the object just sent. */
			d->walker.walker = true;
			walk_add_before(w->next, &d->walker);
			d->started = true;
			return len;
		}
	}
	d->started = false;
	*done = 1;
	return xg_nl_build_done(buf, cap, d->seq, d->portid);
}

void
xg_xfrm_dump_free(struct xg_xfrm *x, struct xg_xfrm_dump *d)
{
	(void)x;
	if (d == NULL)
		return;
	if (d->started)
		xg_walk_del(&d->walker);
	free(d);
}
