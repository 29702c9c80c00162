/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_CRYPTO_H
#define XG_CRYPTO_H

/**
 * @file
 * The software crypto device: IPsec-MB through DPDK's crypto_ipsec_mb PMD
 * (vdev crypto_aesni_mb), used synchronously with CPU crypto
 * (rte_cryptodev_sym_cpu_crypto_process), so the worker that owns a packet
 * also encrypts it, with no queue in between. A device without CPU crypto
 * (crypto_openssl, hardware) is used lookaside, through queue pairs.
 *
 * Thread-safety: xg_crypto_init/fini and session create/free on the control
 * thread; sessions are used by any lcore concurrently (CPU crypto keeps no
 * per-call state in the session).
 */

#include <stdbool.h>
#include <stdint.h>

#include <rte_crypto.h>

struct rte_crypto_sym_xform;
struct rte_mempool;

/**
 * Create (once) and start the device: crypto_aesni_mb (IPsec-MB), or the
 * PMD named by $XFRMGW_CRYPTO ("aesni_mb" or "openssl"). @p nqp queue
 * pairs, one per lcore that may run lookaside operations.
 * @return 0 or a negative errno.
 */
int xg_crypto_init(int socket_id, uint16_t nqp);

/** The device id, valid after xg_crypto_init(). */
uint8_t xg_crypto_dev(void);

/** Does the device do synchronous CPU crypto? Otherwise operations go
 *  through its queue pairs (lookaside). */
bool xg_crypto_cpu(void);

/** Is the device crypto_aesni_mb, i.e. IPsec-MB? (The ESP engine then
 *  calls IPsec-MB directly for the suites it does best.) */
bool xg_crypto_ipsec_mb(void);

/** Pool of crypto operations for lookaside devices (NULL with CPU crypto). */
struct rte_mempool *xg_crypto_op_pool(void);

/** Offset of the IV in a crypto operation's private area. */
#define XG_CRYPTO_IV_OFFSET (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))

/** A session for @p xf (a single transform or a chain). NULL on failure. */
void *xg_crypto_session_create(struct rte_crypto_sym_xform *xf);

void xg_crypto_session_free(void *sess);

/** Stop and close the device, then free its pools; a session or operation
 * still out of its pool is logged ("not returned to pool"): with every SA
 * gone there must be none. */
void xg_crypto_fini(void);

#endif /* XG_CRYPTO_H */
