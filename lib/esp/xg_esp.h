/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XG_ESP_H
#define XG_ESP_H

/**
 * @file
 * ESP (RFC 4303) encapsulation and decapsulation on mbufs, with the cipher
 * and integrity work done by IPsec-MB through CPU crypto on the
 * crypto_ipsec_mb PMD (drivers_glue/xg_crypto.h). Tunnel mode (IPv4/IPv6
 * outer, either inner family per packet) and transport mode, ESN, the
 * anti-replay window of xg_replay.h.
 *
 * Packets enter and leave as bare IP packets (mbuf data starts at the IP
 * header, no L2). Burst functions process n packets and return how many are
 * good; those come first in the array and the bad ones after them, each
 * with its reason in @p why (enum xg_stat).
 *
 * Thread-safety: an SA is set up and torn down by the control thread. Any
 * number of lcores may send on an outbound SA (sequence numbers are handed
 * out atomically); an inbound SA's replay window belongs to one lcore.
 */

#include <stdbool.h>
#include <stdint.h>

#include "xg_replay.h"

struct rte_mbuf;
struct rte_crypto_sym_xform;

/** Most packets one burst call handles (callers pass at most this many). */
#define XG_ESP_BURST_MAX 64

enum xg_esp_aead { XG_AEAD_NONE, XG_AEAD_AES_GCM, XG_AEAD_CHACHA20_POLY1305 };
enum xg_esp_cipher { XG_CIPHER_NULL, XG_CIPHER_AES_CBC, XG_CIPHER_AES_CTR };
enum xg_esp_auth { XG_AUTH_NONE, XG_AUTH_SHA1, XG_AUTH_SHA256, XG_AUTH_SHA384, XG_AUTH_SHA512 };

/** Everything an SA needs, in plain terms (built from the XFRM model). */
struct xg_esp_cfg {
	bool outbound;
	bool tunnel;
	bool esn;
	uint8_t family;            /**< outer family (AF_INET/AF_INET6) */
	uint8_t saddr[16], daddr[16];  /**< tunnel endpoints, network order */
	uint32_t spi;              /**< network order */
	uint32_t replay_window;    /**< inbound: 0..4096 */
	uint64_t seq;              /**< outbound: last sequence number sent */
	enum xg_esp_aead aead;
	enum xg_esp_cipher cipher;
	enum xg_esp_auth auth;
	uint8_t icv_bytes;         /**< ICV on the wire */
	uint8_t key[64];           /**< cipher or AEAD key, salt/nonce excluded */
	uint8_t key_len;
	uint8_t auth_key[128];
	uint8_t auth_key_len;
	uint8_t salt[4];           /**< GCM/ChaCha20 salt, CTR nonce */
};

/** Runtime SA; hot fields first. */
struct xg_esp_sa {
	uint32_t spi;
	uint8_t iv_len;            /**< IV bytes on the wire */
	uint8_t icv_len;
	uint8_t align;             /**< payload + trailer alignment: 4 or 16 */
	bool aead, tunnel, esn, outbound, ctr;
	uint8_t family;
	uint8_t salt[4];
	uint64_t seq;              /**< outbound: last number handed out (atomic) */
	uint8_t saddr[16], daddr[16];
	void *sess;
	struct esp_imb *imb;       /**< straight on IPsec-MB (esp_imb.c), else sess */
	uint8_t dev;
	bool cpu;                  /**< CPU crypto, else lookaside operations */
	uint64_t iv_ctr;           /**< CBC IV stream state */
	uint8_t iv_key[16];
	/* Outbound tunnel over IPv4: the outer header with everything but
	 * TOS, length and DF filled in, and the one's-complement sum of its
	 * 16-bit words, so each packet's header is a copy and three adds. */
	uint8_t outer4[20];
	uint32_t outer4_sum;
	struct xg_replay replay;   /**< inbound */
};

/**
 * Build @p sa from @p cfg (creates the crypto session).
 * @return 0, -EINVAL (unsupported combination), -ENOMEM/-EIO (session).
 */
int xg_esp_sa_init(struct xg_esp_sa *sa, const struct xg_esp_cfg *cfg);

/**
 * The crypto transforms @p cfg needs, chained in the order a device
 * applies them (outbound: cipher then auth; inbound: auth then cipher),
 * written to @p x (room for two). Keys point into @p cfg.
 * @return the first transform of the chain.
 */
struct rte_crypto_sym_xform *xg_esp_xforms(const struct xg_esp_cfg *cfg,
					   struct rte_crypto_sym_xform *x);

/** Start loading what processing a packet of @p sa reads (SA, keys):
 *  a burst of many SAs issues these for all before the first one runs. */
void xg_esp_prefetch(const struct xg_esp_sa *sa);

/** Free what the calling thread keeps for ESP (its IPsec-MB manager) and
 *  wipe its CBC IV key: a worker or the control thread that is done. */
void xg_esp_thread_fini(void);

/** Free the session and wipe the SA. */
void xg_esp_sa_fini(struct xg_esp_sa *sa);

/** Encapsulate @p n packets. @return the number of good packets (first). */
uint16_t xg_esp_outb(struct xg_esp_sa *sa, struct rte_mbuf *mb[], uint16_t n,
		     uint8_t why[]);

/**
 * Decapsulate @p n ESP packets of @p sa (the SPI already looked up).
 * Tunnel mode leaves the inner packet, transport mode the original packet
 * with the ESP header removed.
 */
uint16_t xg_esp_inb(struct xg_esp_sa *sa, struct rte_mbuf *mb[], uint16_t n, uint8_t why[]);

#endif /* XG_ESP_H */
