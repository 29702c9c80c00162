/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Lookaside crypto (data path): for devices without CPU crypto, the same
 * per-packet regions as esp_vec_run() become crypto operations, enqueued on
 * this lcore's queue pair and waited for. The burst stays synchronous for
 * the caller; only the device API differs.
 */

#include <rte_cryptodev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "esp_priv.h"
#include "xg_crypto.h"

#define POLL_LIMIT 100000000u   /* a device that never answers fails the ops */

static void
fill_op(const struct xg_esp_sa *sa, struct rte_crypto_op *op, struct esp_vec *v, uint32_t k,
	uint16_t head, uint16_t tail)
{
	struct rte_crypto_sym_op *sym = op->sym;
	struct rte_mbuf *m = v->mb[k];
	uint32_t off = (uint32_t)((uint8_t *)v->vec[k].base - rte_pktmbuf_mtod(m, uint8_t *));
	uint32_t dig = (uint32_t)((uint8_t *)v->dig[k].va - rte_pktmbuf_mtod(m, uint8_t *));

	rte_crypto_op_attach_sym_session(op, sa->sess);
	sym->m_src = m;
	memcpy(rte_crypto_op_ctod_offset(op, uint8_t *, XG_CRYPTO_IV_OFFSET), v->iv[k].va, 16);
	if (sa->aead) {
		sym->aead.data.offset = off;
		sym->aead.data.length = v->vec[k].len;
		sym->aead.digest.data = v->dig[k].va;
		sym->aead.digest.phys_addr = rte_pktmbuf_iova_offset(m, dig);
		sym->aead.aad.data = v->aad[k].va;
		/* The AAD sits on the caller's stack: fine for software
		 * devices, which read it by address only. */
		sym->aead.aad.phys_addr = 0;
		return;
	}
	sym->cipher.data.offset = off + head;
	sym->cipher.data.length = v->vec[k].len - head - tail;
	sym->auth.data.offset = off;
	sym->auth.data.length = v->vec[k].len;
	sym->auth.digest.data = v->dig[k].va;
	sym->auth.digest.phys_addr = rte_pktmbuf_iova_offset(m, dig);
}

void
esp_vec_lookaside(const struct xg_esp_sa *sa, struct esp_vec *v, uint32_t n, uint16_t head,
		  uint16_t tail)
{
	struct rte_crypto_op *ops[XG_ESP_BURST_MAX], *done[XG_ESP_BURST_MAX];
	uint16_t qp = (uint16_t)rte_lcore_index(-1), sent = 0, got = 0, i;
	uint32_t k, spins = 0;

	for (k = 0; k < n; k++)
		v->st[k] = 1;
	if (rte_crypto_op_bulk_alloc(xg_crypto_op_pool(), RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops,
				     (uint16_t)n) != n)
		return;   /* all fail: counted by the caller */
	for (k = 0; k < n; k++)
		fill_op(sa, ops[k], v, k, head, tail);
	while (sent < n && spins++ < POLL_LIMIT)
		sent += rte_cryptodev_enqueue_burst(sa->dev, qp, ops + sent, (uint16_t)(n - sent));
	while (got < sent && spins++ < POLL_LIMIT) {
		uint16_t d = rte_cryptodev_dequeue_burst(sa->dev, qp, done, (uint16_t)(sent - got));

		/* Match each finished operation to its packet by address. */
		for (i = 0; i < d; i++)
			for (k = 0; k < n; k++)
				if (ops[k] == done[i])
					v->st[k] = done[i]->status == RTE_CRYPTO_OP_STATUS_SUCCESS ?
							   0 : 1;
		got += d;
	}
	rte_mempool_put_bulk(xg_crypto_op_pool(), (void **)ops, n);
}
