/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control socket I/O. One datagram in, handled to completion, replies queued
 * per client; a client's next request is read only once its dump is over and
 * its queue is short, which keeps each client's answers in request order and
 * bounds the memory a client can make the daemon hold.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "xg_nl.h"
#include "xg_server.h"
#include "xg_wire.h"
#include "xg_xfrm.h"

#define RX_MAX (256 * 1024)           /* largest request datagram accepted */
#define QUEUE_READ_LIMIT (64 * 1024)  /* stop reading requests above this */
#define QUEUE_EVENT_LIMIT (1024 * 1024) /* drop events above this */
#define MAX_EVENTS 32

struct qmsg {
	struct qmsg *next;
	size_t len;
	uint8_t data[];   /* xg_wire_hdr + netlink message */
};

struct client {
	struct client *next;
	struct xg_server *srv;
	int fd;
	bool privileged;
	bool dead;
	struct xg_xfrm_peer peer;
	uint32_t groups;
	struct qmsg *qhead, **qtail;
	size_t qbytes;
	struct xg_xfrm_dump *dump;
	uint32_t epmask;
	int pid;          /* SO_PEERCRED at connect, 0 unknown */
};

struct xg_server {
	int lfd;
	int epfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;   /* the socket file bind() made: removed or replaced */
	ino_t ino;   /* by someone else, it is no longer ours to unlink */
	gid_t gid;   /* the group admitted besides root and our euid, or -1 */
	struct xg_xfrm *x;
	struct client *clients;
	struct xg_server_stats st;
	void (*before_reply)(void *arg);
	void *before_reply_arg;
	void (*observe)(void *arg, enum xg_server_seen what, int pid, const void *msg, size_t len);
	void *observe_arg;
	struct client *cur;   /* whose request is being handled */
	uint8_t rx[RX_MAX];
};

static int
queue_msg(struct client *c, uint32_t group, const void *msg, size_t len)
{
	struct xg_wire_hdr h = { .magic = XG_WIRE_HDR_MAGIC, .group = group };
	struct qmsg *q = malloc(sizeof(*q) + sizeof(h) + len);

	if (q == NULL)
		return -ENOMEM;
	q->next = NULL;
	q->len = sizeof(h) + len;
	memcpy(q->data, &h, sizeof(h));
	memcpy(q->data + sizeof(h), msg, len);
	*c->qtail = q;
	c->qtail = &q->next;
	c->qbytes += q->len;
	return 0;
}

static void
free_msg(struct qmsg *q)
{
	/* Replies can carry SA keys (GETSA, dumps, echoed NEWSA errors). */
	explicit_bzero(q->data, q->len);
	free(q);
}

/* Send what the socket takes now. Returns false when the client is gone. */
static bool
flush_queue(struct client *c)
{
	while (c->qhead) {
		struct qmsg *q = c->qhead;
		ssize_t n = send(c->fd, q->data, q->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return true;
			if (errno == EINTR)
				continue;
			return false;
		}
		c->qhead = q->next;
		if (c->qhead == NULL)
			c->qtail = &c->qhead;
		c->qbytes -= q->len;
		free_msg(q);
	}
	return true;
}

static void
on_unicast(void *opaque, const void *msg, size_t len)
{
	struct client *c = opaque;
	const struct nlmsghdr *h = msg;

	if (c->srv->observe && len >= NLMSG_LENGTH(sizeof(int)) && h->nlmsg_type == NLMSG_ERROR &&
	    *(const int *)((const char *)msg + NLMSG_HDRLEN) != 0)
		c->srv->observe(c->srv->observe_arg, XG_SEEN_ERROR, c->pid, msg, len);
	if (queue_msg(c, 0, msg, len))
		c->dead = true;
}

static void
on_multicast(void *ctx, uint32_t group, const void *msg, size_t len)
{
	struct xg_server *s = ctx;
	struct client *c;

	if (s->observe)
		s->observe(s->observe_arg, XG_SEEN_EVENT, s->cur ? s->cur->pid : 0, msg, len);
	for (c = s->clients; c; c = c->next) {
		if (!(c->groups & group) || c->dead)
			continue;
		/* A subscriber that does not read loses events, never blocks
		 * the daemon: netlink reports this as ENOBUFS. */
		if (c->qbytes > QUEUE_EVENT_LIMIT || queue_msg(c, group, msg, len)) {
			s->st.events_dropped++;
			continue;
		}
		s->st.events_sent++;
	}
}

static bool
on_listening(void *ctx, uint32_t group)
{
	struct xg_server *s = ctx;
	struct client *c;

	for (c = s->clients; c; c = c->next)
		if ((c->groups & group) && !c->dead)
			return true;
	return false;
}

static void
on_dump_start(void *opaque, struct xg_xfrm_dump *d)
{
	struct client *c = opaque;

	c->dump = d;
}

/* Produce dump parts while the socket accepts them. */
static bool
run_dump(struct client *c)
{
	uint8_t buf[XG_WIRE_MAX_MSG];

	while (c->dump && c->qhead == NULL) {
		int done;
		size_t len = xg_xfrm_dump_next(c->srv->x, c->dump, buf, sizeof(buf), &done);

		if (done) {
			xg_xfrm_dump_free(c->srv->x, c->dump);
			c->dump = NULL;
		}
		if (len && queue_msg(c, 0, buf, len))
			return false;
		explicit_bzero(buf, len);
		if (!flush_queue(c))
			return false;
	}
	return true;
}

static void
update_events(struct client *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (c->dump == NULL && c->qbytes < QUEUE_READ_LIMIT)
		want |= EPOLLIN;
	if (c->qhead)
		want |= EPOLLOUT;
	if (want == c->epmask)
		return;
	ev.events = want;
	ev.data.ptr = c;
	epoll_ctl(c->srv->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->epmask = want;
}

static void
handle_ctl(struct client *c, const uint8_t *p, size_t len)
{
	struct xg_wire_ctl ctl = { 0 };
	size_t plen = len - NLMSG_HDRLEN;

	memcpy(&ctl, p + NLMSG_HDRLEN, plen < sizeof(ctl) ? plen : sizeof(ctl));
	if (ctl.magic != XG_WIRE_CTL_MAGIC || ctl.portid == 0)
		return;
	c->peer.portid = ctl.portid;
	c->groups = ctl.groups;
	c->peer.ext_ack = !!(ctl.nlflags & XG_WIRE_F_EXT_ACK);
	c->peer.cap_ack = !!(ctl.nlflags & XG_WIRE_F_CAP_ACK);
}

static bool
is_ctl(const uint8_t *p, size_t len)
{
	struct nlmsghdr h;

	if (len < NLMSG_HDRLEN + XG_WIRE_CTL_MINLEN)
		return false;
	memcpy(&h, p, sizeof(h));
	return h.nlmsg_type == XG_WIRE_CTL && h.nlmsg_len == len;
}

/* The kernel refuses every XFRM message, GETs included, without
 * CAP_NET_ADMIN. Answer each request of an unprivileged peer with EPERM. */
static void
refuse(struct client *c, const uint8_t *p, size_t len)
{
	struct xg_extack ext = { 0 };
	uint8_t out[256];

	while (len >= NLMSG_HDRLEN) {
		struct nlmsghdr h;
		size_t n;

		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len)
			break;
		if ((h.nlmsg_flags & NLM_F_REQUEST) && h.nlmsg_type >= NLMSG_MIN_TYPE) {
			n = xg_nl_build_ack(out, sizeof(out), &h, -EPERM, c->peer.portid, 1, 0,
					    &ext);
			if (n)
				on_unicast(c, out, n);
			c->srv->st.eperm++;
		}
		n = NLMSG_ALIGN(h.nlmsg_len);
		if (n >= len)
			break;
		p += n;
		len -= n;
	}
}

/* Read and handle one datagram; false when the client is gone. */
static bool
read_one(struct client *c)
{
	struct xg_server *s = c->srv;
	ssize_t n = recv(c->fd, s->rx, sizeof(s->rx), MSG_DONTWAIT | MSG_TRUNC);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	if (n == 0)
		return false;
	if ((size_t)n > sizeof(s->rx))
		return true;   /* larger than any netlink socket would accept */
	s->st.requests++;
	if (is_ctl(s->rx, (size_t)n))
		handle_ctl(c, s->rx, (size_t)n);
	else if (!c->privileged)
		refuse(c, s->rx, (size_t)n);
	else {
		if (s->observe)
			s->observe(s->observe_arg, XG_SEEN_REQUEST, c->pid, s->rx, (size_t)n);
		s->cur = c;
		xg_xfrm_rcv(s->x, &c->peer, s->rx, (size_t)n);
		s->cur = NULL;
	}
	explicit_bzero(s->rx, (size_t)n);
	return !c->dead;
}

static void
client_free(struct client *c)
{
	struct xg_server *s = c->srv;
	struct client **pp = &s->clients;
	struct qmsg *q;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	/* A dump abandoned mid-way must give back its place in the walk
	 * (the kernel's CVE-2017-16939 was exactly this). */
	xg_xfrm_dump_free(s->x, c->dump);
	while ((q = c->qhead) != NULL) {
		c->qhead = q->next;
		free_msg(q);
	}
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Is @p gid among the supplementary groups of process @p pid? SO_PEERCRED
 * gives the peer's pid as of connect(); its groups are read then, once. */
static bool
pid_in_group(pid_t pid, gid_t gid)
{
	char path[64], line[4096];
	bool in = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (!in && fgets(line, sizeof(line), f)) {
		char *p = line + 7, *end;

		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (;;) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if ((gid_t)g == gid) {
				in = true;
				break;
			}
			p = end;
		}
		break;
	}
	fclose(f);
	return in;
}

static bool
peer_privileged(const struct xg_server *s, int fd, int *pid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return false;
	*pid = (int)cr.pid;
	if (cr.uid == 0 || cr.uid == geteuid())
		return true;
	if (s->gid == (gid_t)-1)
		return false;
	return cr.gid == s->gid || pid_in_group(cr.pid, s->gid);
}

static void
accept_clients(struct xg_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev;
		struct client *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			return;
		}
		c->fd = fd;
		c->srv = s;
		c->qtail = &c->qhead;
		c->privileged = peer_privileged(s, fd, &c->pid);
		c->peer.opaque = c;
		c->epmask = EPOLLIN;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			return;
		}
		c->next = s->clients;
		s->clients = c;
		s->st.clients_accepted++;
	}
}

static bool
service(struct client *c, uint32_t events)
{
	if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN))
		return false;
	if (!flush_queue(c) || !run_dump(c))
		return false;
	/* Handle the requests already waiting, but keep answers bounded. */
	while ((events & EPOLLIN) && c->dump == NULL && c->qbytes < QUEUE_READ_LIMIT) {
		int before = (int)c->srv->st.requests;
		uint64_t gen = xg_xfrm_generation(c->srv->x);

		if (!read_one(c))
			return false;
		if ((int)c->srv->st.requests == before)
			break;
		if (c->srv->before_reply && xg_xfrm_generation(c->srv->x) != gen)
			c->srv->before_reply(c->srv->before_reply_arg);
		if (!flush_queue(c) || !run_dump(c))
			return false;
	}
	return true;
}

void
xg_server_set_observer(struct xg_server *s,
		       void (*fn)(void *arg, enum xg_server_seen what, int pid, const void *msg,
				  size_t len),
		       void *arg)
{
	s->observe = fn;
	s->observe_arg = arg;
}

void
xg_server_set_before_reply(struct xg_server *s, void (*fn)(void *arg), void *arg)
{
	s->before_reply = fn;
	s->before_reply_arg = arg;
}

int
xg_server_poll(struct xg_server *s, int timeout_ms)
{
	struct epoll_event ev[MAX_EVENTS];
	struct client *c, *next;
	int n, i;

	n = epoll_wait(s->epfd, ev, MAX_EVENTS, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (ev[i].data.ptr == NULL) {
			accept_clients(s);
			continue;
		}
		c = ev[i].data.ptr;
		if (!service(c, ev[i].events))
			c->dead = true;
	}
	/* Events queued by one client's request go out to the others here.
	 * A queue that drains must restart its dump at once: with an empty
	 * queue nothing else would wake it. */
	for (c = s->clients; c; c = next) {
		next = c->next;
		if (!c->dead && !(flush_queue(c) && run_dump(c)))
			c->dead = true;
		if (c->dead)
			client_free(c);
		else
			update_events(c);
	}
	return 0;
}

static int
make_parent(const char *path, gid_t gid)
{
	char buf[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct stat st;
	size_t len = strnlen(path, sizeof(buf));
	char *dir;
	int fd;

	if (len == sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, len + 1);   /* no further: @p path may be a short literal */
	dir = dirname(buf);
	if (mkdir(dir, 0700) < 0) {
		if (errno != EEXIST)
			return -1;
	} else if (gid != (gid_t)-1) {
		/* One we made: let the group through it (never via a link). */
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fchown(fd, (uid_t)-1, gid) < 0 || fchmod(fd, 0710) < 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
	}
	/* Refuse a directory another user could swap the socket in. */
	if (lstat(dir, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0) ||
	    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* A socket file left by a daemon that died is replaced; one that still
 * answers belongs to a running daemon and is not touched. */
static int
clear_stale(const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, rc;

	if (lstat(sun->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		errno = EADDRINUSE;
		return -1;
	}
	return unlink(sun->sun_path);
}

static int
listen_on(struct xg_server *s, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	struct stat st;
	mode_t old;
	int rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	if (make_parent(path, s->gid) < 0 || clear_stale(&sun) < 0)
		return -1;
	s->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lfd < 0)
		return -1;
	old = umask(0177);
	rc = bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	/* The parent is ours and not writable by others (make_parent), so
	 * the name bind() just made cannot have been swapped for a link. */
	if (rc < 0 || (s->gid != (gid_t)-1 && lchown(path, (uid_t)-1, s->gid) < 0) ||
	    chmod(path, s->gid != (gid_t)-1 ? 0660 : 0600) < 0 || listen(s->lfd, 64) < 0 ||
	    lstat(path, &st) < 0)
		return -1;
	memmove(s->path, path, strlen(path) + 1);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev);
}

static bool
path_is_ours(const struct xg_server *s)
{
	struct stat st;

	return lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
}

int
xg_server_check_path(struct xg_server *s)
{
	char path[sizeof(s->path)];
	struct stat st;
	int old = s->lfd;

	if (lstat(s->path, &st) == 0 || errno != ENOENT)
		return 0;   /* ours, or another's now: either way not to touch */
	/* Connected clients keep their sockets; new ones find a new file. */
	memcpy(path, s->path, sizeof(path));
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, old, NULL);
	if (listen_on(s, path) < 0) {
		int err = errno;

		if (s->lfd >= 0 && s->lfd != old)
			close(s->lfd);
		s->lfd = old;
		epoll_ctl(s->epfd, EPOLL_CTL_ADD, old,
			  &(struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL });
		return -err;
	}
	close(old);
	return 1;
}

/* The host's net.core.xfrm_acq_expires, as the kernel reads its own when
 * it makes a larval state (charon sets it to 165 when it starts). */
static uint32_t
host_acq_expires(void *ctx)
{
	FILE *f = fopen("/proc/sys/net/core/xfrm_acq_expires", "r");
	unsigned int v = 30;

	(void)ctx;
	if (f) {
		if (fscanf(f, "%u", &v) != 1)
			v = 30;
		fclose(f);
	}
	return v;
}

struct xg_server *
xg_server_create(const char *path)
{
	return xg_server_create_group(path, (gid_t)-1);
}

struct xg_server *
xg_server_create_group(const char *path, gid_t gid)
{
	struct xg_server *s = calloc(1, sizeof(*s));
	struct xg_xfrm_ops ops = {
		.unicast = on_unicast,
		.multicast = on_multicast,
		.dump_start = on_dump_start,
		.acq_expires = host_acq_expires,
		.listening = on_listening,
	};
	int err;

	if (s == NULL)
		return NULL;
	s->lfd = -1;
	s->gid = gid;
	ops.ctx = s;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0)
		goto fail;
	s->x = xg_xfrm_create(&ops);
	if (s->x == NULL)
		goto fail;
	if (listen_on(s, path) < 0)
		goto fail;
	return s;
fail:
	err = errno;
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->path[0])
		unlink(s->path);
	if (s->epfd >= 0)
		close(s->epfd);
	xg_xfrm_destroy(s->x);
	free(s);
	errno = err;
	return NULL;
}

struct xg_xfrm *
xg_server_xfrm(struct xg_server *s)
{
	return s->x;
}

void
xg_server_stats(const struct xg_server *s, struct xg_server_stats *st)
{
	*st = s->st;
}

void
xg_server_destroy(struct xg_server *s)
{
	if (s == NULL)
		return;
	while (s->clients)
		client_free(s->clients);
	close(s->lfd);
	if (path_is_ours(s))
		unlink(s->path);
	close(s->epfd);
	xg_xfrm_destroy(s->x);
	free(s);
}
