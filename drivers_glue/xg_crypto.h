/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_CRYPTO_H
#define XG_CRYPTO_H

/**
 * @file
 * The software crypto device: IPsec-MB through DPDK's crypto_ipsec_mb PMD
 * (vdev crypto_aesni_mb), used synchronously with CPU crypto
 * (rte_cryptodev_sym_cpu_crypto_process), so the worker that owns a packet
 * also encrypts it, with no queue in between.
 *
 * Thread-safety: xg_crypto_init/fini and session create/free on the control
 * thread; sessions are used by any lcore concurrently (CPU crypto keeps no
 * per-call state in the session).
 */

#include <stdint.h>

struct rte_crypto_sym_xform;

/** Create (once) and start the device. @return 0 or a negative errno. */
int xg_crypto_init(int socket_id);

/** The device id, valid after xg_crypto_init(). */
uint8_t xg_crypto_dev(void);

/** A session for @p xf (a single transform or a chain). NULL on failure. */
void *xg_crypto_session_create(struct rte_crypto_sym_xform *xf);

void xg_crypto_session_free(void *sess);

/** Stop and close the device. */
void xg_crypto_fini(void);

#endif /* XG_CRYPTO_H */
