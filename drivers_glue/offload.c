/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mempool.h>

#include "xg_offload.h"

RTE_LOG_REGISTER(xg_offload_logtype, xfrmgw.offload, INFO);
#define OFF_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, xg_offload_logtype, "offload: " fmt "\n", ##__VA_ARGS__)

/* Sessions one port can hold (the pool is made on first use). */
#define SESS_PER_PORT 16384

static bool
size_ok(const struct rte_crypto_param_range *r, uint16_t v)
{
	if (v < r->min || v > r->max)
		return false;
	return r->increment ? (v - r->min) % r->increment == 0 : v == r->min;
}

static bool
aead_ok(const struct rte_cryptodev_capabilities *c, const struct xg_offload_want *w)
{
	enum rte_crypto_aead_algorithm want = w->aead == XG_AEAD_AES_GCM ?
		RTE_CRYPTO_AEAD_AES_GCM : RTE_CRYPTO_AEAD_CHACHA20_POLY1305;

	return c->sym.xform_type == RTE_CRYPTO_SYM_XFORM_AEAD && c->sym.aead.algo == want &&
	       size_ok(&c->sym.aead.key_size, w->key_bytes) &&
	       size_ok(&c->sym.aead.digest_size, w->icv_bytes);
}

static bool
cipher_ok(const struct rte_cryptodev_capabilities *c, const struct xg_offload_want *w)
{
	static const enum rte_crypto_cipher_algorithm algo[] = {
		[XG_CIPHER_NULL] = RTE_CRYPTO_CIPHER_NULL,
		[XG_CIPHER_AES_CBC] = RTE_CRYPTO_CIPHER_AES_CBC,
		[XG_CIPHER_AES_CTR] = RTE_CRYPTO_CIPHER_AES_CTR,
	};

	return c->sym.xform_type == RTE_CRYPTO_SYM_XFORM_CIPHER &&
	       c->sym.cipher.algo == algo[w->cipher] &&
	       (w->cipher == XG_CIPHER_NULL || size_ok(&c->sym.cipher.key_size, w->key_bytes));
}

static bool
auth_ok(const struct rte_cryptodev_capabilities *c, const struct xg_offload_want *w)
{
	static const enum rte_crypto_auth_algorithm algo[] = {
		[XG_AUTH_SHA1] = RTE_CRYPTO_AUTH_SHA1_HMAC,
		[XG_AUTH_SHA256] = RTE_CRYPTO_AUTH_SHA256_HMAC,
		[XG_AUTH_SHA384] = RTE_CRYPTO_AUTH_SHA384_HMAC,
		[XG_AUTH_SHA512] = RTE_CRYPTO_AUTH_SHA512_HMAC,
	};

	return c->sym.xform_type == RTE_CRYPTO_SYM_XFORM_AUTH && c->sym.auth.algo == algo[w->auth] &&
	       size_ok(&c->sym.auth.key_size, w->auth_key_bytes) &&
	       size_ok(&c->sym.auth.digest_size, w->icv_bytes);
}

/* Every transform the SA needs must be among the capability's crypto list. */
static bool
crypto_ok(const struct rte_cryptodev_capabilities *list, const struct xg_offload_want *w)
{
	bool aead = false, cipher = false, auth = false;
	const struct rte_cryptodev_capabilities *c;

	for (c = list; c && c->op != RTE_CRYPTO_OP_TYPE_UNDEFINED; c++) {
		if (c->op != RTE_CRYPTO_OP_TYPE_SYMMETRIC)
			continue;
		aead |= w->aead != XG_AEAD_NONE && aead_ok(c, w);
		cipher |= w->aead == XG_AEAD_NONE && cipher_ok(c, w);
		auth |= w->aead == XG_AEAD_NONE && auth_ok(c, w);
	}
	return w->aead != XG_AEAD_NONE ? aead : cipher && auth;
}

static bool
ipsec_ok(const struct rte_security_capability *cap, const struct xg_offload_want *w)
{
	if (cap->protocol != RTE_SECURITY_PROTOCOL_IPSEC ||
	    cap->ipsec.proto != RTE_SECURITY_IPSEC_SA_PROTO_ESP)
		return false;
	if (cap->ipsec.direction != (w->egress ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS :
						 RTE_SECURITY_IPSEC_SA_DIR_INGRESS))
		return false;
	if (cap->ipsec.mode != (w->tunnel ? RTE_SECURITY_IPSEC_SA_MODE_TUNNEL :
					    RTE_SECURITY_IPSEC_SA_MODE_TRANSPORT))
		return false;
	if ((w->esn && !cap->ipsec.options.esn) || (w->udp_encap && !cap->ipsec.options.udp_encap))
		return false;
	/* Protocol offload does the replay check itself: it must be as wide. */
	if (!w->egress && w->replay_window && cap->action != RTE_SECURITY_ACTION_TYPE_INLINE_CRYPTO &&
	    cap->ipsec.replay_win_sz_max < w->replay_window)
		return false;
	return crypto_ok(cap->crypto_capabilities, w);
}

static int
rank(enum rte_security_session_action_type a)
{
	switch (a) {
	case RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL:
		return 3;
	case RTE_SECURITY_ACTION_TYPE_LOOKASIDE_PROTOCOL:
		return 2;
	case RTE_SECURITY_ACTION_TYPE_INLINE_CRYPTO:
		return 1;
	default:
		return 0;
	}
}

enum rte_security_session_action_type
xg_offload_select(const struct rte_security_capability *caps, const struct xg_offload_want *w)
{
	enum rte_security_session_action_type best = RTE_SECURITY_ACTION_TYPE_NONE;
	const struct rte_security_capability *cap;

	for (cap = caps; cap && cap->action != RTE_SECURITY_ACTION_TYPE_NONE; cap++)
		if (rank(cap->action) > rank(best) && ipsec_ok(cap, w))
			best = cap->action;
	return best;
}

void
xg_offload_want_of(const struct xg_esp_cfg *c, struct xg_offload_want *w)
{
	memset(w, 0, sizeof(*w));
	w->egress = c->outbound;
	w->tunnel = c->tunnel;
	w->esn = c->esn;
	w->replay_window = c->outbound ? 0 : c->replay_window;
	w->aead = c->aead;
	w->cipher = c->cipher;
	w->auth = c->auth;
	w->key_bytes = c->key_len;
	w->auth_key_bytes = c->auth_key_len;
	w->icv_bytes = c->icv_bytes;
}

void
xg_offload_conf(const struct xg_esp_cfg *c, enum rte_security_session_action_type action,
		void *userdata, struct rte_security_session_conf *conf,
		struct rte_crypto_sym_xform *x)
{
	struct rte_security_ipsec_xform *ip = &conf->ipsec;
	struct rte_security_ipsec_tunnel_param *t = &ip->tunnel;

	memset(conf, 0, sizeof(*conf));
	conf->action_type = action;
	conf->protocol = RTE_SECURITY_PROTOCOL_IPSEC;
	conf->crypto_xform = xg_esp_xforms(c, x);
	conf->userdata = userdata;
	ip->spi = rte_be_to_cpu_32(c->spi);
	memcpy(&ip->salt, c->salt, sizeof(ip->salt));   /* nonce bytes as on the wire */
	ip->direction = c->outbound ? RTE_SECURITY_IPSEC_SA_DIR_EGRESS :
				      RTE_SECURITY_IPSEC_SA_DIR_INGRESS;
	ip->proto = RTE_SECURITY_IPSEC_SA_PROTO_ESP;
	ip->mode = c->tunnel ? RTE_SECURITY_IPSEC_SA_MODE_TUNNEL :
			       RTE_SECURITY_IPSEC_SA_MODE_TRANSPORT;
	ip->options.esn = c->esn;
	/* The kernel's tunnel defaults: inner DSCP and DF copied, ECN per
	 * RFC 6040, outer TTL 64. */
	ip->options.copy_dscp = c->tunnel;
	ip->options.copy_df = c->tunnel;
	ip->options.ecn = c->tunnel;
	ip->options.stats = 1;
	ip->replay_win_sz = c->outbound ? 0 : c->replay_window;
	/* XFRM's oseq is the last number sent; the device starts after it. */
	ip->esn.value = c->outbound ? c->seq + 1 : 0;
	if (c->family == AF_INET) {
		t->type = RTE_SECURITY_IPSEC_TUNNEL_IPV4;
		memcpy(&t->ipv4.src_ip, c->saddr, 4);
		memcpy(&t->ipv4.dst_ip, c->daddr, 4);
		t->ipv4.ttl = 64;
	} else {
		t->type = RTE_SECURITY_IPSEC_TUNNEL_IPV6;
		memcpy(&t->ipv6.src_addr, c->saddr, 16);
		memcpy(&t->ipv6.dst_addr, c->daddr, 16);
		t->ipv6.hlimit = 64;
	}
}

/* The capability entry a session of @p action for @p w would use. */
static const struct rte_security_capability *
chosen_cap(const struct rte_security_capability *caps,
	   enum rte_security_session_action_type action, const struct xg_offload_want *w)
{
	const struct rte_security_capability *cap;

	for (cap = caps; cap && cap->action != RTE_SECURITY_ACTION_TYPE_NONE; cap++)
		if (cap->action == action && ipsec_ok(cap, w))
			return cap;
	return NULL;
}

int
xg_offload_attach_ctx(struct xg_offload_sess *s, struct rte_security_ctx *ctx,
		      struct rte_mempool *pool, uint16_t port, const struct xg_esp_cfg *c,
		      void *userdata)
{
	const struct rte_security_capability *caps, *cap;
	struct rte_security_session_conf conf;
	struct rte_crypto_sym_xform x[2];
	enum rte_security_session_action_type a;
	struct xg_offload_want w;

	memset(s, 0, sizeof(*s));
	caps = rte_security_capabilities_get(ctx);
	xg_offload_want_of(c, &w);
	a = xg_offload_select(caps, &w);
	if (a != RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL)
		return 0;   /* CPU crypto (see the file comment for the others) */
	cap = chosen_cap(caps, a, &w);
	xg_offload_conf(c, a, userdata, &conf, x);
	s->sess = rte_security_session_create(ctx, &conf, pool);
	explicit_bzero(x, sizeof(x));
	if (s->sess == NULL) {
		OFF_LOG(WARNING, "port %u refused a session for SPI 0x%08x; CPU crypto instead",
			port, rte_be_to_cpu_32(c->spi));
		return -EIO;
	}
	s->action = a;
	s->ctx = ctx;
	s->port = port;
	s->need_mdata = cap->ol_flags & RTE_SECURITY_TX_OLOAD_NEED_MDATA;
	OFF_LOG(INFO, "SPI 0x%08x %s: inline protocol on port %u", rte_be_to_cpu_32(c->spi),
		c->outbound ? "out" : "in", port);
	return 0;
}

static struct rte_mempool *
port_pool(uint16_t port, struct rte_security_ctx *ctx)
{
	static struct rte_mempool *pool[RTE_MAX_ETHPORTS];
	char name[RTE_MEMPOOL_NAMESIZE];

	if (pool[port] == NULL) {
		snprintf(name, sizeof(name), "xg_secsess%u", port);
		pool[port] = rte_mempool_create(name, SESS_PER_PORT,
						rte_security_session_get_size(ctx), 64, 0, NULL,
						NULL, NULL, NULL, rte_eth_dev_socket_id(port), 0);
	}
	return pool[port];
}

int
xg_offload_attach(struct xg_offload_sess *s, uint16_t port, const struct xg_esp_cfg *c,
		  void *userdata)
{
	struct rte_security_ctx *ctx;
	struct rte_eth_conf conf;
	struct rte_mempool *pool;
	uint64_t need;

	memset(s, 0, sizeof(*s));
	if (!rte_eth_dev_is_valid_port(port))
		return 0;
	ctx = rte_eth_dev_get_sec_ctx(port);
	if (ctx == NULL || rte_eth_dev_conf_get(port, &conf))
		return 0;
	need = c->outbound ? conf.txmode.offloads & RTE_ETH_TX_OFFLOAD_SECURITY :
			     conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_SECURITY;
	if (!need)
		return 0;
	pool = port_pool(port, ctx);
	if (pool == NULL) {
		OFF_LOG(WARNING, "port %u: no memory for security sessions", port);
		return -EIO;
	}
	return xg_offload_attach_ctx(s, ctx, pool, port, c, userdata);
}

void
xg_offload_detach(struct xg_offload_sess *s)
{
	if (s->sess)
		rte_security_session_destroy(s->ctx, s->sess);
	memset(s, 0, sizeof(*s));
}
