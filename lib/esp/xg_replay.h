/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_REPLAY_H
#define XG_REPLAY_H

/**
 * @file
 * ESP anti-replay window (RFC 4303 §3.4.3 and Appendix A, RFC 6479 buckets).
 *
 * xfrmgw keeps the window itself and gives librte_ipsec a window of 0: the
 * bitmap of DPDK 22.11's librte_ipsec never records bit positions 32-63 of
 * its 64-bit buckets, so it lets replays through.
 *
 * Use: xg_replay_check() before decryption (it also reconstructs the high
 * 32 bits of an extended sequence number, which the ICV covers), then
 * xg_replay_update() only once the ICV verified. update re-checks, so two
 * copies of one packet in flight at once cannot both pass.
 *
 * The decisions are those of the Linux kernel's xfrm_replay_check_*():
 * window 0 disables the check; sequence number 0 is refused (without ESN, and
 * with ESN before the first wrap); a number at or left of top - window + 1 is
 * too old; a number already seen inside the window is a replay.
 *
 * Thread-safety: none. An inbound SA has one owning lcore, which alone calls
 * check and update on its window.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define XG_REPLAY_MAX_WINDOW 4096u
#define XG_REPLAY_BUCKET_BITS 64u
/* One bucket more than the window needs, rounded up to a power of two, so
 * that sliding the window only ever clears whole buckets (RFC 6479). */
#define XG_REPLAY_MAX_BUCKETS 128u

/** Result of a check or an update. */
enum xg_replay_verdict {
	XG_REPLAY_OK = 0,
	XG_REPLAY_ZERO,     /**< sequence number 0: never sent by a conforming peer */
	XG_REPLAY_TOO_OLD,  /**< left of the window (Linux: stats.replay_window) */
	XG_REPLAY_SEEN,     /**< inside the window, already received (stats.replay) */
};

struct xg_replay {
	uint64_t top;          /**< highest sequence number accepted, 64-bit */
	uint32_t window;       /**< W; 0 disables the check */
	uint32_t mask;         /**< number of buckets - 1 */
	bool esn;              /**< extended sequence numbers */
	uint64_t bmp[XG_REPLAY_MAX_BUCKETS];
};

static inline uint32_t
xg_replay_buckets_for(uint32_t window)
{
	uint32_t need = (window + XG_REPLAY_BUCKET_BITS - 1) / XG_REPLAY_BUCKET_BITS + 1, n = 1;

	while (n < need)
		n <<= 1;
	return n;
}

/**
 * Initialise an empty window. @p window above XG_REPLAY_MAX_WINDOW is
 * clamped (the control plane refuses such SAs before this is reached).
 */
static inline void
xg_replay_init(struct xg_replay *r, uint32_t window, bool esn)
{
	memset(r, 0, sizeof(*r));
	r->window = window < XG_REPLAY_MAX_WINDOW ? window : XG_REPLAY_MAX_WINDOW;
	r->mask = xg_replay_buckets_for(r->window) - 1;
	r->esn = esn;
}

/* RFC 4303 Appendix A: the high half of the sequence number the sender
 * most probably used, given the low half on the wire. Returns false for a
 * number from before the SA's first subspace. */
static inline bool
xg_replay_seq64(const struct xg_replay *r, uint32_t seql, uint64_t *seq)
{
	uint32_t tl = (uint32_t)r->top, th = (uint32_t)(r->top >> 32);
	uint32_t bottom = tl - r->window + 1;
	uint32_t sh;

	if (!r->esn) {
		*seq = seql;
		return true;
	}
	if (tl >= r->window - 1)
		sh = seql >= bottom ? th : th + 1;   /* window inside one subspace */
	else if (seql >= bottom) {
		if (th == 0)
			return false;
		sh = th - 1;                         /* window spans two subspaces */
	} else {
		sh = th;
	}
	*seq = (uint64_t)sh << 32 | seql;
	return true;
}

static inline bool
xg_replay_bit(const struct xg_replay *r, uint64_t seq)
{
	uint64_t b = r->bmp[(seq / XG_REPLAY_BUCKET_BITS) & r->mask];

	return (b >> (seq % XG_REPLAY_BUCKET_BITS)) & 1;
}

static inline enum xg_replay_verdict
xg_replay_judge(const struct xg_replay *r, uint64_t seq)
{
	if (seq == 0)
		return XG_REPLAY_ZERO;
	if (seq > r->top)
		return XG_REPLAY_OK;
	if (r->top - seq >= r->window)
		return XG_REPLAY_TOO_OLD;
	return xg_replay_bit(r, seq) ? XG_REPLAY_SEEN : XG_REPLAY_OK;
}

/**
 * Judge a received sequence number before decryption.
 * @param seql  the 32 bits on the wire (host order)
 * @param seq   out: the 64-bit sequence number (high half guessed for ESN)
 */
static inline enum xg_replay_verdict
xg_replay_check(const struct xg_replay *r, uint32_t seql, uint64_t *seq)
{
	if (r->window == 0) {
		*seq = r->esn ? ((r->top >> 32) << 32 | seql) : seql;
		return XG_REPLAY_OK;
	}
	if (!xg_replay_seq64(r, seql, seq))
		return XG_REPLAY_TOO_OLD;
	return xg_replay_judge(r, *seq);
}

/**
 * Record @p seq (from xg_replay_check) once its ICV verified, sliding the
 * window forward if it is the newest.
 * @return XG_REPLAY_OK, or the verdict that refuses it now.
 */
static inline enum xg_replay_verdict
xg_replay_update(struct xg_replay *r, uint64_t seq)
{
	enum xg_replay_verdict v;

	if (r->window == 0) {
		if (seq > r->top)
			r->top = seq;
		return XG_REPLAY_OK;
	}
	v = xg_replay_judge(r, seq);
	if (v != XG_REPLAY_OK)
		return v;
	if (seq > r->top) {
		uint64_t from = r->top / XG_REPLAY_BUCKET_BITS, to = seq / XG_REPLAY_BUCKET_BITS;
		uint64_t n = to - from;

		/* Buckets entered by the jump hold bits from a lap ago: clear
		 * them, but never more than the whole ring. */
		if (n > r->mask + 1u)
			n = r->mask + 1u;
		while (n--)
			r->bmp[(to - n) & r->mask] = 0;
		r->top = seq;
	}
	r->bmp[(seq / XG_REPLAY_BUCKET_BITS) & r->mask] |= 1ull << (seq % XG_REPLAY_BUCKET_BITS);
	return XG_REPLAY_OK;
}

/**
 * Start a window at @p top with every number up to it counted as seen:
 * an SA taken up again (NEWAE) accepts nothing it may have accepted
 * before, at the cost of late packets from below @p top.
 */
static inline void
xg_replay_seed(struct xg_replay *r, uint64_t top)
{
	uint32_t bit = (uint32_t)(top % XG_REPLAY_BUCKET_BITS);

	r->top = top;
	if (r->window == 0 || top == 0)
		return;
	memset(r->bmp, 0xff, sizeof(r->bmp[0]) * (r->mask + 1u));
	r->bmp[(top / XG_REPLAY_BUCKET_BITS) & r->mask] =
		bit == XG_REPLAY_BUCKET_BITS - 1 ? ~0ull : (2ull << bit) - 1;
}

/**
 * What the window holds, newest first: bit i of @p seen (4096 bits) is
 * set when top - i was received. For reports to the control plane; the
 * caller may race with the receiving lcore (a report, not a decision).
 */
static inline void
xg_replay_export(const struct xg_replay *r, uint32_t seen[128])
{
	uint32_t i;

	memset(seen, 0, 128 * sizeof(uint32_t));
	for (i = 0; i < r->window && i < r->top; i++)
		if (xg_replay_bit(r, r->top - i))
			seen[i / 32] |= 1u << (i % 32);
}

#endif /* XG_REPLAY_H */
