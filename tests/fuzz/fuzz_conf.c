/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: the configuration file parser (lib/conf/config.c,
 * with rte_cfgfile underneath) on arbitrary file contents, written to a
 * memfd and opened by its /proc path as xfrmgw opens --config FILE.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "xg_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xg_config cfg;

/* What a successful load promises its callers (main.c indexes arrays
 * with these without checking again). */
static void
check(const struct xg_config *c)
{
	unsigned int i, k;

	if (c->nroutes > XG_CFG_MAX_ROUTES || c->nneigh > XG_CFG_MAX_NEIGH ||
	    c->nworkers > XG_CFG_MAX_WORKERS)
		abort();
	for (i = 0; i < XG_CFG_MAX_PORTS; i++) {
		if (c->port[i].naddr > XG_CFG_MAX_ADDRS ||
		    memchr(c->port[i].exception, 0, sizeof(c->port[i].exception)) == NULL)
			abort();
		for (k = 0; k < c->port[i].naddr; k++) {
			const struct xg_cfg_prefix *a = &c->port[i].addr[k];

			if (a->plen > (a->family == AF_INET ? 32 : 128))
				abort();
		}
	}
	for (i = 0; i < c->nroutes; i++)
		if (c->route[i].port >= XG_CFG_MAX_PORTS)
			abort();
	for (i = 0; i < c->nneigh; i++)
		if (c->neigh[i].port >= XG_CFG_MAX_PORTS)
			abort();
	for (i = 0; i < c->nworkers; i++)
		if (c->worker[i].nrxq > XG_CFG_MAX_RXQ)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64], err[256];
	char *s;

	if (fd < 0) {
		fd = memfd_create("fuzz_conf", 0);
		if (fd < 0)
			abort();
	}
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	memset(err, 0x55, sizeof(err));
	if (xg_config_load(path, &cfg, err, sizeof(err)) == 0)
		check(&cfg);
	else if (memchr(err, 0, sizeof(err)) == NULL)
		abort();
	/* The prefix parser alone, on an exact-size string. */
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	{
		struct xg_cfg_prefix p;

		if (xg_cfg_parse_prefix(s, &p) == 0 && p.plen > (p.family == AF_INET ? 32 : 128))
			abort();
	}
	free(s);
	return 0;
}
