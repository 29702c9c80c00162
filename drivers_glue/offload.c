/* SPDX-License-Identifier: BSD-3-Clause */
#include <stddef.h>

#include "xg_offload.h"

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
