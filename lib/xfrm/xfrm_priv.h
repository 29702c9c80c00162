/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef XFRM_PRIV_H
#define XFRM_PRIV_H

/*
 * The control-plane model of the SAD and SPD, shaped like the kernel's
 * struct xfrm_state and struct xfrm_policy so that every field a client can
 * set is stored and echoed back exactly. Private to lib/xfrm.
 */

#include <stdbool.h>
#include <stdint.h>
#include <linux/xfrm.h>

#include "xg_nl.h"
#include "xg_xfrm.h"

/* Kernel-internal constants of the XFRM contract (include/net/xfrm.h,
 * linux/pfkeyv2.h), not exported in the uapi header. */
#define XFRM_MAX_DEPTH 6
#define IPSEC_PROTO_ANY 255

#define XG_ATTR_MAX XFRMA_MTIMER_THRESH
#define XG_MSG_MAX 4096   /* largest message sent to a client (charon reads 4 KiB) */

extern const struct xg_nla_policy xg_xfrma_policy[XG_ATTR_MAX + 1];

/*
 * Objects sit on one list per table in dump order (newest first). A dump in
 * progress parks a walker node after the last object it sent, so objects can
 * be added and deleted between the reads of a dump without invalidating it.
 */
struct xg_walk {
	struct xg_walk *prev, *next;
	bool walker;
};

struct xg_sa {
	struct xg_walk all;     /* first member: list node to object is a cast */
	struct xg_sa *hnext;    /* chain of the (daddr, spi, proto) hash */
	uint64_t uid;           /* never reused: ties data-plane objects to it */
	struct xfrm_id id;
	xfrm_address_t saddr;
	struct xfrm_selector sel;
	struct xfrm_lifetime_cfg lft;
	struct xfrm_lifetime_cur curlft;
	struct xfrm_stats stats;
	uint64_t dp_drops[XG_SA_NDROPS];  /* the data plane's, for telemetry */
	uint64_t dp_workers;
	uint32_t seq;           /* km.seq: for a larval state, the ACQUIRE it answers */
	uint32_t reqid;
	uint16_t family;
	uint8_t mode;
	uint8_t replay_window;
	uint8_t flags;
	uint32_t extra_flags;
	struct xfrm_mark mark;
	struct xfrm_mark smark;
	uint32_t if_id;
	uint32_t tfcpad;
	uint32_t mapping_maxage;
	uint32_t replay_maxdiff;
	uint32_t replay_maxage;
	uint64_t lastused;
	bool larval;            /* km.state ACQ: made by ALLOCSPI/ACQUIRE, no keys yet */
	uint64_t new_mapping;   /* when the last MAPPING went out (with mapping_maxage) */
	uint32_t pre_seq, pre_oseq;  /* preplay: the counters the last NEWAE event showed */
	uint64_t ae_time;       /* when that event went out */
	uint16_t new_mapping_sport;
	bool dying;             /* km.dying: the soft EXPIRE was sent */
	bool has_encap, has_coaddr;
	struct xfrm_encap_tmpl encap;
	xfrm_address_t coaddr;
	struct xfrm_replay_state replay;
	struct xfrm_replay_state_esn *replay_esn;  /* NULL: legacy window */
	struct xfrm_algo_aead *aead;  /* key material: wiped before free */
	struct xfrm_algo_auth *aalg;
	struct xfrm_algo *ealg;
};

struct xg_policy {
	struct xg_walk all;
	struct xg_policy *inext;   /* chain of the index hash */
	struct xg_policy *snext;   /* chain of the identity (selector) hash */
	struct xfrm_selector sel;
	struct xfrm_lifetime_cfg lft;
	struct xfrm_lifetime_cur curlft;
	uint32_t priority;
	uint32_t index;
	uint8_t dir;
	uint8_t action;
	uint8_t flags;
	uint8_t type;
	uint16_t family;
	struct xfrm_mark mark;
	uint32_t if_id;
	uint8_t ntmpl;
	struct xfrm_user_tmpl tmpl[XFRM_MAX_DEPTH];
	uint64_t order;            /* insertion order: the older wins a priority tie */
	uint64_t soft_warned;      /* when the last soft POLEXPIRE went out, 0: never */
};

/* Fixed bucket counts: 100 000 objects of each kind still make short
 * chains, and untouched buckets cost no memory (calloc'd pages). */
#define XG_SA_HASH_SIZE (1u << 16)
#define XG_POL_HASH_SIZE (1u << 16)

struct xg_xfrm {
	struct xg_xfrm_ops ops;
	struct xg_walk sa_all;
	struct xg_walk pol_all;
	struct xg_sa *sa_hash[XG_SA_HASH_SIZE];
	struct xg_policy *pol_byidx[XG_POL_HASH_SIZE];
	uint32_t nsa;
	uint64_t sa_uid;           /* source of xg_sa.uid */
	uint32_t sad_hmask;        /* emulated size of the kernel's SPI hash */
	uint32_t pol_hmask[XFRM_POLICY_MAX];
	uint32_t pol_idx_hmask;
	/* Policies by identity (type, dir, selector, mark, if_id): grows
	 * with the policy count, so NEWPOLICY needs no walk of the SPD. */
	struct xg_policy **pol_bysel;
	uint32_t pol_sel_mask;     /* buckets - 1, 0: not allocated yet */
	uint32_t pol_nsel;
	uint32_t nlarval;          /* larval states (ALLOCSPI/ACQUIRE) in sa_all */
	uint32_t pol_count[XFRM_POLICY_MAX * 2];
	uint32_t idx_generator;
	uint64_t pol_order;        /* source of xg_policy.order */
	uint64_t generation;       /* bumped by every change of either table */
	uint64_t pol_generation;   /* bumped by changes announced to XFRMNLGRP_POLICY */
	void (*prelude)(void *arg);
	void *prelude_arg;
	struct xfrmu_spdhthresh hthresh4, hthresh6;
	uint32_t acq_expires;      /* net.core.xfrm_acq_expires: larval state lifetime */
	uint8_t policy_default[3]; /* in/out/fwd without a matching policy: XFRM_USERPOLICY_* */
	uint32_t acqseq;           /* xfrm_get_acqseq(): last ACQUIRE sequence number */
};

enum xg_dump_kind { XG_DUMP_SA, XG_DUMP_POLICY };

struct xg_xfrm_dump {
	enum xg_dump_kind kind;
	struct xg_walk walker;
	bool started;      /* walker is linked in a list */
	uint8_t proto;     /* SA dumps: XFRMA_PROTO filter */
	bool has_filter;
	struct xfrm_address_filter filter;
	uint32_t seq;
	uint32_t portid;
};

/* One request being handled. */
struct xg_req {
	struct xg_xfrm *x;
	const struct xg_xfrm_peer *peer;
	const struct nlmsghdr *nlh;
	const void *data;          /* aligned copy of the fixed header */
	struct xg_nla tb[XG_ATTR_MAX + 1];
	struct xg_extack ext;
};

/* Lists. */
void xg_walk_init(struct xg_walk *head);
void xg_walk_add_head(struct xg_walk *head, struct xg_walk *n);
void xg_walk_del(struct xg_walk *n);

/* Copy an attribute into aligned storage of type-size @p len (zero-padded). */
void xg_attr_copy(void *dst, size_t len, const struct xg_nla *a);
uint32_t xg_attr_u32(const struct xg_nla *a);
void xg_mark_get(const struct xg_nla *tb, struct xfrm_mark *m);
bool xg_addr_equal(const xfrm_address_t *a, const xfrm_address_t *b, uint16_t family);
/* xfrm_mark_put() then xfrm_if_id_put(): each only when set. */
void xg_put_mark_if_id(struct xg_nlbuf *b, const struct xfrm_mark *m, uint32_t if_id);
/* xfrm_addr_any(): the wildcard address of @p family. */
bool xg_addr_any(const xfrm_address_t *a, uint16_t family);
/* Selector prefix lengths for @p family (verify_newsa_info/verify_newpolicy_info):
 * 0 or -EINVAL with the kernel's text; an unknown family gets @p bad_family. */
int xg_selector_verify(const struct xfrm_selector *sel, uint16_t family, bool allow_unspec,
		       const char *bad_family, struct xg_extack *e);
/* XFRMA_SEC_CTX length consistency (verify_sec_ctx_len). */
int xg_sec_ctx_verify(const struct xg_nla *tb, struct xg_extack *e);

/* Algorithms (xfrm_algo.c). Return the canonical name or NULL if refused. */
const char *xg_algo_aead(const char *name, uint32_t icv_bits);
struct xg_auth_desc {
	const char *name;
	uint16_t trunc_bits;   /* default truncation */
	uint16_t full_bits;
};
const struct xg_auth_desc *xg_algo_auth(const char *name);
const char *xg_algo_crypt(const char *name, const uint16_t **key_bits);
bool xg_algo_aead_key_ok(const char *canon, uint32_t key_bits);

/* Handlers (xfrm_sa.c, xfrm_policy.c). Return 0 or a negative errno. */
int xg_sa_new(struct xg_req *r);
int xg_sa_del(struct xg_req *r);
int xg_sa_get(struct xg_req *r);
int xg_sa_flush(struct xg_req *r);
int xg_sa_dump_start(struct xg_req *r);
int xg_sa_allocspi(struct xg_req *r);
int xg_ae_get(struct xg_req *r);
int xg_sa_expire(struct xg_req *r);
int xg_ae_new(struct xg_req *r);
int xg_sadinfo_get(struct xg_req *r);
bool xg_sa_dump_match(const struct xg_xfrm_dump *d, const struct xg_sa *sa);
size_t xg_sa_fill(const struct xg_sa *sa, struct xg_nlbuf *b, uint16_t type, uint16_t flags,
		  uint32_t seq, uint32_t pid);
void xg_sa_free(struct xg_sa *sa);
/* Put a new SA in the tables (uid given) and a larval one's lifetime. */
void xg_sa_link(struct xg_xfrm *x, struct xg_sa *sa);
void xg_sa_larval_lft(struct xg_xfrm *x, struct xg_sa *sa);
bool xg_selector_match(const struct xfrm_selector *sel, const struct xg_flow *f);

int xg_pol_new(struct xg_req *r);
int xg_pol_get(struct xg_req *r);
int xg_pol_expire(struct xg_req *r);
/* verify_newpolicy_info(), the security context's length, then
 * xfrm_policy_construct(): a policy not in any table. */
struct xg_policy *xg_pol_build(struct xg_req *r, const struct xfrm_userpolicy_info *p,
			       int *errp);
int xg_acquire_request(struct xg_req *r);
int xg_pol_flush(struct xg_req *r);
int xg_pol_dump_start(struct xg_req *r);
int xg_spdinfo_get(struct xg_req *r);
int xg_spdinfo_set(struct xg_req *r);
int xg_default_set(struct xg_req *r);
int xg_default_get(struct xg_req *r);
struct xg_policy *xg_pol_byidx(struct xg_xfrm *x, uint32_t index);
/* copy_from_user_policy_type(): XFRMA_POLICY_TYPE, main by default. */
int xg_policy_type(const struct xg_nla *tb, uint8_t *type, struct xg_extack *e);
int xg_migrate(struct xg_req *r);
/* A deep copy of @p o (keys included), not linked anywhere. */
struct xg_sa *xg_sa_clone(const struct xg_sa *o);
void xg_sa_unlink_free(struct xg_xfrm *x, struct xg_sa *sa);
/* xfrm_state_lookup(): is the (daddr, spi, proto, family, mark) of @p sa taken? */
bool xg_sa_exists(struct xg_xfrm *x, const struct xg_sa *sa);
unsigned int xg_pol_tick(struct xg_xfrm *x, uint64_t now);
void xg_pol_to_user(const struct xg_policy *p, struct xfrm_userpolicy_info *u);
void xg_pol_put_attrs(const struct xg_policy *p, struct xg_nlbuf *b);
size_t xg_pol_fill(const struct xg_policy *p, struct xg_nlbuf *b, uint16_t type,
		   uint16_t flags, uint32_t seq, uint32_t pid);

/* Send a one-message reply built by @p fill (dispatch.c). */
void xg_reply(struct xg_req *r, const void *msg, size_t len);
void xg_notify(struct xg_xfrm *x, uint32_t group, const void *msg, size_t len);

static inline struct xg_sa *
xg_sa_of(struct xg_walk *w)
{
	return (struct xg_sa *)w;
}

static inline struct xg_policy *
xg_pol_of(struct xg_walk *w)
{
	return (struct xg_policy *)w;
}

#endif /* XFRM_PRIV_H */
