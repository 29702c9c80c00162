/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rte_security offload: capability selection on synthetic capability
 * tables, the session configuration made from an SA, and session set-up
 * and teardown through librte_security against a stand-in for a NIC's
 * security driver (no inline-IPsec NIC is available here).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_security_driver.h>

#include "xg_offload.h"

#include "check.h"

#define END { .op = RTE_CRYPTO_OP_TYPE_UNDEFINED }

static const struct rte_cryptodev_capabilities gcm_only[] = {
	{ .op = RTE_CRYPTO_OP_TYPE_SYMMETRIC,
	  .sym = { .xform_type = RTE_CRYPTO_SYM_XFORM_AEAD,
		   .aead = { .algo = RTE_CRYPTO_AEAD_AES_GCM,
			     .key_size = { .min = 16, .max = 32, .increment = 16 },
			     .digest_size = { .min = 16, .max = 16, .increment = 0 } } } },
	END,
};

static const struct rte_cryptodev_capabilities cbc_sha256[] = {
	{ .op = RTE_CRYPTO_OP_TYPE_SYMMETRIC,
	  .sym = { .xform_type = RTE_CRYPTO_SYM_XFORM_CIPHER,
		   .cipher = { .algo = RTE_CRYPTO_CIPHER_AES_CBC,
			       .key_size = { .min = 16, .max = 16, .increment = 0 } } } },
	{ .op = RTE_CRYPTO_OP_TYPE_SYMMETRIC,
	  .sym = { .xform_type = RTE_CRYPTO_SYM_XFORM_AUTH,
		   .auth = { .algo = RTE_CRYPTO_AUTH_SHA256_HMAC,
			     .key_size = { .min = 1, .max = 64, .increment = 1 },
			     .digest_size = { .min = 16, .max = 16, .increment = 0 } } } },
	END,
};

static struct rte_security_capability
cap(enum rte_security_session_action_type action, bool egress, bool tunnel,
    const struct rte_cryptodev_capabilities *crypto, bool esn, uint32_t window)
{
	struct rte_security_capability c;

	memset(&c, 0, sizeof(c));
	c.action = action;
	c.protocol = RTE_SECURITY_PROTOCOL_IPSEC;
	c.ipsec.proto = RTE_SECURITY_IPSEC_SA_PROTO_ESP;
	c.ipsec.mode = tunnel ? RTE_SECURITY_IPSEC_SA_MODE_TUNNEL :
				RTE_SECURITY_IPSEC_SA_MODE_TRANSPORT;
	c.ipsec.direction = egress ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS :
				     RTE_SECURITY_IPSEC_SA_DIR_INGRESS;
	c.ipsec.options.esn = esn;
	c.ipsec.replay_win_sz_max = window;
	c.crypto_capabilities = crypto;
	return c;
}

/* The stand-in driver: records what librte_security hands it. */
static struct rte_security_capability nic_caps[4];
static struct rte_security_session_conf nic_conf;
static struct rte_crypto_sym_xform nic_x[2];
static uint8_t nic_key[64];
static int nic_sessions, nic_refuse;

static int
nic_create(void *dev, struct rte_security_session_conf *conf, struct rte_security_session *sess)
{
	(void)dev;
	(void)sess;
	if (nic_refuse)
		return -ENOTSUP;
	nic_conf = *conf;
	nic_x[0] = *conf->crypto_xform;
	if (conf->crypto_xform->next)
		nic_x[1] = *conf->crypto_xform->next;
	/* Keys are only valid during the call, as for a real driver. */
	memcpy(nic_key, nic_x[0].aead.key.data, nic_x[0].aead.key.length);
	nic_sessions++;
	return 0;
}

static int
nic_destroy(void *dev, struct rte_security_session *sess)
{
	(void)dev;
	(void)sess;
	nic_sessions--;
	return 0;
}

static unsigned int
nic_size(void *dev)
{
	(void)dev;
	return 64;
}

static const struct rte_security_capability *
nic_capabilities(void *dev)
{
	(void)dev;
	return nic_caps;
}

static const struct rte_security_ops nic_ops = {
	.session_create = nic_create,
	.session_destroy = nic_destroy,
	.session_get_size = nic_size,
	.capabilities_get = nic_capabilities,
};

static void
gcm_cfg(struct xg_esp_cfg *c, bool outbound)
{
	memset(c, 0, sizeof(*c));
	c->outbound = outbound;
	c->tunnel = true;
	c->family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", c->saddr);
	inet_pton(AF_INET, "198.51.100.2", c->daddr);
	c->spi = htonl(0x1234);
	c->seq = 41;
	c->aead = XG_AEAD_AES_GCM;
	c->icv_bytes = 16;
	c->key_len = 16;
	memset(c->key, 0xab, 16);
	memcpy(c->salt, "\x01\x02\x03\x04", 4);
	c->replay_window = outbound ? 0 : 128;
}

/* The session configuration made from an SA. */
static void
test_conf(void)
{
	struct rte_security_session_conf conf;
	struct rte_crypto_sym_xform x[2];
	struct xg_esp_cfg c;
	int marker;

	gcm_cfg(&c, true);
	xg_offload_conf(&c, RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL, &marker, &conf, x);
	CHECK(conf.action_type == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL);
	CHECK(conf.protocol == RTE_SECURITY_PROTOCOL_IPSEC);
	CHECK(conf.userdata == &marker);
	CHECK(conf.ipsec.spi == 0x1234);   /* host order, as librte_security wants */
	CHECK(memcmp(&conf.ipsec.salt, "\x01\x02\x03\x04", 4) == 0);
	CHECK(conf.ipsec.direction == RTE_SECURITY_IPSEC_SA_DIR_EGRESS);
	CHECK(conf.ipsec.proto == RTE_SECURITY_IPSEC_SA_PROTO_ESP);
	CHECK(conf.ipsec.mode == RTE_SECURITY_IPSEC_SA_MODE_TUNNEL);
	CHECK(conf.ipsec.tunnel.type == RTE_SECURITY_IPSEC_TUNNEL_IPV4);
	CHECK(conf.ipsec.tunnel.ipv4.src_ip.s_addr == inet_addr("192.0.2.1"));
	CHECK(conf.ipsec.tunnel.ipv4.dst_ip.s_addr == inet_addr("198.51.100.2"));
	CHECK(conf.ipsec.tunnel.ipv4.ttl == 64);
	CHECK(conf.ipsec.esn.value == 42);   /* the next number after oseq */
	CHECK(!conf.ipsec.options.esn && conf.ipsec.replay_win_sz == 0);
	CHECK(conf.crypto_xform == &x[0] && x[0].next == NULL);
	CHECK(x[0].type == RTE_CRYPTO_SYM_XFORM_AEAD && x[0].aead.algo == RTE_CRYPTO_AEAD_AES_GCM);
	CHECK(x[0].aead.op == RTE_CRYPTO_AEAD_OP_ENCRYPT && x[0].aead.key.length == 16);
	CHECK(x[0].aead.digest_length == 16 && x[0].aead.aad_length == 8);

	/* Inbound transport over IPv6, CBC + HMAC-SHA256, ESN, window 4096:
	 * verify first, then decipher. */
	memset(&c, 0, sizeof(c));
	c.family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", c.saddr);
	inet_pton(AF_INET6, "2001:db8::2", c.daddr);
	c.spi = htonl(0xc0ffee);
	c.esn = true;
	c.replay_window = 4096;
	c.cipher = XG_CIPHER_AES_CBC;
	c.key_len = 16;
	c.auth = XG_AUTH_SHA256;
	c.auth_key_len = 32;
	c.icv_bytes = 16;
	xg_offload_conf(&c, RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL, NULL, &conf, x);
	CHECK(conf.ipsec.spi == 0xc0ffee);
	CHECK(conf.ipsec.direction == RTE_SECURITY_IPSEC_SA_DIR_INGRESS);
	CHECK(conf.ipsec.mode == RTE_SECURITY_IPSEC_SA_MODE_TRANSPORT);
	CHECK(conf.ipsec.tunnel.type == RTE_SECURITY_IPSEC_TUNNEL_IPV6);
	CHECK(memcmp(&conf.ipsec.tunnel.ipv6.dst_addr, c.daddr, 16) == 0);
	CHECK(conf.ipsec.options.esn && conf.ipsec.replay_win_sz == 4096);
	CHECK(!conf.ipsec.options.copy_dscp);
	CHECK(conf.crypto_xform == &x[1] && x[1].type == RTE_CRYPTO_SYM_XFORM_AUTH);
	CHECK(x[1].auth.op == RTE_CRYPTO_AUTH_OP_VERIFY && x[1].auth.algo == RTE_CRYPTO_AUTH_SHA256_HMAC);
	CHECK(x[1].auth.key.length == 32 && x[1].auth.digest_length == 16);
	CHECK(x[1].next == &x[0] && x[0].type == RTE_CRYPTO_SYM_XFORM_CIPHER);
	CHECK(x[0].cipher.op == RTE_CRYPTO_CIPHER_OP_DECRYPT && x[0].cipher.algo == RTE_CRYPTO_CIPHER_AES_CBC);
}

/* Sessions made and destroyed through librte_security on the stand-in. */
static void
test_attach(void)
{
	struct rte_security_ctx ctx = { .ops = &nic_ops };
	struct rte_mempool *pool;
	struct xg_offload_sess s;
	struct xg_esp_cfg c;

	pool = rte_mempool_create("offload_test", 16, rte_security_session_get_size(&ctx), 0, 0,
				  NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
	CHECK(pool != NULL);
	if (pool == NULL)
		return;
	memset(nic_caps, 0, sizeof(nic_caps));
	nic_caps[0] = cap(RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL, true, true, gcm_only, false, 0);
	nic_caps[0].ol_flags = RTE_SECURITY_TX_OLOAD_NEED_MDATA;
	nic_caps[1] = cap(RTE_SECURITY_ACTION_TYPE_INLINE_CRYPTO, false, true, gcm_only, false, 0);

	gcm_cfg(&c, true);
	CHECK(xg_offload_attach_ctx(&s, &ctx, pool, 3, &c, (void *)(uintptr_t)77) == 0);
	CHECK(s.action == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL && s.sess != NULL);
	CHECK(s.port == 3 && s.ctx == &ctx && s.need_mdata);
	CHECK(nic_sessions == 1 && ctx.sess_cnt == 1);
	CHECK(nic_conf.ipsec.spi == 0x1234 && nic_conf.userdata == (void *)(uintptr_t)77);
	CHECK(nic_x[0].aead.key.length == 16 && nic_key[0] == 0xab && nic_key[15] == 0xab);
	xg_offload_detach(&s);
	CHECK(nic_sessions == 0 && ctx.sess_cnt == 0);
	CHECK(s.action == RTE_SECURITY_ACTION_TYPE_NONE && s.sess == NULL);
	CHECK(rte_mempool_in_use_count(pool) == 0);

	/* Inbound: only inline crypto is offered, which the workers do not
	 * run; the SA stays on CPU crypto and no session is made. */
	gcm_cfg(&c, false);
	CHECK(xg_offload_attach_ctx(&s, &ctx, pool, 3, &c, NULL) == 0);
	CHECK(s.action == RTE_SECURITY_ACTION_TYPE_NONE && nic_sessions == 0);

	/* ChaCha20-Poly1305 is not offered: CPU crypto. */
	gcm_cfg(&c, true);
	c.aead = XG_AEAD_CHACHA20_POLY1305;
	c.key_len = 32;
	CHECK(xg_offload_attach_ctx(&s, &ctx, pool, 3, &c, NULL) == 0);
	CHECK(s.action == RTE_SECURITY_ACTION_TYPE_NONE && nic_sessions == 0);

	/* The driver refuses: an error, nothing held, nothing leaked. */
	gcm_cfg(&c, true);
	nic_refuse = 1;
	CHECK(xg_offload_attach_ctx(&s, &ctx, pool, 3, &c, NULL) == -EIO);
	CHECK(s.action == RTE_SECURITY_ACTION_TYPE_NONE && s.sess == NULL);
	CHECK(rte_mempool_in_use_count(pool) == 0);
	nic_refuse = 0;
	xg_offload_detach(&s);   /* detaching nothing is harmless */

	/* A port without rte_security (net_null) gets no session. */
	CHECK(rte_eth_dev_is_valid_port(0));
	CHECK(xg_offload_attach(&s, 0, &c, NULL) == 0 && s.action == RTE_SECURITY_ACTION_TYPE_NONE);
	rte_mempool_free(pool);
}

int
main(int argc, char **argv)
{
	struct xg_offload_want gcm = { .egress = true, .tunnel = true, .aead = XG_AEAD_AES_GCM,
				       .key_bytes = 16, .icv_bytes = 16 };
	struct xg_offload_want w;
	struct rte_security_capability caps[8];
	enum rte_security_session_action_type none = RTE_SECURITY_ACTION_TYPE_NONE;
	char *eal[] = { argv[0], "--no-huge", "-m", "64", "--no-pci", "--no-shconf", "-l", "0",
			"--vdev", "net_null0", "--log-level", "*:error" };

	(void)argc;
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0) {
		fprintf(stderr, "EAL init failed\n");
		return 1;
	}

	memset(caps, 0, sizeof(caps));
	CHECK(xg_offload_select(NULL, &gcm) == none);   /* port without rte_security */
	CHECK(xg_offload_select(caps, &gcm) == none);   /* empty table */

	caps[0] = cap(RTE_SECURITY_ACTION_TYPE_INLINE_CRYPTO, true, true, gcm_only, false, 0);
	caps[1] = cap(RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL, true, true, gcm_only, false, 0);
	caps[2] = cap(RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL, false, true, gcm_only, true, 1024);
	CHECK(xg_offload_select(caps, &gcm) == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL);

	w = gcm;   /* ChaCha20-Poly1305 is not offered */
	w.aead = XG_AEAD_CHACHA20_POLY1305;
	w.key_bytes = 32;
	CHECK(xg_offload_select(caps, &w) == none);
	w = gcm;   /* GCM-192 is not a listed key size */
	w.key_bytes = 24;
	CHECK(xg_offload_select(caps, &w) == none);
	w = gcm;   /* transport mode: not offered */
	w.tunnel = false;
	CHECK(xg_offload_select(caps, &w) == none);
	w = gcm;   /* ESN: egress entries lack it */
	w.esn = true;
	CHECK(xg_offload_select(caps, &w) == none);
	w = gcm;   /* ingress with ESN and a window the device can hold */
	w.egress = false;
	w.esn = true;
	w.replay_window = 1024;
	CHECK(xg_offload_select(caps, &w) == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL);
	w.replay_window = 4096;   /* wider than the device's replay check */
	CHECK(xg_offload_select(caps, &w) == none);

	w = gcm;   /* cipher + auth needs both transforms in one capability */
	w.aead = XG_AEAD_NONE;
	w.cipher = XG_CIPHER_AES_CBC;
	w.auth = XG_AUTH_SHA256;
	w.auth_key_bytes = 32;
	CHECK(xg_offload_select(caps, &w) == none);
	caps[3] = cap(RTE_SECURITY_ACTION_TYPE_LOOKASIDE_PROTOCOL, true, true, cbc_sha256, false, 0);
	CHECK(xg_offload_select(caps, &w) == RTE_SECURITY_ACTION_TYPE_LOOKASIDE_PROTOCOL);
	w.auth = XG_AUTH_SHA512;
	w.icv_bytes = 32;
	CHECK(xg_offload_select(caps, &w) == none);

	test_conf();
	test_attach();
	rte_eal_cleanup();
	return CHECK_REPORT();
}
