/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>

#include <rte_bus_vdev.h>
#include <rte_cryptodev.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <rte_mempool.h>

#include "xg_crypto.h"

#define DEV_NAME "crypto_aesni_mb_xg"
#define NB_SESSIONS 16384

static int dev_id = -1;
static struct rte_mempool *sess_pool;

static int
configure(int socket_id)
{
	struct rte_cryptodev_config conf = { .socket_id = socket_id, .nb_queue_pairs = 1 };
	struct rte_cryptodev_qp_conf qp = { .nb_descriptors = 128 };
	struct rte_cryptodev_info info;

	rte_cryptodev_info_get((uint8_t)dev_id, &info);
	if (!(info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO))
		return -ENOTSUP;
	sess_pool = rte_cryptodev_sym_session_pool_create("xg_crypto_sess", NB_SESSIONS,
		rte_cryptodev_sym_get_private_session_size((uint8_t)dev_id), 0, 0, socket_id);
	if (sess_pool == NULL)
		return -rte_errno;
	qp.mp_session = sess_pool;
	if (rte_cryptodev_configure((uint8_t)dev_id, &conf) ||
	    rte_cryptodev_queue_pair_setup((uint8_t)dev_id, 0, &qp, socket_id) ||
	    rte_cryptodev_start((uint8_t)dev_id))
		return -EIO;
	return 0;
}

int
xg_crypto_init(int socket_id)
{
	int rc;

	if (dev_id >= 0)
		return 0;
	rc = rte_vdev_init(DEV_NAME, NULL);
	if (rc)
		return rc;
	dev_id = rte_cryptodev_get_dev_id(DEV_NAME);
	if (dev_id < 0)
		return -ENODEV;
	rc = configure(socket_id);
	if (rc)
		xg_crypto_fini();
	return rc;
}

uint8_t
xg_crypto_dev(void)
{
	return (uint8_t)dev_id;
}

void *
xg_crypto_session_create(struct rte_crypto_sym_xform *xf)
{
	return rte_cryptodev_sym_session_create((uint8_t)dev_id, xf, sess_pool);
}

void
xg_crypto_session_free(void *sess)
{
	/* The PMD clears the session's private data (the expanded keys). */
	if (sess)
		rte_cryptodev_sym_session_free((uint8_t)dev_id, sess);
}

void
xg_crypto_fini(void)
{
	if (dev_id >= 0) {
		rte_cryptodev_stop((uint8_t)dev_id);
		rte_cryptodev_close((uint8_t)dev_id);
		rte_vdev_uninit(DEV_NAME);
		dev_id = -1;
	}
	rte_mempool_free(sess_pool);
	sess_pool = NULL;
}
