/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef ESP_PRIV_H
#define ESP_PRIV_H

#include <stdint.h>

#include "xg_esp.h"

#define ESP_HDR_LEN 8        /* SPI + sequence number */
#define ESP_NONCE_LEN 12     /* AEAD nonce: 4-byte salt + 8-byte IV */
#define ESP_IPIP 4           /* next header of a tunnelled IPv4 packet */
#define ESP_IPV6 41          /* ... and of a tunnelled IPv6 packet */

/* Per-packet crypto inputs, laid out for one rte_crypto_sym_vec call. */
struct esp_cop {
	uint8_t iv[16];          /* AEAD nonce, CTR counter block or CBC IV */
	uint8_t aad[12];         /* AEAD: SPI | [seq hi] | seq lo */
};

#endif /* ESP_PRIV_H */
