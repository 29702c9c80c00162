/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Anti-replay window against an independent oracle (a plain set of accepted
 * sequence numbers and the kernel's decision rules), for windows 32..4096,
 * with and without ESN, in-order, reordered inside the window, across the
 * 2^32 wrap, with every packet replayed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xg_replay.h"

#include "check.h"

/* The oracle: every accepted number, in a sorted array searched linearly
 * from the end (tests are small enough). */
struct oracle {
	uint64_t *seen;
	size_t n, cap;
	uint64_t top;
	uint32_t window;
};

static bool
oracle_has(const struct oracle *o, uint64_t seq)
{
	size_t i;

	for (i = o->n; i-- > 0;)
		if (o->seen[i] == seq)
			return true;
	return false;
}

static enum xg_replay_verdict
oracle_judge(const struct oracle *o, uint64_t seq)
{
	if (o->window == 0)
		return XG_REPLAY_OK;
	if (seq == 0)
		return XG_REPLAY_ZERO;
	if (seq > o->top)
		return XG_REPLAY_OK;
	if (o->top - seq >= o->window)
		return XG_REPLAY_TOO_OLD;
	return oracle_has(o, seq) ? XG_REPLAY_SEEN : XG_REPLAY_OK;
}

static void
oracle_accept(struct oracle *o, uint64_t seq)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 1024;
		o->seen = realloc(o->seen, o->cap * sizeof(*o->seen));
	}
	o->seen[o->n++] = seq;
	if (seq > o->top)
		o->top = seq;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Receive one packet as the data path does: check, "decrypt", update. The
 * ICV covers the high half of an extended sequence number, so a wrong guess
 * of it fails decryption: that is how ESN drops a number far left of the
 * window (RFC 4303 A.2 reads it as the next subspace, as Linux does). */
static void
receive(struct xg_replay *r, struct oracle *o, uint64_t seq, int *accepted)
{
	enum xg_replay_verdict want = oracle_judge(o, seq), got;
	uint64_t seq64 = 0;
	bool icv_ok;

	got = xg_replay_check(r, (uint32_t)seq, &seq64);
	icv_ok = got == XG_REPLAY_OK && seq64 == seq;
	if (!r->esn || want == XG_REPLAY_OK || got != XG_REPLAY_OK)
		CHECK(got == want || (r->esn && want == XG_REPLAY_TOO_OLD && got != XG_REPLAY_OK));
	CHECK(icv_ok == (want == XG_REPLAY_OK));
	if (!icv_ok)
		return;
	CHECK(xg_replay_update(r, seq64) == XG_REPLAY_OK);
	oracle_accept(o, seq);
	(*accepted)++;
}

/* A stream of @p count packets from @p first, reordered inside the window,
 * each replayed once a little later and all replayed again at the end. */
static void
stream(uint32_t window, bool esn, uint64_t first, int count)
{
	struct xg_replay *r = malloc(sizeof(*r));
	struct oracle o = { .window = window, .top = first - 1 };
	uint64_t *seqs = malloc(sizeof(*seqs) * (size_t)count);
	int i, accepted = 0, replays_accepted;

	xg_replay_init(r, window, esn);
	/* Start as an SA whose window stands just before @p first. */
	r->top = first - 1;
	for (i = 0; i < count; i++)
		seqs[i] = first + (uint64_t)i;
	/* Shuffle inside blocks of half a window: every packet still arrives
	 * inside the window, in any order. */
	for (i = 0; window >= 2 && i < count; i += (int)(window / 2)) {
		int blk = (int)(window / 2), k;

		if (blk > count - i)
			blk = count - i;
		for (k = blk - 1; k > 0; k--) {
			int j = (int)(next_rand() % (uint64_t)(k + 1));
			uint64_t t = seqs[i + k];

			seqs[i + k] = seqs[i + j];
			seqs[i + j] = t;
		}
	}
	for (i = 0; i < count; i++) {
		receive(r, &o, seqs[i], &accepted);
		if (i >= 3)
			receive(r, &o, seqs[i - 3], &accepted);   /* a replay in flight */
	}
	if (accepted != count)
		fprintf(stderr, "window %u esn %d first %#llx: %d of %d accepted\n", window, esn,
			(unsigned long long)first, accepted, count);
	CHECK(accepted == count);   /* no valid packet dropped */
	replays_accepted = 0;
	for (i = 0; i < count; i++)
		receive(r, &o, seqs[i], &replays_accepted);
	CHECK(replays_accepted == 0);   /* every replay dropped */
	free(o.seen);
	free(seqs);
	free(r);
}

static void
test_edges(uint32_t window)
{
	const uint64_t B = 10000;   /* above every window */
	struct xg_replay r;
	uint64_t seq;

	xg_replay_init(&r, window, false);
	CHECK(xg_replay_check(&r, 0, &seq) == XG_REPLAY_ZERO);
	CHECK(xg_replay_check(&r, B, &seq) == XG_REPLAY_OK);
	/* Checked but never verified: the window must not move. */
	CHECK(r.top == 0);
	CHECK(xg_replay_update(&r, B) == XG_REPLAY_OK);
	CHECK(xg_replay_check(&r, B - window, &seq) == XG_REPLAY_TOO_OLD);
	CHECK(xg_replay_check(&r, B - window + 1, &seq) == XG_REPLAY_OK);
	/* Two copies in flight: both pass the check, only one the update. */
	CHECK(xg_replay_check(&r, B - 1, &seq) == XG_REPLAY_OK);
	CHECK(xg_replay_update(&r, B - 1) == XG_REPLAY_OK);
	CHECK(xg_replay_update(&r, B - 1) == XG_REPLAY_SEEN);
	/* A jump far beyond the ring: nothing stale may survive it. */
	CHECK(xg_replay_update(&r, B + 64ull * 300 + 5) == XG_REPLAY_OK);
	for (seq = B + 64ull * 300 + 5 - window + 1; seq < B + 64ull * 300 + 5; seq++) {
		uint64_t s;

		CHECK(xg_replay_check(&r, (uint32_t)seq, &s) == XG_REPLAY_OK);
	}
}

static void
test_window_zero(void)
{
	struct xg_replay r;
	uint64_t seq;

	/* Like the kernel: no check at all, sequence number 0 included. */
	xg_replay_init(&r, 0, false);
	CHECK(xg_replay_update(&r, 5) == XG_REPLAY_OK);
	CHECK(xg_replay_check(&r, 5, &seq) == XG_REPLAY_OK && seq == 5);
	CHECK(xg_replay_check(&r, 0, &seq) == XG_REPLAY_OK);
}

static void
test_esn_zero(void)
{
	struct xg_replay r;
	uint64_t seq;

	xg_replay_init(&r, 64, true);
	CHECK(xg_replay_check(&r, 0, &seq) == XG_REPLAY_ZERO);
	/* After the wrap, a low half of 0 is the legitimate 2^32. */
	r.top = 0xffffffffull;
	CHECK(xg_replay_check(&r, 0, &seq) == XG_REPLAY_OK && seq == 0x100000000ull);
	/* And 0xfffffff0 then is from the previous subspace, inside the window. */
	CHECK(xg_replay_update(&r, 0x100000005ull) == XG_REPLAY_OK);
	CHECK(xg_replay_check(&r, 0xfffffff0u, &seq) == XG_REPLAY_OK && seq == 0xfffffff0ull);
}

/* An SA taken up again (NEWAE) at a known top; what a window exports. */
static void
test_seed_export(void)
{
	struct xg_replay r;
	uint32_t seen[128];
	uint64_t s;

	xg_replay_init(&r, 64, false);
	xg_replay_seed(&r, 100);
	CHECK(xg_replay_check(&r, 100, &s) == XG_REPLAY_SEEN);
	CHECK(xg_replay_check(&r, 37, &s) == XG_REPLAY_SEEN);
	CHECK(xg_replay_check(&r, 36, &s) == XG_REPLAY_TOO_OLD);
	CHECK(xg_replay_check(&r, 101, &s) == XG_REPLAY_OK);
	CHECK(xg_replay_update(&r, 105) == XG_REPLAY_OK);
	CHECK(xg_replay_check(&r, 103, &s) == XG_REPLAY_OK);   /* above the old top: never seen */
	CHECK(xg_replay_check(&r, 100, &s) == XG_REPLAY_SEEN);
	xg_replay_init(&r, 128, true);
	xg_replay_seed(&r, 0x100000040ull);   /* ESN: the high half carries on */
	CHECK(xg_replay_check(&r, 0x41, &s) == XG_REPLAY_OK && s == 0x100000041ull);
	CHECK(xg_replay_check(&r, 0x20, &s) == XG_REPLAY_SEEN && s == 0x100000020ull);

	xg_replay_init(&r, 32, false);
	for (s = 1; s <= 5; s++)
		if (s != 3)
			CHECK(xg_replay_update(&r, s) == XG_REPLAY_OK);
	xg_replay_export(&r, seen);
	CHECK(seen[0] == 0x1b && seen[1] == 0);   /* 5, 4, 2, 1: bits 0, 1, 3, 4 */
}

int
main(void)
{
	static const uint32_t windows[] = { 1, 32, 64, 128, 1024, 4096 };
	size_t i;

	for (i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		stream(windows[i], false, 1, 20000);
		stream(windows[i], true, 1, 20000);
		/* Across the 32-bit wrap. */
		stream(windows[i], true, 0xffffffffull - 9000, 20000);
		if (windows[i] > 1)
			test_edges(windows[i]);
	}
	test_window_zero();
	test_esn_zero();
	test_seed_export();
	return CHECK_REPORT();
}
