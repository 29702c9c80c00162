/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_SERVER_H
#define XG_SERVER_H

/**
 * @file
 * The XFRM control socket: an AF_UNIX SOCK_SEQPACKET server that speaks
 * NETLINK_XFRM to many clients (through libxfrmgw-preload.so) and feeds an
 * xg_xfrm model.
 *
 * Thread-safety: one control thread owns the server and calls
 * xg_server_poll() in its loop; no other function may run concurrently.
 * No call blocks: a client that stops reading only fills its own bounded
 * queue.
 */

#include <stdint.h>
#include <sys/types.h>

struct xg_server;
struct xg_xfrm;

/** Counters of the control socket. */
struct xg_server_stats {
	uint64_t clients_accepted;
	uint64_t requests;          /**< datagrams received */
	uint64_t events_sent;
	uint64_t events_dropped;    /**< multicast copies dropped: queue full */
	uint64_t eperm;             /**< requests refused: peer not privileged */
};

/**
 * Create the listening socket at @p path (parent directory created with
 * mode 0700 if missing; socket mode 0600; a stale socket is replaced, a
 * live one is an error).
 * @return the server, or NULL with errno set.
 */
struct xg_server *xg_server_create(const char *path);

/**
 * As xg_server_create(), and also admit group @p gid ((gid_t)-1: none):
 * the socket is 0660 with that group, a parent directory it creates is
 * 0710 with that group, and a peer whose SO_PEERCRED gid or supplementary
 * groups (read from /proc/PID/status at accept) include @p gid is served
 * like root. Everyone else gets EPERM on every request.
 * Not thread-safe: call from the control thread.
 */
struct xg_server *xg_server_create_group(const char *path, gid_t gid);

/** The model the server's handlers program (owned by the server). */
struct xg_xfrm *xg_server_xfrm(struct xg_server *s);

/**
 * Serve every ready client, waiting at most @p timeout_ms for one.
 * @return 0, or a negative errno on a fatal error of the listening socket.
 */
int xg_server_poll(struct xg_server *s, int timeout_ms);

/**
 * Recreate the socket file if it was removed under the running server
 * (clients already connected keep being served); a file another process
 * put at the path is left alone. Call from the polling thread.
 * @return 1 recreated, 0 nothing to do, or a negative errno.
 */
int xg_server_check_path(struct xg_server *s);

/**
 * Have @p fn(@p arg) called after a request changed the model (SAs,
 * policies, ...) and before the answers to it are sent; NULL: none.
 */
void xg_server_set_before_reply(struct xg_server *s, void (*fn)(void *arg), void *arg);

/** What an observer (xg_server_set_observer()) is shown. */
enum xg_server_seen {
	XG_SEEN_REQUEST,   /**< a request about to be handled */
	XG_SEEN_EVENT,     /**< an event the model multicast (a change) */
	XG_SEEN_ERROR,     /**< an NLMSG_ERROR answer with a non-zero error */
};

/**
 * Have @p fn see every request, every multicast event and every error
 * answer, with the pid of the client concerned (SO_PEERCRED at connect;
 * 0: none, e.g. an event of the timer). For logging; NULL: none.
 */
void xg_server_set_observer(struct xg_server *s,
			    void (*fn)(void *arg, enum xg_server_seen what, int pid,
				       const void *msg, size_t len),
			    void *arg);

/** Counters since creation. */
void xg_server_stats(const struct xg_server *s, struct xg_server_stats *st);

/** Close every client, remove the socket file (if still ours), free everything. */
void xg_server_destroy(struct xg_server *s);

#endif /* XG_SERVER_H */
