/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_OFFLOAD_H
#define XG_OFFLOAD_H

/**
 * @file
 * Choosing rte_security offload for an SA: given what a port advertises
 * (rte_security_capabilities_get()), the best action that can run the SA
 * as it is: inline protocol, then lookaside protocol, then inline crypto;
 * otherwise none, and the SA runs on IPsec-MB CPU crypto.
 *
 * Thread-safety: pure functions, any thread.
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

#endif /* XG_OFFLOAD_H */
