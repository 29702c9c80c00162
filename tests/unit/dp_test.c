/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The snapshot builder's SPD reuse: a build that only SAs changed for keeps
 * the compiled SPD, and XG_DP_SAME_SPD refuses (-EAGAIN, nothing built,
 * the previous snapshot untouched) where the SPD would have to be compiled
 * anew. The control thread relies on it to publish a rekey's SA before its
 * ACK behind a big SPD.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>

#include "xg_crypto.h"
#include "xg_dp.h"
#include "xg_nl.h"
#include "xg_xfrm.h"

#include "check.h"

static int last_error;

static void
on_unicast(void *opaque, const void *msg, size_t len)
{
	struct nlmsgerr e;

	(void)opaque;
	if (len >= NLMSG_HDRLEN + sizeof(e)) {
		memcpy(&e, (const uint8_t *)msg + NLMSG_HDRLEN, sizeof(e));
		last_error = e.error;
	}
}

/* One request with an ACK asked for; @return its error (0: done). */
static int
request(struct xg_xfrm *x, uint16_t type, const void *fixed, size_t len,
	const struct xfrm_algo_aead *aead)
{
	static const uint8_t key[20] = { 1, 2, 3 };
	const struct xg_xfrm_peer peer = { .portid = 77 };
	uint8_t buf[1024], attr[sizeof(*aead) + sizeof(key)];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct nlmsghdr *nlh = xg_nl_put_hdr(&b, type, NLM_F_REQUEST | NLM_F_ACK, 1, peer.portid,
					     len);

	memcpy(NLMSG_DATA(nlh), fixed, len);
	if (aead) {
		memcpy(attr, aead, sizeof(*aead));
		memcpy(attr + sizeof(*aead), key, sizeof(key));
		xg_nl_put(&b, XFRMA_ALG_AEAD, attr, sizeof(attr));
	}
	xg_nl_end(&b);
	last_error = 1;
	xg_xfrm_rcv(x, &peer, buf, b.len);
	return last_error;
}

/* An SA towards a peer (not one of the gateway's addresses). */
static int
add_sa(struct xg_xfrm *x, uint32_t spi)
{
	struct xfrm_algo_aead a = { .alg_key_len = 160, .alg_icv_len = 128 };
	struct xfrm_usersa_info u;

	memset(&u, 0, sizeof(u));
	u.family = AF_INET;
	u.id.daddr.a4 = htonl(0xc6336401);   /* 198.51.100.1 */
	u.saddr.a4 = htonl(0xc0000201);      /* 192.0.2.1 */
	u.id.spi = htonl(spi);
	u.id.proto = IPPROTO_ESP;
	u.mode = XFRM_MODE_TUNNEL;
	u.reqid = spi;
	u.lft.soft_byte_limit = u.lft.hard_byte_limit = XFRM_INF;
	u.lft.soft_packet_limit = u.lft.hard_packet_limit = XFRM_INF;
	strcpy(a.alg_name, "rfc4106(gcm(aes))");
	return request(x, XFRM_MSG_NEWSA, &u, sizeof(u), &a);
}

/* A block policy for 10.<k>.0.0/16 outbound. */
static int
add_policy(struct xg_xfrm *x, unsigned int k)
{
	struct xfrm_userpolicy_info p;

	memset(&p, 0, sizeof(p));
	p.sel.family = AF_INET;
	p.sel.daddr.a4 = htonl(0x0a000000u | k << 16);
	p.sel.prefixlen_d = 16;
	p.dir = XFRM_POLICY_OUT;
	p.action = XFRM_POLICY_BLOCK;
	p.lft.soft_byte_limit = p.lft.hard_byte_limit = XFRM_INF;
	p.lft.soft_packet_limit = p.lft.hard_packet_limit = XFRM_INF;
	return request(x, XFRM_MSG_NEWPOLICY, &p, sizeof(p), NULL);
}

static struct xg_routes *
make_routes(void)
{
	static struct xg_config cfg;
	int err = 0;

	cfg.port[0].present = true;
	cfg.port[0].addr[0].family = AF_INET;
	cfg.port[0].addr[0].v4.s_addr = htonl(0xc0000201);
	cfg.port[0].addr[0].plen = 24;
	cfg.port[0].naddr = 1;
	return xg_routes_build(&cfg, &err);
}

int
main(void)
{
	static const struct xg_xfrm_ops ops = { .unicast = on_unicast };
	char prefix[64];
	char *eal[] = { "dp_test", "-l", "0", "--no-huge", "-m", "128", "--no-pci",
			"--no-shconf", prefix, "--log-level", "*:error", NULL };
	struct xg_dp *dp0, *dp1, *dp2, *dp3;
	struct xg_routes *rt;
	struct xg_xfrm *x;
	unsigned int k;
	int err;

	snprintf(prefix, sizeof(prefix), "--file-prefix=dpt%d", (int)getpid());
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "dp_test: EAL init failed\n");
		return 1;
	}
	CHECK(xg_crypto_init((int)rte_socket_id(), 1) == 0);   /* the SAs' sessions */
	rt = make_routes();
	x = xg_xfrm_create(&ops);
	CHECK(rt != NULL && x != NULL);
	for (k = 1; k <= 50; k++)
		CHECK(add_policy(x, k) == 0);
	CHECK(add_sa(x, 0x100) == 0);

	/* No previous snapshot: nothing to keep. */
	err = 0;
	CHECK(xg_dp_build_flags(x, rt, NULL, 1, XG_DP_SAME_SPD, &err) == NULL && err == -EAGAIN);
	dp0 = xg_dp_build(x, rt, NULL, 2, &err);
	CHECK(dp0 != NULL && dp0->npols == 50 && dp0->spd != NULL && dp0->spd_owned);

	/* Only an SA added: the SPD is taken over. */
	CHECK(add_sa(x, 0x101) == 0);
	dp1 = xg_dp_build_flags(x, rt, dp0, 3, XG_DP_SAME_SPD, &err);
	CHECK(dp1 != NULL && dp1->spd == dp0->spd && dp1->spd_owned && !dp0->spd_owned);
	CHECK(dp1 != NULL && dp1->generation == xg_xfrm_generation(x));
	CHECK(dp1 != NULL && dp1->pol_generation == xg_xfrm_policy_generation(x));

	/* A policy added: refused, and dp1 keeps its SPD. */
	CHECK(add_policy(x, 51) == 0);
	err = 0;
	CHECK(xg_dp_build_flags(x, rt, dp1, 4, XG_DP_SAME_SPD, &err) == NULL && err == -EAGAIN);
	CHECK(dp1 != NULL && dp1->spd_owned && dp1->npols == 50);

	/* A full build compiles the new SPD; then SA-only again keeps it. */
	dp2 = xg_dp_build(x, rt, dp1, 5, &err);
	CHECK(dp2 != NULL && dp2->npols == 51 && dp1 && dp2->spd != dp1->spd && dp2->spd_owned);
	CHECK(add_sa(x, 0x102) == 0);
	dp3 = xg_dp_build_flags(x, rt, dp2, 6, XG_DP_SAME_SPD, &err);
	CHECK(dp3 != NULL && dp2 && dp3->spd == dp2->spd && !dp2->spd_owned);

	xg_dp_free(dp0);
	xg_dp_free(dp1);
	xg_dp_free(dp2);
	xg_dp_free(dp3);
	xg_xfrm_destroy(x);
	xg_routes_free(rt);
	xg_crypto_fini();
	rte_eal_cleanup();
	return CHECK_REPORT();
}
