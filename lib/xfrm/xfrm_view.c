/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Read-only views of the model for the data-plane compiler.
 */

#include <string.h>

#include "xfrm_priv.h"

uint64_t
xg_xfrm_generation(const struct xg_xfrm *x)
{
	return x->generation;
}

uint64_t
xg_xfrm_policy_generation(const struct xg_xfrm *x)
{
	return x->pol_generation;
}

static void
sa_view(const struct xg_sa *sa, struct xg_sa_view *v)
{
	v->id = &sa->id;
	v->saddr = &sa->saddr;
	v->sel = &sa->sel;
	v->family = sa->family;
	v->mode = sa->mode;
	v->flags = sa->flags;
	v->reqid = sa->reqid;
	v->replay_window = sa->replay_esn ? sa->replay_esn->replay_window : sa->replay_window;
	v->oseq = sa->replay_esn ? ((uint64_t)sa->replay_esn->oseq_hi << 32 | sa->replay_esn->oseq) :
				   sa->replay.oseq;
	v->iseq = sa->replay_esn ? ((uint64_t)sa->replay_esn->seq_hi << 32 | sa->replay_esn->seq) :
				   sa->replay.seq;
	v->add_time = sa->curlft.add_time;
	v->bytes_left = sa->lft.hard_byte_limit == XFRM_INF ? XFRM_INF :
			sa->lft.hard_byte_limit > sa->curlft.bytes ?
					 sa->lft.hard_byte_limit - sa->curlft.bytes : 0;
	v->packets_left = sa->lft.hard_packet_limit == XFRM_INF ? XFRM_INF :
			  sa->lft.hard_packet_limit > sa->curlft.packets ?
					   sa->lft.hard_packet_limit - sa->curlft.packets : 0;
	v->aead = sa->aead;
	v->aalg = sa->aalg;
	v->ealg = sa->ealg;
	v->encap = sa->has_encap ? &sa->encap : NULL;
	v->mark_v = sa->mark.v;
	v->mark_m = sa->mark.m;
	v->if_id = sa->if_id;
	v->uid = sa->uid;
	v->packets = sa->curlft.packets;
	v->bytes = sa->curlft.bytes;
	v->use_time = sa->curlft.use_time;
	v->replay = sa->stats.replay;
	v->integrity_failed = sa->stats.integrity_failed;
	v->drops = sa->dp_drops;
	v->workers = sa->dp_workers;
}

static void
pol_view(const struct xg_policy *p, struct xg_pol_view *v)
{
	v->sel = &p->sel;
	v->dir = p->dir;
	v->action = p->action;
	v->type = p->type;
	v->priority = p->priority;
	v->index = p->index;
	v->order = p->order;
	v->ntmpl = p->ntmpl;
	v->tmpl = p->tmpl;
	v->mark_v = p->mark.v;
	v->mark_m = p->mark.m;
	v->if_id = p->if_id;
	v->add_time = p->curlft.add_time;
	v->use_time = p->curlft.use_time;
}

void
xg_xfrm_foreach(const struct xg_xfrm *x, void (*fn)(void *arg, const struct xg_sa_view *v),
		void (*pfn)(void *arg, const struct xg_pol_view *v), void *arg)
{
	const struct xg_walk *w;

	for (w = x->sa_all.next; fn && w != &x->sa_all; w = w->next) {
		struct xg_sa_view v;

		/* Larval states (ALLOCSPI) have no keys: nothing to run. */
		if (w->walker || ((const struct xg_sa *)w)->larval)
			continue;
		sa_view((const struct xg_sa *)w, &v);
		fn(arg, &v);
	}
	for (w = x->pol_all.next; pfn && w != &x->pol_all; w = w->next) {
		struct xg_pol_view v;

		if (w->walker)
			continue;
		pol_view((const struct xg_policy *)w, &v);
		pfn(arg, &v);
	}
}

static bool
seen(const struct xg_sa_use *u, uint32_t i)
{
	return i < 4096 && (u->seen[i / 32] >> (i % 32)) & 1;
}

/* The receiver's state in the kernel's layout: legacy, bit i of the
 * bitmap is seq - i; ESN, sequence number s is bit (s - 1) mod window of
 * bmp (xfrm_replay_advance_esn()). */
static void
set_iseq(struct xg_sa *sa, const struct xg_sa_use *u)
{
	struct xfrm_replay_state_esn *e = sa->replay_esn;
	uint32_t i, w;

	if (e == NULL) {
		sa->replay.seq = (uint32_t)u->iseq;
		sa->replay.bitmap = u->seen[0];
		return;
	}
	e->seq = (uint32_t)u->iseq;
	e->seq_hi = (uint32_t)(u->iseq >> 32);
	w = e->replay_window;
	memset(e->bmp, 0, e->bmp_len * sizeof(uint32_t));
	for (i = 0; w && i < w && i < u->iseq; i++)
		if (seen(u, i)) {
			uint32_t bit = ((uint32_t)(u->iseq - i) - 1) % w;

			e->bmp[bit / 32] |= 1u << (bit % 32);
		}
}

void
xg_xfrm_report_use(struct xg_xfrm *x,
		   void (*fn)(void *arg, uint64_t uid, struct xg_sa_use *use), void *arg)
{
	struct xg_walk *w;

	for (w = x->sa_all.next; w != &x->sa_all; w = w->next) {
		struct xg_sa *sa = (struct xg_sa *)w;
		struct xg_sa_use u = { 0 };

		if (w->walker)
			continue;
		fn(arg, sa->uid, &u);
		sa->curlft.bytes += u.bytes;
		sa->curlft.packets += u.packets;
		sa->stats.replay += u.replay;
		sa->stats.integrity_failed += u.integrity_failed;
		for (unsigned int k = 0; k < XG_SA_NDROPS; k++)
			sa->dp_drops[k] += u.drops[k];
		sa->dp_workers |= u.workers;
		if (u.use_time) {
			if (sa->curlft.use_time == 0)
				sa->curlft.use_time = u.use_time;
			sa->lastused = u.use_time;
		}
		/* The sender's counter, so that GETSA shows it and a rebuilt
		 * SA never sends a number (and GCM nonce) twice. */
		if (u.iseq)
			set_iseq(sa, &u);
		if (u.oseq && sa->replay_esn) {
			sa->replay_esn->oseq = (uint32_t)u.oseq;
			sa->replay_esn->oseq_hi = (uint32_t)(u.oseq >> 32);
		} else if (u.oseq) {
			sa->replay.oseq = (uint32_t)u.oseq;
		}
	}
}
