/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SAD: NEWSA, UPDSA, DELSA, GETSA, FLUSHSA, the SA dump and GETSADINFO, with
 * the validation order and errno values of Linux 6.1 (xfrm_user.c,
 * xfrm_state.c, esp4.c). The order matters: a request with several defects
 * must get the same errno and message as from the kernel.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "xfrm_priv.h"
#include "xg_prefix.h"

#define KERNEL_HZ 100   /* the reference kernel's tick: ETIMER_THRESH is reported in 1/10 s */
#define AE_RSEQTH 2                   /* sysctl xfrm_aevent_rseqth default */
#define AE_ETIME_JIFFIES 100          /* xfrm_aevent_etime (10) * HZ / 10, HZ = 100 */
#define SAD_HASHMAX (1u << 20)
#define UDP_ENCAP_ESPINUDP 2

static bool
proto_is_ipsec(uint8_t proto)
{
	return proto == IPPROTO_ESP || proto == IPPROTO_AH || proto == IPPROTO_COMP;
}

/* The kernel's xfrm_id_proto_match(): 0 matches all, 255 any IPsec proto. */
static bool
proto_match(uint8_t proto, uint8_t user)
{
	return !user || proto == user || (user == IPSEC_PROTO_ANY && proto_is_ipsec(proto));
}

static size_t
esn_len(const struct xfrm_replay_state_esn *rs)
{
	return sizeof(*rs) + rs->bmp_len * sizeof(uint32_t);
}

static unsigned int
sa_hash(const xfrm_address_t *daddr, uint32_t spi, uint8_t proto)
{
	uint32_t h = spi ^ proto;
	int i;

	for (i = 0; i < 4; i++)
		h = (h ^ daddr->a6[i]) * 0x9e3779b1u;
	return (h ^ (h >> 16)) & (XG_SA_HASH_SIZE - 1);
}

/* The kernel's __xfrm_state_lookup(): spi-keyed identity. */
static struct xg_sa *
sa_lookup(struct xg_xfrm *x, uint32_t mark, const xfrm_address_t *daddr, uint32_t spi,
	  uint8_t proto, uint16_t family)
{
	struct xg_sa *sa;

	/* No state with SPI 0 is in the kernel's SPI hash (larval or added so):
	 * GETSA/DELSA/NEWAE cannot find it, a second NEWSA adds another one. */
	if (spi == 0)
		return NULL;
	for (sa = x->sa_hash[sa_hash(daddr, spi, proto)]; sa; sa = sa->hnext)
		if (sa->family == family && sa->id.spi == spi && sa->id.proto == proto &&
		    (!sa->larval || sa->id.spi) &&
		    xg_addr_equal(&sa->id.daddr, daddr, family) &&
		    (mark & sa->mark.m) == sa->mark.v)
			return sa;
	return NULL;
}

static int
verify_proto(const struct xfrm_usersa_info *p, const struct xg_nla *tb, struct xg_extack *e)
{
	bool auth = tb[XFRMA_ALG_AUTH].data || tb[XFRMA_ALG_AUTH_TRUNC].data;

	switch (p->id.proto) {
	case IPPROTO_AH:
		if (!auth) {
			e->msg = "Missing required attribute for AH: AUTH_TRUNC or AUTH";
			return -EINVAL;
		}
		if (tb[XFRMA_ALG_AEAD].data || tb[XFRMA_ALG_CRYPT].data ||
		    tb[XFRMA_ALG_COMP].data || tb[XFRMA_TFCPAD].data) {
			e->msg = "Invalid attributes for AH: AEAD, CRYPT, COMP, TFCPAD";
			return -EINVAL;
		}
		return 0;
	case IPPROTO_ESP:
		if (tb[XFRMA_ALG_COMP].data) {
			e->msg = "Invalid attribute for ESP: COMP";
			return -EINVAL;
		}
		if (!auth && !tb[XFRMA_ALG_CRYPT].data && !tb[XFRMA_ALG_AEAD].data) {
			e->msg = "Missing required attribute for ESP: at least one of AUTH, "
				 "AUTH_TRUNC, CRYPT, AEAD";
			return -EINVAL;
		}
		if ((auth || tb[XFRMA_ALG_CRYPT].data) && tb[XFRMA_ALG_AEAD].data) {
			e->msg = "Invalid attribute combination for ESP: AEAD can't be used with "
				 "AUTH, AUTH_TRUNC, CRYPT";
			return -EINVAL;
		}
		if (tb[XFRMA_TFCPAD].data && p->mode != XFRM_MODE_TUNNEL) {
			e->msg = "TFC padding can only be used in tunnel mode";
			return -EINVAL;
		}
		return 0;
	case IPPROTO_COMP:
		if (!tb[XFRMA_ALG_COMP].data) {
			e->msg = "Missing required attribute for COMP: COMP";
			return -EINVAL;
		}
		if (auth || tb[XFRMA_ALG_AEAD].data || tb[XFRMA_ALG_CRYPT].data ||
		    tb[XFRMA_TFCPAD].data) {
			e->msg = "Invalid attributes for COMP: AEAD, AUTH, AUTH_TRUNC, CRYPT, TFCPAD";
			return -EINVAL;
		}
		if (ntohl(p->id.spi) >= 0x10000) {
			e->msg = "SPI is too large for COMP (must be < 0x10000)";
			return -EINVAL;
		}
		return 0;
	case IPPROTO_DSTOPTS:
	case IPPROTO_ROUTING:
		if (auth || tb[XFRMA_ALG_COMP].data || tb[XFRMA_ALG_AEAD].data ||
		    tb[XFRMA_ALG_CRYPT].data || tb[XFRMA_ENCAP].data ||
		    tb[XFRMA_SEC_CTX].data || tb[XFRMA_TFCPAD].data) {
			e->msg = "Invalid attributes for DSTOPTS/ROUTING";
			return -EINVAL;
		}
		if (!tb[XFRMA_COADDR].data) {
			e->msg = "Missing required COADDR attribute for DSTOPTS/ROUTING";
			return -EINVAL;
		}
		return 0;
	}
	e->msg = "Unsupported protocol";
	return -EINVAL;
}

/* Key lengths are attacker-controlled: an attribute must hold the whole key. */
static int
verify_algs(const struct xg_nla *tb, struct xg_extack *e)
{
	const struct xg_nla *a;
	struct xfrm_algo_aead aead;
	struct xfrm_algo_auth auth;
	struct xfrm_algo alg;
	int t;

	a = &tb[XFRMA_ALG_AEAD];
	if (a->data) {
		xg_attr_copy(&aead, sizeof(aead), a);
		if (a->len < sizeof(aead) + (aead.alg_key_len + 7) / 8) {
			e->msg = "Invalid AEAD attribute length";
			return -EINVAL;
		}
	}
	a = &tb[XFRMA_ALG_AUTH_TRUNC];
	if (a->data) {
		xg_attr_copy(&auth, sizeof(auth), a);
		if (a->len < sizeof(auth) + (auth.alg_key_len + 7) / 8) {
			e->msg = "Invalid AUTH_TRUNC attribute length";
			return -EINVAL;
		}
	}
	for (t = XFRMA_ALG_AUTH; t <= XFRMA_ALG_COMP; t++) {
		a = &tb[t];
		if (!a->data)
			continue;
		xg_attr_copy(&alg, sizeof(alg), a);
		if (a->len < sizeof(alg) + (alg.alg_key_len + 7) / 8) {
			e->msg = "Invalid AUTH/CRYPT/COMP attribute length";
			return -EINVAL;
		}
	}
	return 0;
}

static int
verify_replay(const struct xfrm_usersa_info *p, const struct xg_nla *tb, struct xg_extack *e)
{
	const struct xg_nla *a = &tb[XFRMA_REPLAY_ESN_VAL];
	struct xfrm_replay_state_esn rs;

	if (!a->data) {
		if (p->flags & XFRM_STATE_ESN) {
			e->msg = "Missing required attribute for ESN";
			return -EINVAL;
		}
		return 0;
	}
	xg_attr_copy(&rs, sizeof(rs), a);
	if (rs.bmp_len > XFRMA_REPLAY_ESN_MAX / sizeof(uint32_t) / 8) {
		e->msg = "ESN bitmap length must be <= 128";
		return -EINVAL;
	}
	if (a->len < esn_len(&rs) && a->len != sizeof(rs)) {
		e->msg = "ESN attribute is too short to fit the full bitmap length";
		return -EINVAL;
	}
	if (p->id.proto != IPPROTO_ESP && p->id.proto != IPPROTO_AH) {
		e->msg = "ESN only supported for ESP and AH";
		return -EINVAL;
	}
	if (p->replay_window != 0) {
		e->msg = "ESN not compatible with legacy replay_window";
		return -EINVAL;
	}
	return 0;
}

static int
verify_newsa(const struct xfrm_usersa_info *p, const struct xg_nla *tb, struct xg_extack *e)
{
	uint16_t family = p->sel.family;
	int err;

	if (p->family != AF_INET && p->family != AF_INET6) {
		e->msg = "Invalid address family";
		return -EINVAL;
	}
	if (!family && !(p->flags & XFRM_STATE_AF_UNSPEC))
		family = p->family;
	err = xg_selector_verify(&p->sel, family, true, "Invalid address family in selector", e);
	if (!err)
		err = verify_proto(p, tb, e);
	if (!err)
		err = verify_algs(tb, e);
	if (!err)
		err = xg_sec_ctx_verify(tb, e);
	if (!err)
		err = verify_replay(p, tb, e);
	if (err)
		return err;
	/* IN_TRIGGER is a policy template mode, never an SA's. */
	if (p->mode >= XFRM_MODE_MAX || p->mode == XFRM_MODE_IN_TRIGGER) {
		e->msg = "Unsupported mode";
		return -EINVAL;
	}
	if (tb[XFRMA_MTIMER_THRESH].data && !tb[XFRMA_ENCAP].data) {
		e->msg = "MTIMER_THRESH attribute can only be set on ENCAP states";
		return -EINVAL;
	}
	return 0;
}

static int
attach_aead(struct xg_sa *sa, const struct xg_nla *a, struct xg_extack *e)
{
	struct xfrm_algo_aead hdr;
	const char *canon;
	size_t len;

	xg_attr_copy(&hdr, sizeof(hdr), a);
	hdr.alg_name[sizeof(hdr.alg_name) - 1] = '\0';
	canon = xg_algo_aead(hdr.alg_name, hdr.alg_icv_len);
	if (canon == NULL) {
		e->msg = "Requested AEAD algorithm not found";
		return -ENOSYS;
	}
	len = sizeof(hdr) + (hdr.alg_key_len + 7) / 8;
	sa->aead = calloc(1, len);
	if (sa->aead == NULL)
		return -ENOMEM;
	memcpy(sa->aead, a->data, len);
	memset(sa->aead->alg_name, 0, sizeof(sa->aead->alg_name));
	strcpy(sa->aead->alg_name, canon);
	return 0;
}

static int
attach_auth(struct xg_sa *sa, const struct xg_nla *a, bool trunc, struct xg_extack *e)
{
	const struct xg_auth_desc *d;
	struct xfrm_algo_auth hdr = { .alg_trunc_len = 0 };
	size_t keylen;

	if (trunc) {
		xg_attr_copy(&hdr, sizeof(hdr), a);
	} else {
		struct xfrm_algo u;

		xg_attr_copy(&u, sizeof(u), a);
		memcpy(hdr.alg_name, u.alg_name, sizeof(hdr.alg_name));
		hdr.alg_key_len = u.alg_key_len;
	}
	hdr.alg_name[sizeof(hdr.alg_name) - 1] = '\0';
	d = xg_algo_auth(hdr.alg_name);
	if (d == NULL) {
		e->msg = trunc ? "Requested AUTH_TRUNC algorithm not found" :
				 "Requested AUTH algorithm not found";
		return -ENOSYS;
	}
	if (trunc && hdr.alg_trunc_len > d->full_bits) {
		e->msg = "Invalid length requested for truncated ICV";
		return -EINVAL;
	}
	if (!hdr.alg_trunc_len)
		hdr.alg_trunc_len = d->trunc_bits;
	keylen = (hdr.alg_key_len + 7) / 8;
	sa->aalg = calloc(1, sizeof(hdr) + keylen);
	if (sa->aalg == NULL)
		return -ENOMEM;
	memset(hdr.alg_name, 0, sizeof(hdr.alg_name));
	strcpy(hdr.alg_name, d->name);
	memcpy(sa->aalg, &hdr, sizeof(hdr));
	memcpy(sa->aalg->alg_key, a->data + (trunc ? sizeof(hdr) : sizeof(struct xfrm_algo)),
	       keylen);
	return 0;
}

static int
attach_crypt(struct xg_sa *sa, const struct xg_nla *a, struct xg_extack *e)
{
	struct xfrm_algo hdr;
	const uint16_t *keys;
	const char *canon;
	size_t len;

	xg_attr_copy(&hdr, sizeof(hdr), a);
	hdr.alg_name[sizeof(hdr.alg_name) - 1] = '\0';
	canon = xg_algo_crypt(hdr.alg_name, &keys);
	if (canon == NULL) {
		e->msg = "Requested CRYPT algorithm not found";
		return -ENOSYS;
	}
	len = sizeof(hdr) + (hdr.alg_key_len + 7) / 8;
	sa->ealg = calloc(1, len);
	if (sa->ealg == NULL)
		return -ENOMEM;
	memcpy(sa->ealg, a->data, len);
	memset(sa->ealg->alg_name, 0, sizeof(sa->ealg->alg_name));
	strcpy(sa->ealg->alg_name, canon);
	return 0;
}

static bool
crypt_key_ok(const struct xfrm_algo *ealg)
{
	const uint16_t *keys;
	int i;

	if (xg_algo_crypt(ealg->alg_name, &keys) == NULL)
		return false;
	for (i = 0; keys[i]; i++)
		if (keys[i] == 0xffff ? ealg->alg_key_len == 0 : keys[i] == ealg->alg_key_len)
			return true;
	return false;
}

/* __xfrm_init_state() and esp_init_state(): what the kernel checks once the
 * SA is built. Only ESP exists here: other types are "not found". */
static int
init_state(struct xg_sa *sa, struct xg_extack *e)
{
	bool tunnel = sa->mode == XFRM_MODE_TUNNEL;
	const char *crypto_fail = "Kernel was unable to initialize cryptographic operations";

	if (sa->mode != XFRM_MODE_TUNNEL && sa->mode != XFRM_MODE_TRANSPORT) {
		e->msg = "Requested mode not found";
		return -EPROTONOSUPPORT;
	}
	if (sa->sel.family != AF_UNSPEC && !tunnel && sa->family != sa->sel.family) {
		e->msg = "Only tunnel modes can accommodate a change of family";
		return -EPROTONOSUPPORT;
	}
	if (sa->id.proto != IPPROTO_ESP) {
		e->msg = "Requested type not found";
		return -EPROTONOSUPPORT;
	}
	if (sa->aead) {
		if (!xg_algo_aead_key_ok(sa->aead->alg_name, sa->aead->alg_key_len)) {
			e->msg = crypto_fail;
			return -EINVAL;
		}
	} else if (sa->ealg) {
		/* The kernel's authenc setkey fails without a message. */
		if (!crypt_key_ok(sa->ealg))
			return -EINVAL;
		if (sa->aalg && (sa->aalg->alg_trunc_len % 8 || sa->aalg->alg_trunc_len == 0)) {
			e->msg = crypto_fail;
			return -EINVAL;
		}
	} else {
		e->msg = "ESP: AEAD or CRYPT must be provided";
		return -EINVAL;
	}
	if (sa->has_encap && sa->encap.encap_type != UDP_ENCAP_ESPINUDP) {
		e->msg = "Unsupported encapsulation type for ESP";
		return -EINVAL;
	}
	return 0;
}

static int
init_replay(struct xg_sa *sa, struct xg_extack *e)
{
	const struct xfrm_replay_state_esn *rs = sa->replay_esn;

	if (rs == NULL)
		return 0;
	if (rs->replay_window > rs->bmp_len * sizeof(uint32_t) * 8) {
		e->msg = "ESN replay window is too large for the chosen bitmap size";
		return -EINVAL;
	}
	if ((sa->flags & XFRM_STATE_ESN) && rs->replay_window == 0) {
		e->msg = "ESN replay window must be > 0";
		return -EINVAL;
	}
	return 0;
}

static int
alloc_replay_esn(struct xg_sa *sa, const struct xg_nla *a)
{
	struct xfrm_replay_state_esn up;
	size_t klen, ulen;

	if (!a->data)
		return 0;
	xg_attr_copy(&up, sizeof(up), a);
	klen = esn_len(&up);
	/* A short attribute (header only) is accepted, with a zero bitmap. */
	ulen = a->len >= klen ? klen : sizeof(up);
	sa->replay_esn = calloc(1, klen);
	if (sa->replay_esn == NULL)
		return -ENOMEM;
	memcpy(sa->replay_esn, a->data, ulen);
	return 0;
}

static void
copy_from_user(struct xg_sa *sa, const struct xfrm_usersa_info *p)
{
	sa->id = p->id;
	sa->sel = p->sel;
	sa->lft = p->lft;
	sa->mode = p->mode;
	/* The kernel's legacy bitmap is 32 bits wide. */
	sa->replay_window = p->replay_window < 32 ? p->replay_window : 32;
	sa->reqid = p->reqid;
	sa->family = p->family;
	sa->saddr = p->saddr;
	sa->flags = p->flags;
	if (!sa->sel.family && !(p->flags & XFRM_STATE_AF_UNSPEC))
		sa->sel.family = p->family;
	sa->seq = p->seq;
	sa->replay_maxdiff = AE_RSEQTH;
	sa->replay_maxage = AE_ETIME_JIFFIES;
	sa->curlft.add_time = (uint64_t)time(NULL);
}

static void
update_ae_params(struct xg_sa *sa, const struct xg_nla *tb)
{
	if (tb[XFRMA_REPLAY_VAL].data)
		xg_attr_copy(&sa->replay, sizeof(sa->replay), &tb[XFRMA_REPLAY_VAL]);
	if (tb[XFRMA_LTIME_VAL].data)
		xg_attr_copy(&sa->curlft, sizeof(sa->curlft), &tb[XFRMA_LTIME_VAL]);
	if (tb[XFRMA_ETIMER_THRESH].data)
		sa->replay_maxage = xg_attr_u32(&tb[XFRMA_ETIMER_THRESH]);
	if (tb[XFRMA_REPLAY_THRESH].data)
		sa->replay_maxdiff = xg_attr_u32(&tb[XFRMA_REPLAY_THRESH]);
	if (tb[XFRMA_MTIMER_THRESH].data)
		sa->mapping_maxage = xg_attr_u32(&tb[XFRMA_MTIMER_THRESH]);
}

static int
attach_algs(struct xg_sa *sa, const struct xg_nla *tb, struct xg_extack *e)
{
	int err = 0;

	if (tb[XFRMA_ALG_AEAD].data)
		err = attach_aead(sa, &tb[XFRMA_ALG_AEAD], e);
	if (!err && tb[XFRMA_ALG_AUTH_TRUNC].data)
		err = attach_auth(sa, &tb[XFRMA_ALG_AUTH_TRUNC], true, e);
	if (!err && !sa->aalg && tb[XFRMA_ALG_AUTH].data)
		err = attach_auth(sa, &tb[XFRMA_ALG_AUTH], false, e);
	if (!err && tb[XFRMA_ALG_CRYPT].data)
		err = attach_crypt(sa, &tb[XFRMA_ALG_CRYPT], e);
	if (!err && tb[XFRMA_ALG_COMP].data) {
		e->msg = "Requested COMP algorithm not found";
		err = -ENOSYS;
	}
	return err;
}

static struct xg_sa *
sa_construct(const struct xfrm_usersa_info *p, const struct xg_nla *tb, struct xg_extack *e,
	     int *errp)
{
	struct xg_sa *sa = calloc(1, sizeof(*sa));
	int err = -ENOMEM;

	if (sa == NULL)
		goto fail;
	copy_from_user(sa, p);
	if (tb[XFRMA_ENCAP].data) {
		sa->has_encap = true;
		xg_attr_copy(&sa->encap, sizeof(sa->encap), &tb[XFRMA_ENCAP]);
	}
	if (tb[XFRMA_COADDR].data) {
		sa->has_coaddr = true;
		xg_attr_copy(&sa->coaddr, sizeof(sa->coaddr), &tb[XFRMA_COADDR]);
	}
	if (tb[XFRMA_SA_EXTRA_FLAGS].data)
		sa->extra_flags = xg_attr_u32(&tb[XFRMA_SA_EXTRA_FLAGS]);
	err = attach_algs(sa, tb, e);
	if (err)
		goto fail_free;
	if (tb[XFRMA_TFCPAD].data)
		sa->tfcpad = xg_attr_u32(&tb[XFRMA_TFCPAD]);
	xg_mark_get(tb, &sa->mark);
	if (tb[XFRMA_SET_MARK].data) {
		sa->smark.v = xg_attr_u32(&tb[XFRMA_SET_MARK]);
		sa->smark.m = tb[XFRMA_SET_MARK_MASK].data ?
				      xg_attr_u32(&tb[XFRMA_SET_MARK_MASK]) : 0xffffffff;
	}
	if (tb[XFRMA_IF_ID].data)
		sa->if_id = xg_attr_u32(&tb[XFRMA_IF_ID]);
	err = init_state(sa, e);
	if (!err)
		err = alloc_replay_esn(sa, &tb[XFRMA_REPLAY_ESN_VAL]);
	if (!err)
		err = init_replay(sa, e);
	if (err)
		goto fail_free;
	update_ae_params(sa, tb);
	/* xfrm_dev_state_add(): what no device can take is refused; the rest
	 * runs in software here, as on a device without IPsec offload (the
	 * data plane offloads by itself where a port can). */
	if (tb[XFRMA_OFFLOAD_DEV].data) {
		struct xfrm_user_offload xuo;

		xg_attr_copy(&xuo, sizeof(xuo), &tb[XFRMA_OFFLOAD_DEV]);
		err = -EINVAL;
		if (sa->has_encap || sa->tfcpad) {
			e->msg = "Encapsulation and TFC padding can't be offloaded";
			goto fail_free;
		}
		if (xuo.flags & ~(XFRM_OFFLOAD_IPV6 | XFRM_OFFLOAD_INBOUND)) {
			e->msg = "Unrecognized flags in offload request";
			goto fail_free;
		}
	}
	return sa;

fail_free:
	xg_sa_free(sa);
fail:
	*errp = err;
	return NULL;
}

static void
wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}

void
xg_sa_free(struct xg_sa *sa)
{
	if (sa->aead)
		wipe_free(sa->aead, sizeof(*sa->aead) + (sa->aead->alg_key_len + 7) / 8);
	if (sa->aalg)
		wipe_free(sa->aalg, sizeof(*sa->aalg) + (sa->aalg->alg_key_len + 7) / 8);
	if (sa->ealg)
		wipe_free(sa->ealg, sizeof(*sa->ealg) + (sa->ealg->alg_key_len + 7) / 8);
	free(sa->replay_esn);
	explicit_bzero(sa, sizeof(*sa));
	free(sa);
}

static void
hash_add(struct xg_xfrm *x, struct xg_sa *sa)
{
	unsigned int h = sa_hash(&sa->id.daddr, sa->id.spi, sa->id.proto);

	sa->hnext = x->sa_hash[h];
	x->sa_hash[h] = sa;
}

static void
hash_del(struct xg_xfrm *x, struct xg_sa *sa)
{
	struct xg_sa **pp = &x->sa_hash[sa_hash(&sa->id.daddr, sa->id.spi, sa->id.proto)];

	while (*pp != sa)
		pp = &(*pp)->hnext;
	*pp = sa->hnext;
}

static void
sa_link(struct xg_xfrm *x, struct xg_sa *sa)
{
	sa->mark.v &= sa->mark.m;
	xg_walk_add_head(&x->sa_all, &sa->all);
	hash_add(x, sa);
	x->nsa++;
	x->nlarval += sa->larval;
	sa->uid = ++x->sa_uid;
	/* The kernel doubles its SPI hash when it holds more states than
	 * buckets; GETSADINFO reports that size. */
	if (x->nsa > x->sad_hmask && x->sad_hmask + 1 < SAD_HASHMAX)
		x->sad_hmask = x->sad_hmask * 2 + 1;
}

static void
sa_unlink(struct xg_xfrm *x, struct xg_sa *sa)
{
	hash_del(x, sa);
	xg_walk_del(&sa->all);
	x->nsa--;
	x->nlarval -= sa->larval;
}

static void
sa_drop(struct xg_xfrm *x, struct xg_sa *sa)
{
	sa_unlink(x, sa);
	xg_sa_free(sa);
}

/* __find_acq_core(): the larval state, still without an SPI, that an SA
 * with these properties would answer; made when @p create is set. */
static struct xg_sa *
find_acq(struct xg_xfrm *x, const struct xfrm_mark *m, uint16_t family, uint8_t mode,
	 uint32_t reqid, uint32_t if_id, uint8_t proto, const xfrm_address_t *daddr,
	 const xfrm_address_t *saddr, bool create)
{
	uint32_t mark = m->v & m->m;
	struct xg_walk *w;
	struct xg_sa *sa;

	/* Larval states are few and short-lived; without any, NEWSA must not
	 * walk the whole SAD. */
	for (w = x->nlarval ? x->sa_all.next : &x->sa_all; w != &x->sa_all; w = w->next) {
		sa = xg_sa_of(w);
		if (w->walker || !sa->larval || sa->id.spi || sa->reqid != reqid ||
		    sa->mode != mode || sa->family != family || sa->id.proto != proto ||
		    (mark & sa->mark.m) != sa->mark.v || !xg_addr_equal(&sa->id.daddr, daddr, family) ||
		    !xg_addr_equal(&sa->saddr, saddr, family))
			continue;
		return sa;
	}
	if (!create || (sa = calloc(1, sizeof(*sa))) == NULL)
		return NULL;
	if (family == AF_INET || family == AF_INET6) {
		uint8_t plen = family == AF_INET ? 32 : 128;

		sa->sel.daddr = *daddr;
		sa->sel.saddr = *saddr;
		sa->sel.prefixlen_d = sa->sel.prefixlen_s = plen;
		sa->saddr = *saddr;
		sa->id.daddr = *daddr;
		if (family == AF_INET) {
			/* Only the IPv4 word is copied; the rest stays zero. */
			memset((uint8_t *)&sa->sel.daddr + 4, 0, 12);
			memset((uint8_t *)&sa->sel.saddr + 4, 0, 12);
			memset((uint8_t *)&sa->saddr + 4, 0, 12);
			memset((uint8_t *)&sa->id.daddr + 4, 0, 12);
		}
	}
	sa->larval = true;
	sa->id.proto = proto;
	sa->family = family;
	sa->mode = mode;
	sa->reqid = reqid;
	sa->if_id = if_id;
	sa->mark = *m;
	xg_sa_larval_lft(x, sa);
	sa_link(x, sa);
	return sa;
}

/* xfrm_state_alloc() limits, then net.core.xfrm_acq_expires. */
void
xg_sa_larval_lft(struct xg_xfrm *x, struct xg_sa *sa)
{
	sa->lft.soft_byte_limit = sa->lft.hard_byte_limit = XFRM_INF;
	sa->lft.soft_packet_limit = sa->lft.hard_packet_limit = XFRM_INF;
	sa->lft.hard_add_expires_seconds = x->ops.acq_expires ? x->ops.acq_expires(x->ops.ctx) :
								x->acq_expires;
	sa->curlft.add_time = (uint64_t)time(NULL);
}

void
xg_sa_link(struct xg_xfrm *x, struct xg_sa *sa)
{
	sa_link(x, sa);
}

/* __xfrm_find_acq_byseq(). */
static struct xg_sa *
find_acq_byseq(struct xg_xfrm *x, uint32_t mark, uint32_t seq)
{
	struct xg_walk *w;

	for (w = x->nlarval ? x->sa_all.next : &x->sa_all; w != &x->sa_all; w = w->next) {
		struct xg_sa *sa = xg_sa_of(w);

		if (!w->walker && sa->larval && sa->seq == seq && (mark & sa->mark.m) == sa->mark.v)
			return sa;
	}
	return NULL;
}

/* The larval state a new SA replaces (xfrm_state_add()): by the ACQUIRE
 * sequence number the SA carries, else by its properties. */
static struct xg_sa *
acq_of(struct xg_xfrm *x, const struct xg_sa *sa)
{
	struct xg_sa *acq = NULL;

	if (sa->seq) {
		acq = find_acq_byseq(x, sa->mark.v & sa->mark.m, sa->seq);
		if (acq && (acq->id.proto != sa->id.proto ||
			    !xg_addr_equal(&acq->id.daddr, &sa->id.daddr, sa->family)))
			acq = NULL;
	}
	if (acq == NULL)
		acq = find_acq(x, &sa->mark, sa->family, sa->mode, sa->reqid, sa->if_id,
			       sa->id.proto, &sa->id.daddr, &sa->saddr, false);
	return acq;
}

/* xfrm_state_lookup_spi_proto(): SPIs are unique per protocol. */
static bool
spi_taken(struct xg_xfrm *x, uint32_t spi, uint8_t proto)
{
	struct xg_walk *w;

	for (w = x->sa_all.next; w != &x->sa_all; w = w->next)
		if (!w->walker && xg_sa_of(w)->id.spi == spi && xg_sa_of(w)->id.proto == proto)
			return true;
	return false;
}

static uint32_t
random_below(uint32_t n)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint32_t)rand();
	return (uint32_t)(((uint64_t)v * n) >> 32);
}

/* xfrm_alloc_spi(): as many random tries as the range is wide. */
static int
alloc_spi(struct xg_xfrm *x, struct xg_sa *sa, uint32_t low, uint32_t high)
{
	uint64_t range = (uint64_t)high - low + 1, h;

	if (sa->id.spi)
		return 0;
	for (h = 0; h < range; h++) {
		uint32_t spi = low == high ? low : low + random_below((uint32_t)(range > UINT32_MAX ?
										 UINT32_MAX : range));

		if (!spi_taken(x, htonl(spi), sa->id.proto)) {
			hash_del(x, sa);   /* the hash is keyed by SPI */
			sa->id.spi = htonl(spi);
			hash_add(x, sa);
			return 0;
		}
		if (low == high)
			break;
	}
	return -ENOENT;
}

static int
verify_spi_info(uint8_t proto, uint32_t min, uint32_t max)
{
	switch (proto) {
	case IPPROTO_AH:
	case IPPROTO_ESP:
		break;
	case IPPROTO_COMP:
		if (max >= 0x10000)   /* IPComp CPIs are 16 bits */
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	return min > max ? -EINVAL : 0;
}

/* xfrm_alloc_userspi(): find or make the larval state, give it an SPI,
 * answer with it. The state expires after acq_expires seconds unless an
 * UPDSA/NEWSA fills it in. */
int
xg_sa_allocspi(struct xg_req *r)
{
	const struct xfrm_userspi_info *p = r->data;
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_sa *sa = NULL;
	struct xfrm_mark m;
	uint32_t if_id = 0;
	size_t len;
	int err;

	err = verify_spi_info(p->info.id.proto, p->min, p->max);
	if (err)
		return err;
	xg_mark_get(r->tb, &m);
	if (r->tb[XFRMA_IF_ID].data)
		if_id = xg_attr_u32(&r->tb[XFRMA_IF_ID]);
	if (p->info.seq) {
		sa = find_acq_byseq(r->x, m.v & m.m, p->info.seq);
		if (sa && !xg_addr_equal(&sa->id.daddr, &p->info.id.daddr, p->info.family))
			sa = NULL;
	}
	if (sa == NULL)
		sa = find_acq(r->x, &m, p->info.family, p->info.mode, p->info.reqid, if_id,
			      p->info.id.proto, &p->info.id.daddr, &p->info.saddr, true);
	if (sa == NULL)
		return -ENOENT;
	err = alloc_spi(r->x, sa, p->min, p->max);
	if (err)
		return err;
	len = xg_sa_fill(sa, &b, XFRM_MSG_NEWSA, 0, r->nlh->nlmsg_seq, r->peer->portid);
	if (len == 0)
		return -EMSGSIZE;
	xg_reply(r, buf, len);
	return 0;
}

static size_t
put_auth(struct xg_nlbuf *b, const struct xfrm_algo_auth *a)
{
	size_t keylen = (a->alg_key_len + 7) / 8;
	struct xfrm_algo *u = xg_nl_reserve(b, XFRMA_ALG_AUTH, sizeof(*u) + keylen);

	if (u) {
		memcpy(u->alg_name, a->alg_name, sizeof(u->alg_name));
		u->alg_key_len = a->alg_key_len;
		memcpy(u->alg_key, a->alg_key, keylen);
	}
	return (size_t)xg_nl_put(b, XFRMA_ALG_AUTH_TRUNC, a, sizeof(*a) + keylen);
}

/* copy_to_user_state_extra(): the attribute order is the kernel's. */
static void
put_sa_attrs(const struct xg_sa *sa, struct xg_nlbuf *b)
{
	if (sa->extra_flags)
		xg_nl_put_u32(b, XFRMA_SA_EXTRA_FLAGS, sa->extra_flags);
	if (sa->has_coaddr)
		xg_nl_put(b, XFRMA_COADDR, &sa->coaddr, sizeof(sa->coaddr));
	if (sa->lastused)
		xg_nl_put(b, XFRMA_LASTUSED, &sa->lastused, sizeof(sa->lastused));
	if (sa->aead)
		xg_nl_put(b, XFRMA_ALG_AEAD, sa->aead,
			  sizeof(*sa->aead) + (sa->aead->alg_key_len + 7) / 8);
	if (sa->aalg)
		put_auth(b, sa->aalg);
	if (sa->ealg)
		xg_nl_put(b, XFRMA_ALG_CRYPT, sa->ealg,
			  sizeof(*sa->ealg) + (sa->ealg->alg_key_len + 7) / 8);
	if (sa->has_encap)
		xg_nl_put(b, XFRMA_ENCAP, &sa->encap, sizeof(sa->encap));
	if (sa->tfcpad)
		xg_nl_put_u32(b, XFRMA_TFCPAD, sa->tfcpad);
	if (sa->mark.v || sa->mark.m)
		xg_nl_put(b, XFRMA_MARK, &sa->mark, sizeof(sa->mark));
	if (sa->smark.v || sa->smark.m) {
		xg_nl_put_u32(b, XFRMA_SET_MARK, sa->smark.v);
		xg_nl_put_u32(b, XFRMA_SET_MARK_MASK, sa->smark.m);
	}
	if (sa->replay_esn)
		xg_nl_put(b, XFRMA_REPLAY_ESN_VAL, sa->replay_esn, esn_len(sa->replay_esn));
	else
		xg_nl_put(b, XFRMA_REPLAY_VAL, &sa->replay, sizeof(sa->replay));
	if (sa->if_id)
		xg_nl_put_u32(b, XFRMA_IF_ID, sa->if_id);
	if (sa->mapping_maxage)
		xg_nl_put_u32(b, XFRMA_MTIMER_THRESH, sa->mapping_maxage);
}

static void
copy_to_user(const struct xg_sa *sa, struct xfrm_usersa_info *p)
{
	memset(p, 0, sizeof(*p));
	p->id = sa->id;
	p->sel = sa->sel;
	p->lft = sa->lft;
	p->curlft = sa->curlft;
	p->stats = sa->stats;
	p->saddr = sa->saddr;
	p->mode = sa->mode;
	p->replay_window = sa->replay_window;
	p->reqid = sa->reqid;
	p->family = sa->family;
	p->flags = sa->flags;
	p->seq = sa->seq;
}

/* The SA's identity as messages carry it (padding zeroed). */
static void
sa_id_of(const struct xg_sa *sa, struct xfrm_usersa_id *id)
{
	memset(id, 0, sizeof(*id));
	id->daddr = sa->id.daddr;
	id->spi = sa->id.spi;
	id->family = sa->family;
	id->proto = sa->id.proto;
}

size_t
xg_sa_fill(const struct xg_sa *sa, struct xg_nlbuf *b, uint16_t type, uint16_t flags,
	   uint32_t seq, uint32_t pid)
{
	struct xfrm_usersa_info p;
	struct nlmsghdr *nlh;

	b->len = 0;
	b->overflow = 0;
	if (type == XFRM_MSG_DELSA) {
		struct xfrm_usersa_id id;

		sa_id_of(sa, &id);
		nlh = xg_nl_put_hdr(b, type, flags, seq, pid, sizeof(id));
		if (nlh)
			memcpy(NLMSG_DATA(nlh), &id, sizeof(id));
		copy_to_user(sa, &p);
		xg_nl_put(b, XFRMA_SA, &p, sizeof(p));
	} else {
		nlh = xg_nl_put_hdr(b, type, flags, seq, pid, sizeof(p));
		copy_to_user(sa, &p);
		if (nlh)
			memcpy(NLMSG_DATA(nlh), &p, sizeof(p));
	}
	if (nlh == NULL)
		return 0;
	put_sa_attrs(sa, b);
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

static void
notify_sa(struct xg_req *r, const struct xg_sa *sa, uint16_t event)
{
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	size_t len = xg_sa_fill(sa, &b, event, 0, r->nlh->nlmsg_seq, r->nlh->nlmsg_pid);

	if (len)
		xg_notify(r->x, 1u << (XFRMNLGRP_SA - 1), buf, len);
	explicit_bzero(buf, sizeof(buf));
}

/* xfrm_state_update(): an existing valid SA keeps its keys; only the
 * endpoints' encapsulation, care-of address, selector (for non-SPI
 * protocols), lifetimes, output mark and interface id change. */
static int
sa_update(struct xg_sa *old, const struct xg_sa *sa)
{
	if (sa->has_encap && old->has_encap && sa->encap.encap_type == old->encap.encap_type)
		old->encap = sa->encap;
	else if (sa->has_encap || old->has_encap)
		return -EINVAL;
	if (sa->has_coaddr && old->has_coaddr)
		old->coaddr = sa->coaddr;
	old->lft = sa->lft;
	old->dying = false;   /* new limits: a soft expiry may come again */
	if (sa->smark.m || sa->smark.v)
		old->smark = sa->smark;
	if (sa->if_id)
		old->if_id = sa->if_id;
	return 0;
}

int
xg_sa_new(struct xg_req *r)
{
	const struct xfrm_usersa_info *p = r->data;
	struct xg_sa *sa, *old;
	int err;

	err = verify_newsa(p, r->tb, &r->ext);
	if (err)
		return err;
	sa = sa_construct(p, r->tb, &r->ext, &err);
	if (sa == NULL)
		return err;
	old = sa_lookup(r->x, sa->mark.v & sa->mark.m, &sa->id.daddr, sa->id.spi, sa->id.proto,
			sa->family);
	if (r->nlh->nlmsg_type == XFRM_MSG_NEWSA) {
		if (old) {
			err = -EEXIST;
			goto out_free;
		}
		/* xfrm_state_add(): the SA answers a pending larval state. */
		old = acq_of(r->x, sa);
		sa_link(r->x, sa);
		notify_sa(r, sa, XFRM_MSG_NEWSA);
		if (old)
			sa_drop(r->x, old);
		return 0;
	}
	if (old && old->larval) {
		/* xfrm_state_update() on a larval state: the SA replaces it. */
		sa_link(r->x, sa);
		notify_sa(r, sa, XFRM_MSG_UPDSA);
		sa_drop(r->x, old);
		return 0;
	}
	err = old ? sa_update(old, sa) : -ESRCH;
	if (!err)
		notify_sa(r, sa, XFRM_MSG_UPDSA);
out_free:
	xg_sa_free(sa);
	return err;
}

static struct xg_sa *
user_lookup(struct xg_req *r, int *errp)
{
	const struct xfrm_usersa_id *p = r->data;
	struct xfrm_mark m;

	xg_mark_get(r->tb, &m);
	if (proto_match(p->proto, IPSEC_PROTO_ANY)) {
		*errp = -ESRCH;
		return sa_lookup(r->x, m.v & m.m, &p->daddr, p->spi, p->proto, p->family);
	}
	if (!r->tb[XFRMA_SRCADDR].data) {
		*errp = -EINVAL;
		return NULL;
	}
	/* Only ESP SAs exist here, and ESP is looked up by SPI above. */
	*errp = -ESRCH;
	return NULL;
}

int
xg_sa_del(struct xg_req *r)
{
	struct xg_sa *sa;
	int err;

	sa = user_lookup(r, &err);
	if (sa == NULL)
		return err;
	sa_unlink(r->x, sa);
	notify_sa(r, sa, XFRM_MSG_DELSA);
	xg_sa_free(sa);
	return 0;
}

int
xg_sa_get(struct xg_req *r)
{
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_sa *sa;
	size_t len;
	int err;

	sa = user_lookup(r, &err);
	if (sa == NULL)
		return err;
	len = xg_sa_fill(sa, &b, XFRM_MSG_NEWSA, 0, r->nlh->nlmsg_seq, r->peer->portid);
	if (len == 0)
		return -EMSGSIZE;
	xg_reply(r, buf, len);
	explicit_bzero(buf, len);
	return 0;
}

int
xg_sa_flush(struct xg_req *r)
{
	const struct xfrm_usersa_flush *p = r->data;
	struct xg_walk *w, *next;
	int cnt = 0;

	for (w = r->x->sa_all.next; w != &r->x->sa_all; w = next) {
		next = w->next;
		if (w->walker || !proto_match(xg_sa_of(w)->id.proto, p->proto))
			continue;
		sa_unlink(r->x, xg_sa_of(w));
		xg_sa_free(xg_sa_of(w));
		cnt++;
	}
	if (cnt) {
		uint8_t buf[64];
		struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
		struct nlmsghdr *nlh = xg_nl_put_hdr(&b, XFRM_MSG_FLUSHSA, 0, r->nlh->nlmsg_seq,
						     r->nlh->nlmsg_pid, sizeof(*p));

		memcpy(NLMSG_DATA(nlh), p, sizeof(*p));
		/* nlmsg_end(): the length covers the padding of the 1-byte
		 * payload, as the datagram does (20, not 17). */
		xg_nl_end(&b);
		xg_notify(r->x, 1u << (XFRMNLGRP_SA - 1), buf, b.len);
	}
	return 0;
}

int
xg_sa_dump_start(struct xg_req *r)
{
	struct xg_xfrm_dump *d;
	struct xg_nla tb[XG_ATTR_MAX + 1];
	int err;

	/* The kernel parses a dump request's attributes with no fixed header. */
	err = xg_nl_parse(r->nlh, 0, tb, XG_ATTR_MAX, xg_xfrma_policy, &r->ext);
	if (err)
		return err;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->kind = XG_DUMP_SA;
	if (tb[XFRMA_ADDRESS_FILTER].data) {
		d->has_filter = true;
		xg_attr_copy(&d->filter, sizeof(d->filter), &tb[XFRMA_ADDRESS_FILTER]);
		if (d->filter.splen > 128 || d->filter.dplen > 128) {
			free(d);
			return -EINVAL;
		}
	}
	if (tb[XFRMA_PROTO].data)
		d->proto = tb[XFRMA_PROTO].data[0];
	d->seq = r->nlh->nlmsg_seq;
	d->portid = r->peer->portid;
	r->x->ops.dump_start(r->peer->opaque, d);
	return 0;
}

bool
xg_sa_dump_match(const struct xg_xfrm_dump *d, const struct xg_sa *sa)
{
	const struct xfrm_address_filter *f = &d->filter;

	if (!proto_match(sa->id.proto, d->proto))
		return false;
	if (!d->has_filter)
		return true;
	if ((f->family == AF_INET || f->family == AF_INET6) && f->family != sa->family)
		return false;
	return xg_prefix_match(&sa->saddr, &f->saddr, f->splen) &&
	       xg_prefix_match(&sa->id.daddr, &f->daddr, f->dplen);
}

int
xg_sadinfo_get(struct xg_req *r)
{
	uint8_t buf[128];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xfrmu_sadhinfo sh = { .sadhcnt = r->x->sad_hmask + 1, .sadhmcnt = SAD_HASHMAX };
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(&b, XFRM_MSG_NEWSADINFO, 0, r->nlh->nlmsg_seq, r->peer->portid,
			    sizeof(uint32_t));
	memcpy(NLMSG_DATA(nlh), r->data, sizeof(uint32_t));
	xg_nl_put_u32(&b, XFRMA_SAD_CNT, r->x->nsa);
	xg_nl_put(&b, XFRMA_SAD_HINFO, &sh, sizeof(sh));
	xg_nl_end(&b);
	xg_reply(r, buf, b.len);
	return 0;
}

/* build_expire(): the state, hard or not, then its mark and if_id. */
static size_t
expire_fill(const struct xg_sa *sa, bool hard, uint32_t pid, struct xg_nlbuf *b)
{
	struct xfrm_user_expire ue;
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(b, XFRM_MSG_EXPIRE, 0, 0, pid, sizeof(ue));
	if (nlh == NULL)
		return 0;
	memset(&ue, 0, sizeof(ue));
	copy_to_user(sa, &ue.state);
	ue.hard = hard;
	memcpy(NLMSG_DATA(nlh), &ue, sizeof(ue));
	xg_put_mark_if_id(b, &sa->mark, sa->if_id);
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

static void
send_expire(struct xg_xfrm *x, const struct xg_sa *sa, bool hard, uint32_t pid)
{
	uint8_t buf[512];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	size_t len = expire_fill(sa, hard, pid, &b);

	if (len == 0)
		return;
	/* A soft expiry changes nothing the data plane runs; a hard one
	 * deletes the SA, which xg_notify() tells the data plane. */
	if (hard)
		xg_notify(x, 1u << (XFRMNLGRP_EXPIRE - 1), buf, len);
	else if (x->ops.multicast)
		x->ops.multicast(x->ops.ctx, 1u << (XFRMNLGRP_EXPIRE - 1), buf, len);
}

enum expiry { EXP_NONE, EXP_SOFT, EXP_HARD };

static bool
soft_count(const struct xg_sa *sa)
{
	return sa->curlft.packets && (sa->curlft.bytes >= sa->lft.soft_byte_limit ||
				      sa->curlft.packets >= sa->lft.soft_packet_limit);
}

/* xfrm_timer_handler() and xfrm_state_check_expire() in one look. Byte
 * and packet limits count once the SA has carried traffic, as the kernel
 * checks them per packet. */
static enum expiry
expiry(const struct xg_sa *sa, uint64_t now)
{
	const struct xfrm_lifetime_cfg *l = &sa->lft;
	const struct xfrm_lifetime_cur *c = &sa->curlft;
	uint64_t used = c->use_time ? c->use_time : now;
	bool carried = c->packets > 0;

	if ((l->hard_add_expires_seconds && now >= c->add_time + l->hard_add_expires_seconds) ||
	    (l->hard_use_expires_seconds && now >= used + l->hard_use_expires_seconds) ||
	    (carried && (c->bytes >= l->hard_byte_limit || c->packets >= l->hard_packet_limit)))
		return EXP_HARD;
	if (sa->dying)
		return EXP_NONE;
	if ((l->soft_add_expires_seconds && now >= c->add_time + l->soft_add_expires_seconds) ||
	    (l->soft_use_expires_seconds && now >= used + l->soft_use_expires_seconds) ||
	    soft_count(sa))
		return EXP_SOFT;
	return EXP_NONE;
}

static size_t aevent_fill(const struct xg_sa *sa, struct xg_nlbuf *b, uint32_t flags,
			  uint32_t seq, uint32_t pid);

/* xfrm_replay_notify(), for listeners of XFRMNLGRP_AEVENTS (charon's HA
 * plugin): NEWAE when a counter moved by replay_maxdiff (XFRM_AE_CR), or
 * when it moved less and replay_maxage passed (XFRM_AE_CE). The counters
 * reach the model once a second, so events come at most that often. */
static void
replay_events(struct xg_xfrm *x, uint64_t now)
{
	const uint32_t group = 1u << (XFRMNLGRP_AEVENTS - 1);
	struct xg_walk *w;

	if (x->ops.listening == NULL || !x->ops.listening(x->ops.ctx, group))
		return;
	for (w = x->sa_all.next; w != &x->sa_all; w = w->next) {
		struct xg_sa *sa = xg_sa_of(w);
		uint8_t buf[XG_MSG_MAX];
		struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
		uint32_t event, seq, oseq;
		size_t len;

		/* A dump's walker is no SA: not one field of it may be read. */
		if (w->walker || sa->larval)
			continue;
		seq = sa->replay_esn ? sa->replay_esn->seq : sa->replay.seq;
		oseq = sa->replay_esn ? sa->replay_esn->oseq : sa->replay.oseq;
		if (seq == sa->pre_seq && oseq == sa->pre_oseq)
			continue;
		if (sa->replay_maxdiff && (seq - sa->pre_seq >= sa->replay_maxdiff ||
					   oseq - sa->pre_oseq >= sa->replay_maxdiff))
			event = XFRM_AE_CR;
		else if (now >= sa->ae_time + sa->replay_maxage / KERNEL_HZ)
			event = XFRM_AE_CE;
		else
			continue;
		sa->pre_seq = seq;
		sa->pre_oseq = oseq;
		sa->ae_time = now;
		len = aevent_fill(sa, &b, event, 0, 0);
		if (len && x->ops.multicast)
			x->ops.multicast(x->ops.ctx, group, buf, len);
	}
}

unsigned int
xg_xfrm_tick(struct xg_xfrm *x, uint64_t now)
{
	struct xg_walk *w, *next;
	unsigned int n = 0;

	/* Oldest first: of the SAs due in the same second, the kernel's timer
	 * fires first for the one added first. */
	for (w = x->sa_all.prev; w != &x->sa_all; w = next) {
		struct xg_sa *sa = xg_sa_of(w);

		next = w->prev;
		if (w->walker)
			continue;
		switch (expiry(sa, now)) {
		case EXP_HARD:
			/* Packet by packet, the kernel passes a lower soft byte or
			 * packet limit first; a report may have crossed both. */
			if (!sa->dying && soft_count(sa))
				send_expire(x, sa, false, 0);
			send_expire(x, sa, true, 0);
			sa_drop(x, sa);
			n++;
			break;
		case EXP_SOFT:
			sa->dying = true;
			send_expire(x, sa, false, 0);
			break;
		default:
			break;
		}
	}
	replay_events(x, now);
	return n + xg_pol_tick(x, now);
}

void
xg_xfrm_set_acq_expires(struct xg_xfrm *x, uint32_t seconds)
{
	x->acq_expires = seconds;
}


/* build_aevent(): replay state, current lifetime, the thresholds asked for. */
static size_t
aevent_fill(const struct xg_sa *sa, struct xg_nlbuf *b, uint32_t flags, uint32_t seq,
	    uint32_t pid)
{
	struct xfrm_aevent_id id;
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(b, XFRM_MSG_NEWAE, 0, seq, pid, sizeof(id));
	if (nlh == NULL)
		return 0;
	memset(&id, 0, sizeof(id));
	sa_id_of(sa, &id.sa_id);
	id.saddr = sa->saddr;
	id.reqid = sa->reqid;
	id.flags = flags;
	memcpy(NLMSG_DATA(nlh), &id, sizeof(id));
	if (sa->replay_esn)
		xg_nl_put(b, XFRMA_REPLAY_ESN_VAL, sa->replay_esn, esn_len(sa->replay_esn));
	else
		xg_nl_put(b, XFRMA_REPLAY_VAL, &sa->replay, sizeof(sa->replay));
	xg_nl_put(b, XFRMA_LTIME_VAL, &sa->curlft, sizeof(sa->curlft));
	if (flags & XFRM_AE_RTHR)
		xg_nl_put_u32(b, XFRMA_REPLAY_THRESH, sa->replay_maxdiff);
	if (flags & XFRM_AE_ETHR)
		xg_nl_put_u32(b, XFRMA_ETIMER_THRESH, sa->replay_maxage * 10 / KERNEL_HZ);
	xg_put_mark_if_id(b, &sa->mark, sa->if_id);
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

static struct xg_sa *
ae_lookup(struct xg_req *r)
{
	const struct xfrm_aevent_id *p = r->data;
	struct xfrm_mark m;

	xg_mark_get(r->tb, &m);
	return sa_lookup(r->x, m.v & m.m, &p->sa_id.daddr, p->sa_id.spi, p->sa_id.proto,
			 p->sa_id.family);
}

/* xfrm_get_ae(): answered with the request's own nlmsg_pid, as the kernel. */
int
xg_ae_get(struct xg_req *r)
{
	const struct xfrm_aevent_id *p = r->data;
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_sa *sa = ae_lookup(r);
	size_t len;

	if (sa == NULL)
		return -ESRCH;
	len = aevent_fill(sa, &b, p->flags, r->nlh->nlmsg_seq, r->nlh->nlmsg_pid);
	if (len == 0)
		return -EMSGSIZE;
	xg_reply(r, buf, len);
	return 0;
}

/* xfrm_replay_verify_len(): a new ESN state must have the SA's shape. */
static int
replay_verify_len(const struct xfrm_replay_state_esn *have, const struct xg_nla *a)
{
	struct xfrm_replay_state_esn up;
	size_t ulen;

	if (have == NULL || a->data == NULL)
		return 0;
	xg_attr_copy(&up, sizeof(up), a);
	ulen = esn_len(&up);
	if (a->len < ulen || esn_len(have) != ulen || have->bmp_len != up.bmp_len)
		return -EINVAL;
	return up.replay_window > up.bmp_len * 32u ? -EINVAL : 0;
}

/* xfrm_new_ae(): replay state, current lifetime and thresholds of a valid
 * SA (charon's HA plugin). The data plane takes the SA up afresh: its
 * sender continues from the new oseq, its receiver treats everything up
 * to the new seq as seen. */
int
xg_ae_new(struct xg_req *r)
{
	const struct xg_nla *tb = r->tb;
	uint8_t buf[XG_MSG_MAX];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_sa *sa;
	size_t len;
	int err;

	if (!tb[XFRMA_LTIME_VAL].data && !tb[XFRMA_REPLAY_VAL].data &&
	    !tb[XFRMA_REPLAY_ESN_VAL].data && !tb[XFRMA_ETIMER_THRESH].data &&
	    !tb[XFRMA_REPLAY_THRESH].data)
		return -EINVAL;
	if (!(r->nlh->nlmsg_flags & NLM_F_REPLACE))
		return -EINVAL;
	sa = ae_lookup(r);
	if (sa == NULL)
		return -ESRCH;
	if (sa->larval)
		return -EINVAL;
	err = replay_verify_len(sa->replay_esn, &tb[XFRMA_REPLAY_ESN_VAL]);
	if (err)
		return err;
	if (tb[XFRMA_REPLAY_ESN_VAL].data && sa->replay_esn)
		memcpy(sa->replay_esn, tb[XFRMA_REPLAY_ESN_VAL].data, esn_len(sa->replay_esn));
	update_ae_params(sa, tb);
	sa->uid = ++r->x->sa_uid;   /* new data-plane object with the new state */
	len = aevent_fill(sa, &b, XFRM_AE_CU, r->nlh->nlmsg_seq, r->nlh->nlmsg_pid);
	if (len)
		xg_notify(r->x, 1u << (XFRMNLGRP_AEVENTS - 1), buf, len);
	return 0;
}

/* build_mapping(). */
static size_t
mapping_fill(const struct xg_sa *sa, const xfrm_address_t *saddr, uint16_t sport,
	     struct xg_nlbuf *b)
{
	struct xfrm_user_mapping um;
	struct nlmsghdr *nlh;

	nlh = xg_nl_put_hdr(b, XFRM_MSG_MAPPING, 0, 0, 0, sizeof(um));
	if (nlh == NULL)
		return 0;
	memset(&um, 0, sizeof(um));
	sa_id_of(sa, &um.id);
	um.new_saddr = *saddr;
	um.old_saddr = sa->saddr;
	um.new_sport = sport;
	um.old_sport = sa->encap.encap_sport;
	um.reqid = sa->reqid;
	memcpy(NLMSG_DATA(nlh), &um, sizeof(um));
	xg_nl_end(b);
	return b->overflow ? 0 : b->len;
}

int
xg_xfrm_mapping(struct xg_xfrm *x, uint64_t uid, const xfrm_address_t *saddr, uint16_t sport,
		uint64_t now)
{
	uint8_t buf[256];
	struct xg_nlbuf b = { .buf = buf, .cap = sizeof(buf) };
	struct xg_walk *w;
	struct xg_sa *sa = NULL;
	size_t len;

	for (w = x->sa_all.next; w != &x->sa_all; w = w->next)
		if (!w->walker && xg_sa_of(w)->uid == uid) {
			sa = xg_sa_of(w);
			break;
		}
	if (sa == NULL)
		return -ESRCH;
	/* xfrm_send_mapping(): ESP in UDP only. */
	if (sa->id.proto != IPPROTO_ESP || !sa->has_encap ||
	    sa->encap.encap_type != UDP_ENCAP_ESPINUDP)
		return -EINVAL;
	/* km_new_mapping(): with XFRMA_MTIMER_THRESH, once per period and port. */
	if (sa->mapping_maxage) {
		if (now - sa->new_mapping <= sa->mapping_maxage && sa->new_mapping_sport == sport)
			return -EAGAIN;
		sa->new_mapping_sport = sport;
		sa->new_mapping = now;
	}
	len = mapping_fill(sa, saddr, sport, &b);
	if (len && x->ops.multicast)
		x->ops.multicast(x->ops.ctx, 1u << (XFRMNLGRP_MAPPING - 1), buf, len);
	return 0;
}

static void *
dup_mem(const void *p, size_t len)
{
	void *q;

	if (p == NULL)
		return NULL;
	q = malloc(len);
	if (q)
		memcpy(q, p, len);
	return q;
}

struct xg_sa *
xg_sa_clone(const struct xg_sa *o)
{
	struct xg_sa *sa = malloc(sizeof(*sa));

	if (sa == NULL)
		return NULL;
	*sa = *o;
	sa->hnext = NULL;
	xg_walk_init(&sa->all);
	sa->new_mapping = 0;
	sa->new_mapping_sport = 0;
	sa->aead = o->aead ? dup_mem(o->aead, sizeof(*o->aead) + (o->aead->alg_key_len + 7) / 8) :
			     NULL;
	sa->aalg = o->aalg ? dup_mem(o->aalg, sizeof(*o->aalg) + (o->aalg->alg_key_len + 7) / 8) :
			     NULL;
	sa->ealg = o->ealg ? dup_mem(o->ealg, sizeof(*o->ealg) + (o->ealg->alg_key_len + 7) / 8) :
			     NULL;
	sa->replay_esn = o->replay_esn ? dup_mem(o->replay_esn, esn_len(o->replay_esn)) : NULL;
	if ((o->aead && !sa->aead) || (o->aalg && !sa->aalg) || (o->ealg && !sa->ealg) ||
	    (o->replay_esn && !sa->replay_esn)) {
		xg_sa_free(sa);
		return NULL;
	}
	return sa;
}

void
xg_sa_unlink_free(struct xg_xfrm *x, struct xg_sa *sa)
{
	sa_drop(x, sa);
}

bool
xg_sa_exists(struct xg_xfrm *x, const struct xg_sa *sa)
{
	return sa_lookup(x, sa->mark.v & sa->mark.m, &sa->id.daddr, sa->id.spi, sa->id.proto,
			 sa->family) != NULL;
}

/* xfrm_add_sa_expire(): the key manager expires an SA itself; EXPIRE
 * carries its pid, and a hard one deletes the SA (no DELSA event). */
int
xg_sa_expire(struct xg_req *r)
{
	const struct xfrm_user_expire *ue = r->data;
	struct xfrm_mark m;
	struct xg_sa *sa;

	xg_mark_get(r->tb, &m);
	sa = sa_lookup(r->x, m.v & m.m, &ue->state.id.daddr, ue->state.id.spi,
		       ue->state.id.proto, ue->state.family);
	if (sa == NULL)
		return -ENOENT;
	if (sa->larval)
		return -EINVAL;
	send_expire(r->x, sa, ue->hard, r->nlh->nlmsg_pid);
	if (ue->hard)
		sa_drop(r->x, sa);
	return 0;
}
