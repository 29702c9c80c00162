/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The algorithms xfrmgw accepts: the kernel's names (and the kernel's compat
 * aliases, which it rewrites to the canonical name) for exactly the set the
 * data plane runs with IPsec-MB. A name the kernel knows but the data plane
 * does not run is refused like an unknown one (-ENOSYS): storing an SA that
 * would silently drop its traffic is worse than refusing it.
 */

#include <stddef.h>
#include <string.h>

#include "xfrm_priv.h"

struct aead_desc {
	const char *name;
	uint16_t icv_bits;
	uint16_t salt_bits;
	uint16_t keys[4];   /* accepted cipher key sizes (bits), 0-terminated */
};

static const struct aead_desc aeads[] = {
	{ "rfc4106(gcm(aes))", 64, 32, { 128, 192, 256, 0 } },
	{ "rfc4106(gcm(aes))", 96, 32, { 128, 192, 256, 0 } },
	{ "rfc4106(gcm(aes))", 128, 32, { 128, 192, 256, 0 } },
	{ "rfc7539esp(chacha20,poly1305)", 128, 32, { 256, 0 } },
};

static const struct xg_auth_desc auths[] = {
	{ "hmac(sha1)", 96, 160 },
	{ "hmac(sha256)", 96, 256 },
	{ "hmac(sha384)", 192, 384 },
	{ "hmac(sha512)", 256, 512 },
};

static const char *const auth_compat[] = { "sha1", "sha256", NULL, NULL };

struct crypt_desc {
	const char *name;
	const char *compat;
	uint16_t keys[5];   /* 0-terminated; { 0xffff } = no key at all */
};

static const struct crypt_desc crypts[] = {
	{ "cbc(aes)", "aes", { 128, 192, 256, 0 } },
	{ "rfc3686(ctr(aes))", NULL, { 160, 224, 288, 0 } },
	{ "ecb(cipher_null)", "cipher_null", { 0xffff, 0 } },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *
xg_algo_aead(const char *name, uint32_t icv_bits)
{
	size_t i;

	for (i = 0; i < N(aeads); i++)
		if (aeads[i].icv_bits == icv_bits && strcmp(name, aeads[i].name) == 0)
			return aeads[i].name;
	return NULL;
}

bool
xg_algo_aead_key_ok(const char *canon, uint32_t key_bits)
{
	size_t i, k;

	for (i = 0; i < N(aeads); i++) {
		if (strcmp(canon, aeads[i].name) != 0)
			continue;
		for (k = 0; aeads[i].keys[k]; k++)
			if (aeads[i].keys[k] + aeads[i].salt_bits == key_bits)
				return true;
		return false;
	}
	return false;
}

const struct xg_auth_desc *
xg_algo_auth(const char *name)
{
	size_t i;

	for (i = 0; i < N(auths); i++)
		if (strcmp(name, auths[i].name) == 0 ||
		    (auth_compat[i] && strcmp(name, auth_compat[i]) == 0))
			return &auths[i];
	return NULL;
}

const char *
xg_algo_crypt(const char *name, const uint16_t **key_bits)
{
	size_t i;

	for (i = 0; i < N(crypts); i++) {
		if (strcmp(name, crypts[i].name) == 0 ||
		    (crypts[i].compat && strcmp(name, crypts[i].compat) == 0)) {
			*key_bits = crypts[i].keys;
			return crypts[i].name;
		}
	}
	return NULL;
}
