/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ESP crypto straight on IPsec-MB, for the suites it does best: AES-GCM
 * through its direct GCM functions (no job manager in between), AES-CBC
 * with HMAC-SHA1/2 through its job manager with a whole burst of one SA in
 * flight, so its multi-buffer lanes fill. Each lcore has its own manager.
 *
 * Other suites (ChaCha20-Poly1305, AES-CTR, HMAC keys longer than a
 * block, truncations IPsec-MB does not produce) and other devices stay on
 * the DPDK crypto device (esp_vec_run()).
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <intel-ipsec-mb.h>

#include <rte_common.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "esp_priv.h"
#include "xg_crypto.h"

struct esp_imb {
	struct gcm_key_data gcm;           /* AES-GCM: expanded key, hash key powers */
	uint32_t enc_keys[60] __rte_aligned(16);   /* AES-CBC, up to AES-256 */
	uint32_t dec_keys[60] __rte_aligned(16);
	uint8_t ipad[64] __rte_aligned(16);        /* HMAC inner/outer states */
	uint8_t opad[64] __rte_aligned(16);
	aes_gcm_enc_dec_t gcm_enc, gcm_dec;  /* of this manager's arch and key size */
	IMB_HASH_ALG hash;
	uint8_t key_bytes;
	uint8_t icv;
	uint8_t aad_len;
	bool encrypt;
};

/* The calling lcore's manager, made on first use. The control thread has
 * one too, for key set-up. */
static __thread IMB_MGR *lcore_mgr;

static IMB_MGR *
mgr(void)
{
	if (unlikely(lcore_mgr == NULL)) {
		lcore_mgr = alloc_mb_mgr(0);
		if (lcore_mgr)
			init_mb_mgr_auto(lcore_mgr, NULL);
	}
	return lcore_mgr;
}

/* Hash of the key XOR pad (RFC 2104), one block of @p block bytes. */
static void
hmac_pad(IMB_MGR *m, IMB_HASH_ALG alg, const uint8_t *key, uint8_t len, uint8_t fill,
	 uint8_t *out)
{
	uint8_t b[128];
	unsigned int block = alg == IMB_AUTH_HMAC_SHA_384 || alg == IMB_AUTH_HMAC_SHA_512 ? 128 : 64;
	unsigned int i;

	memset(b, fill, block);
	for (i = 0; i < len; i++)
		b[i] ^= key[i];
	switch (alg) {
	case IMB_AUTH_HMAC_SHA_1:
		IMB_SHA1_ONE_BLOCK(m, b, out);
		break;
	case IMB_AUTH_HMAC_SHA_256:
		IMB_SHA256_ONE_BLOCK(m, b, out);
		break;
	case IMB_AUTH_HMAC_SHA_384:
		IMB_SHA384_ONE_BLOCK(m, b, out);
		break;
	default:
		IMB_SHA512_ONE_BLOCK(m, b, out);
		break;
	}
	explicit_bzero(b, sizeof(b));
}

static int
gcm_init(IMB_MGR *m, struct esp_imb *k, const struct xg_esp_cfg *c)
{
	switch (c->key_len) {
	case 16:
		IMB_AES128_GCM_PRE(m, c->key, &k->gcm);
		k->gcm_enc = m->gcm128_enc;
		k->gcm_dec = m->gcm128_dec;
		break;
	case 24:
		IMB_AES192_GCM_PRE(m, c->key, &k->gcm);
		k->gcm_enc = m->gcm192_enc;
		k->gcm_dec = m->gcm192_dec;
		break;
	case 32:
		IMB_AES256_GCM_PRE(m, c->key, &k->gcm);
		k->gcm_enc = m->gcm256_enc;
		k->gcm_dec = m->gcm256_dec;
		break;
	default:
		return -ENOTSUP;
	}
	k->aad_len = c->esn ? 12 : 8;
	return 0;
}

/* ICV lengths IPsec-MB produces for each HMAC: the IPsec truncation and
 * the full digest. */
static IMB_HASH_ALG
hmac_alg(enum xg_esp_auth a, uint8_t icv, uint8_t key_len)
{
	static const struct {
		IMB_HASH_ALG alg;
		uint8_t trunc, full, block;
	} t[] = {
		[XG_AUTH_SHA1] = { IMB_AUTH_HMAC_SHA_1, 12, 20, 64 },
		[XG_AUTH_SHA256] = { IMB_AUTH_HMAC_SHA_256, 16, 32, 64 },
		[XG_AUTH_SHA384] = { IMB_AUTH_HMAC_SHA_384, 24, 48, 128 },
		[XG_AUTH_SHA512] = { IMB_AUTH_HMAC_SHA_512, 32, 64, 128 },
	};

	if (a < XG_AUTH_SHA1 || a > XG_AUTH_SHA512 || (icv != t[a].trunc && icv != t[a].full) ||
	    key_len > t[a].block)
		return IMB_AUTH_NULL;
	return t[a].alg;
}

static int
cbc_init(IMB_MGR *m, struct esp_imb *k, const struct xg_esp_cfg *c)
{
	k->hash = hmac_alg(c->auth, c->icv_bytes, c->auth_key_len);
	if (k->hash == IMB_AUTH_NULL)
		return -ENOTSUP;
	switch (c->key_len) {
	case 16:
		IMB_AES_KEYEXP_128(m, c->key, k->enc_keys, k->dec_keys);
		break;
	case 24:
		IMB_AES_KEYEXP_192(m, c->key, k->enc_keys, k->dec_keys);
		break;
	case 32:
		IMB_AES_KEYEXP_256(m, c->key, k->enc_keys, k->dec_keys);
		break;
	default:
		return -ENOTSUP;
	}
	k->key_bytes = c->key_len;
	hmac_pad(m, k->hash, c->auth_key, c->auth_key_len, 0x36, k->ipad);
	hmac_pad(m, k->hash, c->auth_key, c->auth_key_len, 0x5c, k->opad);
	return 0;
}

int
esp_imb_init(struct xg_esp_sa *sa, const struct xg_esp_cfg *c)
{
	IMB_MGR *m;
	struct esp_imb *k;
	int rc;

	if (!xg_crypto_ipsec_mb() || !(c->aead == XG_AEAD_AES_GCM ||
					(c->aead == XG_AEAD_NONE && c->cipher == XG_CIPHER_AES_CBC)))
		return -ENOTSUP;
	m = mgr();
	if (m == NULL)
		return -ENOMEM;
	k = rte_zmalloc("xg_esp_imb", sizeof(*k), RTE_CACHE_LINE_SIZE);
	if (k == NULL)
		return -ENOMEM;
	k->icv = c->icv_bytes;
	k->encrypt = c->outbound;
	rc = c->aead == XG_AEAD_AES_GCM ? gcm_init(m, k, c) : cbc_init(m, k, c);
	if (rc) {
		explicit_bzero(k, sizeof(*k));
		rte_free(k);
		return rc;
	}
	sa->imb = k;
	return 0;
}

void
esp_imb_fini(struct xg_esp_sa *sa)
{
	if (sa->imb == NULL)
		return;
	explicit_bzero(sa->imb, sizeof(*sa->imb));
	rte_free(sa->imb);
	sa->imb = NULL;
}

void
xg_esp_prefetch(const struct xg_esp_sa *sa)
{
	const uint8_t *k = (const uint8_t *)sa->imb;

	rte_prefetch0(sa);
	rte_prefetch0((const uint8_t *)sa + RTE_CACHE_LINE_SIZE);
	/* Inbound: the window's state and, for windows up to a few hundred
	 * packets, its bitmap (one line). */
	if (!sa->outbound)
		rte_prefetch0(&sa->replay);
	if (k == NULL)
		return;
	/* Round keys first, then (GCM) the lowest hash key powers, which
	 * IPsec-MB keeps at the end of its table: what short packets use. */
	rte_prefetch0(k);
	rte_prefetch0(k + 64);
	rte_prefetch0(k + 128);
	rte_prefetch0(k + 192);
	rte_prefetch0((const uint8_t *)&sa->imb->gcm + sizeof(sa->imb->gcm) - 128);
	rte_prefetch0((const uint8_t *)&sa->imb->gcm + sizeof(sa->imb->gcm) - 64);
}

/* Constant time: a forged ICV must not learn how much of it was right. */
static int
icv_differs(const uint8_t *a, const uint8_t *b, unsigned int n)
{
	uint64_t d = 0, x, y;
	unsigned int i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		d |= x ^ y;
	}
	for (; i < n; i++)
		d |= (uint64_t)(a[i] ^ b[i]);
	return d != 0;
}

static void
gcm_run(const struct esp_imb *k, struct esp_vec *v, uint32_t n)
{
	struct gcm_context_data ctx;
	uint8_t tag[16];
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint8_t *p = v->vec[i].base;

		if (k->encrypt) {
			k->gcm_enc(&k->gcm, &ctx, p, p, v->vec[i].len, v->iv[i].va, v->aad[i].va,
				   k->aad_len, v->dig[i].va, k->icv);
			v->st[i] = 0;
		} else {
			k->gcm_dec(&k->gcm, &ctx, p, p, v->vec[i].len, v->iv[i].va, v->aad[i].va,
				   k->aad_len, tag, k->icv);
			v->st[i] = icv_differs(tag, v->dig[i].va, k->icv);
		}
	}
	explicit_bzero(&ctx, sizeof(ctx));
}

/* AES-CBC and HMAC through IPsec-MB's burst API: every packet of the run
 * in its multi-buffer lanes at once, cipher then hash outbound, hash then
 * cipher inbound. The jobs are the lcore's, set in full for every use. */
static __thread IMB_JOB jobs[XG_ESP_BURST_MAX];

static IMB_KEY_SIZE_BYTES
key_size(uint8_t bytes)
{
	return bytes == 16 ? IMB_KEY_128_BYTES : bytes == 24 ? IMB_KEY_192_BYTES :
							       IMB_KEY_256_BYTES;
}

static void
cbc_run(IMB_MGR *m, const struct esp_imb *k, struct esp_vec *v, uint32_t n, uint16_t head,
	uint16_t tail)
{
	uint8_t tags[XG_ESP_BURST_MAX][64];
	IMB_CIPHER_DIRECTION dir = k->encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
	uint32_t i, done;

	for (i = 0; i < n; i++) {
		IMB_JOB *j = &jobs[i];
		uint8_t *p = v->vec[i].base;

		j->cipher_direction = dir;
		j->cipher_mode = IMB_CIPHER_CBC;
		j->enc_keys = k->enc_keys;
		j->dec_keys = k->dec_keys;
		j->key_len_in_bytes = k->key_bytes;
		j->src = p;
		j->dst = p + head;
		j->cipher_start_src_offset_in_bytes = head;
		j->msg_len_to_cipher_in_bytes = v->vec[i].len - head - tail;
		j->iv = v->iv[i].va;
		j->iv_len_in_bytes = 16;
		j->hash_alg = k->hash;
		j->hash_start_src_offset_in_bytes = 0;
		j->msg_len_to_hash_in_bytes = v->vec[i].len;
		j->u.HMAC._hashed_auth_key_xor_ipad = k->ipad;
		j->u.HMAC._hashed_auth_key_xor_opad = k->opad;
		j->auth_tag_output = k->encrypt ? v->dig[i].va : tags[i];
		j->auth_tag_output_len_in_bytes = k->icv;
	}
	if (k->encrypt) {
		done = IMB_SUBMIT_CIPHER_BURST(m, jobs, n, IMB_CIPHER_CBC, dir, key_size(k->key_bytes));
		if (done == n)
			done = IMB_SUBMIT_HASH_BURST(m, jobs, n, k->hash);
	} else {
		done = IMB_SUBMIT_HASH_BURST(m, jobs, n, k->hash);
		if (done == n)
			done = IMB_SUBMIT_CIPHER_BURST(m, jobs, n, IMB_CIPHER_CBC, dir,
						       key_size(k->key_bytes));
	}
	/* A burst IPsec-MB refuses (it checks every job) fails as a whole. */
	for (i = 0; i < n; i++)
		v->st[i] = done != n ? -1 : k->encrypt ? 0 : icv_differs(tags[i], v->dig[i].va, k->icv);
	explicit_bzero(tags, sizeof(tags[0]) * n);
}

void
esp_imb_run(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n, uint16_t head,
	    uint16_t tail)
{
	const struct esp_imb *k = sa->imb;
	IMB_MGR *m = mgr();
	uint32_t i;

	if (unlikely(m == NULL)) {
		for (i = 0; i < n; i++)
			v->st[i] = -1;
		return;
	}
	if (k->gcm_enc)
		gcm_run(k, v, n);
	else
		cbc_run(m, k, v, n, head, tail);
}

/* CBC IVs must be unpredictable (RFC 3602 2.4): the keystream of AES-128
 * in counter mode under a key of the lcore's own, drawn from the kernel's
 * CSPRNG and replaced every 16 MiB. The kernel alone costs ~100 cycles an
 * IV at line rate; this costs a few. */
#define IV_REKEY_BYTES (16u << 20)

static __thread struct {
	uint32_t enc[44] __rte_aligned(16);
	uint32_t dec[44] __rte_aligned(16);
	uint8_t ctr[16];
	uint32_t used;
	bool keyed;
} ivs;

static int
iv_rekey(IMB_MGR *m)
{
	uint8_t key[16];

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key) ||
	    getrandom(ivs.ctr, 12, 0) != 12)
		return -1;
	memset(ivs.ctr + 12, 0, 4);
	IMB_AES_KEYEXP_128(m, key, ivs.enc, ivs.dec);
	explicit_bzero(key, sizeof(key));
	ivs.used = 0;
	ivs.keyed = true;
	return 0;
}

int
esp_random(uint8_t *buf, uint32_t len)
{
	static const uint8_t zeros[4096];
	IMB_MGR *m = xg_crypto_ipsec_mb() ? mgr() : NULL;
	uint32_t blocks;
	IMB_JOB *j;

	if (m == NULL || len > sizeof(zeros) || len % 16)
		return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
	if ((!ivs.keyed || ivs.used >= IV_REKEY_BYTES) && iv_rekey(m))
		return -1;
	j = IMB_GET_NEXT_JOB(m);
	memset(j, 0, sizeof(*j));
	j->chain_order = IMB_ORDER_CIPHER_HASH;
	j->cipher_direction = IMB_DIR_ENCRYPT;
	j->cipher_mode = IMB_CIPHER_CNTR;
	j->hash_alg = IMB_AUTH_NULL;
	j->enc_keys = ivs.enc;
	j->dec_keys = ivs.dec;
	j->key_len_in_bytes = 16;
	j->src = zeros;
	j->dst = buf;
	j->msg_len_to_cipher_in_bytes = len;
	j->iv = ivs.ctr;
	j->iv_len_in_bytes = 16;
	j = IMB_SUBMIT_JOB(m);
	if (j == NULL)
		j = IMB_FLUSH_JOB(m);
	if (j == NULL || j->status != IMB_STATUS_COMPLETED)
		return -1;
	/* Next blocks: the 32-bit counter cannot wrap before the rekey. */
	blocks = (uint32_t)(ivs.ctr[12] << 24 | ivs.ctr[13] << 16 | ivs.ctr[14] << 8 | ivs.ctr[15]) +
		 len / 16;
	ivs.ctr[12] = (uint8_t)(blocks >> 24);
	ivs.ctr[13] = (uint8_t)(blocks >> 16);
	ivs.ctr[14] = (uint8_t)(blocks >> 8);
	ivs.ctr[15] = (uint8_t)blocks;
	ivs.used += len;
	return 0;
}

void
xg_esp_thread_fini(void)
{
	if (lcore_mgr) {
		free_mb_mgr(lcore_mgr);
		lcore_mgr = NULL;
	}
	explicit_bzero(&ivs, sizeof(ivs));
}
