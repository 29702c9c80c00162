/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ACQUIRE: an outbound packet hit a policy whose template has no SA. As
 * the kernel's xfrm_state_find() and build_acquire(): one larval state per
 * template and flow stands for the negotiation in progress, and the key
 * manager hears about it once.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xfrm_priv.h"
#include "xg_prefix.h"

/* xfrm_state_addr_check(): the destination exact, the source exact or a
 * wildcard on either side. */
static bool
addr_check(const struct xg_sa *sa, const xfrm_address_t *daddr, const xfrm_address_t *saddr,
	   uint16_t family)
{
	return xg_addr_equal(&sa->id.daddr, daddr, family) &&
	       (xg_addr_equal(&sa->saddr, saddr, family) || xg_addr_any(saddr, family) ||
		xg_addr_any(&sa->saddr, family));
}

static bool
port_match(uint16_t port, uint16_t sel, uint16_t mask)
{
	return ((port ^ sel) & mask) == 0;
}

bool
xg_selector_match(const struct xfrm_selector *sel, const struct xg_flow *f)
{
	return xg_prefix_match(&f->daddr, &sel->daddr, sel->prefixlen_d) &&
	       xg_prefix_match(&f->saddr, &sel->saddr, sel->prefixlen_s) &&
	       port_match(f->dport, sel->dport, sel->dport_mask) &&
	       port_match(f->sport, sel->sport, sel->sport_mask) &&
	       (f->proto == sel->proto || !sel->proto);
}

/* The states xfrm_state_find() looks at for template @p t. */
static int
look_at(struct xg_xfrm *x, const struct xg_policy *pol, const struct xfrm_user_tmpl *t,
	const xfrm_address_t *daddr, const xfrm_address_t *saddr, const struct xg_flow *f)
{
	uint32_t mark = pol->mark.v & pol->mark.m;
	bool found = false, acquiring = false;
	struct xg_walk *w;

	for (w = x->sa_all.next; w != &x->sa_all; w = w->next) {
		const struct xg_sa *sa = xg_sa_of(w);

		if (w->walker || sa->family != t->family || sa->reqid != t->reqid ||
		    (mark & sa->mark.m) != sa->mark.v || sa->if_id != pol->if_id ||
		    (sa->flags & XFRM_STATE_WILDRECV) || !addr_check(sa, daddr, saddr, t->family) ||
		    sa->mode != t->mode || sa->id.proto != t->id.proto ||
		    (t->id.spi && t->id.spi != sa->id.spi))
			continue;
		if (sa->larval)
			acquiring = true;
		else if (!sa->sel.family ||
			 (sa->sel.family == f->family && xg_selector_match(&sa->sel, f)))
			found = true;
	}
	return found ? -EEXIST : acquiring ? -EAGAIN : 0;
}

/* xfrm_init_tempstate(): a selector for this flow only, the template's
 * identity with the packet's addresses where the template has none. */
static struct xg_sa *
tempstate(struct xg_xfrm *x, const struct xg_policy *pol, const struct xfrm_user_tmpl *t,
	  const xfrm_address_t *daddr, const xfrm_address_t *saddr, const struct xg_flow *f)
{
	uint8_t plen = f->family == AF_INET ? 32 : 128;
	struct xg_sa *sa = calloc(1, sizeof(*sa));

	if (sa == NULL)
		return NULL;
	sa->sel.daddr = f->daddr;
	sa->sel.saddr = f->saddr;
	sa->sel.dport = f->dport;
	sa->sel.sport = f->sport;
	sa->sel.dport_mask = sa->sel.sport_mask = 0xffff;
	sa->sel.family = f->family;
	sa->sel.prefixlen_d = sa->sel.prefixlen_s = plen;
	sa->sel.proto = f->proto;
	sa->id = t->id;
	if (xg_addr_any(&sa->id.daddr, t->family))
		sa->id.daddr = *daddr;
	sa->saddr = t->saddr;
	if (xg_addr_any(&sa->saddr, t->family))
		sa->saddr = *saddr;
	if (t->family == AF_INET) {
		memset((uint8_t *)&sa->id.daddr + 4, 0, 12);
		memset((uint8_t *)&sa->saddr + 4, 0, 12);
	}
	sa->mode = t->mode;
	sa->reqid = t->reqid;
	sa->family = t->family;
	sa->mark = pol->mark;
	sa->if_id = pol->if_id;
	sa->larval = true;
	xg_sa_larval_lft(x, sa);
	return sa;
}

/* build_acquire(). */
static size_t
acquire_fill(const struct xg_sa *sa, const struct xg_policy *pol,
	     const struct xfrm_user_tmpl *t, struct xg_nlbuf *b)
{
	struct xfrm_user_acquire ua;
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(b, XFRM_MSG_ACQUIRE, 0, 0, 0, sizeof(ua));
	if (nlh == NULL)
		return 0;
	memset(&ua, 0, sizeof(ua));
	ua.id = sa->id;
	ua.saddr = sa->saddr;
	ua.sel = sa->sel;
	xg_pol_to_user(pol, &ua.policy);
	ua.policy.dir = XFRM_POLICY_OUT;
	ua.aalgos = t->aalgos;
	ua.ealgos = t->ealgos;
	ua.calgos = t->calgos;
	ua.seq = sa->seq;
	memcpy(NLMSG_DATA(nlh), &ua, sizeof(ua));
	xg_pol_put_attrs(pol, b);
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

int
xg_xfrm_acquire(struct xg_xfrm *x, uint32_t index, const struct xg_flow *f,
		const xfrm_address_t *local)
{
	const uint32_t group = 1u << (XFRMNLGRP_ACQUIRE - 1);
	const struct xfrm_user_tmpl *t;
	const xfrm_address_t *daddr, *saddr;
	struct xg_policy *pol = xg_pol_byidx(x, index);
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_sa *sa;
	size_t len;
	int rc;

	if (pol == NULL || pol->dir != XFRM_POLICY_OUT || pol->ntmpl == 0 ||
	    pol->action != XFRM_POLICY_ALLOW)
		return -ESRCH;
	t = &pol->tmpl[0];
	/* xfrm_tmpl_resolve_one(): tunnel endpoints from the template (the
	 * source from the route when it has none), transport the packet's. */
	if (t->mode == XFRM_MODE_TUNNEL) {
		daddr = &t->id.daddr;
		saddr = xg_addr_any(&t->saddr, t->family) ? local : &t->saddr;
	} else {
		daddr = &f->daddr;
		saddr = &f->saddr;
	}
	rc = look_at(x, pol, t, daddr, saddr, f);
	if (rc)
		return rc;
	if (x->ops.listening == NULL || !x->ops.listening(x->ops.ctx, group))
		return -ESRCH;   /* km_is_alive(): no key manager, no larval state */
	sa = tempstate(x, pol, t, daddr, saddr, f);
	if (sa == NULL)
		return -ENOMEM;
	if (++x->acqseq == 0)
		++x->acqseq;
	sa->seq = x->acqseq;
	xg_sa_link(x, sa);
	len = acquire_fill(sa, pol, t, &b);
	if (len && x->ops.multicast)
		x->ops.multicast(x->ops.ctx, group, buf, len);
	return 0;
}

/* xfrm_add_acquire(): a key manager has the "kernel" send ACQUIRE for a
 * policy it describes, once per template, to the other key managers. */
int
xg_acquire_request(struct xg_req *r)
{
	const struct xfrm_user_acquire *ua = r->data;
	const uint32_t group = 1u << (XFRMNLGRP_ACQUIRE - 1);
	struct xg_policy *pol;
	struct xfrm_mark mark;
	struct xg_sa *sa;
	int err, i;

	sa = calloc(1, sizeof(*sa));
	if (sa == NULL)
		return -ENOMEM;
	xg_mark_get(r->tb, &mark);
	pol = xg_pol_build(r, &ua->policy, &err);
	if (pol == NULL) {
		free(sa);
		return err;
	}
	sa->saddr = ua->saddr;
	sa->sel = ua->sel;
	pol->mark = sa->mark = mark;
	for (i = 0; i < pol->ntmpl; i++) {
		struct xfrm_user_tmpl *t = &pol->tmpl[i];
		uint8_t buf[XG_MSG_MAX];
		struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
		size_t len;

		sa->id = t->id;
		t->aalgos = ua->aalgos;
		t->ealgos = ua->ealgos;
		t->calgos = ua->calgos;
		if (++r->x->acqseq == 0)
			++r->x->acqseq;
		sa->seq = r->x->acqseq;
		len = acquire_fill(sa, pol, t, &b);
		if (len && r->x->ops.multicast)
			r->x->ops.multicast(r->x->ops.ctx, group, buf, len);
	}
	free(pol);
	free(sa);
	return 0;
}
