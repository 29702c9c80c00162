/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_cryptodev.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <rte_mempool.h>

#include "xg_crypto.h"

RTE_LOG_REGISTER(xg_crypto_logtype, xfrmgw.crypto, INFO);

#define NB_SESSIONS 16384
#define MAX_SESS_POOLS 8   /* 16 Ki doubling: 4 Mi sessions in all */
#define NB_OPS 8191

static int dev_id = -1;
static char dev_name[32];
static bool cpu;
static struct rte_mempool *sess_pool, *op_pool;
/* Session pools, the first one (sess_pool) included: a full pool gets a
 * successor twice its size, so 100 000 SAs cost no memory up front. A
 * session goes back to its own pool (rte_mempool_from_obj()). */
static struct rte_mempool *sess_pools[MAX_SESS_POOLS];
static unsigned int nsess_pools;
static int sess_socket;

static int
configure(int socket_id, uint16_t nqp)
{
	struct rte_cryptodev_config conf = { .socket_id = socket_id, .nb_queue_pairs = nqp };
	struct rte_cryptodev_qp_conf qp = { .nb_descriptors = 512 };
	struct rte_cryptodev_info info;
	uint16_t q;

	rte_cryptodev_info_get((uint8_t)dev_id, &info);
	cpu = info.feature_flags & RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO;
	sess_pool = rte_cryptodev_sym_session_pool_create("xg_crypto_sess", NB_SESSIONS,
		rte_cryptodev_sym_get_private_session_size((uint8_t)dev_id), 0, 0, socket_id);
	if (sess_pool == NULL)
		return -rte_errno;
	sess_pools[0] = sess_pool;
	nsess_pools = 1;
	sess_socket = socket_id;
	/* Lookaside operations carry the IV in their private area. */
	if (!cpu) {
		op_pool = rte_crypto_op_pool_create("xg_crypto_ops", RTE_CRYPTO_OP_TYPE_SYMMETRIC,
						    NB_OPS, 128, 16, socket_id);
		if (op_pool == NULL)
			return -rte_errno;
	}
	qp.mp_session = sess_pool;
	if (rte_cryptodev_configure((uint8_t)dev_id, &conf))
		return -EIO;
	for (q = 0; q < nqp; q++)
		if (rte_cryptodev_queue_pair_setup((uint8_t)dev_id, q, &qp, socket_id))
			return -EIO;
	return rte_cryptodev_start((uint8_t)dev_id) ? -EIO : 0;
}

int
xg_crypto_init(int socket_id, uint16_t nqp)
{
	const char *kind = getenv("XFRMGW_CRYPTO");
	int rc;

	if (dev_id >= 0)
		return 0;
	if (kind && strcmp(kind, "openssl") == 0)
		snprintf(dev_name, sizeof(dev_name), "crypto_openssl_xg");
	else if (kind == NULL || strcmp(kind, "aesni_mb") == 0)
		snprintf(dev_name, sizeof(dev_name), "crypto_aesni_mb_xg");
	else
		return -EINVAL;
	rc = rte_vdev_init(dev_name, NULL);
	if (rc)
		return rc;
	dev_id = rte_cryptodev_get_dev_id(dev_name);
	if (dev_id < 0)
		return -ENODEV;
	rc = configure(socket_id, nqp ? nqp : 1);
	if (rc)
		xg_crypto_fini();
	return rc;
}

uint8_t
xg_crypto_dev(void)
{
	return (uint8_t)dev_id;
}

bool
xg_crypto_cpu(void)
{
	return cpu;
}

bool
xg_crypto_ipsec_mb(void)
{
	return dev_id >= 0 && strncmp(dev_name, "crypto_aesni_mb", 15) == 0;
}

struct rte_mempool *
xg_crypto_op_pool(void)
{
	return op_pool;
}

static struct rte_mempool *
grow_sessions(void)
{
	struct rte_mempool *mp;
	char name[RTE_MEMPOOL_NAMESIZE];
	uint32_t n = NB_SESSIONS << nsess_pools;

	if (nsess_pools == MAX_SESS_POOLS)
		return NULL;
	snprintf(name, sizeof(name), "xg_crypto_sess%u", nsess_pools);
	mp = rte_cryptodev_sym_session_pool_create(name, n,
		rte_cryptodev_sym_get_private_session_size((uint8_t)dev_id), 0, 0, sess_socket);
	if (mp)
		sess_pools[nsess_pools++] = mp;
	return mp;
}

void *
xg_crypto_session_create(struct rte_crypto_sym_xform *xf)
{
	unsigned int i;
	void *s;

	/* Newest pool first: the older ones are full unless sessions died. */
	for (i = nsess_pools; i-- > 0;) {
		s = rte_cryptodev_sym_session_create((uint8_t)dev_id, xf, sess_pools[i]);
		if (s || rte_errno != ENOMEM)
			return s;
	}
	return grow_sessions() ? rte_cryptodev_sym_session_create((uint8_t)dev_id, xf,
								   sess_pools[nsess_pools - 1]) : NULL;
}

void
xg_crypto_session_free(void *sess)
{
	/* The PMD clears the session's private data (the expanded keys). */
	if (sess)
		rte_cryptodev_sym_session_free((uint8_t)dev_id, sess);
}

/* Debian's DPDK is not instrumented: a session or operation never put
 * back is invisible to ASan, so count them before the pool goes. */
static void
check_returned(const struct rte_mempool *mp, const char *what)
{
	unsigned int n = mp ? rte_mempool_in_use_count(mp) : 0;

	if (n)
		rte_log(RTE_LOG_ERR, xg_crypto_logtype,
			"xfrmgw: %u %s not returned to pool %s\n", n, what, mp->name);
}

void
xg_crypto_fini(void)
{
	if (dev_id >= 0) {
		rte_cryptodev_stop((uint8_t)dev_id);
		rte_cryptodev_close((uint8_t)dev_id);
		rte_vdev_uninit(dev_name);
		dev_id = -1;
	}
	while (nsess_pools > 0) {
		check_returned(sess_pools[--nsess_pools], "crypto sessions");
		rte_mempool_free(sess_pools[nsess_pools]);
	}
	check_returned(op_pool, "crypto operations");
	rte_mempool_free(op_pool);
	sess_pool = op_pool = NULL;
}
