/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The rte_acl SPD against a brute-force oracle written from the kernel's
 * rules (xfrm_selector_match + lowest priority, then oldest), on random
 * policy sets and packets for both families and all directions, plus the
 * key extraction on hand-made headers.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>

#include "xg_spd.h"

#include "check.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static bool
prefix_match(const uint8_t *a, const uint8_t *b, uint8_t plen)
{
	uint8_t full = plen / 8, rem = plen % 8;

	if (memcmp(a, b, full))
		return false;
	return !rem || ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

/* The kernel's decision, by brute force. */
static uint32_t
oracle(const struct xg_spd_rule *r, size_t n, uint8_t family, int dir, uint8_t proto,
       const uint8_t *sa, const uint8_t *da, uint16_t sport, uint16_t dport)
{
	const struct xg_spd_rule *best = NULL;
	size_t i;

	for (i = 0; i < n; i++) {
		if (r[i].family != family || r[i].dir != dir)
			continue;
		if (!prefix_match(sa, r[i].saddr, r[i].splen) || !prefix_match(da, r[i].daddr, r[i].dplen))
			continue;
		if (r[i].proto && r[i].proto != proto)
			continue;
		if (((sport ^ r[i].sport) & r[i].sport_mask) || ((dport ^ r[i].dport) & r[i].dport_mask))
			continue;
		if (best == NULL || r[i].priority < best->priority ||
		    (r[i].priority == best->priority && r[i].order < best->order))
			best = &r[i];
	}
	return best ? best->id : XG_SPD_NO_MATCH;
}

/* Addresses from a small space so that prefixes overlap and collide. */
static void
rand_addr(uint8_t family, uint8_t *a)
{
	memset(a, 0, 16);
	a[0] = 10;
	a[1] = (uint8_t)rnd(2);
	a[2] = (uint8_t)rnd(4);
	a[family == AF_INET ? 3 : 15] = (uint8_t)rnd(4);
	if (family == AF_INET6)
		a[0] = 0x20, a[7] = (uint8_t)rnd(3);
}

static uint16_t
rand_port_mask(void)
{
	static const uint16_t masks[] = { 0, 0xffff, 0xff00, 0x00f0 };

	return htons(masks[rnd(4)]);
}

static void
random_rules(struct xg_spd_rule *r, size_t n)
{
	static const uint8_t protos[] = { 0, 0, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP };
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t family = rnd(2) ? AF_INET : AF_INET6, max = family == AF_INET ? 32 : 128;

		memset(&r[i], 0, sizeof(r[i]));
		r[i].family = family;
		r[i].dir = (uint8_t)rnd(XG_SPD_NDIR);
		r[i].proto = protos[rnd(5)];
		rand_addr(family, r[i].saddr);
		rand_addr(family, r[i].daddr);
		r[i].splen = (uint8_t)rnd(max + 1u);
		r[i].dplen = (uint8_t)rnd(max + 1u);
		r[i].sport = htons((uint16_t)rnd(4));
		r[i].dport = htons((uint16_t)(500 + rnd(3)));
		r[i].sport_mask = rand_port_mask();
		r[i].dport_mask = rand_port_mask();
		r[i].priority = rnd(4);            /* many ties on purpose */
		r[i].order = n - i;                /* not the array order */
		r[i].id = (uint32_t)i * 7 + 3;
	}
}

static void
compare(const struct xg_spd *spd, const struct xg_spd_rule *r, size_t nr)
{
	enum { N = 64 };
	struct xg_spd_key4 k4[N];
	struct xg_spd_key6 k6[N];
	const void *keys[N];
	uint32_t ids[N];
	int round, i, dir, fam;

	for (round = 0; round < 40; round++) {
		for (fam = 0; fam < 2; fam++) {
			uint8_t family = fam ? AF_INET6 : AF_INET;

			for (i = 0; i < N; i++) {
				uint8_t sa[16], da[16];
				uint8_t proto = (uint8_t)(rnd(2) ? IPPROTO_TCP :
						  (rnd(2) ? IPPROTO_UDP : IPPROTO_ICMP));
				uint16_t sp = htons((uint16_t)rnd(4)), dp = htons((uint16_t)(500 + rnd(3)));

				rand_addr(family, sa);
				rand_addr(family, da);
				if (fam) {
					memset(&k6[i], 0, sizeof(k6[i]));
					k6[i].proto = proto;
					memcpy(k6[i].saddr, sa, 16);
					memcpy(k6[i].daddr, da, 16);
					k6[i].sport = sp;
					k6[i].dport = dp;
					keys[i] = &k6[i];
				} else {
					memset(&k4[i], 0, sizeof(k4[i]));
					k4[i].proto = proto;
					memcpy(&k4[i].saddr, sa, 4);
					memcpy(&k4[i].daddr, da, 4);
					k4[i].sport = sp;
					k4[i].dport = dp;
					keys[i] = &k4[i];
				}
			}
			for (dir = 0; dir < XG_SPD_NDIR; dir++) {
				xg_spd_classify(spd, family, dir, keys, ids, N);
				for (i = 0; i < N; i++) {
					const uint8_t *sa = fam ? k6[i].saddr : (const uint8_t *)&k4[i].saddr;
					const uint8_t *da = fam ? k6[i].daddr : (const uint8_t *)&k4[i].daddr;
					uint8_t pr = fam ? k6[i].proto : k4[i].proto;
					uint16_t sp = fam ? k6[i].sport : k4[i].sport;
					uint16_t dp = fam ? k6[i].dport : k4[i].dport;

					CHECK(ids[i] == oracle(r, nr, family, dir, pr, sa, da, sp, dp));
				}
			}
		}
	}
}

static void
test_random(size_t n)
{
	struct xg_spd_rule *r = calloc(n ? n : 1, sizeof(*r));
	struct xg_spd *spd;
	char name[32];
	int err = 0;

	random_rules(r, n);
	snprintf(name, sizeof(name), "t%zu", n);
	spd = xg_spd_build(name, r, n, &err);
	CHECK(spd != NULL && err == 0);
	if (spd) {
		compare(spd, r, n);
		xg_spd_free(spd);
	}
	free(r);
}

static void
test_keys(void)
{
	/* IPv4 with 4 bytes of options, TCP 1234 -> 443. */
	uint8_t v4[64] = { 0x46, 0, 0, 48, 0, 0, 0, 0, 64, IPPROTO_TCP, 0, 0, 10, 0, 0, 1, 10, 0, 1,
			   2, 1, 1, 1, 1, 0x04, 0xd2, 0x01, 0xbb };
	uint8_t v6[96] = { 0x60, 0, 0, 0, 0, 24, IPPROTO_DSTOPTS, 64 };
	struct xg_spd_key4 k4;
	struct xg_spd_key6 k6;

	CHECK(xg_spd_key_v4(v4, sizeof(v4), &k4));
	CHECK(k4.proto == IPPROTO_TCP && k4.sport == htons(1234) && k4.dport == htons(443));
	v4[9] = IPPROTO_ICMP;
	v4[24] = 8;   /* echo request, code 0 */
	v4[25] = 0;
	CHECK(xg_spd_key_v4(v4, sizeof(v4), &k4) && k4.sport == htons(8) && k4.dport == 0);
	v4[6] = 0x00, v4[7] = 0x10;   /* a later fragment: no ports */
	CHECK(xg_spd_key_v4(v4, sizeof(v4), &k4) && k4.sport == 0 && k4.dport == 0);
	v4[3] = 200;   /* total length beyond the buffer */
	CHECK(!xg_spd_key_v4(v4, sizeof(v4), &k4));
	CHECK(!xg_spd_key_v4(v4, 19, &k4));
	/* IPv6: destination options (8 bytes) then UDP 53 -> 5353. */
	v6[40] = IPPROTO_UDP;
	v6[48] = 0, v6[49] = 53, v6[50] = 0x14, v6[51] = 0xe9;
	CHECK(xg_spd_key_v6(v6, sizeof(v6), &k6));
	CHECK(k6.proto == IPPROTO_UDP && k6.sport == htons(53) && k6.dport == htons(5353));
	v6[5] = 4;   /* payload too short for the extension header */
	CHECK(!xg_spd_key_v6(v6, sizeof(v6), &k6));
	/* ESP: the SPI's halves in the port fields, as the kernel's flow union. */
	v4[3] = 48, v4[6] = 0, v4[7] = 0, v4[9] = IPPROTO_ESP;
	v4[24] = 0x12, v4[25] = 0x34, v4[26] = 0x56, v4[27] = 0x78;
	CHECK(xg_spd_key_v4(v4, sizeof(v4), &k4) && k4.dport == htons(0x1234) &&
	      k4.sport == htons(0x5678));
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 0, 1, 7, 60, 300 };
	char *eal[] = { argv[0], "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0",
			"--log-level", "*:error" };
	size_t i;

	(void)argc;
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) {
		fprintf(stderr, "EAL init failed\n");
		return 1;
	}
	test_keys();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		test_random(sizes[i]);
	rte_eal_cleanup();
	return CHECK_REPORT();
}
