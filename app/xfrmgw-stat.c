/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * xfrmgw-stat: a running gateway's counters as /proc/net/xfrm_stat text
 * (the Linux XFRM MIB, the kernel's names, order and format), read from
 * its rte_telemetry socket (/xfrmgw/stats); -a adds xfrmgw's own counters.
 *
 *   xfrmgw-stat [-a] [--file-prefix PREFIX | --socket PATH]
 *
 * Exit status: 0, 1 when the gateway cannot be reached or answers
 * something else, 2 on bad usage.
 */

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "xg_stats.h"

#define CMD "/xfrmgw/stats"

static void
usage(FILE *f, const char *prog)
{
	fprintf(f, "Usage: %s [-a] [--file-prefix PREFIX | --socket PATH]\n"
		"  -a, --all            also xfrmgw's own counters (Xg*) after the XFRM MIB\n"
		"  -p, --file-prefix P  the gateway's EAL --file-prefix (default rte)\n"
		"  -s, --socket PATH    its telemetry socket (default\n"
		"                       /var/run/dpdk/PREFIX/dpdk_telemetry.v2)\n",
		prog);
}

/* DPDK's runtime directory for @p prefix (eal_get_runtime_dir()). */
static void
default_socket(const char *prefix, char *buf, size_t cap)
{
	const char *dir = "/var/run";
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (getuid() != 0)
		dir = xdg ? xdg : "/tmp";
	snprintf(buf, cap, "%s/dpdk/%s/dpdk_telemetry.v2", dir, prefix);
}

static int
ask(const char *path, char *reply, size_t cap)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	ssize_t n;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "xfrmgw-stat: %s: path too long\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "xfrmgw-stat: %s: %s (is xfrmgw running with this --file-prefix?)\n",
			path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	/* The greeting ({"version": ..., "max_output_len": ...}), then ours. */
	n = recv(fd, reply, cap - 1, 0);
	if (n > 0 && send(fd, CMD, strlen(CMD), 0) == (ssize_t)strlen(CMD))
		n = recv(fd, reply, cap - 1, 0);
	else
		n = -1;
	close(fd);
	if (n <= 0) {
		fprintf(stderr, "xfrmgw-stat: %s: no answer\n", path);
		return -1;
	}
	reply[n] = 0;
	return 0;
}

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* {"/xfrmgw/stats": {"Name": N, ...}}: every known name into @p s.
 * @return the number of counters found, or -1 when the text is not that. */
static int
parse(const char *text, struct xg_stats *s)
{
	const char *p = strstr(text, "\"" CMD "\"");
	int found = 0;

	if (p == NULL)
		return -1;
	p = skip_ws(p + strlen(CMD) + 2);
	if (*p++ != ':')
		return -1;
	p = skip_ws(p);
	if (*p++ != '{')
		return -1;
	for (;;) {
		const char *name, *end;
		unsigned long long v;
		char *num;
		int k;

		p = skip_ws(p);
		if (*p == '}')
			return found;
		if (*p++ != '"')
			return -1;
		name = p;
		end = strchr(p, '"');
		if (end == NULL)
			return -1;
		p = skip_ws(end + 1);
		if (*p++ != ':')
			return -1;
		p = skip_ws(p);
		if (*p < '0' || *p > '9')
			return -1;
		errno = 0;
		v = strtoull(p, &num, 10);
		if (errno)
			return -1;
		p = skip_ws(num);
		for (k = 0; k < XG_STAT_MAX; k++) {
			const char *n = xg_stat_name((enum xg_stat)k);

			if (strlen(n) == (size_t)(end - name) && memcmp(n, name, end - name) == 0) {
				s->c[k] = v;
				found++;
				break;
			}
		}
		if (*p == ',')
			p++;
		else if (*p != '}')
			return -1;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "file-prefix", required_argument, NULL, 'p' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char reply[1 << 16], out[1 << 14];
	const char *prefix = "rte", *path = NULL;
	char sock[4096];
	struct xg_stats s;
	int c, all = 0, n;

	while ((c = getopt_long(argc, argv, "ap:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = 1;
			break;
		case 'p':
			prefix = optarg;
			break;
		case 's':
			path = optarg;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (optind < argc || strchr(prefix, '/')) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (path == NULL) {
		default_socket(prefix, sock, sizeof(sock));
		path = sock;
	}
	if (ask(path, reply, sizeof(reply)))
		return 1;
	memset(&s, 0, sizeof(s));
	n = parse(reply, &s);
	if (n <= 0) {
		fprintf(stderr, "xfrmgw-stat: %s: not an xfrmgw counter reply: %.80s\n", path, reply);
		return 1;
	}
	n = xg_stats_format(&s, all, out, sizeof(out));
	if (n < 0 || (size_t)n >= sizeof(out))
		return 1;
	fputs(out, stdout);
	return 0;
}
