/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * SPD lookups on the fast path: key extraction as the kernel's flow decoding
 * (decode_session4/6) sees a packet, and burst classification.
 */

#include <netinet/in.h>
#include <string.h>

#include <rte_acl.h>

#include "spd_priv.h"
#include "xg_prefix.h"

#define IPPROTO_MH_ 135

/* The 4 bytes a flow keeps for the upper layer: ports, ICMP type/code, the
 * ESP/AH SPI or the IPComp CPI (the kernel keeps them in one union, so a
 * policy's port selector sees the SPI's halves), the GRE key. */
static void
upper_ports(uint8_t proto, const uint8_t *l4, size_t len, uint16_t *sport, uint16_t *dport)
{
	const uint8_t *p = NULL;
	uint8_t tmp[4] = { 0 };

	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
	case IPPROTO_DCCP:
		if (len >= 4)
			p = l4;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
	case IPPROTO_MH_:
		/* Type and code (MH: type alone) become source and destination. */
		if (len >= 2) {
			tmp[1] = proto == IPPROTO_MH_ ? (len >= 3 ? l4[2] : 0) : l4[0];
			tmp[3] = proto == IPPROTO_MH_ ? 0 : l4[1];
			p = tmp;
		}
		break;
	case IPPROTO_ESP:
		if (len >= 4) {
			/* SPI: its high half is the "dport", the low half the "sport". */
			tmp[0] = l4[2], tmp[1] = l4[3], tmp[2] = l4[0], tmp[3] = l4[1];
			p = tmp;
		}
		break;
	case IPPROTO_AH:
		if (len >= 8) {
			tmp[0] = l4[6], tmp[1] = l4[7], tmp[2] = l4[4], tmp[3] = l4[5];
			p = tmp;
		}
		break;
	case IPPROTO_COMP:
		if (len >= 4) {
			tmp[0] = l4[2], tmp[1] = l4[3];   /* CPI zero-extended: sport */
			p = tmp;
		}
		break;
	case IPPROTO_GRE:
		/* Key present (K bit): its halves, high one as source. */
		if (len >= 8 && (l4[0] & 0x20)) {
			size_t off = (l4[0] & 0x80) ? 8 : 4;

			if (len >= off + 4) {
				tmp[0] = l4[off], tmp[1] = l4[off + 1];
				tmp[2] = l4[off + 2], tmp[3] = l4[off + 3];
				p = tmp;
			}
		}
		break;
	}
	if (p == NULL) {
		*sport = *dport = 0;
		return;
	}
	memcpy(sport, p, 2);
	memcpy(dport, p + 2, 2);
}

bool
xg_spd_key_v4(const uint8_t *ip, size_t len, struct xg_spd_key4 *key)
{
	size_t ihl, tot;
	uint16_t frag;

	if (len < 20 || (ip[0] >> 4) != 4)
		return false;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	tot = (size_t)ip[2] << 8 | ip[3];
	if (ihl < 20 || tot < ihl || tot > len)
		return false;
	memset(key, 0, sizeof(*key));
	key->proto = ip[9];
	memcpy(&key->saddr, ip + 12, 4);
	memcpy(&key->daddr, ip + 16, 4);
	frag = (uint16_t)(ip[6] << 8 | ip[7]);
	/* Only the first fragment carries the upper-layer header. */
	if ((frag & 0x1fff) == 0)
		upper_ports(key->proto, ip + ihl, tot - ihl, &key->sport, &key->dport);
	return true;
}

bool
xg_spd_key_v6(const uint8_t *ip, size_t len, struct xg_spd_key6 *key)
{
	size_t off = 40, end;
	uint8_t nh;
	int hops;

	if (len < 40 || (ip[0] >> 4) != 6)
		return false;
	end = 40 + ((size_t)ip[4] << 8 | ip[5]);
	if (end > len)
		return false;
	memset(key, 0, sizeof(*key));
	memcpy(key->saddr, ip + 8, 16);
	memcpy(key->daddr, ip + 24, 16);
	nh = ip[6];
	/* Skip extension headers, as ipv6 decode_session does; a later
	 * fragment has no upper-layer header to read. */
	for (hops = 0; hops < 16; hops++) {
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			if (off + 8 > end)
				return false;
			nh = ip[off];
			off += ((size_t)ip[off + 1] + 1) * 8;
		} else if (nh == IPPROTO_FRAGMENT) {
			if (off + 8 > end)
				return false;
			if (((ip[off + 2] << 8 | ip[off + 3]) & 0xfff8) != 0) {
				key->proto = ip[off];
				return true;
			}
			nh = ip[off];
			off += 8;
		} else {
			break;
		}
	}
	if (off > end)
		return false;
	key->proto = nh;
	upper_ports(nh, ip + off, end - off, &key->sport, &key->dport);
	return true;
}

void
xg_spd_classify(const struct xg_spd *spd, uint8_t family, enum xg_spd_dir dir,
		const void *const keys[], uint32_t ids[], uint32_t n)
{
	const struct spd_table *t = &spd->t[family == AF_INET6][dir];
	uint32_t i;

	if (t->ctx == NULL) {
		for (i = 0; i < n; i++)
			ids[i] = XG_SPD_NO_MATCH;
		return;
	}
	/* ids doubles as the result array: slot + 1, or 0 for no match. */
	rte_acl_classify(t->ctx, (const uint8_t **)(uintptr_t)keys, ids, n, 1);
	for (i = 0; i < n; i++)
		ids[i] = ids[i] ? t->ids[ids[i] - 1] : XG_SPD_NO_MATCH;
}

bool
xg_spd_rule_match(const struct xg_spd_rule *r, uint8_t family, const void *key)
{
	const uint8_t *sa, *da;
	uint16_t sp, dp;
	uint8_t proto;

	if (r->family != family)
		return false;
	if (family == AF_INET) {
		const struct xg_spd_key4 *k = key;

		sa = (const uint8_t *)&k->saddr, da = (const uint8_t *)&k->daddr;
		proto = k->proto, sp = k->sport, dp = k->dport;
	} else {
		const struct xg_spd_key6 *k = key;

		sa = k->saddr, da = k->daddr;
		proto = k->proto, sp = k->sport, dp = k->dport;
	}
	return xg_prefix_match(sa, r->saddr, r->splen) && xg_prefix_match(da, r->daddr, r->dplen) &&
	       (!r->proto || r->proto == proto) && !((sp ^ r->sport) & r->sport_mask) &&
	       !((dp ^ r->dport) & r->dport_mask);
}
