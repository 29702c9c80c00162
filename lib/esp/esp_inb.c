/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inbound ESP (data path): parse and replay-check every packet of a burst,
 * verify and decrypt the survivors with one CPU-crypto call, then check the
 * trailer, record the sequence numbers and strip.
 *
 * The window moves only for packets whose ICV verified (RFC 4303 3.4.3), and
 * the ESN high half guessed before decryption is the one recorded after it.
 */

#include <string.h>
#include <sys/socket.h>

#include <rte_byteorder.h>
#include <rte_cryptodev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "esp_priv.h"
#include "xg_stats.h"

struct inb_pkt {
	uint8_t *esp;
	unsigned int l3;        /* outer header bytes before ESP */
	uint32_t enc_len;       /* ciphertext: payload + padding + 2 */
	uint64_t seq;
};

/* Bytes before the ESP header, or 0 if the packet is not plain ESP. */
static unsigned int
esp_offset(const uint8_t *ip, unsigned int len)
{
	if ((ip[0] >> 4) == 4) {
		unsigned int ihl = (ip[0] & 0xfu) * 4;

		if (len < 20 || ihl < 20 || ihl > len || ip[9] != IPPROTO_ESP ||
		    (unsigned int)(ip[2] << 8 | ip[3]) != len)
			return 0;
		return ihl;
	}
	if ((ip[0] >> 4) == 6 && len >= 40 && ip[6] == IPPROTO_ESP &&
	    (unsigned int)(ip[4] << 8 | ip[5]) + 40 == len)
		return 40;
	return 0;
}

static int
parse_one(struct xg_esp_sa *sa, struct rte_mbuf *m, struct inb_pkt *p, struct esp_cop *c)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *);
	unsigned int len = rte_pktmbuf_pkt_len(m), fixed = ESP_HDR_LEN + sa->iv_len, body;
	uint32_t seql;

	if (!rte_pktmbuf_is_contiguous(m))
		return XG_STAT_IN_HDR_ERROR;
	/* As xfrm_input(): no SPI and sequence number is a header error; with
	 * them, the replay check comes first and a body too short for the SA
	 * is the ESP's error (esp_input()). */
	p->l3 = esp_offset(ip, len);
	if (p->l3 == 0 || len < p->l3 + ESP_HDR_LEN)
		return XG_STAT_IN_HDR_ERROR;
	p->esp = ip + p->l3;
	memcpy(&seql, p->esp + 4, 4);
	switch (xg_replay_check(&sa->replay, rte_be_to_cpu_32(seql), &p->seq)) {
	case XG_REPLAY_OK:
		break;
	case XG_REPLAY_SEEN:
	case XG_REPLAY_TOO_OLD:
	case XG_REPLAY_ZERO:
		return XG_STAT_IN_STATE_SEQ_ERROR;
	}
	if (len < p->l3 + fixed + 2 + sa->icv_len)
		return XG_STAT_IN_STATE_PROTO_ERROR;
	body = len - p->l3 - fixed - sa->icv_len;
	if (body & (sa->align - 1u))   /* align: 4 or 16 */
		return XG_STAT_IN_STATE_PROTO_ERROR;
	p->enc_len = body;
	if (sa->iv_len == 16) {
		memcpy(c->iv, p->esp + ESP_HDR_LEN, 16);
	} else if (sa->iv_len == 8) {
		memcpy(c->iv, sa->salt, 4);
		memcpy(c->iv + 4, p->esp + ESP_HDR_LEN, 8);
		if (sa->ctr) {
			uint32_t one = rte_cpu_to_be_32(1);

			memcpy(c->iv + 12, &one, 4);
		}
	}
	if (sa->aead) {
		uint32_t hi = rte_cpu_to_be_32((uint32_t)(p->seq >> 32));

		memcpy(c->aad, p->esp, 4);
		if (sa->esn) {
			memcpy(c->aad + 4, &hi, 4);
			memcpy(c->aad + 8, &seql, 4);
		} else {
			memcpy(c->aad + 4, &seql, 4);
		}
	}
	return 0;
}

/* Integrity covers the ESN high half right after the ciphertext (RFC 4303
 * 2.2.1): slide the ICV 4 bytes on and put the high half in its place. */
static int
esn_make_room(struct xg_esp_sa *sa, struct rte_mbuf *m, struct inb_pkt *p)
{
	uint8_t *icv = p->esp + ESP_HDR_LEN + sa->iv_len + p->enc_len;
	uint32_t hi = rte_cpu_to_be_32((uint32_t)(p->seq >> 32));

	if (rte_pktmbuf_append(m, 4) == NULL)
		return XG_STAT_IN_BUFFER_ERROR;
	memmove(icv + 4, icv, sa->icv_len);
	memcpy(icv, &hi, 4);
	return 0;
}

/* Padding must be 1, 2, 3, ... (RFC 4303 2.4); next header must fit the mode. */
static int
check_trailer(const struct xg_esp_sa *sa, const struct inb_pkt *p, uint8_t *next,
	      unsigned int *plen)
{
	const uint8_t *data = p->esp + ESP_HDR_LEN + sa->iv_len;
	const uint8_t *t = data + p->enc_len - 2;
	unsigned int pad = t[0], i;

	if (pad + 2 > p->enc_len)
		return XG_STAT_IN_STATE_PROTO_ERROR;
	for (i = 0; i < pad; i++)
		if (t[-(int)pad + (int)i] != (uint8_t)(i + 1))
			return XG_STAT_IN_STATE_PROTO_ERROR;
	*next = t[1];
	*plen = p->enc_len - pad - 2;
	if (sa->tunnel) {
		unsigned int v = *plen ? data[0] >> 4 : 0;

		if (!((*next == ESP_IPIP && v == 4) || (*next == ESP_IPV6 && v == 6)))
			return XG_STAT_IN_STATE_MODE_ERROR;
	}
	return 0;
}

/* Remove everything ESP added; the inner packet must hold together. */
static int
strip(const struct xg_esp_sa *sa, struct rte_mbuf *m, const struct inb_pkt *p, uint8_t next,
      unsigned int plen)
{
	unsigned int hdr = ESP_HDR_LEN + sa->iv_len;
	unsigned int extra = rte_pktmbuf_pkt_len(m) - p->l3 - hdr - plen;
	uint8_t *ip;

	rte_pktmbuf_trim(m, (uint16_t)extra);
	if (sa->tunnel) {
		const uint8_t *in;
		unsigned int ilen;

		rte_pktmbuf_adj(m, (uint16_t)(p->l3 + hdr));
		in = rte_pktmbuf_mtod(m, const uint8_t *);
		ilen = next == ESP_IPIP ? (plen >= 20 ? (unsigned int)(in[2] << 8 | in[3]) : 0) :
					  (plen >= 40 ? (unsigned int)(in[4] << 8 | in[5]) + 40 : 0);
		if (ilen == 0 || ilen > plen)
			return XG_STAT_IN_STATE_MODE_ERROR;
		/* TFC padding after the inner packet is dropped here. */
		rte_pktmbuf_trim(m, (uint16_t)(plen - ilen));
		return 0;
	}
	ip = rte_pktmbuf_mtod(m, uint8_t *);
	memmove(ip + hdr, ip, p->l3);
	ip = (uint8_t *)rte_pktmbuf_adj(m, (uint16_t)hdr);
	if ((ip[0] >> 4) == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->next_proto_id = next;
		h->total_length = rte_cpu_to_be_16((uint16_t)rte_pktmbuf_pkt_len(m));
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		h->proto = next;
		h->payload_len = rte_cpu_to_be_16((uint16_t)(rte_pktmbuf_pkt_len(m) - 40));
	}
	return 0;
}

static int
finish_one(struct xg_esp_sa *sa, struct rte_mbuf *m, struct inb_pkt *p)
{
	unsigned int plen;
	uint8_t next;
	int r = check_trailer(sa, p, &next, &plen);

	if (r)
		return r;
	/* Only now, with the ICV verified, may the window move. */
	if (xg_replay_update(&sa->replay, p->seq) != XG_REPLAY_OK)
		return XG_STAT_IN_STATE_SEQ_ERROR;
	return strip(sa, m, p, next, plen);
}

uint16_t
xg_esp_inb(struct xg_esp_sa *sa, struct rte_mbuf *mb[], uint16_t n, uint8_t why[])
{
	struct inb_pkt p[XG_ESP_BURST_MAX];
	struct esp_cop cop[XG_ESP_BURST_MAX];
	struct esp_vec v;
	uint8_t reason[XG_ESP_BURST_MAX];
	uint16_t idx[XG_ESP_BURST_MAX], k = 0, i;

	n = RTE_MIN(n, XG_ESP_BURST_MAX);
	for (i = 0; i < n; i++) {
		int r = parse_one(sa, mb[i], &p[i], &cop[k]);

		if (r == 0 && sa->esn && !sa->aead)
			r = esn_make_room(sa, mb[i], &p[i]);
		reason[i] = (uint8_t)r;
		if (r)
			continue;
		if (sa->aead) {
			uint8_t *base = p[i].esp + ESP_HDR_LEN + sa->iv_len;

			esp_vec_set(&v, k, mb[i], base, p[i].enc_len, &cop[k], true,
				    base + p[i].enc_len);
		} else {
			uint32_t len = ESP_HDR_LEN + sa->iv_len + p[i].enc_len + (sa->esn ? 4 : 0);

			/* The ICV follows the region (moved behind seq hi with ESN). */
			esp_vec_set(&v, k, mb[i], p[i].esp, len, &cop[k], false, p[i].esp + len);
		}
		idx[k++] = i;
	}
	esp_vec_run(sa, &v, k);
	for (i = 0; i < k; i++) {
		uint16_t j = idx[i];

		reason[j] = (uint8_t)(v.st[i] ? XG_STAT_IN_STATE_PROTO_ERROR :
				      finish_one(sa, mb[j], &p[j]));
	}
	return esp_partition(mb, n, reason, why);
}
