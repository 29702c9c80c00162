/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ESP SA set-up (control thread): crypto transforms for the algorithm
 * suite and the per-SA constants the data path needs.
 */

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_crypto_sym.h>

#include "esp_priv.h"
#include "xg_crypto.h"

static const enum rte_crypto_auth_algorithm auth_algo[] = {
	[XG_AUTH_SHA1] = RTE_CRYPTO_AUTH_SHA1_HMAC,
	[XG_AUTH_SHA256] = RTE_CRYPTO_AUTH_SHA256_HMAC,
	[XG_AUTH_SHA384] = RTE_CRYPTO_AUTH_SHA384_HMAC,
	[XG_AUTH_SHA512] = RTE_CRYPTO_AUTH_SHA512_HMAC,
};

static void
aead_xform(const struct xg_esp_cfg *c, struct rte_crypto_sym_xform *x)
{
	memset(x, 0, sizeof(*x));
	x->type = RTE_CRYPTO_SYM_XFORM_AEAD;
	x->aead.op = c->outbound ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT;
	x->aead.algo = c->aead == XG_AEAD_AES_GCM ? RTE_CRYPTO_AEAD_AES_GCM :
						     RTE_CRYPTO_AEAD_CHACHA20_POLY1305;
	x->aead.key.data = c->key;
	x->aead.key.length = c->key_len;
	x->aead.iv.offset = XG_CRYPTO_IV_OFFSET;   /* used by lookaside devices only */
	x->aead.iv.length = ESP_NONCE_LEN;
	x->aead.digest_length = c->icv_bytes;
	x->aead.aad_length = c->esn ? 12 : 8;
}

/* Encrypt-then-MAC: outbound ciphers then authenticates, inbound verifies
 * then deciphers. */
static void
chain_xforms(const struct xg_esp_cfg *c, struct rte_crypto_sym_xform x[2])
{
	struct rte_crypto_sym_xform *ci = &x[0], *au = &x[1];

	memset(x, 0, 2 * sizeof(*x));
	ci->type = RTE_CRYPTO_SYM_XFORM_CIPHER;
	ci->cipher.op = c->outbound ? RTE_CRYPTO_CIPHER_OP_ENCRYPT : RTE_CRYPTO_CIPHER_OP_DECRYPT;
	ci->cipher.algo = c->cipher == XG_CIPHER_AES_CBC ? RTE_CRYPTO_CIPHER_AES_CBC :
			  c->cipher == XG_CIPHER_AES_CTR ? RTE_CRYPTO_CIPHER_AES_CTR :
							   RTE_CRYPTO_CIPHER_NULL;
	ci->cipher.key.data = c->key;
	ci->cipher.key.length = c->key_len;
	ci->cipher.iv.offset = XG_CRYPTO_IV_OFFSET;
	ci->cipher.iv.length = c->cipher == XG_CIPHER_NULL ? 0 : 16;
	au->type = RTE_CRYPTO_SYM_XFORM_AUTH;
	au->auth.op = c->outbound ? RTE_CRYPTO_AUTH_OP_GENERATE : RTE_CRYPTO_AUTH_OP_VERIFY;
	au->auth.algo = auth_algo[c->auth];
	au->auth.key.data = c->auth_key;
	au->auth.key.length = c->auth_key_len;
	au->auth.digest_length = c->icv_bytes;
	if (c->outbound)
		ci->next = au;
	else
		au->next = ci;
}

struct rte_crypto_sym_xform *
xg_esp_xforms(const struct xg_esp_cfg *c, struct rte_crypto_sym_xform *x)
{
	if (c->aead != XG_AEAD_NONE) {
		aead_xform(c, &x[0]);
		return &x[0];
	}
	chain_xforms(c, x);
	return c->outbound ? &x[0] : &x[1];
}

static int
check_cfg(const struct xg_esp_cfg *c)
{
	if (c->family != AF_INET && c->family != AF_INET6)
		return -EINVAL;
	if (c->aead != XG_AEAD_NONE)
		return c->auth == XG_AUTH_NONE && c->icv_bytes >= 8 && c->icv_bytes <= 16 ? 0 :
											    -EINVAL;
	if (c->auth == XG_AUTH_NONE || c->auth > XG_AUTH_SHA512 || c->cipher > XG_CIPHER_AES_CTR)
		return -EINVAL;
	return c->icv_bytes >= 4 ? 0 : -EINVAL;
}

/* The constant part of an outer IPv4 header (see struct xg_esp_sa). */
static void
outer4_template(struct xg_esp_sa *sa)
{
	uint8_t *h = sa->outer4;
	uint32_t sum = 0;
	unsigned int i;

	memset(h, 0, sizeof(sa->outer4));
	h[0] = 0x45;
	h[8] = 64;            /* TTL */
	h[9] = IPPROTO_ESP;
	memcpy(h + 12, sa->saddr, 4);
	memcpy(h + 16, sa->daddr, 4);
	for (i = 0; i < sizeof(sa->outer4); i += 2)
		sum += (uint32_t)(h[i] << 8 | h[i + 1]);
	sa->outer4_sum = sum;
}

int
xg_esp_sa_init(struct xg_esp_sa *sa, const struct xg_esp_cfg *c)
{
	struct rte_crypto_sym_xform x[2];
	int rc = check_cfg(c);

	if (rc)
		return rc;
	memset(sa, 0, sizeof(*sa));
	sa->spi = c->spi;
	sa->outbound = c->outbound;
	sa->tunnel = c->tunnel;
	sa->esn = c->esn;
	sa->family = c->family;
	sa->icv_len = c->icv_bytes;
	sa->aead = c->aead != XG_AEAD_NONE;
	sa->ctr = c->cipher == XG_CIPHER_AES_CTR;
	memcpy(sa->salt, c->salt, sizeof(sa->salt));
	memcpy(sa->saddr, c->saddr, sizeof(sa->saddr));
	memcpy(sa->daddr, c->daddr, sizeof(sa->daddr));
	if (c->family == AF_INET)
		outer4_template(sa);
	sa->seq = c->seq;
	/* CBC: a random 16-byte IV and 16-byte blocks; counter modes and the
	 * AEADs: the 8-byte sequence-derived IV, 4-byte alignment. */
	sa->iv_len = sa->aead || sa->ctr ? 8 : c->cipher == XG_CIPHER_AES_CBC ? 16 : 0;
	sa->align = c->cipher == XG_CIPHER_AES_CBC ? 16 : 4;
	xg_replay_init(&sa->replay, c->outbound ? 0 : c->replay_window, c->esn);
	rc = esp_imb_init(sa, c);
	if (rc != -ENOTSUP)
		return rc;
	sa->sess = xg_crypto_session_create(xg_esp_xforms(c, x));
	sa->dev = xg_crypto_dev();
	sa->cpu = xg_crypto_cpu();
	return sa->sess ? 0 : -EIO;
}

void
xg_esp_sa_fini(struct xg_esp_sa *sa)
{
	esp_imb_fini(sa);
	if (sa->sess)
		xg_crypto_session_free(sa->sess);
	explicit_bzero(sa, sizeof(*sa));
}
