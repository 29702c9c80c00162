/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * xfrmgw: EAL and option parsing, port setup, and the control loop that the
 * main lcore runs. Worker lcores (the ESP poll loops) are added by the data
 * plane; until then they stay idle.
 */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_pdump.h>
#include <rte_memzone.h>
#include <rte_ring_elem.h>
#include <rte_telemetry.h>

#include "xg_config.h"
#include "xg_crypto.h"
#include "xg_dp.h"
#include "xg_exception.h"
#include "xg_lcore.h"
#include "xg_log.h"
#include "xg_port.h"
#include "xg_server.h"
#include "xg_telemetry.h"
#include "xg_xfrm.h"

RTE_LOG_REGISTER(xg_main_logtype, xfrmgw.main, INFO);
#define MAIN_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, xg_main_logtype, "xfrmgw: " fmt "\n", ##__VA_ARGS__)

#define DEFAULT_SOCKET "/run/xfrmgw/xfrm.sock"
#define NB_MBUF 8191
#define MBUF_CACHE 256

struct options {
	const char *socket_path;
	const char *config_path;   /* NULL: embedded defaults */
	unsigned int run_seconds;  /* 0: until signalled */
	unsigned int mbufs;        /* packet buffers in the pool */
	gid_t socket_gid;          /* admitted to the XFRM socket; -1: root only */
	bool socket_set, group_set;  /* given on the command line: the file's do not apply */
};

static volatile sig_atomic_t stop;

/* systemd's readiness protocol (Type=notify): one datagram to
 * $NOTIFY_SOCKET, a path or "@abstract". Nothing without the variable. */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = 0;
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun, len) < 0)
		MAIN_LOG(WARNING, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
	close(fd);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(const char *prog)
{
	printf("Usage: %s [EAL options] -- [options]\n"
	       "  --xfrm-socket PATH   XFRM netlink control socket (default %s)\n"
	       "  --xfrm-socket-group NAME|GID  also admit this group to the socket (0660)\n"
	       "  --config FILE        configuration (rte_cfgfile INI, see conf/xfrmgw.conf)\n"
	       "  --run-seconds N      exit after N seconds (0: run until SIGTERM/SIGINT)\n"
	       "  --mbufs N            packet buffers (default %u; net_pcap's infinite_rx\n"
	       "                       keeps a whole capture in them)\n"
	       "  -h, --help           this text\n",
	       prog, DEFAULT_SOCKET, NB_MBUF);
#ifdef XG_FAULT_INJECTION
	printf("Built with fault injection (-Dfault_injection=true), NOT for production:\n"
	       "  XFRMGW_FAULT_CRYPTO=every=N   every Nth crypto operation fails\n");
#endif
}

/* A group name, else a number; "-1" (no group) is not a group. */
static int
parse_group(const char *arg, gid_t *gid)
{
	struct group *gr = getgrnam(arg);
	unsigned long n;
	char *end;

	if (gr) {
		*gid = gr->gr_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || n >= (gid_t)-1)
		return -1;
	*gid = (gid_t)n;
	return 0;
}

static int
parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "xfrm-socket", required_argument, NULL, 's' },
		{ "xfrm-socket-group", required_argument, NULL, 'g' },
		{ "config", required_argument, NULL, 'c' },
		{ "run-seconds", required_argument, NULL, 't' },
		{ "mbufs", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	o->socket_path = DEFAULT_SOCKET;
	o->config_path = NULL;
	o->run_seconds = 0;
	o->mbufs = NB_MBUF;
	o->socket_gid = (gid_t)-1;
	o->socket_set = o->group_set = false;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket_path = optarg;
			o->socket_set = true;
			break;
		case 'c':
			o->config_path = optarg;
			break;
		case 'g':
			if (parse_group(optarg, &o->socket_gid) < 0) {
				fprintf(stderr, "--xfrm-socket-group: no group %s\n", optarg);
				return -EINVAL;
			}
			o->group_set = true;
			break;
		case 't':
			o->run_seconds = (unsigned int)strtoul(optarg, &end, 10);
			if (*end)
				return -EINVAL;
			break;
		case 'm':
			o->mbufs = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || o->mbufs < 1024)
				return -EINVAL;
			break;
		case 'h':
			usage(argv[0]);
			exit(0);
		default:
			usage(argv[0]);
			return -EINVAL;
		}
	}
	return optind < argc ? -EINVAL : 0;
}

/* What only EAL knows: do the ports and worker lcores the file names exist? */
static int
check_config(const struct xg_config *cfg)
{
	unsigned int i;
	int q;

	for (i = 0; i < XG_CFG_MAX_PORTS; i++)
		if (cfg->port[i].present && !rte_eth_dev_is_valid_port((uint16_t)i)) {
			MAIN_LOG(ERR, "config: [port %u]: no such port", i);
			return -1;
		}
	for (i = 0; i < cfg->nworkers; i++) {
		const struct xg_cfg_worker *w = &cfg->worker[i];

		if (!rte_lcore_is_enabled(w->lcore) || w->lcore == rte_get_main_lcore()) {
			MAIN_LOG(ERR, "config: [worker %u]: not a worker lcore of -l/-c", w->lcore);
			return -1;
		}
		for (q = 0; q < w->nrxq; q++)
			if (!rte_eth_dev_is_valid_port(w->rxq[q].port)) {
				MAIN_LOG(ERR, "config: [worker %u]: no port %u", w->lcore,
					 w->rxq[q].port);
				return -1;
			}
	}
	MAIN_LOG(INFO, "config: %u route(s), %u neighbour(s), %u worker(s)", cfg->nroutes,
		 cfg->nneigh, cfg->nworkers);
	return 0;
}

/* The file's [control] keys, where the command line did not say. */
static int
load_config(struct options *o, struct xg_config *cfg)
{
	char err[256];

	if (o->config_path == NULL) {
		memset(cfg, 0, sizeof(*cfg));
		return 0;
	}
	if (xg_config_load(o->config_path, cfg, err, sizeof(err)) < 0) {
		MAIN_LOG(ERR, "config: %s", err);
		return -1;
	}
	if (!o->socket_set && cfg->control.socket[0])
		o->socket_path = cfg->control.socket;
	if (!o->group_set && cfg->control.socket_group[0] &&
	    parse_group(cfg->control.socket_group, &o->socket_gid) < 0) {
		MAIN_LOG(ERR, "config: [control] socket_group: no group %s", cfg->control.socket_group);
		return -1;
	}
	return check_config(cfg);
}

static struct xg_worker workers[RTE_MAX_LCORE];
static unsigned int nworkers;
static struct xg_stats *wstats;
static unsigned int dp_seq;
static struct xg_routes *routes;
static unsigned int wlcore[RTE_MAX_LCORE];   /* each worker's lcore, for telemetry */

/* Exception TAPs of the ports that ask for one: their port ids + 1. */
static int exc_port[XG_CFG_MAX_PORTS];

static bool
is_exception(uint16_t port)
{
	uint16_t p;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++)
		if (exc_port[p] == port + 1)
			return true;
	return false;
}

/* Workers and their rx queues: from the file, else every worker lcore
 * takes every port's queue 0 in turn. */
static uint16_t
plan_workers(const struct xg_config *cfg)
{
	unsigned int lcore, i, k = 0;
	uint16_t port, nrxq = 1;
	int q;

	if (cfg->nworkers) {
		for (i = 0; i < cfg->nworkers; i++) {
			workers[i].lcore = cfg->worker[i].lcore;
			workers[i].nrxq = cfg->worker[i].nrxq;
			memcpy(workers[i].rxq, cfg->worker[i].rxq, sizeof(workers[i].rxq));
			for (q = 0; q < workers[i].nrxq; q++)
				nrxq = RTE_MAX(nrxq, workers[i].rxq[q].queue + 1);
		}
		nworkers = cfg->nworkers;
	} else {
		RTE_LCORE_FOREACH_WORKER(lcore)
			workers[nworkers++].lcore = lcore;
		RTE_ETH_FOREACH_DEV(port) {
			struct xg_worker *w;

			if (nworkers == 0 || port >= XG_CFG_MAX_PORTS)
				break;
			if (is_exception(port))
				continue;
			w = &workers[k++ % nworkers];
			if (w->nrxq < XG_CFG_MAX_RXQ)
				w->rxq[w->nrxq++] = (struct xg_cfg_rxq){ .port = port, .queue = 0 };
		}
	}
	/* Exception TAPs, not in the configuration: worker i polls queue i
	 * of each (a TAP has as many rx queues as tx queues, one a worker). */
	for (port = 0; port < XG_CFG_MAX_PORTS; port++) {
		if (!exc_port[port])
			continue;
		for (i = 0; i < nworkers; i++)
			if (workers[i].nrxq < XG_CFG_MAX_RXQ)
				workers[i].rxq[workers[i].nrxq++] = (struct xg_cfg_rxq){
					.port = (uint16_t)(exc_port[port] - 1), .queue = (uint16_t)i };
	}
	return nrxq;
}

static int
make_exceptions(const struct xg_config *cfg)
{
	uint16_t p;
	int tap;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++) {
		if (!cfg->port[p].exception[0])
			continue;
		if (!rte_eth_dev_is_valid_port(p)) {
			MAIN_LOG(ERR, "[port %u] exception: no such port", p);
			return -ENODEV;
		}
		tap = xg_exception_create(p, cfg->port[p].exception);
		if (tap < 0 || tap >= XG_CFG_MAX_PORTS) {
			MAIN_LOG(ERR, "port %u: exception interface %s: %s", p,
				 cfg->port[p].exception, tap < 0 ? rte_strerror(-tap) : "too many ports");
			return -EINVAL;
		}
		exc_port[p] = tap + 1;
	}
	return 0;
}

/* The kernel side of each exception TAP gets its port's addresses; the
 * tables learn which TAP belongs to which port. */
static int
wire_exceptions(const struct xg_config *cfg, struct xg_routes *rt)
{
	uint16_t p;
	int rc;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++) {
		if (!exc_port[p])
			continue;
		rc = xg_exception_addrs(cfg->port[p].exception, cfg->port[p].addr,
					cfg->port[p].naddr);
		if (rc)
			return rc;
		rt->port[p].exc = (uint16_t)exc_port[p];
		rt->port[exc_port[p] - 1].exc_of = (uint16_t)(p + 1);
	}
	return 0;
}

/* Packets each worker's reassembly table may hold: together, with every
 * one of them at the most fragments rte_ip_frag keeps, no more than an
 * eighth of the pool, so that fragments sent never to be completed (they
 * wait 30 s) cannot take the buffers valid traffic needs. 16 to 512. */
static uint32_t
frag_budget(uint32_t pool_size)
{
	uint32_t n = pool_size / (8 * RTE_LIBRTE_IP_FRAG_MAX_FRAG * nworkers);

	if (n > 512)
		return 512;
	return n < 16 ? 16 : n;
}

static int
start_workers(void)
{
	size_t sz = rte_rcu_qsbr_get_memsize(nworkers);
	unsigned int i;

	xg_shared.qsbr = rte_zmalloc("xg_qsbr", sz, RTE_CACHE_LINE_SIZE);
	wstats = rte_zmalloc("xg_stats", sizeof(*wstats) * nworkers, RTE_CACHE_LINE_SIZE);
	if (xg_shared.qsbr == NULL || wstats == NULL ||
	    rte_rcu_qsbr_init(xg_shared.qsbr, nworkers))
		return -ENOMEM;
	for (i = 0; i < nworkers; i++) {
		char name[32];

		snprintf(name, sizeof(name), "xg_learn%u", i);
		workers[i].learn = rte_ring_create_elem(name, sizeof(struct xg_neigh_seen), 1024,
							SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "xg_acq%u", i);
		workers[i].acquire = rte_ring_create_elem(name, sizeof(struct xg_acq_req), 256,
							  SOCKET_ID_ANY,
							  RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "xg_map%u", i);
		workers[i].mapping = rte_ring_create_elem(name, sizeof(struct xg_map_req), 256,
							  SOCKET_ID_ANY,
							  RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (workers[i].learn == NULL || workers[i].acquire == NULL ||
		    workers[i].mapping == NULL)
			return -ENOMEM;
		workers[i].tid = i;
		workers[i].txq = (uint16_t)i;
		workers[i].frag_max = frag_budget(xg_shared.pool->size);
		workers[i].stats = &wstats[i];
		if (rte_eal_remote_launch(xg_worker_main, &workers[i], workers[i].lcore))
			return -EBUSY;
	}
	return 0;
}

/* Snapshots replaced but perhaps still read by a worker, oldest first. */
struct retired {
	struct xg_dp *dp;
	uint64_t token;
};
static struct retired retired[64];
static unsigned int nretired;

/* Free every retired snapshot all workers have moved past. Never blocks:
 * a stuck worker must not stop the control plane. */
static void
reclaim(bool wait)
{
	unsigned int i = 0, k;

	while (i < nretired && rte_rcu_qsbr_check(xg_shared.qsbr, retired[i].token, wait) == 1)
		xg_dp_free(retired[i++].dp);
	for (k = i; k < nretired; k++)
		retired[k - i] = retired[k];
	nretired -= i;
}

/* What /xfrmgw/dp shows: written by the control thread, read by the
 * telemetry thread, one relaxed word at a time (never the snapshot itself,
 * which the control thread may free meanwhile). */
enum { DPI_SAS, DPI_POLS, DPI_MODEL_SAS, DPI_MODEL_POLS, DPI_PENDING, DPI_BUILDS,
       DPI_LAST_US, DPI_MAX_US, DPI_MAX };
static uint64_t dpinfo[DPI_MAX];
static const char *const dpinfo_name[DPI_MAX] = {
	"sas", "policies", "model_sas", "model_policies", "pending", "builds",
	"last_build_us", "max_build_us",
};

static void
dpinfo_set(int k, uint64_t v)
{
	__atomic_store_n(&dpinfo[k], v, __ATOMIC_RELAXED);
}

static int
tel_dp(const char *cmd, const char *params, struct rte_tel_data *d)
{
	int k;

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	for (k = 0; k < DPI_MAX; k++)
		rte_tel_data_add_dict_u64(d, dpinfo_name[k],
					  __atomic_load_n(&dpinfo[k], __ATOMIC_RELAXED));
	return 0;
}

static void report_all(struct xg_server *srv, bool replay);

/* After the workers stopped: their rings hold plain structs (no mbufs).
 * The counter blocks stay: the telemetry thread may read them until the
 * process ends. */
static void
stop_workers(void)
{
	unsigned int i;

	for (i = 0; i < nworkers; i++) {
		rte_ring_free(workers[i].learn);
		rte_ring_free(workers[i].acquire);
		rte_ring_free(workers[i].mapping);
	}
	rte_free(xg_shared.qsbr);
	xg_shared.qsbr = NULL;
}

/* Debian's DPDK is not instrumented, so ASan cannot see an mbuf that was
 * never freed: once the ports are closed and the workers gone, every
 * mbuf must be back in the pool (the per-lcore caches count as back). */
static void
check_pool(const struct rte_mempool *mp)
{
	unsigned int n = rte_mempool_in_use_count(mp);

	if (n)
		MAIN_LOG(ERR, "%u mbufs not returned to pool %s", n, mp->name);
}

/* How long the last build took that kept the SPD (only SAs changed), and
 * the last one that compiled it. */
static uint64_t same_spd_us, new_spd_us;

/* Compile the model into a new snapshot and publish it; the old one is
 * freed once every worker has passed a quiescent state after this. The
 * workers' counters and sequence numbers go into the model first: an SA
 * whose runtime object is made anew starts from them. @p flags: those of
 * xg_dp_build_flags() (-EAGAIN, nothing published, when XG_DP_SAME_SPD
 * cannot be met). */
static int
publish_flags(struct xg_server *srv, unsigned int flags)
{
	struct xg_dp *old = xg_shared.dp, *dp;
	uint64_t t0 = rte_get_timer_cycles(), us;
	int err = 0;

	if (nworkers)
		report_all(srv, false);
	reclaim(false);
	if (nretired == RTE_DIM(retired))
		reclaim(true);
	dp = xg_dp_build_flags(xg_server_xfrm(srv), routes, old, ++dp_seq, flags, &err);
	if (dp == NULL) {
		if (err != -EAGAIN)
			MAIN_LOG(ERR, "data plane: tables not rebuilt: %s", strerror(-err));
		return err;
	}
	__atomic_store_n(&xg_shared.dp, dp, __ATOMIC_RELEASE);
	if (old) {
		retired[nretired].dp = old;
		retired[nretired++].token = rte_rcu_qsbr_start(xg_shared.qsbr);
	}
	us = (rte_get_timer_cycles() - t0) * 1000000 / rte_get_timer_hz();
	dpinfo_set(DPI_SAS, dp->nsas);
	dpinfo_set(DPI_POLS, dp->npols);
	dpinfo_set(DPI_BUILDS, dpinfo[DPI_BUILDS] + 1);
	dpinfo_set(DPI_LAST_US, us);
	if (old && dp->spd == old->spd)
		same_spd_us = us;
	else
		new_spd_us = us;
	if (us > dpinfo[DPI_MAX_US])
		dpinfo_set(DPI_MAX_US, us);
	MAIN_LOG(DEBUG, "data plane: %u SAs, %u policies (%lu us)", dp->nsas, dp->npols,
		 (unsigned long)us);
	return 0;
}

static int
publish(struct xg_server *srv)
{
	return publish_flags(srv, 0);
}

/* rte_telemetry runs this on its own thread: it reads only the per-worker
 * counter blocks, which live as long as the process. */
static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct xg_stats sum;
	int k;

	(void)cmd;
	(void)params;
	memset(&sum, 0, sizeof(sum));
	if (wstats)
		xg_stats_sum(wstats, nworkers, &sum);
	rte_tel_data_start_dict(d);
	for (k = 0; k < XG_STAT_MAX; k++)
		rte_tel_data_add_dict_u64(d, xg_stat_name((enum xg_stat)k), sum.c[k]);
	return 0;
}

/* /xfrmgw/lcore: each worker's poll loop (struct xg_lcore_load), read
 * while the worker writes it; each value is one 64-bit word.
 * "/xfrmgw/lcore,reset" restarts the longest round (a benchmark phase). */
static int
tel_lcore(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint64_t hz = rte_get_timer_hz();
	unsigned int i;

	(void)cmd;
	if (params && strcmp(params, "reset") == 0)
		__atomic_fetch_add(&xg_shared.load_reset, 1, __ATOMIC_RELAXED);
	rte_tel_data_start_dict(d);
	for (i = 0; i < nworkers; i++) {
		const struct xg_lcore_load *l = &workers[i].load;
		struct rte_tel_data *w = rte_tel_data_alloc();
		/* busy first: read after it, rounds cannot be smaller. */
		uint64_t busy = __atomic_load_n(&l->busy_rounds, __ATOMIC_ACQUIRE);
		uint64_t rounds = RTE_MAX(__atomic_load_n(&l->rounds, __ATOMIC_RELAXED), busy);
		uint64_t rx = wstats ? __atomic_load_n(&wstats[i].c[XG_STAT_RX_PACKETS],
						       __ATOMIC_RELAXED) : 0;
		char name[20];   /* "worker" and any unsigned int */

		if (w == NULL)
			return -ENOMEM;
		rte_tel_data_start_dict(w);
		rte_tel_data_add_dict_u64(w, "lcore", workers[i].lcore);
		rte_tel_data_add_dict_u64(w, "rounds", rounds);
		rte_tel_data_add_dict_u64(w, "busy_rounds", busy);
		rte_tel_data_add_dict_u64(w, "idle_rounds", rounds - busy);
		rte_tel_data_add_dict_u64(w, "busy_ratio_ppm", rounds ? busy * 1000000 / rounds : 0);
		rte_tel_data_add_dict_u64(w, "busy_cycles",
					  __atomic_load_n(&l->busy_cycles, __ATOMIC_RELAXED));
		rte_tel_data_add_dict_u64(w, "rx_packets", rx);
		rte_tel_data_add_dict_u64(w, "packets_per_busy_round_x100",
					  busy ? rx * 100 / busy : 0);
		rte_tel_data_add_dict_u64(w, "max_stall_us",
					  __atomic_load_n(&l->max_round_cycles, __ATOMIC_RELAXED) *
					  1000000 / hz);
		snprintf(name, sizeof(name), "worker%u", i);
		rte_tel_data_add_dict_container(d, name, w, 0);
	}
	return 0;
}

/* /xfrmgw/pool: the packet buffers free and in use (rte_mempool's own
 * telemetry in 22.11 shows the pool's size only). A count that does not
 * return to the size once traffic stopped is a leak. */
static int
tel_pool(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const struct rte_mempool *mp = xg_shared.pool;

	(void)cmd;
	(void)params;
	if (mp == NULL)
		return -ENODEV;
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "size", mp->size);
	rte_tel_data_add_dict_u64(d, "avail", rte_mempool_avail_count(mp));
	rte_tel_data_add_dict_u64(d, "in_use", rte_mempool_in_use_count(mp));
	return 0;
}

/* The ports' own drop counters, which the workers cannot see: rx_nombuf
 * (the PMD found the pool empty), imissed, ierrors and oerrors. */
static void
log_port_drops(void)
{
	struct rte_eth_stats st;
	uint16_t port;

	RTE_ETH_FOREACH_DEV(port) {
		if (rte_eth_stats_get(port, &st))
			continue;
		MAIN_LOG(INFO, "port %u: rx %lu tx %lu rx_nombuf %lu imissed %lu ierrors %lu "
			 "oerrors %lu", port, (unsigned long)st.ipackets, (unsigned long)st.opackets,
			 (unsigned long)st.rx_nombuf, (unsigned long)st.imissed,
			 (unsigned long)st.ierrors, (unsigned long)st.oerrors);
	}
}

static void
log_counters(void)
{
	struct xg_stats sum;
	int k;

	if (nworkers == 0 || wstats == NULL)
		return;
	for (unsigned int i = 0; i < nworkers; i++)
		MAIN_LOG(INFO, "worker %u (lcore %u): %lu packets received", i, workers[i].lcore,
			 (unsigned long)wstats[i].c[XG_STAT_RX_PACKETS]);
	xg_stats_sum(wstats, nworkers, &sum);
	for (k = 0; k < XG_STAT_MAX; k++)
		if (sum.c[k])
			MAIN_LOG(INFO, "counter %-24s\t%lu", xg_stat_name((enum xg_stat)k),
				 (unsigned long)sum.c[k]);
}

/* One report of the workers' counters; receivers' replay windows go
 * with it once a second only (they are up to 4096 bits each), not before
 * every request. */
struct report {
	const struct xg_dp *dp;
	bool replay;
};

static void
report_one(void *arg, uint64_t uid, struct xg_sa_use *u)
{
	const struct report *r = arg;
	struct xg_sa_rt *rt = xg_dp_sa_by_uid(r->dp, uid);
	uint64_t v;

	if (rt == NULL)
		return;
	v = __atomic_load_n(&rt->packets, __ATOMIC_RELAXED);
	u->packets = v - rt->rep_packets;
	rt->rep_packets = v;
	v = __atomic_load_n(&rt->bytes, __ATOMIC_RELAXED);
	u->bytes = v - rt->rep_bytes;
	rt->rep_bytes = v;
	v = __atomic_load_n(&rt->replay_fail, __ATOMIC_RELAXED);
	u->replay = (uint32_t)(v - rt->rep_replay);
	rt->rep_replay = v;
	v = __atomic_load_n(&rt->integrity_fail, __ATOMIC_RELAXED);
	u->integrity_failed = (uint32_t)(v - rt->rep_integrity);
	rt->rep_integrity = v;
	for (unsigned int k = 0; k < XG_SA_NDROPS; k++) {
		v = __atomic_load_n(&rt->drops[k], __ATOMIC_RELAXED);
		u->drops[k] = v - rt->rep_drops[k];
		rt->rep_drops[k] = v;
	}
	u->workers = __atomic_load_n(&rt->workers, __ATOMIC_RELAXED);
	if (!rt->inbound)
		u->oseq = __atomic_load_n(&rt->esp.seq, __ATOMIC_RELAXED);
	else if (r->replay && u->packets && rt->esp.replay.window) {
		u->iseq = __atomic_load_n(&rt->esp.replay.top, __ATOMIC_RELAXED);
		xg_replay_export(&rt->esp.replay, u->seen);
	}
	if (u->packets)
		u->use_time = (uint64_t)time(NULL);
}

/* What the workers counted goes into the SAs, where GETSA (ip -s xfrm
 * state) reads it. */
static void
report_all(struct xg_server *srv, bool replay)
{
	struct report r = { .dp = xg_shared.dp, .replay = replay };

	if (r.dp)
		xg_xfrm_report_use(xg_server_xfrm(srv), report_one, &r);
}

/* Before the model changes (the prelude of every datagram of requests). */
static void
report_use(void *arg)
{
	report_all(arg, false);
}

/* Neighbours the workers saw go into the learnt table (one writer). */
static void
learn_neighbours(void)
{
	struct xg_neigh_seen seen[64];
	unsigned int i, n, k;

	for (i = 0; i < nworkers; i++) {
		n = rte_ring_sc_dequeue_burst_elem(workers[i].learn, seen, sizeof(seen[0]),
						   RTE_DIM(seen), NULL);
		for (k = 0; k < n; k++)
			xg_dp_learn(routes, &seen[k]);
	}
}

/* When the workers last saw each policy match (charon's DPD and
 * inactivity checks read it from GETPOLICY). */
static void
report_policy_use(struct xg_xfrm *x)
{
	const struct xg_dp *dp = xg_shared.dp;
	uint32_t i;

	for (i = 0; dp && i < dp->npols; i++) {
		uint64_t t = __atomic_load_n(&dp->pols[i].use_time, __ATOMIC_RELAXED);

		if (t)
			xg_xfrm_policy_used(x, dp->pols[i].index, t);
	}
}

/* Once a second: the workers' counters into the model, then lifetimes
 * (soft and hard EXPIRE; a hard one deletes the SA, and the loop then
 * publishes tables without it). */
static void
second_tick(struct xg_server *srv)
{
	struct xg_xfrm *x = xg_server_xfrm(srv);
	uint64_t now = (uint64_t)time(NULL);
	unsigned int n;
	int rc;

	__atomic_store_n(&xg_shared.now, now, __ATOMIC_RELAXED);
	if (nworkers) {
		report_all(srv, true);
		report_policy_use(x);
	}
	xg_ports_watch();
	rc = xg_server_check_path(srv);
	if (rc)
		MAIN_LOG(WARNING, "XFRM socket file was removed: %s", rc > 0 ? "recreated" :
			 strerror(-rc));
	n = xg_xfrm_tick(x, now);
	if (n)
		MAIN_LOG(INFO, "%u SAs/policies reached a hard lifetime and were deleted", n);
}

/* Outbound packets without an SA: ACQUIRE as xfrm_state_find() does. The
 * source towards a tunnel's far end is the address of the port the route
 * to it leaves by. */
static void
acquire_sas(struct xg_server *srv)
{
	const struct xg_dp *dp = xg_shared.dp;
	struct xg_acq_req req[32];
	unsigned int i, n, k;

	for (i = 0; i < nworkers; i++) {
		n = rte_ring_sc_dequeue_burst_elem(workers[i].acquire, req, sizeof(req[0]),
						   RTE_DIM(req), NULL);
		for (k = 0; k < n; k++) {
			const struct xg_acq_req *r = &req[k];
			const struct xg_cfg_prefix *own = NULL;
			const struct xg_dp_nh *nh;
			xfrm_address_t local;
			struct xg_flow f;

			memset(&f, 0, sizeof(f));
			memset(&local, 0, sizeof(local));
			f.family = r->family;
			f.proto = r->proto;
			f.sport = r->sport;
			f.dport = r->dport;
			memcpy(&f.saddr, r->saddr, sizeof(f.saddr));
			memcpy(&f.daddr, r->daddr, sizeof(f.daddr));
			nh = dp ? xg_dp_route(dp->rt, r->tmpl_family, r->tmpl_daddr) : NULL;
			if (nh)
				own = xg_dp_port_addr(dp->rt, nh->port, r->tmpl_family);
			if (own && own->family == AF_INET)
				memcpy(&local, &own->v4, 4);
			else if (own)
				memcpy(&local, own->v6.s6_addr, 16);
			xg_xfrm_acquire(xg_server_xfrm(srv), r->index, &f, &local);
		}
	}
}

/* NAT-T peers seen at a new outer address or port: XFRM_MSG_MAPPING. */
static void
report_mappings(struct xg_server *srv)
{
	struct xg_map_req req[32];
	unsigned int i, n, k;

	for (i = 0; i < nworkers; i++) {
		n = rte_ring_sc_dequeue_burst_elem(workers[i].mapping, req, sizeof(req[0]),
						   RTE_DIM(req), NULL);
		for (k = 0; k < n; k++) {
			xfrm_address_t a;

			memset(&a, 0, sizeof(a));
			memcpy(&a, req[k].saddr, req[k].family == AF_INET ? 4 : 16);
			xg_xfrm_mapping(xg_server_xfrm(srv), req[k].uid, &a, req[k].sport,
					(uint64_t)time(NULL));
		}
	}
}

static void
dpinfo_update(struct xg_server *srv)
{
	const struct xg_xfrm *x = xg_server_xfrm(srv);
	uint32_t nsa, npol;

	xg_xfrm_counts(x, &nsa, &npol);
	dpinfo_set(DPI_MODEL_SAS, nsa);
	dpinfo_set(DPI_MODEL_POLS, npol);
	dpinfo_set(DPI_PENDING, xg_shared.dp && xg_xfrm_generation(x) != xg_shared.dp->generation);
}

/* Publish when the model changed: after every poll round while builds
 * are quick, so that what a request installed is in the data plane
 * moments after its ACK, as in the kernel (a rekey's new SA must carry the
 * peer's next packet). With big tables (100 000 SAs arriving in batches),
 * at most every three times the last build's duration, the control thread
 * keeping most of its time for requests (and never more often than every
 * PUBLISH_MS: mid-sized builds add up too), and at once when a poll round
 * brings no change: a burst costs a few builds, not one per round. */
#define PUBLISH_EAGER_US 2000
/* Builds that keep the SPD go first up to this long when compiling the
 * SPD takes eight times as long or more (a big SPD, a small SAD). */
#define PUBLISH_SAME_SPD_US 20000
#define PUBLISH_MS 150

static void
maybe_publish(struct xg_server *srv)
{
	static uint64_t next_publish, last_gen;
	uint64_t gen = xg_xfrm_generation(xg_server_xfrm(srv)), now, hz = rte_get_timer_hz();
	bool quiet = gen == last_gen;

	last_gen = gen;
	if (!nworkers || xg_shared.dp == NULL || gen == xg_shared.dp->generation)
		return;
	now = rte_get_timer_cycles();
	if (!quiet && now < next_publish)
		return;
	publish(srv);
	next_publish = dpinfo[DPI_LAST_US] < PUBLISH_EAGER_US ? 0 :
		       rte_get_timer_cycles() + RTE_MAX(hz * PUBLISH_MS / 1000,
							3 * dpinfo[DPI_LAST_US] * hz / 1000000);
}

/* Before the answers to a request that changed the model go out: while
 * builds are quick, the data plane gets the change first, so that an SA is
 * in use by the time its ACK reaches the IKE daemon, as in the kernel (the
 * peer may send on a rekey's new SA right after). Behind a big SPD, whose
 * compilation is slow, a change of SAs alone still goes first when builds
 * that keep the SPD are quick: rekeys do not wait for the coalescing of
 * maybe_publish(), which big SADs and policy changes keep. */
static void
publish_before_reply(void *arg)
{
	struct xg_server *srv = arg;

	if (xg_shared.dp == NULL)
		return;
	if (dpinfo[DPI_LAST_US] < PUBLISH_EAGER_US)
		publish(srv);
	else if ((same_spd_us < PUBLISH_EAGER_US ||
		  (same_spd_us < PUBLISH_SAME_SPD_US && 8 * same_spd_us <= new_spd_us)) &&
		 xg_xfrm_policy_generation(xg_server_xfrm(srv)) == xg_shared.dp->pol_generation)
		publish_flags(srv, XG_DP_SAME_SPD);
}

/* rte_hash tables, rings and mempools live in memzones, which neither
 * ASan nor the pool check sees: once everything is freed, none of ours
 * may be left (names: "HT_xg_sad3", "RG_xg_learn0", "MP_xg_mbuf", ...). */
static void
memzone_left(const struct rte_memzone *mz, void *arg)
{
	(void)arg;
	if (strstr(mz->name, "xg_"))
		MAIN_LOG(ERR, "memzone %s not freed at exit", mz->name);
}

static int
control_loop(struct xg_server *srv, const struct options *o)
{
	uint64_t deadline = 0, hz = rte_get_timer_hz(), next_tick = 0;
	int rc = 0;

	if (o->run_seconds)
		deadline = rte_get_timer_cycles() + hz * o->run_seconds;
	if (nworkers) {
		xg_xfrm_set_prelude(xg_server_xfrm(srv), report_use, srv);
		xg_server_set_before_reply(srv, publish_before_reply, srv);
	}
	while (!stop && rc == 0) {
		rc = xg_server_poll(srv, 10);
		if (rte_get_timer_cycles() >= next_tick) {
			second_tick(srv);
			next_tick = rte_get_timer_cycles() + hz;
		}
		maybe_publish(srv);
		dpinfo_update(srv);
		xg_tel_serve();
		fflush(stdout);
		if (nretired)
			reclaim(false);
		if (nworkers) {
			learn_neighbours();
			acquire_sas(srv);
			report_mappings(srv);
		}
		if (deadline && rte_get_timer_cycles() >= deadline)
			break;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	static struct xg_config cfg;
	struct rte_mempool *pool;
	struct xg_server *srv;
	struct options o;
	uint32_t nsa, npol;
	uint16_t nrxq;
	int n, err, rc = 0;

	n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "xfrmgw: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argv[n] = argv[0];
	/* From here on, log lines go to stdout only (the journal under
	 * systemd), not also to syslog as DPDK 22.11's default stream does,
	 * which doubled every line in the journal and, without a syslog
	 * daemon, cost a failed connect per line. Buffered, and flushed by
	 * the control loop after every poll round (10 ms at most): with one
	 * INFO line per SA or policy change, a write per line cost a third
	 * of the install rate of a bulk load (docs/logging.md). */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	rte_openlog_stream(stdout);
	if (parse_options(argc - n, argv + n, &o) < 0) {
		rte_eal_cleanup();
		return 2;
	}
	if (load_config(&o, &cfg) < 0) {
		rte_eal_cleanup();
		return 2;
	}
	/* dpdk-dumpcap / dpdk-pdump attach as secondary processes: they need
	 * the shared configuration (no --no-shconf) and hugepages. */
	if (rte_pdump_init())
		MAIN_LOG(INFO, "packet capture unavailable (dpdk-dumpcap needs hugepages and no "
			 "--no-shconf): %s", rte_strerror(rte_errno));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	pool = rte_pktmbuf_pool_create("xg_mbuf", o.mbufs, MBUF_CACHE, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
	if (pool == NULL) {
		MAIN_LOG(ERR, "mbuf pool: %s", rte_strerror(rte_errno));
		rc = 1;
		goto out_eal;
	}
	xg_shared.pool = pool;
	if (make_exceptions(&cfg)) {
		rc = 1;
		goto out_pool;
	}
	nrxq = plan_workers(&cfg);
	n = xg_ports_init(pool, nrxq, (uint16_t)RTE_MAX(nworkers, 1u));
	if (n < 0) {
		rc = 1;
		goto out_pool;
	}
	if (nworkers && xg_crypto_init((int)rte_socket_id(), (uint16_t)rte_lcore_count())) {
		MAIN_LOG(ERR, "crypto device crypto_aesni_mb: unavailable");
		rc = 1;
		goto out_ports;
	}
	srv = xg_server_create_group(o.socket_path, o.socket_gid);
	if (srv == NULL) {
		MAIN_LOG(ERR, "XFRM socket %s: %s", o.socket_path, strerror(errno));
		rc = 1;
		goto out_ports;
	}
	xg_server_set_observer(srv, xg_log_observe, NULL);
	xg_log_init();
	rte_telemetry_register_cmd("/xfrmgw/stats", tel_stats,
				   "Data-plane counters (Linux XFRM MIB names, then xfrmgw's own)");
	rte_telemetry_register_cmd("/xfrmgw/lcore", tel_lcore,
				   "Workers: poll rounds, busy rounds and cycles, longest round (max_stall_us)");
	rte_telemetry_register_cmd("/xfrmgw/pool", tel_pool,
				   "Packet buffers: size, avail, in_use");
	rte_telemetry_register_cmd("/xfrmgw/dp", tel_dp,
				   "Published snapshot: SAs, policies, builds and their duration");
	if (nworkers && ((routes = xg_routes_build(&cfg, &err)) == NULL ||
			 wire_exceptions(&cfg, routes) || publish(srv) || start_workers())) {
		MAIN_LOG(ERR, "data plane: cannot start the workers");
		xg_shared.stop = 1;
		rc = 1;
	}
	for (unsigned int i = 0; i < nworkers; i++)
		wlcore[i] = workers[i].lcore;
	xg_tel_init(&(struct xg_tel_ctx){ .srv = srv, .routes = (const struct xg_routes *const *)&routes,
					  .lcore = wlcore, .nworkers = nworkers,
					  .report = nworkers ? report_use : NULL, .report_arg = srv });
	MAIN_LOG(INFO, "%d port(s), %u worker(s)%s, XFRM socket %s", n, nworkers,
		 nworkers ? "" : " (control plane only)", o.socket_path);
	if (nworkers && rc == 0)
		MAIN_LOG(INFO, "%u mbufs; each worker reassembles up to %u packets", pool->size,
			 workers[0].frag_max);
	if (rc == 0) {
		/* The socket serves and the data plane runs: an IKE daemon
		 * ordered after us (systemd) may start. */
		notify("READY=1");
		rc = control_loop(srv, &o) ? 1 : 0;
		notify("STOPPING=1");
	}
	xg_shared.stop = 1;
	rte_eal_mp_wait_lcore();
	log_counters();
	log_port_drops();
	/* The workers are gone: nothing reads the retired snapshots. Oldest
	 * first, as a newer snapshot may own SA objects an older one lists. */
	for (unsigned int i = 0; i < nretired; i++)
		xg_dp_free(retired[i].dp);
	nretired = 0;
	xg_dp_free(xg_shared.dp);
	xg_shared.dp = NULL;
	xg_esp_thread_fini();
	xg_routes_free(routes);
	xg_xfrm_counts(xg_server_xfrm(srv), &nsa, &npol);
	MAIN_LOG(INFO, "stopping: %u SAs, %u policies dropped", nsa, npol);
	xg_server_destroy(srv);
out_ports:
	xg_ports_close();
	xg_crypto_fini();
	stop_workers();
out_pool:
	check_pool(pool);
	rte_mempool_free(pool);
	rte_memzone_walk(memzone_left, NULL);
out_eal:
	rte_pdump_uninit();
	rte_eal_cleanup();
	return rc;
}
