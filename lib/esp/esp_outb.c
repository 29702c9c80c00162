/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Outbound ESP (data path): build the headers and trailer of every packet
 * of a burst, then one CPU-crypto call for the burst.
 */

#include <string.h>
#include <sys/socket.h>

#include <rte_byteorder.h>
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "esp_priv.h"
#include "xg_stats.h"

#define BURST XG_ESP_BURST_MAX

/* CBC IVs must be unpredictable: they come from esp_random(), a page at a
 * time per lcore, never from a counter. */
static __thread uint8_t rnd_buf[4096];
static __thread unsigned int rnd_off = sizeof(rnd_buf);

static int
random_iv(uint8_t *iv, unsigned int len)
{
	if (rnd_off + len > sizeof(rnd_buf)) {
		if (esp_random(rnd_buf, sizeof(rnd_buf)))
			return -1;
		rnd_off = 0;
	}
	memcpy(iv, rnd_buf + rnd_off, len);
	explicit_bzero(rnd_buf + rnd_off, len);
	rnd_off += len;
	return 0;
}

/* Where ESP goes in a transport-mode IPv6 packet: after hop-by-hop and
 * routing headers (and destination options that precede routing). */
static unsigned int
v6_esp_offset(const uint8_t *ip, unsigned int len, uint8_t **nextp)
{
	unsigned int off = sizeof(struct rte_ipv6_hdr);
	uint8_t *next = (uint8_t *)(uintptr_t)&ip[6];

	while (off + 8 <= len) {
		uint8_t nh = *next;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING &&
		    !(nh == IPPROTO_DSTOPTS && off + 8 <= len && ip[off] == IPPROTO_ROUTING))
			break;
		next = (uint8_t *)(uintptr_t)&ip[off];
		off += ((unsigned int)ip[off + 1] + 1) * 8;
	}
	*nextp = next;
	return off;
}

static void
outer_v4(const struct xg_esp_sa *sa, uint8_t *p, const uint8_t *inner, uint16_t total)
{
	bool v4 = (inner[0] >> 4) == 4;
	uint8_t tos = v4 ? inner[1] : (uint8_t)((inner[0] << 4) | (inner[1] >> 4));
	/* Keep the inner DF bit, as the kernel's tunnel mode does. */
	uint32_t df = v4 ? (uint32_t)(inner[6] & 0x40) << 8 : 0;
	uint32_t sum = sa->outer4_sum + tos + total + df;

	memcpy(p, sa->outer4, sizeof(sa->outer4));
	p[1] = tos;
	p[2] = (uint8_t)(total >> 8);
	p[3] = (uint8_t)total;
	p[6] = (uint8_t)(df >> 8);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	p[10] = (uint8_t)(~sum >> 8);
	p[11] = (uint8_t)~sum;
}

static void
outer_v6(const struct xg_esp_sa *sa, uint8_t *p, const uint8_t *inner, uint16_t plen)
{
	struct rte_ipv6_hdr h;
	uint32_t tc = (inner[0] >> 4) == 4 ? inner[1] : (uint8_t)((inner[0] << 4) | (inner[1] >> 4));

	memset(&h, 0, sizeof(h));
	h.vtc_flow = rte_cpu_to_be_32(6u << 28 | tc << 20);
	h.payload_len = rte_cpu_to_be_16(plen);
	h.proto = IPPROTO_ESP;
	h.hop_limits = 64;
	memcpy(h.src_addr, sa->saddr, 16);
	memcpy(h.dst_addr, sa->daddr, 16);
	memcpy(p, &h, sizeof(h));
}

struct outb_pkt {
	uint8_t *esp;        /* ESP header */
	uint32_t enc_len;    /* payload + padding + 2 */
	uint8_t *icv;
};

/* Make room and write everything but the ciphertext and ICV. */
static int
encap_one(struct xg_esp_sa *sa, struct rte_mbuf *m, struct outb_pkt *o, uint64_t seq)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *), *nextp = NULL, next;
	unsigned int ver = ip[0] >> 4, l3 = 0, hdr, tail, pad, plen, i;
	unsigned int outer = sa->family == AF_INET ? sizeof(struct rte_ipv4_hdr) :
						     sizeof(struct rte_ipv6_hdr);
	unsigned int len = rte_pktmbuf_pkt_len(m);
	uint8_t *esp, *t;
	uint32_t v;

	if (!rte_pktmbuf_is_contiguous(m) || (ver != 4 && ver != 6))
		return XG_STAT_OUT_STATE_MODE_ERROR;
	if (sa->tunnel) {
		next = ver == 4 ? ESP_IPIP : ESP_IPV6;
		plen = len;
		hdr = outer + ESP_HDR_LEN + sa->iv_len;
	} else {
		if (ver != (sa->family == AF_INET ? 4u : 6u))
			return XG_STAT_OUT_STATE_MODE_ERROR;
		l3 = ver == 4 ? (ip[0] & 0xfu) * 4 : v6_esp_offset(ip, len, &nextp);
		if (l3 > len)
			return XG_STAT_OUT_STATE_MODE_ERROR;
		next = ver == 4 ? ip[9] : *nextp;
		plen = len - l3;
		hdr = ESP_HDR_LEN + sa->iv_len;
	}
	pad = (0u - (plen + 2)) & (sa->align - 1u);   /* align: 4 or 16 */
	tail = pad + 2 + sa->icv_len;
	if (rte_pktmbuf_headroom(m) < hdr || rte_pktmbuf_tailroom(m) < tail ||
	    len + hdr + tail > UINT16_MAX)
		return XG_STAT_MBUF_ALLOC;
	t = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)tail);
	rte_pktmbuf_prepend(m, (uint16_t)hdr);
	ip = rte_pktmbuf_mtod(m, uint8_t *);
	if (sa->tunnel) {
		esp = ip + outer;
	} else {
		memmove(ip, ip + hdr, l3);   /* IP header (and v6 extensions) forward */
		esp = ip + l3;
		if (ver == 6)
			nextp -= hdr;
	}
	for (i = 0; i < pad; i++)
		t[i] = (uint8_t)(i + 1);
	t[pad] = (uint8_t)pad;
	t[pad + 1] = next;
	memcpy(esp, &sa->spi, 4);
	v = rte_cpu_to_be_32((uint32_t)seq);
	memcpy(esp + 4, &v, 4);
	o->esp = esp;
	o->enc_len = plen + pad + 2;
	o->icv = t + pad + 2;
	if (sa->esn && !sa->aead) {
		v = rte_cpu_to_be_32((uint32_t)(seq >> 32));
		/* ESN: the high half is authenticated right after the
		 * ciphertext, where the ICV is written afterwards. */
		memcpy(o->icv, &v, 4);
	}
	if (sa->tunnel) {
		const uint8_t *inner = esp + ESP_HDR_LEN + sa->iv_len;
		uint16_t total = (uint16_t)rte_pktmbuf_pkt_len(m);

		if (sa->family == AF_INET)
			outer_v4(sa, ip, inner, total);
		else
			outer_v6(sa, ip, inner, (uint16_t)(total - outer));
	} else if (ver == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->next_proto_id = IPPROTO_ESP;
		h->total_length = rte_cpu_to_be_16((uint16_t)rte_pktmbuf_pkt_len(m));
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		*nextp = IPPROTO_ESP;
		h->payload_len = rte_cpu_to_be_16((uint16_t)(rte_pktmbuf_pkt_len(m) - 40));
	}
	return 0;
}

static int
fill_iv(struct xg_esp_sa *sa, struct outb_pkt *o, struct esp_cop *c, uint64_t seq)
{
	uint8_t *wire = o->esp + ESP_HDR_LEN;
	uint64_t be = rte_cpu_to_be_64(seq);
	uint32_t one = rte_cpu_to_be_32(1);

	if (sa->iv_len == 16)
		return random_iv(c->iv, 16) ? -1 : (memcpy(wire, c->iv, 16), 0);
	if (sa->iv_len == 0)
		return 0;
	/* Counter modes: the sequence number is a unique IV for the key. */
	memcpy(wire, &be, 8);
	memcpy(c->iv, sa->salt, 4);
	memcpy(c->iv + 4, &be, 8);
	if (sa->ctr)
		memcpy(c->iv + 12, &one, 4);
	if (sa->aead) {
		uint32_t hi = rte_cpu_to_be_32((uint32_t)(seq >> 32));

		memcpy(c->aad, &sa->spi, 4);
		if (sa->esn) {
			memcpy(c->aad + 4, &hi, 4);
			memcpy(c->aad + 8, o->esp + 4, 4);
		} else {
			memcpy(c->aad + 4, o->esp + 4, 4);
		}
	}
	return 0;
}

static void
set_vec(const struct xg_esp_sa *sa, struct rte_mbuf *m, struct outb_pkt *o, struct esp_cop *c,
	struct esp_vec *v, uint32_t k)
{
	if (sa->aead)
		esp_vec_set(v, k, m, o->esp + ESP_HDR_LEN + sa->iv_len, o->enc_len, c, true, o->icv);
	else
		esp_vec_set(v, k, m, o->esp,
			    ESP_HDR_LEN + sa->iv_len + o->enc_len + (sa->esn ? 4 : 0), c, false, o->icv);
}

static uint16_t
outb_burst(struct xg_esp_sa *sa, struct rte_mbuf *mb[], uint16_t n, uint8_t why[])
{
	struct outb_pkt o[BURST];
	struct esp_cop cop[BURST];
	struct esp_vec v;
	uint16_t idx[BURST], k = 0, i;
	uint8_t reason[BURST];
	/* Several lcores may send on one SA: each number (and with it the
	 * counter-mode IV) is handed out exactly once, a burst's worth at a
	 * time. A packet that fails below leaves a gap, which ESP allows. */
	uint64_t last = __atomic_fetch_add(&sa->seq, n, __ATOMIC_RELAXED);

	for (i = 0; i < n; i++) {
		uint64_t seq = last + 1 + i;
		int r;

		/* Never wrap: a sender must stop using an SA, not reuse numbers
		 * (seq <= last: the 64-bit counter went round). */
		if ((!sa->esn && seq > UINT32_MAX) || seq <= last) {
			reason[i] = XG_STAT_OUT_STATE_SEQ_ERROR;
			continue;
		}
		r = encap_one(sa, mb[i], &o[k], seq);
		if (r == 0 && fill_iv(sa, &o[k], &cop[k], seq))
			r = XG_STAT_OUT_STATE_PROTO_ERROR;
		reason[i] = (uint8_t)r;
		if (r)
			continue;
		set_vec(sa, mb[i], &o[k], &cop[k], &v, k);
		idx[k++] = i;
	}
	esp_vec_run(sa, &v, k);
	for (i = 0; i < k; i++)
		if (v.st[i] != 0)
			reason[idx[i]] = XG_STAT_OUT_STATE_PROTO_ERROR;
	return esp_partition(mb, n, reason, why);
}

uint16_t
xg_esp_outb(struct xg_esp_sa *sa, struct rte_mbuf *mb[], uint16_t n, uint8_t why[])
{
	return outb_burst(sa, mb, RTE_MIN(n, XG_ESP_BURST_MAX), why);
}
