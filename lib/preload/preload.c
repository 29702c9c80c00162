/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libxfrmgw-preload.so: hand NETLINK_XFRM sockets to the xfrmgw daemon.
 *
 * Preloaded into unmodified clients (ip(8), charon, pluto), socket(AF_NETLINK, *, NETLINK_XFRM)
 * returns an AF_UNIX SOCK_SEQPACKET socket connected to $XFRMGW_SOCKET (default
 * /run/xfrmgw/xfrm.sock), and the socket calls below make it behave like a netlink socket. Every
 * other socket, NETLINK_ROUTE included, goes to the kernel untouched. xg_wire.h has the framing.
 *
 * Port ids follow netlink_autobind(): a socket gets one on bind(), connect() or its first send;
 * the first of a process gets the pid, later ones negative numbers. Until then getsockname()
 * reports 0, as the kernel does. pluto depends on this: it creates its send socket first but
 * binds its event socket explicitly to getpid() before the send socket autobinds. The daemon is
 * told a tentative (negative, never used by the kernel for pids) id right after connect and the
 * final one when it is known.
 *
 * Reconnect: when the daemon restarts, the next send or receive sees a dead peer, opens a new
 * connection, dup3()s it over every fd of the socket and announces port id and groups again.
 * A send is then retried; a receive fails with ENOBUFS, netlink's way of saying "messages were
 * lost", because replies and events queued by the old daemon are gone (ip and charon give up
 * on the request, `ip monitor` carries on). The new daemon does NOT know the SAs and policies
 * installed through the old one: restart the IKE daemon or have xfrmgw persist its state. An
 * epoll registration of the old fd does not follow the dup3().
 *
 * fork(): the child shares the sockets with its parent exactly as it would netlink sockets, and
 * its copy of the fd table stays right; the atfork handlers only keep tbl_lock consistent.
 *
 * LD_PRELOAD is inherited, e.g. by charon's _updown script: the ip(8) it runs then also talks
 * to the daemon for XFRM and to the kernel for everything else. That is intended; unset
 * LD_PRELOAD in a script that must reach the kernel's XFRM.
 *
 * NEWSA messages carry keys: nothing here ever logs message contents.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
/* Fortified headers define inline read()/recv() that would clash with the definitions here. */
#undef _FORTIFY_SOURCE
/* With 64-bit file offsets the headers rename fcntl() to fcntl64(); this library defines both
 * real symbols itself, so it must see the plain names (meson adds the macro to every build). */
#undef _FILE_OFFSET_BITS

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/netlink.h>

#include "xg_wire.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

#define DEFAULT_SOCKET "/run/xfrmgw/xfrm.sock"
#define HDR_LEN ((ssize_t)sizeof(struct xg_wire_hdr))
#define SMALL_IOV 8
#define NSOPTS 8
#define CTL_TRIES 5
#define CTL_WAIT_MS 200
#define BIT(n) (1u << (n))

/* Boolean SOL_NETLINK options; the daemon is told EXT_ACK and CAP_ACK, which shape its acks. */
#define NL_SET_OPTS (BIT(NETLINK_PKTINFO) | BIT(NETLINK_BROADCAST_ERROR) |		\
		     BIT(NETLINK_NO_ENOBUFS) | BIT(NETLINK_LISTEN_ALL_NSID) |		\
		     BIT(NETLINK_CAP_ACK) | BIT(NETLINK_EXT_ACK) | BIT(NETLINK_GET_STRICT_CHK))
/* Linux answers getsockopt() for all of them but LISTEN_ALL_NSID. */
#define NL_GET_OPTS (NL_SET_OPTS & ~BIT(NETLINK_LISTEN_ALL_NSID))

/* Negative port ids as netlink_autobind() hands them out: [INT32_MIN, -4097]. */
#define ROVER_START ((uint32_t)-4096)
#define ROVER_MIN 0x80000000u

/* With _GNU_SOURCE glibc passes socket addresses as transparent unions. */
#if defined(__USE_GNU) && !defined(__cplusplus)
#define SA(a) ((a).__sockaddr__)
#else
#define SA(a) (a)
#endif

/* fd table: two levels of 1024 so a lookup for a foreign fd costs two atomic loads. */
#define SLOT_BITS 10
#define SLOT_PAGE (1 << SLOT_BITS)
#define SLOT_MAXFD (SLOT_PAGE * SLOT_PAGE)

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
		       __SOCKADDR_ARG addr, socklen_t *alen);
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
extern void __chk_fail(void) __attribute__((__noreturn__));

struct sopt {
	int name;
	int val;
};

/*
 * One netlink socket as the application sees it; dup()ed fds share it. refs counts slots and
 * calls in flight, so a close() racing with a blocked recv() cannot free it under the reader.
 * Unless marked otherwise, fields are protected by tbl_lock.
 */
struct xsock {
	struct xsock *next;		/* all_socks */
	unsigned int refs;
	int type;			/* SOCK_RAW or SOCK_DGRAM, for SO_TYPE */
	uint32_t portid;		/* tentative until bound */
	uint32_t groups;		/* bit g - 1 for group g */
	uint32_t dst_pid;		/* connect()ed peer, for getpeername() */
	uint32_t dst_groups;
	uint32_t nlopts;		/* bit n: boolean SOL_NETLINK option n */
	unsigned int nsopts;
	struct sopt sopts[NSOPTS];	/* SOL_SOCKET ints to replay on a new connection */
	atomic_bool bound;		/* written under tbl_lock, read anywhere */
	atomic_uint gen;		/* bumped when the connection is replaced */
	pthread_mutex_t io_lock;	/* serialises ctl messages and reconnects */
};

struct slot {
	_Atomic(struct xsock *) xs;
	/*
	 * The open file the slot was made for: an fd closed behind our back (close_range(),
	 * fclose() of an fdopen()ed socket, raw syscalls) must not make a later fd look like ours.
	 */
	dev_t dev;
	ino_t ino;
};

struct ctl_msg {
	struct nlmsghdr nlh;
	struct xg_wire_ctl ctl;
};

static struct {
	int (*socket)(int, int, int);
	int (*bind)(int, const struct sockaddr *, socklen_t);
	int (*connect)(int, const struct sockaddr *, socklen_t);
	int (*getsockname)(int, struct sockaddr *, socklen_t *);
	int (*getpeername)(int, struct sockaddr *, socklen_t *);
	int (*setsockopt)(int, int, int, const void *, socklen_t);
	int (*getsockopt)(int, int, int, void *, socklen_t *);
	int (*shutdown)(int, int);
	ssize_t (*sendmsg)(int, const struct msghdr *, int);
	ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	ssize_t (*send)(int, const void *, size_t, int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
	ssize_t (*recvmsg)(int, struct msghdr *, int);
	ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
	ssize_t (*recv)(int, void *, size_t, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*readv)(int, const struct iovec *, int);
	int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
	int (*close)(int);
	int (*dup)(int);
	int (*dup2)(int, int);
	int (*dup3)(int, int, int);
	int (*fcntl)(int, int, ...);
	int (*fcntl64)(int, int, ...);
} real;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t tbl_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct slot *) pages[SLOT_PAGE];
static int slot_hi = -1;		/* highest fd ever given a slot */
static struct xsock *all_socks;
static uint32_t rover = ROVER_START;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static bool debug;

/* ------------------------------------------------------------------------------------------ */
/* Setup and small helpers                                                                    */

static void dbg_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void dbg_print(const char *fmt, ...)
{
	int err = errno;
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	dprintf(STDERR_FILENO, "xfrmgw-preload[%d]: %s\n", (int)getpid(), line);
	errno = err;
}

#define dbg(...) do { if (debug) dbg_print(__VA_ARGS__); } while (0)

static void fork_prepare(void)
{
	pthread_mutex_lock(&tbl_lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&tbl_lock);
}

static void fork_child(void)
{
	/* Parent and child would otherwise hand out the same negative port ids. */
	rover = ROVER_START;
	pthread_mutex_unlock(&tbl_lock);
}

#define RESOLVE(f) (real.f = (__typeof__(real.f))dlsym(RTLD_NEXT, #f))

static void resolve(void)
{
	const char *path = getenv("XFRMGW_SOCKET");
	const char *dbg_env = getenv("XFRMGW_PRELOAD_DEBUG");

	RESOLVE(socket); RESOLVE(bind); RESOLVE(connect); RESOLVE(getsockname);
	RESOLVE(getpeername); RESOLVE(setsockopt); RESOLVE(getsockopt); RESOLVE(shutdown);
	RESOLVE(sendmsg); RESOLVE(sendto); RESOLVE(send); RESOLVE(write); RESOLVE(writev);
	RESOLVE(sendmmsg); RESOLVE(recvmsg); RESOLVE(recvfrom); RESOLVE(recv); RESOLVE(read);
	RESOLVE(readv); RESOLVE(recvmmsg); RESOLVE(close); RESOLVE(dup); RESOLVE(dup2);
	RESOLVE(dup3); RESOLVE(fcntl); RESOLVE(fcntl64);
	if (!real.fcntl64)
		real.fcntl64 = real.fcntl;

	debug = dbg_env && !strcmp(dbg_env, "1");
	if (!path || !*path)
		path = DEFAULT_SOCKET;
	/* Too long a path leaves sock_path empty: every XFRM socket() then fails cleanly. */
	if (strlen(path) < sizeof(sock_path))
		strcpy(sock_path, path);
	else
		dbg("XFRMGW_SOCKET is too long");
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void init(void)
{
	pthread_once(&init_once, resolve);
}

static int ret_err(int err)
{
	if (err >= 0)
		return err;
	errno = -err;
	return -1;
}

static ssize_t ret_len(ssize_t n)
{
	if (n >= 0)
		return n;
	errno = (int)-n;
	return -1;
}

static bool peer_gone(int err)
{
	return err == EPIPE || err == ECONNRESET || err == ENOTCONN || err == ECONNREFUSED;
}

/* Copy a netlink address out the way move_addr_to_user() does: truncate, report full size. */
static void nl_addr_put(void *dst, socklen_t *len, uint32_t pid, uint32_t groups)
{
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_pid = pid, .nl_groups = groups };

	memcpy(dst, &nl, *len < sizeof(nl) ? *len : sizeof(nl));
	*len = sizeof(nl);
}

static int int_put(void *optval, socklen_t *optlen, int val)
{
	socklen_t len;

	if (!optlen)
		return -EFAULT;
	if ((int)*optlen < 0)
		return -EINVAL;
	len = *optlen < sizeof(val) ? *optlen : sizeof(val);
	if (len && !optval)
		return -EFAULT;
	memcpy(optval, &val, len);
	*optlen = len;
	return 0;
}

static uint32_t rand32(void)
{
	uint32_t v;
	struct timespec ts;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == sizeof(v))
		return v;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint32_t)getpid() * 2654435761u) ^ (uint32_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ */
/* fd table                                                                                   */

static struct slot *slot_find(int fd)
{
	struct slot *page;

	if (fd < 0 || fd >= SLOT_MAXFD)
		return NULL;
	page = atomic_load_explicit(&pages[fd >> SLOT_BITS], memory_order_acquire);
	return page ? &page[fd & (SLOT_PAGE - 1)] : NULL;
}

static bool slot_busy(const struct slot *s)
{
	return s && atomic_load_explicit(&s->xs, memory_order_relaxed);
}

/* Called with tbl_lock held. Pages are never freed, so lock-free readers stay safe. */
static struct slot *slot_make(int fd)
{
	struct slot *page;

	if (fd < 0 || fd >= SLOT_MAXFD)
		return NULL;
	page = atomic_load_explicit(&pages[fd >> SLOT_BITS], memory_order_relaxed);
	if (!page) {
		page = calloc(SLOT_PAGE, sizeof(*page));
		if (!page)
			return NULL;
		atomic_store_explicit(&pages[fd >> SLOT_BITS], page, memory_order_release);
	}
	if (fd > slot_hi)
		slot_hi = fd;
	return &page[fd & (SLOT_PAGE - 1)];
}

/* Called with tbl_lock held. */
static void xs_unref(struct xsock *xs)
{
	struct xsock **pp;

	if (--xs->refs)
		return;
	for (pp = &all_socks; *pp; pp = &(*pp)->next) {
		if (*pp == xs) {
			*pp = xs->next;
			break;
		}
	}
	pthread_mutex_destroy(&xs->io_lock);
	free(xs);
}

/* Called with tbl_lock held. */
static void slot_set(struct slot *s, struct xsock *xs, dev_t dev, ino_t ino)
{
	struct xsock *old = atomic_load_explicit(&s->xs, memory_order_relaxed);

	if (xs)
		xs->refs++;
	s->dev = dev;
	s->ino = ino;
	atomic_store_explicit(&s->xs, xs, memory_order_release);
	if (old)
		xs_unref(old);
}

static bool slot_is(const struct slot *s, const struct stat *st)
{
	return s->dev == st->st_dev && s->ino == st->st_ino;
}

/* Take a reference on the socket behind fd, or NULL when fd is not one of ours. */
static struct xsock *xs_get(int fd)
{
	struct slot *s = slot_find(fd);
	struct xsock *xs;
	struct stat st;
	int err = errno;
	bool ok;

	if (!slot_busy(s))
		return NULL;
	ok = fstat(fd, &st) == 0;
	pthread_mutex_lock(&tbl_lock);
	xs = atomic_load_explicit(&s->xs, memory_order_relaxed);
	/* A reconnect may have replaced the file since that fstat(): ask again under the lock. */
	if (xs && !(ok && slot_is(s, &st)) && (fstat(fd, &st) || !slot_is(s, &st))) {
		dbg("fd %d was closed behind our back, forgetting it", fd);
		slot_set(s, NULL, 0, 0);
		xs = NULL;
	}
	if (xs)
		xs->refs++;
	pthread_mutex_unlock(&tbl_lock);
	errno = err;
	return xs;
}

static void xs_put(struct xsock *xs)
{
	int err = errno;

	pthread_mutex_lock(&tbl_lock);
	xs_unref(xs);
	pthread_mutex_unlock(&tbl_lock);
	errno = err;
}

/* Make newfd refer to whatever oldfd refers to, after a successful dup*(). */
static void slot_copy(int oldfd, int newfd)
{
	struct slot *from = slot_find(oldfd), *to = slot_find(newfd);
	struct xsock *xs;

	if (oldfd == newfd || (!slot_busy(from) && !slot_busy(to)))
		return;
	pthread_mutex_lock(&tbl_lock);
	xs = from ? atomic_load_explicit(&from->xs, memory_order_relaxed) : NULL;
	if (xs)
		to = slot_make(newfd);
	if (to)
		slot_set(to, xs, xs ? from->dev : 0, xs ? from->ino : 0);
	pthread_mutex_unlock(&tbl_lock);
}

static void slot_forget(int fd)
{
	struct slot *s = slot_find(fd);

	if (!slot_busy(s))
		return;
	pthread_mutex_lock(&tbl_lock);
	slot_set(s, NULL, 0, 0);
	pthread_mutex_unlock(&tbl_lock);
}

/* ------------------------------------------------------------------------------------------ */
/* Port ids                                                                                   */

/* Called with tbl_lock held. */
static bool portid_used(uint32_t portid, const struct xsock *self)
{
	const struct xsock *xs;

	for (xs = all_socks; xs; xs = xs->next)
		if (xs != self && xs->portid == portid)
			return true;
	return false;
}

/* Called with tbl_lock held. Like the kernel, start at a random point to avoid collisions. */
static uint32_t portid_next(const struct xsock *self)
{
	uint32_t id;

	do {
		if (rover == ROVER_START)
			rover = ROVER_MIN + rand32() % (ROVER_START - ROVER_MIN);
		else if (rover < ROVER_MIN)
			rover = ROVER_START - 1;
		id = rover--;
	} while (portid_used(id, self));
	return id;
}

/* ------------------------------------------------------------------------------------------ */
/* Connection to the daemon                                                                   */

static int unix_connect(int cloexec)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (!sock_path[0])
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, sock_path, sizeof(sock_path));
	fd = real.socket(AF_UNIX, SOCK_SEQPACKET | cloexec, 0);
	if (fd < 0)
		return -errno;
	if (real.connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno;
		real.close(fd);
		dbg("connect to %s: %s", sock_path, strerror(err));
		return -err;
	}
	return fd;
}

/* A ctl message must not be lost to O_NONBLOCK: wait a little for room. */
static int send_wait(int fd, const void *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int tries = CTL_TRIES;

	while (real.send(fd, buf, len, MSG_NOSIGNAL) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || !tries--)
			return -errno;
		poll(&pfd, 1, CTL_WAIT_MS);
	}
	return 0;
}

static int ctl_send(int fd, struct xsock *xs)
{
	struct ctl_msg m = {
		.nlh = { .nlmsg_len = sizeof(m), .nlmsg_type = XG_WIRE_CTL },
		.ctl = { .magic = XG_WIRE_CTL_MAGIC, .pid = (uint32_t)getpid() },
	};

	pthread_mutex_lock(&tbl_lock);
	m.ctl.portid = xs->portid;
	m.ctl.groups = xs->groups;
	if (xs->nlopts & BIT(NETLINK_EXT_ACK))
		m.ctl.nlflags |= XG_WIRE_F_EXT_ACK;
	if (xs->nlopts & BIT(NETLINK_CAP_ACK))
		m.ctl.nlflags |= XG_WIRE_F_CAP_ACK;
	pthread_mutex_unlock(&tbl_lock);
	dbg("fd %d: ctl portid %u groups %#x flags %#x", fd, m.ctl.portid, m.ctl.groups,
	    m.ctl.nlflags);
	return send_wait(fd, &m, sizeof(m));
}

static void sopts_replay(struct xsock *xs, int fd)
{
	struct sopt s[NSOPTS];
	unsigned int i, n;

	pthread_mutex_lock(&tbl_lock);
	n = xs->nsopts;
	memcpy(s, xs->sopts, sizeof(s));
	pthread_mutex_unlock(&tbl_lock);
	for (i = 0; i < n; i++)
		real.setsockopt(fd, SOL_SOCKET, s[i].name, &s[i].val, sizeof(s[i].val));
}

/* Put nfd's connection behind every fd of xs; dup3() keeps each fd's own FD_CLOEXEC. */
static int slots_replace(struct xsock *xs, int nfd)
{
	struct stat st;
	struct slot *s;
	int fd, fl, err = 0;

	if (fstat(nfd, &st))
		return -errno;
	pthread_mutex_lock(&tbl_lock);
	for (fd = 0; fd <= slot_hi; fd++) {
		s = slot_find(fd);
		if (!s || atomic_load_explicit(&s->xs, memory_order_relaxed) != xs)
			continue;
		fl = real.fcntl(fd, F_GETFD);
		if (fl < 0)
			continue;
		if (real.dup3(nfd, fd, fl & FD_CLOEXEC ? O_CLOEXEC : 0) < 0) {
			err = -errno;
			continue;
		}
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	atomic_fetch_add(&xs->gen, 1);
	pthread_mutex_unlock(&tbl_lock);
	return err;
}

/* Called with io_lock held. O_NONBLOCK belongs to the open file, so it is copied over. */
static int reconnect_locked(struct xsock *xs, int fd)
{
	int nfd, fl, err;

	fl = real.fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	nfd = unix_connect(SOCK_CLOEXEC);
	if (nfd < 0)
		return nfd;
	sopts_replay(xs, nfd);
	err = ctl_send(nfd, xs);
	if (!err && (fl & O_NONBLOCK) && real.fcntl(nfd, F_SETFL, O_NONBLOCK) < 0)
		err = -errno;
	if (!err)
		err = slots_replace(xs, nfd);
	real.close(nfd);
	dbg("fd %d: reconnect %s", fd, err ? strerror(-err) : "done");
	return err;
}

/* seen: the generation the failed call used; if it moved, another thread already reconnected. */
static int xs_reconnect(struct xsock *xs, int fd, unsigned int seen)
{
	int err = 0;

	pthread_mutex_lock(&xs->io_lock);
	if (atomic_load(&xs->gen) == seen)
		err = reconnect_locked(xs, fd);
	pthread_mutex_unlock(&xs->io_lock);
	return err;
}

/*
 * Called with io_lock held, after port id, groups or ack flags changed. A dead daemon is no error:
 * the state lives in xs and the reconnect that the next send or receive makes announces it.
 */
static int xs_announce(struct xsock *xs, int fd)
{
	int err = ctl_send(fd, xs);

	if (err && peer_gone(-err)) {
		reconnect_locked(xs, fd);
		return 0;
	}
	return err;
}

/* netlink_autobind(): the pid if no other socket of ours holds it, else the tentative id. */
static int xs_autobind(struct xsock *xs, int fd)
{
	bool changed = false;
	uint32_t pid = (uint32_t)getpid();
	int err = 0;

	if (atomic_load(&xs->bound))
		return 0;
	pthread_mutex_lock(&xs->io_lock);
	pthread_mutex_lock(&tbl_lock);
	if (!atomic_load(&xs->bound)) {
		if (!portid_used(pid, xs)) {
			xs->portid = pid;
			changed = true;
		}
		atomic_store(&xs->bound, true);
	}
	pthread_mutex_unlock(&tbl_lock);
	if (changed)
		err = xs_announce(xs, fd);
	pthread_mutex_unlock(&xs->io_lock);
	return err;
}

/* ------------------------------------------------------------------------------------------ */
/* socket(), bind(), connect(), names                                                         */

static struct xsock *xs_new(int type)
{
	struct xsock *xs = calloc(1, sizeof(*xs));

	if (!xs)
		return NULL;
	xs->type = type;
	pthread_mutex_init(&xs->io_lock, NULL);
	return xs;
}

/* Called with tbl_lock held. */
static int xs_install(struct xsock *xs, int fd, const struct stat *st)
{
	struct slot *s = slot_make(fd);

	if (!s)
		return -EMFILE;
	xs->portid = portid_next(xs);
	xs->next = all_socks;
	all_socks = xs;
	slot_set(s, xs, st->st_dev, st->st_ino);
	return 0;
}

static int xs_track(int fd, int type)
{
	struct xsock *xs = xs_new(type);
	struct stat st;
	int err;

	if (!xs)
		return -ENOMEM;
	if (fstat(fd, &st)) {
		free(xs);
		return -errno;
	}
	pthread_mutex_lock(&tbl_lock);
	err = xs_install(xs, fd, &st);
	pthread_mutex_unlock(&tbl_lock);
	if (err) {
		free(xs);
		return err;
	}
	err = ctl_send(fd, xs);
	if (err)
		slot_forget(fd);
	return err;
}

static int xs_open(int type)
{
	int base = type & 0xf, flags = type & ~0xf;
	int fd, err;

	if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK) || base > SOCK_PACKET)
		return -EINVAL;
	if (base != SOCK_RAW && base != SOCK_DGRAM)
		return -ESOCKTNOSUPPORT;
	/* Connect blocking: a Unix connect is immediate anyway, and the ctl must get through. */
	fd = unix_connect(flags & SOCK_CLOEXEC);
	if (fd < 0)
		return -EPROTONOSUPPORT;	/* what a kernel without xfrm_user says */
	err = xs_track(fd, base);
	if (!err && (flags & SOCK_NONBLOCK) && real.fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		err = -errno;
	if (err) {
		slot_forget(fd);
		real.close(fd);
		dbg("socket: %s", strerror(-err));
		return err == -EMFILE || err == -ENOMEM ? err : -EPROTONOSUPPORT;
	}
	dbg("fd %d: NETLINK_XFRM socket type %d", fd, base);
	return fd;
}

/* Called with tbl_lock held; mirrors netlink_bind()'s checks. */
static int bind_locked(struct xsock *xs, const struct sockaddr_nl *nl, bool *changed)
{
	uint32_t pid = (uint32_t)getpid();

	if (atomic_load(&xs->bound)) {
		if (nl->nl_pid != xs->portid)
			return -EINVAL;
	} else if (nl->nl_pid) {
		if (portid_used(nl->nl_pid, xs))
			return -EADDRINUSE;
		xs->portid = nl->nl_pid;
	} else if (!portid_used(pid, xs)) {
		xs->portid = pid;
	}
	atomic_store(&xs->bound, true);
	/* bind() replaces the first 32 groups, so it may also leave them. */
	xs->groups = nl->nl_groups;
	*changed = true;
	return 0;
}

static int xs_bind(struct xsock *xs, int fd, const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_nl nl;
	bool changed = false;
	int err;

	if (!addr || len < sizeof(nl))
		return -EINVAL;
	memcpy(&nl, addr, sizeof(nl));
	if (nl.nl_family != AF_NETLINK)
		return -EINVAL;
	pthread_mutex_lock(&xs->io_lock);
	pthread_mutex_lock(&tbl_lock);
	err = bind_locked(xs, &nl, &changed);
	pthread_mutex_unlock(&tbl_lock);
	if (changed)
		err = xs_announce(xs, fd);
	pthread_mutex_unlock(&xs->io_lock);
	dbg("fd %d: bind pid %u groups %#x: %d", fd, nl.nl_pid, nl.nl_groups, err);
	return err;
}

/* The Unix socket is connected already; connect() only records the netlink peer. */
static int xs_connect(struct xsock *xs, int fd, const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_nl nl = { 0 };
	int err;

	if (!addr || len < sizeof(sa_family_t))
		return -EINVAL;
	memcpy(&nl.nl_family, &addr->sa_family, sizeof(nl.nl_family));
	if (nl.nl_family != AF_UNSPEC) {
		if (nl.nl_family != AF_NETLINK || len < sizeof(nl))
			return -EINVAL;
		memcpy(&nl, addr, sizeof(nl));
		err = xs_autobind(xs, fd);
		if (err)
			return err;
	}
	pthread_mutex_lock(&tbl_lock);
	xs->dst_pid = nl.nl_pid;
	/* Netlink keeps only the lowest group as the destination. */
	xs->dst_groups = nl.nl_groups & -nl.nl_groups;
	pthread_mutex_unlock(&tbl_lock);
	return 0;
}

static int xs_name(struct xsock *xs, struct sockaddr *addr, socklen_t *len, bool peer)
{
	uint32_t pid, groups;

	if (!len || (*len && !addr))
		return -EFAULT;
	if ((int)*len < 0)
		return -EINVAL;
	pthread_mutex_lock(&tbl_lock);
	pid = peer ? xs->dst_pid : atomic_load(&xs->bound) ? xs->portid : 0;
	groups = peer ? xs->dst_groups : xs->groups;
	pthread_mutex_unlock(&tbl_lock);
	nl_addr_put(addr, len, pid, groups);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Socket options                                                                             */

static int nl_membership(struct xsock *xs, int fd, unsigned int group, bool join)
{
	uint32_t old;
	bool changed;
	int err = 0;

	if (!group || group > 32)
		return -EINVAL;
	/* No autobind here, as in the kernel: the tentative id serves the daemon meanwhile. */
	pthread_mutex_lock(&xs->io_lock);
	pthread_mutex_lock(&tbl_lock);
	old = xs->groups;
	if (join)
		xs->groups |= BIT(group - 1);
	else
		xs->groups &= ~BIT(group - 1);
	changed = old != xs->groups;
	pthread_mutex_unlock(&tbl_lock);
	if (changed)
		err = xs_announce(xs, fd);
	pthread_mutex_unlock(&xs->io_lock);
	return err;
}

static int nl_flag_set(struct xsock *xs, int fd, int name, bool on)
{
	bool wire = name == NETLINK_EXT_ACK || name == NETLINK_CAP_ACK;
	uint32_t old;
	int err = 0;

	pthread_mutex_lock(&xs->io_lock);
	pthread_mutex_lock(&tbl_lock);
	old = xs->nlopts;
	if (on)
		xs->nlopts |= BIT(name);
	else
		xs->nlopts &= ~BIT(name);
	wire = wire && old != xs->nlopts;
	pthread_mutex_unlock(&tbl_lock);
	if (wire)
		err = xs_announce(xs, fd);
	pthread_mutex_unlock(&xs->io_lock);
	return err;
}

static int nl_setsockopt(struct xsock *xs, int fd, int name, const void *optval, socklen_t len)
{
	unsigned int val = 0;

	/* Like netlink_setsockopt(): a short option reads as 0. */
	if (len >= sizeof(int)) {
		if (!optval)
			return -EFAULT;
		memcpy(&val, optval, sizeof(val));
	}
	if (name == NETLINK_ADD_MEMBERSHIP || name == NETLINK_DROP_MEMBERSHIP)
		return nl_membership(xs, fd, val, name == NETLINK_ADD_MEMBERSHIP);
	if ((unsigned int)name >= 32 || !(NL_SET_OPTS & BIT(name)))
		return -ENOPROTOOPT;
	return nl_flag_set(xs, fd, name, val);
}

static int nl_getsockopt(struct xsock *xs, int name, void *optval, socklen_t *optlen)
{
	uint32_t v;

	if (!optlen)
		return -EFAULT;
	if ((int)*optlen < 0)
		return -EINVAL;
	if (name != NETLINK_LIST_MEMBERSHIPS &&
	    ((unsigned int)name >= 32 || !(NL_GET_OPTS & BIT(name))))
		return -ENOPROTOOPT;
	if (name != NETLINK_LIST_MEMBERSHIPS && *optlen < sizeof(int))
		return -EINVAL;
	if (*optlen >= sizeof(v) && !optval)
		return -EFAULT;
	pthread_mutex_lock(&tbl_lock);
	v = name == NETLINK_LIST_MEMBERSHIPS ? xs->groups : !!(xs->nlopts & BIT(name));
	pthread_mutex_unlock(&tbl_lock);
	/* LIST_MEMBERSHIPS reports the size of the whole bitmap even when it copied nothing. */
	if (*optlen >= sizeof(v))
		memcpy(optval, &v, sizeof(v));
	*optlen = sizeof(v);
	return 0;
}

/* Called with tbl_lock held. */
static void sopt_record(struct xsock *xs, int name, int val)
{
	unsigned int i;

	for (i = 0; i < xs->nsopts && xs->sopts[i].name != name; i++)
		;
	if (i == NSOPTS)
		return;
	xs->sopts[i].name = name;
	xs->sopts[i].val = val;
	if (i == xs->nsopts)
		xs->nsopts++;
}

static int sock_setsockopt(struct xsock *xs, int fd, int name, const void *val, socklen_t len)
{
	int r = real.setsockopt(fd, SOL_SOCKET, name, val, len);
	int v;

	/* Without CAP_NET_ADMIN a buffer within the sysctl limits beats failing. */
	if (r < 0 && errno == EPERM && (name == SO_RCVBUFFORCE || name == SO_SNDBUFFORCE)) {
		name = name == SO_RCVBUFFORCE ? SO_RCVBUF : SO_SNDBUF;
		r = real.setsockopt(fd, SOL_SOCKET, name, val, len);
	}
	if (r < 0)
		return -errno;
	if (len == sizeof(int) && val) {
		memcpy(&v, val, sizeof(v));
		pthread_mutex_lock(&tbl_lock);
		sopt_record(xs, name, v);
		pthread_mutex_unlock(&tbl_lock);
	}
	return 0;
}

/* Returns 1 when the option is not one netlink answers differently: ask the Unix socket. */
static int sock_getsockopt(struct xsock *xs, int name, void *optval, socklen_t *optlen)
{
	switch (name) {
	case SO_PROTOCOL:
		return int_put(optval, optlen, NETLINK_XFRM);
	case SO_DOMAIN:
		return int_put(optval, optlen, AF_NETLINK);
	case SO_TYPE:
		return int_put(optval, optlen, xs->type);
	default:
		return 1;
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                    */

static bool iov_empty(const struct iovec *iov, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (iov[i].iov_len)
			return false;
	return true;
}

/* Sets *dst to the netlink port the message is for; only 0, the kernel, is reachable. */
static int dest_check(struct xsock *xs, const void *name, socklen_t len, uint32_t *dst)
{
	struct sockaddr_nl nl;

	if (!name || !len) {
		pthread_mutex_lock(&tbl_lock);
		*dst = xs->dst_pid;
		pthread_mutex_unlock(&tbl_lock);
		return 0;
	}
	if (len < sizeof(nl))
		return -EINVAL;
	memcpy(&nl, name, sizeof(nl));
	if (nl.nl_family != AF_NETLINK)
		return -EINVAL;
	*dst = nl.nl_pid;
	return 0;
}

/*
 * One datagram, bytes unchanged. Control messages (netlink only accepts SCM_CREDENTIALS) are
 * not passed on. MSG_NOSIGNAL because netlink never raises SIGPIPE.
 */
static ssize_t xs_sendmsg(struct xsock *xs, int fd, const struct msghdr *msg, int flags)
{
	struct msghdr m = { .msg_iov = msg->msg_iov, .msg_iovlen = msg->msg_iovlen };
	unsigned int gen;
	uint32_t dst;
	ssize_t n;
	int err;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	err = dest_check(xs, msg->msg_name, msg->msg_namelen, &dst);
	if (!err)
		err = xs_autobind(xs, fd);
	if (err)
		return err;
	if (dst)
		return -ECONNREFUSED;	/* no userspace netlink peers behind the daemon */
	/* An empty SEQPACKET datagram would read as EOF at the daemon; netlink ignores it. */
	if (iov_empty(m.msg_iov, m.msg_iovlen))
		return 0;
	gen = atomic_load(&xs->gen);
	n = real.sendmsg(fd, &m, flags | MSG_NOSIGNAL);
	if (n < 0 && peer_gone(errno)) {
		if (xs_reconnect(xs, fd, gen))
			return -ECONNRESET;
		n = real.sendmsg(fd, &m, flags | MSG_NOSIGNAL);
	}
	dbg("fd %d: send %zd", fd, n < 0 ? -(ssize_t)errno : n);
	return n < 0 ? -errno : n;
}

static ssize_t xs_sendto(struct xsock *xs, int fd, const void *buf, size_t len, int flags,
			 const struct sockaddr *addr, socklen_t alen)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr m = {
		.msg_name = (void *)(uintptr_t)addr, .msg_namelen = addr ? alen : 0,
		.msg_iov = &iov, .msg_iovlen = 1,
	};

	return xs_sendmsg(xs, fd, &m, flags);
}

static ssize_t xs_sendiov(struct xsock *xs, int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)(uintptr_t)iov };

	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	m.msg_iovlen = (size_t)cnt;
	return xs_sendmsg(xs, fd, &m, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Receiving                                                                                  */

/* The daemon went away; what it had queued for us is lost, which netlink reports as ENOBUFS. */
static ssize_t recv_lost(struct xsock *xs, int fd, unsigned int gen)
{
	return xs_reconnect(xs, fd, gen) ? -ECONNRESET : -ENOBUFS;
}

/* A datagram without our header cannot be a netlink message: consume it and read on. */
static void frame_drop(int fd, int flags, ssize_t n)
{
	struct xg_wire_hdr hdr;

	dbg("fd %d: dropped malformed datagram of %zd bytes", fd, n);
	if (flags & MSG_PEEK)
		real.recv(fd, &hdr, sizeof(hdr), MSG_DONTWAIT);
}

/*
 * m->msg_iov[0] is the header. The real socket's MSG_PEEK, MSG_TRUNC and MSG_DONTWAIT semantics
 * carry over; msg_flags' MSG_TRUNC is already right because the header always fits.
 */
static ssize_t recv_frame(struct xsock *xs, int fd, struct msghdr *m, int flags,
			  const struct xg_wire_hdr *hdr)
{
	size_t clen = m->msg_controllen;
	unsigned int gen;
	ssize_t n;

	for (;;) {
		gen = atomic_load(&xs->gen);
		m->msg_controllen = clen;
		m->msg_flags = 0;
		n = real.recvmsg(fd, m, flags);
		if (n > HDR_LEN && hdr->magic == XG_WIRE_HDR_MAGIC)
			return n - HDR_LEN;
		if (n > 0) {
			frame_drop(fd, flags, n);
			continue;
		}
		if (n < 0 && !peer_gone(errno))
			return -errno;
		return recv_lost(xs, fd, gen);
	}
}

/* Netlink reports the kernel as pid 0, uid 0, gid 0; the Unix socket reports the daemon. */
static void creds_fix(struct msghdr *msg)
{
	struct ucred kernel = { 0 };
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(kernel)))
			memcpy(CMSG_DATA(c), &kernel, sizeof(kernel));
}

/* NETLINK_PKTINFO: the group number the message was sent to, 0 for unicast. */
static void pktinfo_add(struct msghdr *msg, size_t cap, uint32_t group_mask)
{
	struct nl_pktinfo info = { .group = (uint32_t)ffs((int)group_mask) };
	struct cmsghdr c = {
		.cmsg_len = CMSG_LEN(sizeof(info)),
		.cmsg_level = SOL_NETLINK,
		.cmsg_type = NETLINK_PKTINFO,
	};
	size_t used = msg->msg_controllen;
	unsigned char *p;

	if (!msg->msg_control || used != CMSG_ALIGN(used) || cap < used + CMSG_LEN(sizeof(info))) {
		msg->msg_flags |= MSG_CTRUNC;
		return;
	}
	p = (unsigned char *)msg->msg_control + used;
	memcpy(p, &c, sizeof(c));
	memcpy(p + CMSG_LEN(0), &info, sizeof(info));
	used += CMSG_SPACE(sizeof(info));
	msg->msg_controllen = used < cap ? used : cap;
}

static void recv_finish(struct xsock *xs, struct msghdr *msg, const struct msghdr *m,
			const struct xg_wire_hdr *hdr)
{
	size_t cap = msg->msg_controllen;
	bool pktinfo;

	msg->msg_controllen = m->msg_controllen;
	msg->msg_flags = m->msg_flags;
	if (msg->msg_name)
		nl_addr_put(msg->msg_name, &msg->msg_namelen, 0, hdr->group);
	if (msg->msg_controllen)
		creds_fix(msg);
	pthread_mutex_lock(&tbl_lock);
	pktinfo = xs->nlopts & BIT(NETLINK_PKTINFO);
	pthread_mutex_unlock(&tbl_lock);
	if (pktinfo)
		pktinfo_add(msg, cap, hdr->group);
}

static ssize_t xs_recvmsg(struct xsock *xs, int fd, struct msghdr *msg, int flags)
{
	struct iovec small[SMALL_IOV], *iov = small;
	struct xg_wire_hdr hdr;
	struct msghdr m;
	ssize_t n;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	if (msg->msg_iovlen >= IOV_MAX)
		return -EMSGSIZE;
	if (msg->msg_iovlen >= SMALL_IOV) {
		iov = malloc((msg->msg_iovlen + 1) * sizeof(*iov));
		if (!iov)
			return -ENOMEM;
	}
	iov[0].iov_base = &hdr;
	iov[0].iov_len = sizeof(hdr);
	if (msg->msg_iovlen)
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof(*iov));
	m = (struct msghdr){
		.msg_iov = iov, .msg_iovlen = msg->msg_iovlen + 1,
		.msg_control = msg->msg_control, .msg_controllen = msg->msg_controllen,
	};
	n = recv_frame(xs, fd, &m, flags, &hdr);
	if (n >= 0)
		recv_finish(xs, msg, &m, &hdr);
	if (iov != small)
		free(iov);
	dbg("fd %d: recv %zd flags %#x", fd, n, flags);
	return n;
}

static ssize_t xs_recvfrom(struct xsock *xs, int fd, void *buf, size_t len, int flags,
			   struct sockaddr *addr, socklen_t *alen)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (addr && alen) {
		m.msg_name = addr;
		m.msg_namelen = *alen;
	}
	n = xs_recvmsg(xs, fd, &m, flags);
	if (n >= 0 && addr && alen)
		*alen = m.msg_namelen;
	return n;
}

static ssize_t xs_recviov(struct xsock *xs, int fd, const struct iovec *iov, int cnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)(uintptr_t)iov };

	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	m.msg_iovlen = (size_t)cnt;
	return xs_recvmsg(xs, fd, &m, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Interposed functions                                                                       */

int socket(int domain, int type, int protocol)
{
	init();
	if (domain != AF_NETLINK || protocol != NETLINK_XFRM)
		return real.socket(domain, type, protocol);
	return ret_err(xs_open(type));
}

int bind(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.bind(fd, SA(addr), len);
	err = xs_bind(xs, fd, SA(addr), len);
	xs_put(xs);
	return ret_err(err);
}

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.connect(fd, SA(addr), len);
	err = xs_connect(xs, fd, SA(addr), len);
	xs_put(xs);
	return ret_err(err);
}

int getsockname(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.getsockname(fd, SA(addr), len);
	err = xs_name(xs, SA(addr), len, false);
	xs_put(xs);
	return ret_err(err);
}

int getpeername(int fd, __SOCKADDR_ARG addr, socklen_t *len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.getpeername(fd, SA(addr), len);
	err = xs_name(xs, SA(addr), len, true);
	xs_put(xs);
	return ret_err(err);
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.setsockopt(fd, level, name, val, len);
	if (level == SOL_NETLINK)
		err = nl_setsockopt(xs, fd, name, val, len);
	else if (level == SOL_SOCKET)
		err = sock_setsockopt(xs, fd, name, val, len);
	else
		err = -ENOPROTOOPT;
	xs_put(xs);
	return ret_err(err);
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	struct xsock *xs;
	int err;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.getsockopt(fd, level, name, val, len);
	if (level == SOL_NETLINK)
		err = nl_getsockopt(xs, name, val, len);
	else if (level == SOL_SOCKET)
		err = sock_getsockopt(xs, name, val, len);
	else
		err = -ENOPROTOOPT;
	xs_put(xs);
	if (err == 1)
		return real.getsockopt(fd, level, name, val, len);
	return ret_err(err);
}

/* Netlink has no shutdown(); letting it through would half-close the daemon connection. */
int shutdown(int fd, int how)
{
	struct xsock *xs;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.shutdown(fd, how);
	xs_put(xs);
	return ret_err(-EOPNOTSUPP);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.sendmsg(fd, msg, flags);
	n = xs_sendmsg(xs, fd, msg, flags);
	xs_put(xs);
	return ret_len(n);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, __CONST_SOCKADDR_ARG addr,
	       socklen_t alen)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.sendto(fd, buf, len, flags, SA(addr), alen);
	n = xs_sendto(xs, fd, buf, len, flags, SA(addr), alen);
	xs_put(xs);
	return ret_len(n);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.send(fd, buf, len, flags);
	n = xs_sendto(xs, fd, buf, len, flags, NULL, 0);
	xs_put(xs);
	return ret_len(n);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.write(fd, buf, len);
	n = xs_sendto(xs, fd, buf, len, 0, NULL, 0);
	xs_put(xs);
	return ret_len(n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.writev(fd, iov, cnt);
	n = xs_sendiov(xs, fd, iov, cnt);
	xs_put(xs);
	return ret_len(n);
}

/* As the kernel: stop at the first error, which is reported only when nothing was sent. */
int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags)
{
	struct xsock *xs;
	unsigned int i;
	ssize_t n = 0;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.sendmmsg(fd, vec, vlen, flags);
	for (i = 0; i < vlen && i < INT_MAX; i++) {
		n = xs_sendmsg(xs, fd, &vec[i].msg_hdr, flags);
		if (n < 0)
			break;
		vec[i].msg_len = (unsigned int)n;
	}
	xs_put(xs);
	return i ? (int)i : (int)ret_len(n);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.recvmsg(fd, msg, flags);
	n = xs_recvmsg(xs, fd, msg, flags);
	xs_put(xs);
	return ret_len(n);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, __SOCKADDR_ARG addr, socklen_t *alen)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.recvfrom(fd, buf, len, flags, SA(addr), alen);
	n = xs_recvfrom(xs, fd, buf, len, flags, SA(addr), alen);
	xs_put(xs);
	return ret_len(n);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.recv(fd, buf, len, flags);
	n = xs_recvfrom(xs, fd, buf, len, flags, NULL, NULL);
	xs_put(xs);
	return ret_len(n);
}

ssize_t read(int fd, void *buf, size_t len)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.read(fd, buf, len);
	n = xs_recvfrom(xs, fd, buf, len, 0, NULL, NULL);
	xs_put(xs);
	return ret_len(n);
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	struct xsock *xs;
	ssize_t n;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.readv(fd, iov, cnt);
	n = xs_recviov(xs, fd, iov, cnt);
	xs_put(xs);
	return ret_len(n);
}

/* The timeout is not honoured: the kernel only checks it between datagrams anyway. */
int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *tmo)
{
	struct xsock *xs;
	unsigned int i;
	ssize_t n = 0;

	init();
	xs = xs_get(fd);
	if (!xs)
		return real.recvmmsg(fd, vec, vlen, flags, tmo);
	for (i = 0; i < vlen && i < INT_MAX; i++) {
		n = xs_recvmsg(xs, fd, &vec[i].msg_hdr, flags);
		if (n < 0)
			break;
		vec[i].msg_len = (unsigned int)n;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
	}
	xs_put(xs);
	return i ? (int)i : (int)ret_len(n);
}

ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
	if (len > buflen)
		__chk_fail();
	return recv(fd, buf, len, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
		       __SOCKADDR_ARG addr, socklen_t *alen)
{
	if (len > buflen)
		__chk_fail();
	return recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		__chk_fail();
	return read(fd, buf, len);
}

/* Forget the slot before the number can be reused by another thread's open(). */
int close(int fd)
{
	init();
	slot_forget(fd);
	return real.close(fd);
}

int dup(int fd)
{
	int nfd;

	init();
	nfd = real.dup(fd);
	if (nfd >= 0)
		slot_copy(fd, nfd);
	return nfd;
}

int dup2(int fd, int nfd)
{
	int r;

	init();
	r = real.dup2(fd, nfd);
	if (r >= 0)
		slot_copy(fd, r);
	return r;
}

int dup3(int fd, int nfd, int flags)
{
	int r;

	init();
	r = real.dup3(fd, nfd, flags);
	if (r >= 0)
		slot_copy(fd, r);
	return r;
}

/* glibc reads the optional argument as a pointer too; it is passed on untouched. */
static int fcntl_common(int (*fn)(int, int, ...), int fd, int cmd, void *arg)
{
	int r = fn(fd, cmd, arg);

	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		slot_copy(fd, r);
	return r;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	init();
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(real.fcntl, fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	init();
	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_common(real.fcntl64, fd, cmd, arg);
}
