/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * MIGRATE: new tunnel endpoints for a policy's templates and the SAs that
 * use them (MOBIKE, RFC 4555), as the kernel's xfrm_do_migrate() and
 * xfrm_migrate(): the SAs are cloned with the new addresses, the old ones
 * deleted, the policy's templates rewritten, and XFRM_MSG_MIGRATE goes to
 * XFRMNLGRP_MIGRATE.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "xfrm_priv.h"

#define IPSEC_ULPROTO_ANY 255

/* xfrm_migrate_check(): new endpoints set, no entry twice. */
static int
migrate_check(const struct xfrm_user_migrate *m, int n)
{
	int i, j;

	for (i = 0; i < n; i++) {
		if (xg_addr_any(&m[i].new_daddr, m[i].new_family) ||
		    xg_addr_any(&m[i].new_saddr, m[i].new_family))
			return -EINVAL;
		for (j = i + 1; j < n; j++)
			if (!memcmp(&m[i].old_daddr, &m[j].old_daddr, sizeof(m[i].old_daddr)) &&
			    !memcmp(&m[i].old_saddr, &m[j].old_saddr, sizeof(m[i].old_saddr)) &&
			    m[i].proto == m[j].proto && m[i].mode == m[j].mode &&
			    m[i].reqid == m[j].reqid && m[i].old_family == m[j].old_family)
				return -EINVAL;
	}
	return 0;
}

/* xfrm_migrate_selector_match(): with protocol "any", addresses and
 * prefix lengths; otherwise the whole selector. */
static bool
selector_match(const struct xfrm_selector *cmp, const struct xfrm_selector *tgt)
{
	if (cmp->proto == IPSEC_ULPROTO_ANY)
		return tgt->family == cmp->family &&
		       xg_addr_equal(&tgt->daddr, &cmp->daddr, cmp->family) &&
		       xg_addr_equal(&tgt->saddr, &cmp->saddr, cmp->family) &&
		       tgt->prefixlen_d == cmp->prefixlen_d && tgt->prefixlen_s == cmp->prefixlen_s;
	return memcmp(tgt, cmp, sizeof(*tgt)) == 0;
}

/* xfrm_migrate_policy_find(): the matching policy that wins (lowest
 * priority value, the older on a tie). */
static struct xg_policy *
policy_find(struct xg_xfrm *x, const struct xfrm_selector *sel, uint8_t dir, uint8_t type,
	    uint32_t if_id)
{
	struct xg_policy *best = NULL;
	struct xg_walk *w;

	for (w = x->pol_all.next; w != &x->pol_all; w = w->next) {
		struct xg_policy *p = xg_pol_of(w);
		struct xfrm_selector tgt;

		if (w->walker || p->dir != dir || p->type != type || (if_id && p->if_id != if_id))
			continue;
		tgt = p->sel;
		tgt.family = p->family;
		if (!selector_match(sel, &tgt))
			continue;
		if (best == NULL || p->priority < best->priority ||
		    (p->priority == best->priority && p->order < best->order))
			best = p;
	}
	return best;
}

/* xfrm_migrate_state_find(). */
static struct xg_sa *
state_find(struct xg_xfrm *x, const struct xfrm_user_migrate *m, uint32_t if_id)
{
	struct xg_walk *w;

	for (w = x->sa_all.next; w != &x->sa_all; w = w->next) {
		struct xg_sa *sa = xg_sa_of(w);

		if (w->walker || sa->mode != m->mode || sa->id.proto != m->proto ||
		    (m->reqid && sa->reqid != m->reqid) || (if_id && sa->if_id != if_id) ||
		    !xg_addr_equal(&sa->id.daddr, &m->old_daddr, m->old_family) ||
		    !xg_addr_equal(&sa->saddr, &m->old_saddr, m->old_family))
			continue;
		return sa;
	}
	return NULL;
}

/* migrate_tmpl_match(). */
static bool
tmpl_match(const struct xfrm_user_migrate *m, const struct xfrm_user_tmpl *t)
{
	if (t->mode != m->mode || t->id.proto != m->proto || (m->reqid && t->reqid != m->reqid))
		return false;
	if (t->mode == XFRM_MODE_TUNNEL || t->mode == XFRM_MODE_BEET)
		return xg_addr_equal(&t->id.daddr, &m->old_daddr, m->old_family) &&
		       xg_addr_equal(&t->saddr, &m->old_saddr, m->old_family);
	return t->mode == XFRM_MODE_TRANSPORT;
}

/* build_migrate(). */
static void
announce(struct xg_xfrm *x, const struct xfrm_userpolicy_id *pi, uint8_t type,
	 const struct xfrm_user_migrate *m, int n, const struct xg_nla *km,
	 const struct xg_nla *encap)
{
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xfrm_userpolicy_type upt;
	struct xfrm_userpolicy_id id;
	struct nlmsghdr *nlh;
	int i;

	nlh = xg_nl_put_hdr(&b, XFRM_MSG_MIGRATE, 0, 0, 0, sizeof(id));
	if (nlh == NULL)
		return;
	memset(&id, 0, sizeof(id));
	id.sel = pi->sel;
	id.dir = pi->dir;
	memcpy(NLMSG_DATA(nlh), &id, sizeof(id));
	if (km->data) {
		struct xfrm_user_kmaddress k;

		xg_attr_copy(&k, sizeof(k), km);
		xg_nl_put(&b, XFRMA_KMADDRESS, &k, sizeof(k));
	}
	if (encap->data) {
		struct xfrm_encap_tmpl e;

		xg_attr_copy(&e, sizeof(e), encap);
		xg_nl_put(&b, XFRMA_ENCAP, &e, sizeof(e));
	}
	memset(&upt, 0, sizeof(upt));
	upt.type = type;
	xg_nl_put(&b, XFRMA_POLICY_TYPE, &upt, sizeof(upt));
	for (i = 0; i < n; i++) {
		struct xfrm_user_migrate um;

		memset(&um, 0, sizeof(um));
		um.proto = m[i].proto;
		um.mode = m[i].mode;
		um.reqid = m[i].reqid;
		um.old_family = m[i].old_family;
		um.old_daddr = m[i].old_daddr;
		um.old_saddr = m[i].old_saddr;
		um.new_family = m[i].new_family;
		um.new_daddr = m[i].new_daddr;
		um.new_saddr = m[i].new_saddr;
		xg_nl_put(&b, XFRMA_MIGRATE, &um, sizeof(um));
	}
	xg_nl_end(&b);
	if (!b.overflow)
		xg_notify(x, 1u << (XFRMNLGRP_MIGRATE - 1), buf, b.len);
}

/* Drop the clones made so far (restore_state). */
static void
drop_all(struct xg_xfrm *x, struct xg_sa **sas, int n)
{
	while (n--)
		xg_sa_unlink_free(x, sas[n]);
}

int
xg_migrate(struct xg_req *r)
{
	const struct xfrm_userpolicy_id *pi = r->data;
	struct xfrm_user_migrate m[XFRM_MAX_DEPTH];
	struct xg_sa *cur[XFRM_MAX_DEPTH], *nu[XFRM_MAX_DEPTH];
	const struct xg_nla *ma = &r->tb[XFRMA_MIGRATE];
	struct xfrm_encap_tmpl encap;
	int i, j, n, ncur = 0, nnew = 0, matched = 0, err;
	struct xg_policy *pol;
	uint32_t if_id = 0;
	uint8_t type;

	if (ma->data == NULL)
		return -EINVAL;
	err = xg_policy_type(r->tb, &type, &r->ext);
	if (err)
		return err;
	n = (int)(ma->len / sizeof(m[0]));
	if (n <= 0 || n > XFRM_MAX_DEPTH)
		return -EINVAL;
	memcpy(m, ma->data, (size_t)n * sizeof(m[0]));
	if (r->tb[XFRMA_ENCAP].data)
		xg_attr_copy(&encap, sizeof(encap), &r->tb[XFRMA_ENCAP]);
	if (r->tb[XFRMA_IF_ID].data)
		if_id = xg_attr_u32(&r->tb[XFRMA_IF_ID]);
	err = migrate_check(m, n);
	if (err)
		return err;
	if (pi->dir >= XFRM_POLICY_MAX)
		return -EINVAL;
	pol = policy_find(r->x, &pi->sel, pi->dir, type, if_id);
	if (pol == NULL)
		return -ENOENT;
	/* The SAs: clones with the new endpoints (xfrm_state_migrate()). */
	for (i = 0; i < n; i++) {
		struct xg_sa *sa = state_find(r->x, &m[i], if_id), *c;

		if (sa == NULL)
			continue;
		cur[ncur++] = sa;
		c = xg_sa_clone(sa);
		if (c == NULL) {
			drop_all(r->x, nu, nnew);
			return -ENODATA;
		}
		c->family = m[i].new_family;
		c->id.daddr = m[i].new_daddr;
		c->saddr = m[i].new_saddr;
		if (r->tb[XFRMA_ENCAP].data) {
			c->has_encap = true;
			c->encap = encap;
		}
		/* A new destination must not collide (xfrm_state_add()). */
		if (!xg_addr_equal(&sa->id.daddr, &m[i].new_daddr, m[i].new_family) &&
		    xg_sa_exists(r->x, c)) {
			xg_sa_free(c);
			drop_all(r->x, nu, nnew);
			return -ENODATA;
		}
		xg_sa_link(r->x, c);
		nu[nnew++] = c;
	}
	/* The policy's templates (xfrm_policy_migrate()). */
	for (i = 0; i < pol->ntmpl; i++)
		for (j = 0; j < n; j++) {
			struct xfrm_user_tmpl *t = &pol->tmpl[i];

			if (!tmpl_match(&m[j], t))
				continue;
			matched++;
			if (t->mode != XFRM_MODE_TUNNEL && t->mode != XFRM_MODE_BEET)
				continue;
			t->id.daddr = m[j].new_daddr;
			t->saddr = m[j].new_saddr;
			t->family = m[j].new_family;
		}
	if (matched == 0) {
		drop_all(r->x, nu, nnew);
		return -ENODATA;
	}
	for (i = 0; i < ncur; i++)
		xg_sa_unlink_free(r->x, cur[i]);
	announce(r->x, pi, type, m, n, &r->tb[XFRMA_KMADDRESS], &r->tb[XFRMA_ENCAP]);
	return 0;
}
