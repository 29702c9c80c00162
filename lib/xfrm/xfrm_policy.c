/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPD: NEWPOLICY, UPDPOLICY, DELPOLICY and GETPOLICY (by selector or by
 * index), FLUSHPOLICY, the policy dump and GET/NEWSPDINFO, with the checks,
 * index generation and errno values of Linux 6.1 (xfrm_user.c,
 * xfrm_policy.c).
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xfrm_priv.h"

#define POLICY_HASHMAX (1u << 20)

static unsigned int
idx_hash(uint32_t index)
{
	return (index >> 3) & (XG_POL_HASH_SIZE - 1);
}

static struct xg_policy *
byidx(struct xg_xfrm *x, uint32_t index)
{
	struct xg_policy *p;

	for (p = x->pol_byidx[idx_hash(index)]; p; p = p->inext)
		if (p->index == index)
			return p;
	return NULL;
}

struct xg_policy *
xg_pol_byidx(struct xg_xfrm *x, uint32_t index)
{
	return byidx(x, index);
}

/* xfrm_gen_index(): the low 3 bits carry the direction; a requested index
 * is honoured if free, else the generator continues. */
static uint32_t
gen_index(struct xg_xfrm *x, int dir, uint32_t index)
{
	for (;;) {
		uint32_t idx;

		if (!index) {
			idx = x->idx_generator | (uint32_t)dir;
			x->idx_generator += 8;
		} else {
			idx = index;
			index = 0;
		}
		if (idx == 0)
			idx = 8;
		if (byidx(x, idx) == NULL)
			return idx;
	}
}

static int
verify_dir(uint8_t dir, struct xg_extack *e)
{
	if (dir >= XFRM_POLICY_MAX) {
		e->msg = "Invalid policy direction";
		return -EINVAL;
	}
	return 0;
}

static int
verify_newpolicy(const struct xfrm_userpolicy_info *p, struct xg_extack *e)
{
	if (p->share > XFRM_SHARE_UNIQUE) {
		e->msg = "Invalid policy share";
		return -EINVAL;
	}
	if (p->action != XFRM_POLICY_ALLOW && p->action != XFRM_POLICY_BLOCK) {
		e->msg = "Invalid policy action";
		return -EINVAL;
	}
	if (xg_selector_verify(&p->sel, p->sel.family, false, "Invalid selector family", e))
		return -EINVAL;
	if (verify_dir(p->dir, e))
		return -EINVAL;
	if (p->index && (p->index & 7) != p->dir) {
		e->msg = "Policy index doesn't match direction";
		return -EINVAL;
	}
	return 0;
}

int
xg_policy_type(const struct xg_nla *tb, uint8_t *type, struct xg_extack *e)
{
	struct xfrm_userpolicy_type upt = { .type = XFRM_POLICY_TYPE_MAIN };

	if (tb[XFRMA_POLICY_TYPE].data)
		xg_attr_copy(&upt, sizeof(upt), &tb[XFRMA_POLICY_TYPE]);
	if (upt.type != XFRM_POLICY_TYPE_MAIN && upt.type != XFRM_POLICY_TYPE_SUB) {
		e->msg = "Invalid policy type";
		return -EINVAL;
	}
	*type = upt.type;
	return 0;
}

static bool
tmpl_proto_valid(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_AH:
	case IPPROTO_ESP:
	case IPPROTO_COMP:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
		return true;
	}
	return false;
}

static int
validate_tmpl(struct xfrm_user_tmpl *ut, int nr, uint16_t family, int dir, struct xg_extack *e)
{
	uint16_t prev = family;
	int i;

	if (nr > XFRM_MAX_DEPTH) {
		e->msg = "Template count must be <= XFRM_MAX_DEPTH (6)";
		return -EINVAL;
	}
	for (i = 0; i < nr; i++) {
		/* Old clients leave the template family zero: it is the policy's. */
		if (!ut[i].family)
			ut[i].family = family;
		if (ut[i].mode == XFRM_MODE_TUNNEL || ut[i].mode == XFRM_MODE_BEET) {
			if (ut[i].optional && dir == XFRM_POLICY_OUT) {
				e->msg = "Mode in optional template not allowed in outbound policy";
				return -EINVAL;
			}
		} else if (ut[i].family != prev) {
			e->msg = "Mode in template doesn't support a family change";
			return -EINVAL;
		}
		if (ut[i].mode >= XFRM_MODE_MAX) {
			e->msg = "Mode in template must be < XFRM_MODE_MAX (5)";
			return -EINVAL;
		}
		prev = ut[i].family;
		if (ut[i].family != AF_INET && ut[i].family != AF_INET6) {
			e->msg = "Invalid family in template";
			return -EINVAL;
		}
		if (!tmpl_proto_valid(ut[i].id.proto)) {
			e->msg = "Invalid XFRM protocol in template";
			return -EINVAL;
		}
	}
	return 0;
}

static int
copy_tmpl(struct xg_policy *pol, const struct xg_nla *a, int dir, struct xg_extack *e)
{
	struct xfrm_user_tmpl ut[XFRM_MAX_DEPTH];
	int nr, i, err;

	if (!a->data)
		return 0;
	nr = a->len / (int)sizeof(ut[0]);
	if (nr > XFRM_MAX_DEPTH)
		return validate_tmpl(ut, nr, pol->family, dir, e);
	memcpy(ut, a->data, (size_t)nr * sizeof(ut[0]));
	err = validate_tmpl(ut, nr, pol->family, dir, e);
	if (err)
		return err;
	for (i = 0; i < nr; i++) {
		/* Field by field, so that padding never carries client bytes. */
		struct xfrm_user_tmpl *t = &pol->tmpl[i];

		memset(t, 0, sizeof(*t));
		t->id = ut[i].id;
		t->family = ut[i].family;
		t->saddr = ut[i].saddr;
		t->reqid = ut[i].reqid;
		t->mode = ut[i].mode;
		t->share = ut[i].share;
		t->optional = ut[i].optional;
		t->aalgos = ut[i].aalgos;
		t->ealgos = ut[i].ealgos;
		t->calgos = ut[i].calgos;
	}
	pol->ntmpl = (uint8_t)nr;
	return 0;
}

static struct xg_policy *
construct(const struct xfrm_userpolicy_info *p, const struct xg_nla *tb, struct xg_extack *e,
	  int *errp)
{
	struct xg_policy *pol = calloc(1, sizeof(*pol));
	int err;

	if (pol == NULL) {
		*errp = -ENOMEM;
		return NULL;
	}
	pol->priority = p->priority;
	pol->index = p->index;
	pol->sel = p->sel;
	pol->lft = p->lft;
	pol->action = p->action;
	pol->flags = p->flags;
	pol->family = p->sel.family;
	pol->dir = p->dir;
	err = xg_policy_type(tb, &pol->type, e);
	if (!err)
		err = copy_tmpl(pol, &tb[XFRMA_TMPL], p->dir, e);
	if (err) {
		free(pol);
		*errp = err;
		return NULL;
	}
	xg_mark_get(tb, &pol->mark);
	if (tb[XFRMA_IF_ID].data)
		pol->if_id = xg_attr_u32(&tb[XFRMA_IF_ID]);
	return pol;
}

static uint32_t
sel_hash(uint8_t type, uint8_t dir, const struct xfrm_selector *sel, const struct xfrm_mark *mark,
	 uint32_t if_id)
{
	const uint8_t *k = (const uint8_t *)sel;
	uint32_t h = 2166136261u ^ ((uint32_t)type << 8 | dir);
	size_t i;

	/* FNV-1a over the exact bytes bysel() compares. */
	for (i = 0; i < sizeof(*sel); i++)
		h = (h ^ k[i]) * 16777619u;
	h = (h ^ mark->v) * 16777619u;
	h = (h ^ mark->m) * 16777619u;
	h = (h ^ if_id) * 16777619u;
	return h ^ (h >> 15);
}

static uint32_t
pol_sel_hash(const struct xg_policy *p)
{
	return sel_hash(p->type, p->dir, &p->sel, &p->mark, p->if_id);
}

/* Identity of a policy: type, direction, exact selector, exact mark, if_id
 * (xfrm_policy_insert_list() and __xfrm_policy_bysel_ctx()). At most one
 * policy has a given identity: insert() replaces. */
static struct xg_policy *
bysel(struct xg_xfrm *x, uint8_t type, uint8_t dir, const struct xfrm_selector *sel,
      const struct xfrm_mark *mark, uint32_t if_id)
{
	struct xg_policy *p;

	if (x->pol_bysel == NULL)
		return NULL;
	p = x->pol_bysel[sel_hash(type, dir, sel, mark, if_id) & x->pol_sel_mask];
	for (; p; p = p->snext)
		if (p->dir == dir && p->type == type && p->if_id == if_id &&
		    p->mark.v == mark->v && p->mark.m == mark->m &&
		    memcmp(&p->sel, sel, sizeof(*sel)) == 0)
			return p;
	return NULL;
}

/* Double the identity hash once it holds more policies than buckets.
 * Failing to grow only lengthens the chains; failing to make the first
 * table fails the insert. */
static int
sel_grow(struct xg_xfrm *x)
{
	uint32_t n = x->pol_sel_mask ? (x->pol_sel_mask + 1) * 2 : 256, i;
	struct xg_policy **t, *p, *next;

	if (x->pol_bysel && x->pol_nsel <= x->pol_sel_mask)
		return 0;
	t = calloc(n, sizeof(*t));
	if (t == NULL)
		return x->pol_bysel ? 0 : -ENOMEM;
	for (i = 0; x->pol_bysel && i <= x->pol_sel_mask; i++)
		for (p = x->pol_bysel[i]; p; p = next) {
			next = p->snext;
			p->snext = t[pol_sel_hash(p) & (n - 1)];
			t[pol_sel_hash(p) & (n - 1)] = p;
		}
	free(x->pol_bysel);
	x->pol_bysel = t;
	x->pol_sel_mask = n - 1;
	return 0;
}

/* After a successful sel_grow(). */
static void
sel_add(struct xg_xfrm *x, struct xg_policy *p)
{
	struct xg_policy **b;

	b = &x->pol_bysel[pol_sel_hash(p) & x->pol_sel_mask];
	p->snext = *b;
	*b = p;
	x->pol_nsel++;
}

static void
sel_del(struct xg_xfrm *x, struct xg_policy *p)
{
	struct xg_policy **pp;

	if (x->pol_bysel == NULL)
		return;
	for (pp = &x->pol_bysel[pol_sel_hash(p) & x->pol_sel_mask]; *pp; pp = &(*pp)->snext)
		if (*pp == p) {
			*pp = p->snext;
			x->pol_nsel--;
			return;
		}
}

static void
unlink_policy(struct xg_xfrm *x, struct xg_policy *p)
{
	struct xg_policy **pp = &x->pol_byidx[idx_hash(p->index)];

	while (*pp != p)
		pp = &(*pp)->inext;
	*pp = p->inext;
	sel_del(x, p);
	xg_walk_del(&p->all);
	x->pol_count[p->dir]--;
}

static void
grow_hashes(struct xg_xfrm *x, int dir)
{
	uint32_t total = 0;
	int d;

	if (x->pol_count[dir] <= x->pol_hmask[dir] || x->pol_hmask[dir] + 1 >= POLICY_HASHMAX)
		return;
	for (d = 0; d < XFRM_POLICY_MAX; d++) {
		total += x->pol_count[d];
		if (x->pol_count[d] > x->pol_hmask[d])
			x->pol_hmask[d] = x->pol_hmask[d] * 2 + 1;
	}
	if (total > x->pol_idx_hmask && x->pol_idx_hmask + 1 < POLICY_HASHMAX)
		x->pol_idx_hmask = x->pol_idx_hmask * 2 + 1;
}

static int
insert(struct xg_xfrm *x, struct xg_policy *pol, bool excl)
{
	struct xg_policy *old;
	unsigned int h;

	pol->mark.v &= pol->mark.m;
	if (sel_grow(x))
		return -ENOMEM;
	old = bysel(x, pol->type, pol->dir, &pol->sel, &pol->mark, pol->if_id);
	if (old && excl)
		return -EEXIST;
	/* A replaced policy keeps its index but moves to the head of the
	 * dump list, as the kernel relinks it. */
	if (old) {
		pol->index = old->index;
		unlink_policy(x, old);
		free(old);
	} else {
		pol->index = gen_index(x, pol->dir, pol->index);
	}
	xg_walk_add_head(&x->pol_all, &pol->all);
	sel_add(x, pol);
	h = idx_hash(pol->index);
	pol->inext = x->pol_byidx[h];
	x->pol_byidx[h] = pol;
	x->pol_count[pol->dir]++;
	/* A replacement is placed after its equals, as the kernel's insert. */
	pol->order = ++x->pol_order;
	pol->curlft.add_time = (uint64_t)time(NULL);
	pol->curlft.use_time = 0;
	if (!old)
		grow_hashes(x, pol->dir);
	return 0;
}

void
xg_pol_put_attrs(const struct xg_policy *p, struct xg_nlbuf *b)
{
	struct xfrm_userpolicy_type upt;

	if (p->ntmpl)
		xg_nl_put(b, XFRMA_TMPL, p->tmpl, sizeof(p->tmpl[0]) * p->ntmpl);
	memset(&upt, 0, sizeof(upt));
	upt.type = p->type;
	xg_nl_put(b, XFRMA_POLICY_TYPE, &upt, sizeof(upt));
	xg_put_mark_if_id(b, &p->mark, p->if_id);
}

void
xg_pol_to_user(const struct xg_policy *p, struct xfrm_userpolicy_info *u)
{
	memset(u, 0, sizeof(*u));
	u->sel = p->sel;
	u->lft = p->lft;
	u->curlft = p->curlft;
	u->priority = p->priority;
	u->index = p->index;
	u->sel.family = p->family;
	u->dir = p->dir;
	u->action = p->action;
	u->flags = p->flags;
}

size_t
xg_pol_fill(const struct xg_policy *p, struct xg_nlbuf *b, uint16_t type, uint16_t flags,
	    uint32_t seq, uint32_t pid)
{
	struct xfrm_userpolicy_info u;
	struct nlmsghdr *nlh;

	b->len = 0;
	b->overflow = 0;
	if (type == XFRM_MSG_DELPOLICY) {
		struct xfrm_userpolicy_id id;

		memset(&id, 0, sizeof(id));
		id.sel = p->sel;
		id.index = p->index;
		id.dir = p->dir;
		nlh = xg_nl_put_hdr(b, type, flags, seq, pid, sizeof(id));
		if (nlh == NULL)
			return 0;
		memcpy(NLMSG_DATA(nlh), &id, sizeof(id));
		xg_pol_to_user(p, &u);
		xg_nl_put(b, XFRMA_POLICY, &u, sizeof(u));
	} else {
		nlh = xg_nl_put_hdr(b, type, flags, seq, pid, sizeof(u));
		if (nlh == NULL)
			return 0;
		xg_pol_to_user(p, &u);
		memcpy(NLMSG_DATA(nlh), &u, sizeof(u));
	}
	xg_pol_put_attrs(p, b);
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

static void
notify(struct xg_req *r, const struct xg_policy *p, uint16_t event)
{
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	size_t len = xg_pol_fill(p, &b, event, 0, r->nlh->nlmsg_seq, r->nlh->nlmsg_pid);

	if (len)
		xg_notify(r->x, 1u << (XFRMNLGRP_POLICY - 1), buf, len);
}

struct xg_policy *
xg_pol_build(struct xg_req *r, const struct xfrm_userpolicy_info *p, int *errp)
{
	int err = verify_newpolicy(p, &r->ext);

	if (!err)
		err = xg_sec_ctx_verify(r->tb, &r->ext);
	if (err) {
		*errp = err;
		return NULL;
	}
	return construct(p, r->tb, &r->ext, errp);
}

int
xg_pol_new(struct xg_req *r)
{
	const struct xfrm_userpolicy_info *p = r->data;
	struct xg_policy *pol;
	int err;

	pol = xg_pol_build(r, p, &err);
	if (pol == NULL)
		return err;
	err = insert(r->x, pol, r->nlh->nlmsg_type == XFRM_MSG_NEWPOLICY);
	if (err) {
		free(pol);
		return err;
	}
	notify(r, pol, r->nlh->nlmsg_type);
	return 0;
}

static void send_polexpire(struct xg_xfrm *x, const struct xg_policy *p, bool hard,
			   uint32_t pid);

static struct xg_policy *
lookup_byid(struct xg_xfrm *x, const struct xfrm_mark *m, uint32_t if_id, uint8_t type,
	    uint8_t dir, uint32_t index)
{
	struct xg_policy *p;

	if ((index & 7) != dir)
		return NULL;
	p = byidx(x, index);
	if (p && p->type == type && p->if_id == if_id && p->mark.v == m->v && p->mark.m == m->m)
		return p;
	return NULL;
}

/* xfrm_get_policy()'s lookup: by index, else by selector (and security
 * context, of which only the length is checked). */
static int
find_policy(struct xg_req *r, const struct xfrm_selector *sel, uint32_t index, uint8_t dir,
	    struct xg_policy **pol)
{
	struct xfrm_mark m;
	uint32_t if_id = 0;
	uint8_t type;
	int err;

	err = xg_policy_type(r->tb, &type, &r->ext);
	if (!err)
		err = verify_dir(dir, &r->ext);
	if (err)
		return err;
	if (r->tb[XFRMA_IF_ID].data)
		if_id = xg_attr_u32(&r->tb[XFRMA_IF_ID]);
	xg_mark_get(r->tb, &m);
	if (index) {
		*pol = lookup_byid(r->x, &m, if_id, type, dir, index);
	} else {
		err = xg_sec_ctx_verify(r->tb, &r->ext);
		if (err)
			return err;
		*pol = bysel(r->x, type, dir, sel, &m, if_id);
	}
	return *pol ? 0 : -ENOENT;
}

int
xg_pol_get(struct xg_req *r)
{
	const struct xfrm_userpolicy_id *p = r->data;
	struct xg_policy *pol;
	int err;

	err = find_policy(r, &p->sel, p->index, p->dir, &pol);
	if (err)
		return err;
	if (r->nlh->nlmsg_type == XFRM_MSG_GETPOLICY) {
		uint8_t buf[XG_MSG_MAX];
		struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
		size_t len = xg_pol_fill(pol, &b, XFRM_MSG_NEWPOLICY, 0, r->nlh->nlmsg_seq,
					 r->peer->portid);

		if (len == 0)
			return -EMSGSIZE;
		xg_reply(r, buf, len);
		return 0;
	}
	unlink_policy(r->x, pol);
	notify(r, pol, XFRM_MSG_DELPOLICY);
	free(pol);
	return 0;
}

/* xfrm_add_pol_expire(): the key manager expires a policy itself; a hard
 * expiry deletes it (no DELPOLICY event), and POLEXPIRE carries its pid. */
int
xg_pol_expire(struct xg_req *r)
{
	const struct xfrm_user_polexpire *up = r->data;
	struct xg_policy *pol;
	int err;

	err = find_policy(r, &up->pol.sel, up->pol.index, up->pol.dir, &pol);
	if (err)
		return err;
	if (up->hard)
		unlink_policy(r->x, pol);
	send_polexpire(r->x, pol, up->hard, r->nlh->nlmsg_pid);
	if (up->hard)
		free(pol);
	return 0;
}

int
xg_pol_flush(struct xg_req *r)
{
	struct xg_walk *w, *next;
	uint8_t type;
	int cnt = 0, err;

	err = xg_policy_type(r->tb, &type, &r->ext);
	if (err)
		return err;
	for (w = r->x->pol_all.next; w != &r->x->pol_all; w = next) {
		next = w->next;
		if (w->walker || xg_pol_of(w)->type != type)
			continue;
		unlink_policy(r->x, xg_pol_of(w));
		free(xg_pol_of(w));
		cnt++;
	}
	if (cnt) {
		uint8_t buf[64];
		struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
		struct xfrm_userpolicy_type upt;

		xg_nl_put_hdr(&b, XFRM_MSG_FLUSHPOLICY, 0, r->nlh->nlmsg_seq, r->nlh->nlmsg_pid, 0);
		memset(&upt, 0, sizeof(upt));
		upt.type = type;
		xg_nl_put(&b, XFRMA_POLICY_TYPE, &upt, sizeof(upt));
		xg_nl_end(&b);
		xg_notify(r->x, 1u << (XFRMNLGRP_POLICY - 1), buf, b.len);
	}
	return 0;
}

int
xg_pol_dump_start(struct xg_req *r)
{
	struct xg_xfrm_dump *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return -ENOMEM;
	d->kind = XG_DUMP_POLICY;
	d->seq = r->nlh->nlmsg_seq;
	d->portid = r->peer->portid;
	r->x->ops.dump_start(r->peer->opaque, d);
	return 0;
}

int
xg_spdinfo_get(struct xg_req *r)
{
	uint8_t buf[128];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_xfrm *x = r->x;
	struct xfrmu_spdinfo spc = {
		.incnt = x->pol_count[XFRM_POLICY_IN],
		.outcnt = x->pol_count[XFRM_POLICY_OUT],
		.fwdcnt = x->pol_count[XFRM_POLICY_FWD],
	};
	struct xfrmu_spdhinfo sph = { .spdhcnt = x->pol_idx_hmask, .spdhmcnt = POLICY_HASHMAX };
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(&b, XFRM_MSG_NEWSPDINFO, 0, r->nlh->nlmsg_seq, r->peer->portid,
			    sizeof(uint32_t));
	memcpy(NLMSG_DATA(nlh), r->data, sizeof(uint32_t));
	xg_nl_put(&b, XFRMA_SPD_INFO, &spc, sizeof(spc));
	xg_nl_put(&b, XFRMA_SPD_HINFO, &sph, sizeof(sph));
	xg_nl_put(&b, XFRMA_SPD_IPV4_HTHRESH, &x->hthresh4, sizeof(x->hthresh4));
	xg_nl_put(&b, XFRMA_SPD_IPV6_HTHRESH, &x->hthresh6, sizeof(x->hthresh6));
	xg_nl_end(&b);
	xg_reply(r, buf, b.len);
	return 0;
}

/* NEWSPDINFO: charon sends it when its configured thresholds differ. The
 * thresholds only tune the kernel's hashing; they are stored and echoed. */
int
xg_spdinfo_set(struct xg_req *r)
{
	struct xfrmu_spdhthresh t4 = r->x->hthresh4, t6 = r->x->hthresh6;
	const struct xg_nla *a4 = &r->tb[XFRMA_SPD_IPV4_HTHRESH];
	const struct xg_nla *a6 = &r->tb[XFRMA_SPD_IPV6_HTHRESH];

	if (a4->data) {
		xg_attr_copy(&t4, sizeof(t4), a4);
		if (t4.lbits > 32 || t4.rbits > 32)
			return -EINVAL;
	}
	if (a6->data) {
		xg_attr_copy(&t6, sizeof(t6), a6);
		if (t6.lbits > 128 || t6.rbits > 128)
			return -EINVAL;
	}
	r->x->hthresh4 = t4;
	r->x->hthresh6 = t6;
	return 0;
}

static bool
default_valid(uint8_t action)
{
	return action == XFRM_USERPOLICY_BLOCK || action == XFRM_USERPOLICY_ACCEPT;
}

static size_t
default_fill(const struct xg_xfrm *x, uint8_t *buf, size_t cap, uint32_t seq, uint32_t pid)
{
	struct xg_nlbuf b = { .buf = buf, .cap = cap };
	struct xfrm_userpolicy_default up;
	struct nlmsghdr *nlh;

	memset(&up, 0, sizeof(up));
	up.in = x->policy_default[XFRM_POLICY_IN];
	up.fwd = x->policy_default[XFRM_POLICY_FWD];
	up.out = x->policy_default[XFRM_POLICY_OUT];
	nlh = xg_nl_put_hdr(&b, XFRM_MSG_GETDEFAULT, 0, seq, pid, sizeof(up));
	memcpy(NLMSG_DATA(nlh), &up, sizeof(up));
	xg_nl_end(&b);
	return b.len;
}

/* xfrm_set_default(): each valid action is taken, the others ignored;
 * the new defaults go to XFRMNLGRP_POLICY as a GETDEFAULT message. */
int
xg_default_set(struct xg_req *r)
{
	const struct xfrm_userpolicy_default *up = r->data;
	uint8_t buf[64];
	size_t len;

	if (default_valid(up->in))
		r->x->policy_default[XFRM_POLICY_IN] = up->in;
	if (default_valid(up->fwd))
		r->x->policy_default[XFRM_POLICY_FWD] = up->fwd;
	if (default_valid(up->out))
		r->x->policy_default[XFRM_POLICY_OUT] = up->out;
	len = default_fill(r->x, buf, sizeof(buf), 0, 0);
	xg_notify(r->x, 1u << (XFRMNLGRP_POLICY - 1), buf, len);
	return 0;
}

int
xg_default_get(struct xg_req *r)
{
	uint8_t buf[64];
	size_t len = default_fill(r->x, buf, sizeof(buf), r->nlh->nlmsg_seq, r->peer->portid);

	xg_reply(r, buf, len);
	return 0;
}

bool
xg_xfrm_default_block(const struct xg_xfrm *x, uint8_t dir)
{
	return dir < 3 && x->policy_default[dir] == XFRM_USERPOLICY_BLOCK;
}

#define KM_TIMEOUT 30   /* XFRM_KM_TIMEOUT: a soft expiry is repeated this often */

/* build_polexpire(): the policy, its templates and type, mark, if_id. */
static void
send_polexpire(struct xg_xfrm *x, const struct xg_policy *p, bool hard, uint32_t pid)
{
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xfrm_user_polexpire upe;
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(&b, XFRM_MSG_POLEXPIRE, 0, 0, pid, sizeof(upe));
	if (nlh == NULL)
		return;
	memset(&upe, 0, sizeof(upe));
	xg_pol_to_user(p, &upe.pol);
	upe.hard = hard;
	memcpy(NLMSG_DATA(nlh), &upe, sizeof(upe));
	xg_pol_put_attrs(p, &b);
	xg_nl_end(&b);
	if (b.overflow)
		return;
	if (hard)
		xg_notify(x, 1u << (XFRMNLGRP_EXPIRE - 1), buf, b.len);
	else if (x->ops.multicast)
		x->ops.multicast(x->ops.ctx, 1u << (XFRMNLGRP_EXPIRE - 1), buf, b.len);
}

static bool
past(uint64_t start, uint32_t limit, uint64_t now)
{
	return limit && now >= start + limit;
}

/* xfrm_policy_timer(): past a hard add/use time a policy is deleted with a
 * hard POLEXPIRE (no DELPOLICY event); past a soft one a soft POLEXPIRE
 * goes out, again every XFRM_KM_TIMEOUT seconds. An unused policy's use
 * time counts from its add time. */
unsigned int
xg_pol_tick(struct xg_xfrm *x, uint64_t now)
{
	struct xg_walk *w, *next;
	unsigned int n = 0;

	for (w = x->pol_all.prev; w != &x->pol_all; w = next) {
		struct xg_policy *p = xg_pol_of(w);
		uint64_t used;

		next = w->prev;
		if (w->walker)
			continue;
		used = p->curlft.use_time ? p->curlft.use_time : p->curlft.add_time;
		if (past(p->curlft.add_time, (uint32_t)p->lft.hard_add_expires_seconds, now) ||
		    past(used, (uint32_t)p->lft.hard_use_expires_seconds, now)) {
			unlink_policy(x, p);
			send_polexpire(x, p, true, 0);
			free(p);
			n++;
			continue;
		}
		if ((past(p->curlft.add_time, (uint32_t)p->lft.soft_add_expires_seconds, now) ||
		     past(used, (uint32_t)p->lft.soft_use_expires_seconds, now)) &&
		    (p->soft_warned == 0 || now >= p->soft_warned + KM_TIMEOUT)) {
			p->soft_warned = now;
			send_polexpire(x, p, false, 0);
		}
	}
	return n;
}

void
xg_xfrm_policy_used(struct xg_xfrm *x, uint32_t index, uint64_t when)
{
	struct xg_policy *p = byidx(x, index);

	if (p && when > p->curlft.use_time)
		p->curlft.use_time = when;
}
