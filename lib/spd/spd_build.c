/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPD compilation (control thread only): rank the policies the way the
 * kernel chooses between them, then build one rte_acl context per family
 * and direction. rte_acl has no incremental update, so every change builds
 * a whole new xg_spd; the old one is freed after an RCU grace period.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_acl.h>
#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_memory.h>

#include "spd_priv.h"

RTE_ACL_RULE_DEF(acl4_rule, SPD4_NFIELDS);
RTE_ACL_RULE_DEF(acl6_rule, SPD6_NFIELDS);

static void
def(struct rte_acl_field_def *d, uint8_t type, uint8_t size, uint8_t field, uint8_t input,
    uint32_t offset)
{
	d->type = type;
	d->size = size;
	d->field_index = field;
	d->input_index = input;
	d->offset = offset;
}

/* Field layout of struct xg_spd_key4/6: the protocol byte alone first (rte_acl
 * requires a 1-byte first field), then 4-byte input words. */
static void
acl_config(uint8_t family, struct rte_acl_config *cfg)
{
	struct rte_acl_field_def *d = cfg->defs;
	uint8_t f = 0, w;

	memset(cfg, 0, sizeof(*cfg));
	cfg->num_categories = 1;
	def(&d[f], RTE_ACL_FIELD_TYPE_BITMASK, 1, f, 0, 0), f++;
	if (family == AF_INET) {
		def(&d[f], RTE_ACL_FIELD_TYPE_MASK, 4, f, 1, 4), f++;
		def(&d[f], RTE_ACL_FIELD_TYPE_MASK, 4, f, 2, 8), f++;
		def(&d[f], RTE_ACL_FIELD_TYPE_BITMASK, 2, f, 3, 12), f++;
		def(&d[f], RTE_ACL_FIELD_TYPE_BITMASK, 2, f, 3, 14), f++;
	} else {
		for (w = 0; w < 8; w++, f++)
			def(&d[f], RTE_ACL_FIELD_TYPE_MASK, 4, f, 1 + w, 4 + 4 * w);
		def(&d[f], RTE_ACL_FIELD_TYPE_BITMASK, 2, f, 9, 36), f++;
		def(&d[f], RTE_ACL_FIELD_TYPE_BITMASK, 2, f, 9, 38), f++;
	}
	cfg->num_fields = f;
}

static uint32_t
word(const uint8_t *a, int i)
{
	uint32_t v;

	memcpy(&v, a + 4 * i, 4);
	return rte_be_to_cpu_32(v);
}

static uint32_t
word_plen(uint8_t plen, int i)
{
	int bits = (int)plen - 32 * i;

	return bits <= 0 ? 0 : bits >= 32 ? 32 : (uint32_t)bits;
}

/* Rule values are in host order; the ACL reads keys in network order. */
static void
fill_fields(const struct xg_spd_rule *r, struct rte_acl_field *fl)
{
	int f = 0, i, words = r->family == AF_INET ? 1 : 4;
	uint16_t smask = rte_be_to_cpu_16(r->sport_mask), dmask = rte_be_to_cpu_16(r->dport_mask);

	fl[f].value.u8 = r->proto;
	fl[f++].mask_range.u8 = r->proto ? 0xff : 0;
	for (i = 0; i < words; i++, f++) {
		fl[f].value.u32 = word(r->saddr, i);
		fl[f].mask_range.u32 = word_plen(r->splen, i);
	}
	for (i = 0; i < words; i++, f++) {
		fl[f].value.u32 = word(r->daddr, i);
		fl[f].mask_range.u32 = word_plen(r->dplen, i);
	}
	/* XFRM port selectors are value + mask, which is ACL's bitmask type. */
	fl[f].value.u16 = rte_be_to_cpu_16(r->sport) & smask;
	fl[f++].mask_range.u16 = smask;
	fl[f].value.u16 = rte_be_to_cpu_16(r->dport) & dmask;
	fl[f].mask_range.u16 = dmask;
}

static int
rank_cmp(const void *a, const void *b)
{
	const struct xg_spd_rule *x = *(const struct xg_spd_rule *const *)a;
	const struct xg_spd_rule *y = *(const struct xg_spd_rule *const *)b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int
add_rules(struct spd_table *t, uint8_t family, const struct xg_spd_rule **sorted, uint32_t n)
{
	size_t rsize = family == AF_INET ? sizeof(struct acl4_rule) : sizeof(struct acl6_rule);
	uint8_t *buf = calloc(n, rsize);
	uint32_t i;
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct rte_acl_rule *r = (struct rte_acl_rule *)(buf + i * rsize);

		/* Rank 0 (the kernel's first choice) gets the highest priority;
		 * userdata 0 means "no match", hence slot + 1. */
		r->data.category_mask = 1;
		r->data.priority = (int32_t)(n - i);
		r->data.userdata = i + 1;
		fill_fields(sorted[i], r->field);
		t->ids[i] = sorted[i]->id;
	}
	rc = rte_acl_add_rules(t->ctx, (struct rte_acl_rule *)buf, n);
	free(buf);
	return rc;
}

static int
build_table(const char *name, uint8_t family, int dir, const struct xg_spd_rule *rules,
	    size_t n, struct spd_table *t)
{
	const struct xg_spd_rule **sorted;
	struct rte_acl_param prm = { .socket_id = SOCKET_ID_ANY };
	struct rte_acl_config cfg;
	char cname[RTE_ACL_NAMESIZE];
	uint32_t cnt = 0;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		cnt += rules[i].family == family && rules[i].dir == dir;
	t->n = cnt;
	if (cnt == 0)
		return 0;
	if (cnt > RTE_ACL_MAX_PRIORITY)
		return -E2BIG;
	sorted = calloc(cnt, sizeof(*sorted));
	t->ids = calloc(cnt, sizeof(*t->ids));
	if (sorted == NULL || t->ids == NULL) {
		free(sorted);
		return -ENOMEM;
	}
	for (i = 0, cnt = 0; i < n; i++)
		if (rules[i].family == family && rules[i].dir == dir)
			sorted[cnt++] = &rules[i];
	qsort(sorted, cnt, sizeof(*sorted), rank_cmp);
	snprintf(cname, sizeof(cname), "%s_%c%d", name, family == AF_INET ? '4' : '6', dir);
	prm.name = cname;
	prm.rule_size = RTE_ACL_RULE_SZ(family == AF_INET ? SPD4_NFIELDS : SPD6_NFIELDS);
	prm.max_rule_num = cnt;
	t->ctx = rte_acl_create(&prm);
	rc = t->ctx ? add_rules(t, family, sorted, cnt) : -ENOMEM;
	free(sorted);
	if (rc == 0) {
		acl_config(family, &cfg);
		rc = rte_acl_build(t->ctx, &cfg);
	}
	return rc;
}

static void
free_table(struct spd_table *t)
{
	if (t->ctx)
		rte_acl_free(t->ctx);
	free(t->ids);
	memset(t, 0, sizeof(*t));
}

struct xg_spd *
xg_spd_build(const char *name, const struct xg_spd_rule *rules, size_t n, int *err)
{
	struct xg_spd *spd = calloc(1, sizeof(*spd));
	int dir, fam, rc = 0;

	if (spd == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	for (fam = 0; fam < 2 && rc == 0; fam++)
		for (dir = 0; dir < XG_SPD_NDIR && rc == 0; dir++)
			rc = build_table(name, fam ? AF_INET6 : AF_INET, dir, rules, n,
					 &spd->t[fam][dir]);
	if (rc) {
		xg_spd_free(spd);
		*err = rc;
		return NULL;
	}
	return spd;
}

void
xg_spd_free(struct xg_spd *spd)
{
	int fam, dir;

	if (spd == NULL)
		return;
	for (fam = 0; fam < 2; fam++)
		for (dir = 0; dir < XG_SPD_NDIR; dir++)
			free_table(&spd->t[fam][dir]);
	free(spd);
}

uint32_t
xg_spd_count(const struct xg_spd *spd, uint8_t family, enum xg_spd_dir dir)
{
	return spd->t[family == AF_INET6][dir].n;
}
