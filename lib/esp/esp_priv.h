/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef ESP_PRIV_H
#define ESP_PRIV_H

#include <stdint.h>
#include <string.h>

#include <rte_cryptodev.h>

#include "xg_esp.h"

#define ESP_HDR_LEN 8        /* SPI + sequence number */
#define ESP_NONCE_LEN 12     /* AEAD nonce: 4-byte salt + 8-byte IV */
#define ESP_IPIP 4           /* next header of a tunnelled IPv4 packet */
#define ESP_IPV6 41          /* ... and of a tunnelled IPv6 packet */

/* Per-packet crypto inputs, laid out for one rte_crypto_sym_vec call. */
struct esp_cop {
	uint8_t iv[16];          /* AEAD nonce, CTR counter block or CBC IV */
	uint8_t aad[12];         /* AEAD: SPI | [seq hi] | seq lo */
};

/* The crypto inputs of a burst, one entry per packet that goes to crypto. */
struct esp_vec {
	struct rte_mbuf *mb[XG_ESP_BURST_MAX];
	struct rte_crypto_vec vec[XG_ESP_BURST_MAX];
	struct rte_crypto_sgl sgl[XG_ESP_BURST_MAX];
	struct rte_crypto_va_iova_ptr iv[XG_ESP_BURST_MAX], aad[XG_ESP_BURST_MAX];
	struct rte_crypto_va_iova_ptr dig[XG_ESP_BURST_MAX];
	int32_t st[XG_ESP_BURST_MAX];
};

/* Entry @p k: the region at @p base of @p len bytes, its IV/AAD and digest. */
static inline void
esp_vec_set(struct esp_vec *v, uint32_t k, struct rte_mbuf *m, uint8_t *base, uint32_t len,
	    struct esp_cop *c, bool aead, uint8_t *digest)
{
	v->mb[k] = m;
	v->vec[k].base = base;
	v->vec[k].len = len;
	v->sgl[k].vec = &v->vec[k];
	v->sgl[k].num = 1;
	v->iv[k].va = c->iv;
	v->aad[k].va = aead ? c->aad : NULL;
	v->dig[k].va = digest;
}

/* Put the good packets (why 0) first and the bad ones after them, each
 * with its reason in @p out; returns the number of good ones. */
static inline uint16_t
esp_partition(struct rte_mbuf *mb[], uint16_t n, const uint8_t why[], uint8_t out[])
{
	struct rte_mbuf *bad[XG_ESP_BURST_MAX];
	uint8_t bw[XG_ESP_BURST_MAX];
	uint16_t i, g = 0, b = 0;

	for (i = 0; i < n; i++) {
		if (why[i] == 0) {
			mb[g++] = mb[i];
		} else {
			bw[b] = why[i];
			bad[b++] = mb[i];
		}
	}
	for (i = 0; i < n; i++) {
		out[i] = i < g ? 0 : bw[i - g];
		if (i >= g)
			mb[i] = bad[i - g];
	}
	return g;
}

void esp_vec_lookaside(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n,
		       uint16_t head, uint16_t tail);

/* IPsec-MB without the crypto device (esp_imb.c): -ENOTSUP for a suite
 * it does not take, which then goes to the device. */
int esp_imb_init(struct xg_esp_sa *sa, const struct xg_esp_cfg *c);
void esp_imb_fini(struct xg_esp_sa *sa);
void esp_imb_run(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n, uint16_t head,
		 uint16_t tail);

/* @p len (a multiple of 16, at most 4096) unpredictable bytes for CBC IVs.
 * @return 0 or -1. */
int esp_random(uint8_t *buf, uint32_t len);

#ifdef XG_FAULT_INJECTION
/* Fault builds only (esp_fault.c): with XFRMGW_FAULT_CRYPTO="every=N" in
 * the environment at startup, every Nth operation of the process, all
 * lcores and both directions together, is reported failed after it ran. */
void esp_fault_apply(struct esp_vec *v, uint32_t n);
#endif

/* One CPU-crypto call for @p n entries. AEADs get exactly the ciphertext;
 * cipher + HMAC get the region from the ESP header: the cipher skips the
 * header and IV, and with ESN the high half appended for the HMAC. */
static inline void
esp_vec_crypt(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n)
{
	union rte_crypto_sym_ofs ofs = { .raw = 0 };
	struct rte_crypto_sym_vec sv;

	if (n == 0)
		return;
	if (sa->imb) {
		esp_imb_run(sa, v, n, sa->aead ? 0 : (uint16_t)(ESP_HDR_LEN + sa->iv_len),
			    !sa->aead && sa->esn ? 4 : 0);
		return;
	}
	if (!sa->cpu) {
		esp_vec_lookaside(sa, v, n, sa->aead ? 0 : (uint16_t)(ESP_HDR_LEN + sa->iv_len),
				  !sa->aead && sa->esn ? 4 : 0);
		return;
	}
	if (!sa->aead) {
		ofs.ofs.cipher.head = (uint16_t)(ESP_HDR_LEN + sa->iv_len);
		ofs.ofs.cipher.tail = sa->esn ? 4 : 0;
	}
	memset(&sv, 0, sizeof(sv));
	sv.num = n;
	sv.src_sgl = v->sgl;
	sv.iv = v->iv;
	sv.aad = v->aad;
	sv.digest = v->dig;
	sv.status = v->st;
	rte_cryptodev_sym_cpu_crypto_process(sa->dev, sa->sess, ofs, &sv);
}

/* The crypto of a run, whichever engine the SA uses; v->st[i] != 0 marks
 * a failed entry, which the caller drops and counts. */
static inline void
esp_vec_run(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n)
{
	esp_vec_crypt(sa, v, n);
#ifdef XG_FAULT_INJECTION
	esp_fault_apply(v, n);
#endif
}

#endif /* ESP_PRIV_H */
