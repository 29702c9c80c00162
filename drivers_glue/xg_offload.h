/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_OFFLOAD_H
#define XG_OFFLOAD_H

/**
 * @file
 * rte_security offload for an SA. xg_offload_select() picks, from what a
 * port advertises (rte_security_capabilities_get()), the best action that
 * can run the SA as it is: inline protocol, then lookaside protocol, then
 * inline crypto; otherwise none, and the SA runs on IPsec-MB CPU crypto.
 *
 * xg_offload_attach() then creates the session on the port when the
 * action is one the data plane runs. That is inline protocol only: the
 * port adds and removes ESP (and the tunnel header) itself, keeps the
 * sequence numbers and the replay window; workers set the session's
 * metadata on outbound packets and find the SA of inbound ones through the
 * userdata the port stores in the mbuf. Inline crypto (the application
 * frames ESP and installs an rte_flow rule per inbound SA) and lookaside
 * protocol (a crypto device with rte_security) are chosen by
 * xg_offload_select() but not run: such SAs stay on CPU crypto.
 *
 * Thread-safety: xg_offload_select() and xg_offload_conf() are pure;
 * attach and detach run on the control thread.
 */

#include <stdbool.h>
#include <stdint.h>

#include <rte_cryptodev.h>
#include <rte_security.h>

#include "xg_esp.h"

/** What an SA needs from an offload. */
struct xg_offload_want {
	bool egress;
	bool tunnel;
	bool esn;
	bool udp_encap;
	uint32_t replay_window;    /**< ingress */
	enum xg_esp_aead aead;
	enum xg_esp_cipher cipher;
	enum xg_esp_auth auth;
	uint16_t key_bytes;        /**< cipher/AEAD key, without salt */
	uint16_t auth_key_bytes;
	uint16_t icv_bytes;
};

/**
 * Pick the offload for @p w from @p caps (terminated by an entry with
 * action RTE_SECURITY_ACTION_TYPE_NONE, as the drivers return them; NULL
 * for a port without rte_security).
 * @return the chosen action, RTE_SECURITY_ACTION_TYPE_NONE for CPU crypto.
 */
enum rte_security_session_action_type
xg_offload_select(const struct rte_security_capability *caps, const struct xg_offload_want *w);

/** An SA's offload session; action NONE: the SA runs on CPU crypto. */
struct xg_offload_sess {
	enum rte_security_session_action_type action;
	struct rte_security_ctx *ctx;
	void *sess;
	uint16_t port;             /**< the port that runs the session */
	bool need_mdata;           /**< egress: set the session's mbuf metadata */
};

/** What @p cfg asks of an offload. */
void xg_offload_want_of(const struct xg_esp_cfg *cfg, struct xg_offload_want *w);

/**
 * The session configuration for @p cfg with @p action, written to @p conf;
 * @p x (two transforms) holds the crypto chain, whose keys point into
 * @p cfg. The session's userdata is @p userdata (the port hands it back on
 * inbound packets).
 */
void xg_offload_conf(const struct xg_esp_cfg *cfg, enum rte_security_session_action_type action,
		     void *userdata, struct rte_security_session_conf *conf,
		     struct rte_crypto_sym_xform *x);

/**
 * Offload @p cfg on @p port if the port runs rte_security with the
 * security offloads enabled and can take the SA as it is. Sessions come
 * from a pool per port, made on first use.
 * @return 0 with s->action set (NONE: not offloaded), or -EIO when the
 *         port was chosen but refused the session (the SA then runs on
 *         CPU crypto as well).
 */
int xg_offload_attach(struct xg_offload_sess *s, uint16_t port, const struct xg_esp_cfg *cfg,
		      void *userdata);

/** xg_offload_attach() on a given security context and session pool. */
int xg_offload_attach_ctx(struct xg_offload_sess *s, struct rte_security_ctx *ctx,
			  struct rte_mempool *pool, uint16_t port, const struct xg_esp_cfg *cfg,
			  void *userdata);

/** Destroy the session, if any. */
void xg_offload_detach(struct xg_offload_sess *s);

#endif /* XG_OFFLOAD_H */
