/* SPDX-License-Identifier: BSD-3-Clause */
/* The configuration file parser: the shipped example, and each error. */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xg_config.h"

#include "check.h"

static struct xg_config cfg;
static char err[256];

static int
load_text(const char *text)
{
	char path[] = "/tmp/xg-config-XXXXXX";
	int fd = mkstemp(path), rc;

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return -EIO;
	close(fd);
	err[0] = '\0';
	rc = xg_config_load(path, &cfg, err, sizeof(err));
	unlink(path);
	return rc;
}

static void
test_example(const char *path)
{
	struct in_addr a;

	CHECK(xg_config_load(path, &cfg, err, sizeof(err)) == 0);
	CHECK(cfg.port[0].present && cfg.port[0].naddr == 2 && cfg.port[0].mtu == 1500);
	inet_pton(AF_INET, "192.0.2.1", &a);
	CHECK(cfg.port[0].addr[0].family == AF_INET && cfg.port[0].addr[0].plen == 24 &&
	      cfg.port[0].addr[0].v4.s_addr == a.s_addr);
	CHECK(cfg.port[0].addr[1].family == AF_INET6 && cfg.port[0].addr[1].plen == 64);
	CHECK(cfg.port[1].present && !cfg.port[2].present);
	CHECK(strcmp(cfg.port[1].exception, "xg-wan") == 0 && cfg.port[0].exception[0] == 0);
	CHECK(cfg.nroutes == 2 && cfg.nneigh == 1 && cfg.nworkers == 2);
	CHECK(cfg.neigh[0].mac[0] == 0x02 && cfg.neigh[0].mac[5] == 0xfe && cfg.neigh[0].port == 0);
	CHECK(cfg.worker[1].lcore == 2 && cfg.worker[1].nrxq == 2 &&
	      cfg.worker[1].rxq[1].port == 1 && cfg.worker[1].rxq[1].queue == 1);
}

static const struct {
	const char *text;
	int rc;
	const char *msg;   /* a part of the error text */
} bad[] = {
	{ "[port 0]\nipv4 = 192.0.2.300/24\n", -EINVAL, "[port 0] ipv4" },
	{ "[port 0]\nipv4 = 2001:db8::1/64\n", -EINVAL, "not an IPv4" },
	{ "[port 0]\nipv4 = 192.0.2.1/33\n", -EINVAL, "192.0.2.1/33" },
	{ "[port 0]\nmtu = 100\n", -EINVAL, "576..9600" },
	{ "[port 0]\nexception = sixteen-chars-xx\n", -EINVAL, "not an interface name" },
	{ "[port 0]\nexception = a/b\n", -EINVAL, "not an interface name" },
	{ "[port 0]\naddress = 192.0.2.1/24\n", -EINVAL, "unknown key 'address'" },
	{ "[port 99]\n", -EINVAL, "port number" },
	{ "[porta 0]\n", -EINVAL, "unknown section" },
	{ "[route r]\nprefix = 10.0.0.0/8\n", -EINVAL, "'prefix' and 'port' are required" },
	{ "[route r]\nprefix = 10.0.0.0/8\nvia = 2001:db8::1\nport = 0\n", -EINVAL,
	  "different families" },
	{ "[route r]\nprefix = 10.0.0.0/8\nvia = 10.0.0.1/8\nport = 0\n", -EINVAL, "via" },
	{ "[neighbour n]\naddress = 10.0.0.1\nmac = 02:00:00:00:00\nport = 0\n", -EINVAL, "mac" },
	{ "[neighbour n]\naddress = 10.0.0.1\nport = 0\n", -EINVAL, "required" },
	{ "[worker 1]\nrx = 0:0 0-1\n", -EINVAL, "PORT:QUEUE" },
	{ "[worker 1]\nrx = 0:0\n[worker 2]\nrx = 0:0\n", -EINVAL, "polled by another worker" },
	{ "[worker x]\nrx = 0:0\n", -EINVAL, "lcore id" },
	{ "this is not ini\n", -EINVAL, ":1: expected KEY = VALUE" },
	{ "[port 0]\n; fine\nipv4\n", -EINVAL, ":3: expected KEY = VALUE" },
	{ "[port 0]\nipv4 =   \n", -EINVAL, ":2: expected KEY = VALUE" },
	{ "[port 0\n", -EINVAL, ":1: unterminated section header" },
	{ "[control]\nsocket = run/x.sock\n", -EINVAL, "[control] socket: an absolute path" },
	{ "[control]\nsocket_group = a b\n", -EINVAL, "socket_group: not a group" },
	{ "[control]\nsock = /x\n", -EINVAL, "unknown key sock" },
};

int
main(int argc, char **argv)
{
	size_t i;

	if (argc > 1)
		test_example(argv[1]);
	CHECK(load_text("") == 0 && cfg.nroutes == 0 && !cfg.port[0].present);
	CHECK(load_text("[route d6]\nprefix = default6\nport = 1\n") == 0 &&
	      cfg.route[0].dst.family == AF_INET6 && cfg.route[0].dst.plen == 0 &&
	      !cfg.route[0].has_via);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = load_text(bad[i].text);

		CHECK(rc == bad[i].rc);
		if (strstr(err, bad[i].msg) == NULL) {
			failures++;
			fprintf(stderr, "case %zu: error '%s' lacks '%s'\n", i, err, bad[i].msg);
		}
	}
	CHECK(load_text("[control]\nsocket = /run/xfrmgw/a.sock\nsocket_group = ipsec\n") == 0 &&
	      strcmp(cfg.control.socket, "/run/xfrmgw/a.sock") == 0 &&
	      strcmp(cfg.control.socket_group, "ipsec") == 0);
	CHECK(xg_config_load("/nonexistent/x.conf", &cfg, err, sizeof(err)) == -ENOENT);
	return CHECK_REPORT();
}
