/* SPDX-License-Identifier: BSD-3-Clause */
/* rte_security capability selection on synthetic capability tables. */

#include <stdio.h>
#include <string.h>

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

int
main(void)
{
	struct xg_offload_want gcm = { .egress = true, .tunnel = true, .aead = XG_AEAD_AES_GCM,
				       .key_bytes = 16, .icv_bytes = 16 };
	struct xg_offload_want w;
	struct rte_security_capability caps[8];
	enum rte_security_session_action_type none = RTE_SECURITY_ACTION_TYPE_NONE;

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

	return CHECK_REPORT();
}
