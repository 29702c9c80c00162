/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target: received frames through the worker's own code
 * (app/lcore.c: layer 2, IPv4/IPv6, NAT-T, SAD lookup, ESP, replay,
 * decryption, trailer checks, inbound policy, forwarding) with a fixed set
 * of SAs and policies installed through lib/xfrm, on ring ports whose
 * transmitted frames the harness checks: every frame that leaves must be
 * whole (its IP length fields match the frame).
 *
 * A mutated ESP packet fails its ICV at once, so the input describes
 * frames: either a raw frame, or a plaintext (inner packet, padding, pad
 * length and next header, all the fuzzer's) that the harness encrypts with
 * SA k's keys under a sequence number the fuzzer chooses, with OpenSSL (an
 * implementation independent of the gateway's IPsec-MB). Each input gets
 * fresh tables (fresh replay windows), so it replays the same way.
 *
 * After each input every packet buffer must be back in its pool (an mbuf
 * leak is invisible to ASan), and the worker must have left as many bytes
 * allocated, with malloc() and rte_malloc(), as it found: LeakSanitizer
 * cannot see through rte_malloc() memory (it would take every table the
 * snapshot holds for a leak), so this target runs with -detect_leaks=0.
 * The tailroom of every received frame is poisoned for ASan while the
 * worker runs: Debian's DPDK is not instrumented, so without this a read
 * past the frame's end would go unseen.
 *
 * Frame record (missing bytes read as zero), up to 32 a burst:
 *   u8 kind    bit 0: encrypt; bits 1-3: SA (mod NSA); bit 4: cut the
 *              plaintext to the cipher's block; bit 5: a raw frame comes in
 *              on the LAN port, an encrypted NAT-T one from source port 4501
 *              (the peer moved); bit 6: one ICV bit flipped; bit 7: a new
 *              burst after this frame
 *   encrypt:   u64 seq (little endian; the high half for the ESN SA only),
 *              u16 len, plaintext
 *   raw:       u16 len, the frame from its Ethernet header
 */

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/udp.h>
#include <linux/xfrm.h>
#include <sanitizer/allocator_interface.h>
#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring_elem.h>

#include "fuzz_input.h"
#include "xg_config.h"
#include "xg_crypto.h"
#include "xg_dp.h"
#include "xg_lcore.h"
#include "xg_port.h"
#include "xg_xfrm.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__asan_default_options(void);

/* See the top: memory is counted per input instead. */
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSA 5
#define MAX_FRAMES 64
#define BURST 32

/* The peers and the gateway (port 0: WAN, port 1: LAN). */
#define GW4 0xc0000201u     /* 192.0.2.1 */
#define PEER4 0xc0000202u   /* 192.0.2.2 */
static const uint8_t gw6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 1 };
static const uint8_t peer6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 2 };

static const uint8_t gcm_key[20] = {
	0x4c, 0x80, 0xcd, 0xef, 0xbb, 0x5d, 0x10, 0xda, 0x90, 0x6a, 0xc7, 0x3c,
	0x36, 0x13, 0xa6, 0x34, /* salt: */ 0x2e, 0x44, 0x3b, 0x68,
};
static const uint8_t cbc_key[16] = {
	0x06, 0xa9, 0x21, 0x40, 0x36, 0xb8, 0xa1, 0x5b, 0x51, 0x2e, 0x03, 0xd5,
	0x34, 0x12, 0x00, 0x06,
};
static const uint8_t hmac_key[32] = {
	0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
	0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x1c, 0x1c, 0x1c, 0x1c,
	0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c, 0x1c,
};

struct sadef {
	uint32_t spi;
	bool v6, gcm, esn, encap;
};

/* GCM, CBC+HMAC, GCM with ESN, GCM in UDP (NAT-T), GCM over IPv6; all
 * tunnel mode, inner 10.1.<k>.0/24 (fd00:1::/64) to 10.2.0.0/16
 * (fd00:2::/64). */
static const struct sadef sas[NSA] = {
	{ 0x1000, false, true, false, false },
	{ 0x1001, false, false, false, false },
	{ 0x1002, false, true, true, false },
	{ 0x1003, false, true, false, true },
	{ 0x1004, true, true, false, false },
};

static struct xg_xfrm *model;
static struct xg_routes *routes;
static struct rte_mempool *rx_pool, *tx_pool;
static struct xg_worker worker;
static struct xg_stats wstats;
static unsigned int dp_seq;
static uint8_t gw_mac[6];
static bool warm;       /* memory is counted from now on */
static struct xg_stats last;

/* ---- netlink requests for the model ---- */

struct nlb {
	uint64_t buf[256];
	size_t len;
};

static void
nl_start(struct nlb *b, uint16_t type, const void *fixed, size_t flen)
{
	struct nlmsghdr h = { .nlmsg_type = type, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK };

	memset(b->buf, 0, sizeof(b->buf));
	memcpy((uint8_t *)b->buf + NLMSG_HDRLEN, fixed, flen);
	b->len = NLMSG_HDRLEN + NLMSG_ALIGN(flen);
	memcpy(b->buf, &h, sizeof(h));
}

static void
nl_attr(struct nlb *b, uint16_t type, const void *a, size_t alen, const void *tail, size_t tlen)
{
	struct nlattr h = { .nla_len = (uint16_t)(NLA_HDRLEN + alen + tlen), .nla_type = type };
	uint8_t *p = (uint8_t *)b->buf + b->len;

	memcpy(p, &h, sizeof(h));
	memcpy(p + NLA_HDRLEN, a, alen);
	if (tlen)
		memcpy(p + NLA_HDRLEN + alen, tail, tlen);
	b->len += NLA_ALIGN(h.nla_len);
}

static int acked;

static void
on_unicast(void *opaque, const void *msg, size_t len)
{
	struct nlmsgerr e;

	(void)opaque;
	if (len < NLMSG_HDRLEN + sizeof(e))
		abort();
	memcpy(&e, (const uint8_t *)msg + NLMSG_HDRLEN, sizeof(e));
	if (e.error) {
		fprintf(stderr, "fuzz_esp_in: setup request refused: %d\n", e.error);
		abort();
	}
	acked++;
}

static void
nl_send(struct nlb *b)
{
	struct xg_xfrm_peer peer = { .portid = 1 };
	uint32_t len = (uint32_t)b->len;

	memcpy(b->buf, &len, sizeof(len));
	acked = 0;
	xg_xfrm_rcv(model, &peer, b->buf, b->len);
	if (acked != 1)
		abort();
}

static void
set_addr(xfrm_address_t *a, bool v6, uint32_t v4, const uint8_t *a6)
{
	memset(a, 0, sizeof(*a));
	if (v6)
		memcpy(a, a6, 16);
	else
		a->a4 = htonl(v4);
}

static void
inner_sel(struct xfrm_selector *sel, unsigned int k, bool v6)
{
	static const uint8_t src6[16] = { 0xfd, 0, 0, 1 }, dst6[16] = { 0xfd, 0, 0, 2 };

	memset(sel, 0, sizeof(*sel));
	sel->family = v6 ? AF_INET6 : AF_INET;
	set_addr(&sel->saddr, v6, 0x0a010000u | k << 8, src6);
	set_addr(&sel->daddr, v6, 0x0a020000u, dst6);
	sel->prefixlen_s = v6 ? 64 : 24;
	sel->prefixlen_d = v6 ? 64 : 16;
}

static void
add_sa(unsigned int k)
{
	const struct sadef *d = &sas[k];
	struct xfrm_usersa_info u;
	struct nlb b;

	memset(&u, 0, sizeof(u));
	inner_sel(&u.sel, k, d->v6);
	u.family = d->v6 ? AF_INET6 : AF_INET;
	set_addr(&u.id.daddr, d->v6, GW4, gw6);
	set_addr(&u.saddr, d->v6, PEER4, peer6);
	u.id.spi = htonl(d->spi);
	u.id.proto = IPPROTO_ESP;
	u.mode = XFRM_MODE_TUNNEL;
	u.reqid = k + 1;
	u.replay_window = d->esn ? 0 : 64;
	u.flags = d->esn ? XFRM_STATE_ESN : 0;
	u.lft.soft_byte_limit = u.lft.hard_byte_limit = XFRM_INF;
	u.lft.soft_packet_limit = u.lft.hard_packet_limit = XFRM_INF;
	nl_start(&b, XFRM_MSG_NEWSA, &u, sizeof(u));
	if (d->gcm) {
		struct xfrm_algo_aead a = { .alg_key_len = 160, .alg_icv_len = 128 };

		strcpy(a.alg_name, "rfc4106(gcm(aes))");
		nl_attr(&b, XFRMA_ALG_AEAD, &a, sizeof(a), gcm_key, sizeof(gcm_key));
	} else {
		struct xfrm_algo c = { .alg_key_len = 128 };
		struct xfrm_algo_auth h = { .alg_key_len = 256, .alg_trunc_len = 128 };

		strcpy(c.alg_name, "cbc(aes)");
		strcpy(h.alg_name, "hmac(sha256)");
		nl_attr(&b, XFRMA_ALG_CRYPT, &c, sizeof(c), cbc_key, sizeof(cbc_key));
		nl_attr(&b, XFRMA_ALG_AUTH_TRUNC, &h, sizeof(h), hmac_key, sizeof(hmac_key));
	}
	if (d->esn) {
		struct xfrm_replay_state_esn r = { .bmp_len = 4, .replay_window = 128 };
		uint32_t bmp[4] = { 0 };

		nl_attr(&b, XFRMA_REPLAY_ESN_VAL, &r, sizeof(r), bmp, sizeof(bmp));
	}
	if (d->encap) {
		struct xfrm_encap_tmpl e = { .encap_type = UDP_ENCAP_ESPINUDP,
					     .encap_sport = htons(4500),
					     .encap_dport = htons(4500) };

		nl_attr(&b, XFRMA_ENCAP, &e, sizeof(e), NULL, 0);
	}
	nl_send(&b);
}

/* fwd policy of SA k (its inner selector, a template naming it). */
static void
add_policy(unsigned int k, uint8_t action, uint8_t prefix_d, uint32_t prio)
{
	const struct sadef *d = &sas[k];
	struct xfrm_userpolicy_info p;
	struct xfrm_user_tmpl t;
	struct nlb b;

	memset(&p, 0, sizeof(p));
	memset(&t, 0, sizeof(t));
	inner_sel(&p.sel, k, d->v6);
	if (prefix_d) {
		p.sel.prefixlen_d = prefix_d;
		if (!d->v6)
			p.sel.daddr.a4 = htonl(0x0a020900u);   /* 10.2.9.0/24 */
	}
	p.dir = XFRM_POLICY_FWD;
	p.action = action;
	p.priority = prio;
	p.lft.soft_byte_limit = p.lft.hard_byte_limit = XFRM_INF;
	p.lft.soft_packet_limit = p.lft.hard_packet_limit = XFRM_INF;
	nl_start(&b, XFRM_MSG_NEWPOLICY, &p, sizeof(p));
	if (action == XFRM_POLICY_ALLOW) {
		t.family = d->v6 ? AF_INET6 : AF_INET;
		set_addr(&t.id.daddr, d->v6, GW4, gw6);
		set_addr(&t.saddr, d->v6, PEER4, peer6);
		t.id.proto = IPPROTO_ESP;
		t.mode = XFRM_MODE_TUNNEL;
		t.reqid = k + 1;
		t.aalgos = t.ealgos = t.calgos = ~0u;
		nl_attr(&b, XFRMA_TMPL, &t, sizeof(t), NULL, 0);
	}
	nl_send(&b);
}

/* ---- setup ---- */

static struct xg_cfg_prefix
prefix(bool v6, uint32_t v4, const uint8_t *a6, uint8_t plen)
{
	struct xg_cfg_prefix p = { .family = v6 ? AF_INET6 : AF_INET, .plen = plen };

	if (v6)
		memcpy(&p.v6, a6, 16);
	else
		p.v4.s_addr = htonl(v4);
	return p;
}

static void
make_routes(void)
{
	static const uint8_t lan6[16] = { 0xfd, 0, 0, 2, [15] = 1 };
	static const uint8_t host6[16] = { 0xfd, 0, 0, 2, [15] = 9 };
	static struct xg_config cfg;
	int err = 0;

	cfg.port[0].present = cfg.port[1].present = true;
	cfg.port[0].addr[0] = prefix(false, GW4, NULL, 24);
	cfg.port[0].addr[1] = prefix(true, 0, gw6, 64);
	cfg.port[0].naddr = 2;
	cfg.port[1].addr[0] = prefix(false, 0x0a020001u, NULL, 16);
	cfg.port[1].addr[1] = prefix(true, 0, lan6, 64);
	cfg.port[1].naddr = 2;
	/* One host behind the LAN port is known; others are solicited. */
	cfg.neigh[0].addr = prefix(false, 0x0a020009u, NULL, 32);
	cfg.neigh[0].port = 1;
	cfg.neigh[1].addr = prefix(true, 0, host6, 128);
	cfg.neigh[1].port = 1;
	cfg.neigh[0].mac[0] = cfg.neigh[1].mac[0] = 2;
	cfg.nneigh = 2;
	routes = xg_routes_build(&cfg, &err);
	if (routes == NULL)
		abort();
}

static struct rte_ring *txr[2];

/* Two ports on rings: the worker's transmissions wait in txr[] for
 * check_tx(). */
static void
make_ports(void)
{
	struct rte_ring *rxr;
	char name[32];
	int p;

	for (p = 0; p < 2; p++) {
		snprintf(name, sizeof(name), "fz_rxr%d", p);
		rxr = rte_ring_create(name, 64, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "fz_txr%d", p);
		txr[p] = rte_ring_create(name, 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "fz_port%d", p);
		if (rxr == NULL || txr[p] == NULL || rte_eth_from_rings(name, &rxr, 1, &txr[p], 1,
								       SOCKET_ID_ANY) != p)
			abort();
	}
}

/* A frame that leaves must say its own length: an IPv4 total length or
 * IPv6 payload length that does not match the frame sends a peer bytes
 * that were never filled in, or cuts the packet. */
static void
check_frame(const struct rte_mbuf *m, int port)
{
	const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), iplen;
	uint16_t type;

	if (len < 14 || !rte_pktmbuf_is_contiguous(m))
		goto bad;
	type = (uint16_t)(f[12] << 8 | f[13]);
	if (type == RTE_ETHER_TYPE_ARP) {
		if (len < 42)
			goto bad;
		return;
	}
	if (type == RTE_ETHER_TYPE_IPV4) {
		if (len < 34 || (f[14] >> 4) != 4 || (f[14] & 0xf) < 5)
			goto bad;
		iplen = (uint32_t)(f[16] << 8 | f[17]);
	} else if (type == RTE_ETHER_TYPE_IPV6) {
		if (len < 54 || (f[14] >> 4) != 6)
			goto bad;
		iplen = 40u + (uint32_t)(f[18] << 8 | f[19]);
	} else {
		goto bad;
	}
	if (iplen == len - 14)
		return;
bad:
	fprintf(stderr, "fuzz_esp_in: port %d sent a malformed frame of %u bytes:", port,
		(unsigned int)rte_pktmbuf_data_len(m));
	for (len = 0; len < rte_pktmbuf_data_len(m) && len < 64; len++)
		fprintf(stderr, " %02x", f[len]);
	fprintf(stderr, "\n");
	abort();
}

static void
check_tx(void)
{
	struct rte_mbuf *m[64];
	unsigned int n, i;
	int p;

	for (p = 0; p < 2; p++)
		while ((n = rte_ring_dequeue_burst(txr[p], (void **)m, 64, NULL)) > 0)
			for (i = 0; i < n; i++) {
				check_frame(m[i], p);
				rte_pktmbuf_free(m[i]);
			}
}

static void
make_worker(void)
{
	worker.stats = &wstats;
	worker.learn = rte_ring_create_elem("fz_learn", sizeof(struct xg_neigh_seen), 1024,
					    SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	worker.acquire = rte_ring_create_elem("fz_acq", sizeof(struct xg_acq_req), 256,
					      SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	worker.mapping = rte_ring_create_elem("fz_map", sizeof(struct xg_map_req), 256,
					      SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	if (worker.learn == NULL || worker.acquire == NULL || worker.mapping == NULL)
		abort();
}

/* Allocations made once (each thread's IPsec-MB manager, OpenSSL's
 * algorithm tables) happen here, before the inputs whose memory is
 * counted: one packet of each SA. */
static void
warm_up(void)
{
	uint8_t in[NSA * 11] = { 0 };
	unsigned int k;

	for (k = 0; k < NSA; k++) {
		in[k * 11] = (uint8_t)(1 | k << 1);
		in[k * 11 + 1] = 1;     /* sequence number 1, no plaintext */
	}
	LLVMFuzzerTestOneInput(in, sizeof(in));
	last = wstats;
	warm = true;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const struct xg_xfrm_ops ops = { .unicast = on_unicast };
	char prefix_arg[64];
	char *eal[] = { "fuzz_esp_in", "-l", "0", "--no-huge", "-m", "256", "--no-pci",
			"--no-shconf", prefix_arg,
			"--log-level", "*:error", NULL };
	struct rte_ether_addr mac;
	unsigned int k;

	(void)argc;
	(void)argv;
	snprintf(prefix_arg, sizeof(prefix_arg), "--file-prefix=fuzz%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(eal) - 1, eal) < 0)
		abort();
	/* No per-lcore cache: the in-use counts are exact after each input. */
	rx_pool = rte_pktmbuf_pool_create("fz_rx", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  SOCKET_ID_ANY);
	tx_pool = rte_pktmbuf_pool_create("fz_tx", 511, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  SOCKET_ID_ANY);
	if (rx_pool == NULL || tx_pool == NULL)
		abort();
	/* Packets the worker makes itself (ARP, ND) come from their own pool,
	 * never from a received frame's whose tailroom is poisoned. */
	xg_shared.pool = tx_pool;
	make_ports();
	if (xg_ports_init(rx_pool, 1, 1) != 2 || xg_crypto_init((int)rte_socket_id(), 1))
		abort();
	rte_eth_macaddr_get(0, &mac);
	memcpy(gw_mac, mac.addr_bytes, 6);
	make_routes();
	make_worker();
	model = xg_xfrm_create(&ops);
	for (k = 0; k < NSA; k++) {
		add_sa(k);
		add_policy(k, XFRM_POLICY_ALLOW, 0, 100);
	}
	/* Inner destinations 10.2.9.0/24 from SA 0's peers are refused. */
	add_policy(0, XFRM_POLICY_BLOCK, 24, 10);
	warm_up();
	return 0;
}

/* ---- ESP encryption (OpenSSL) ---- */

static void
gcm_seal(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad, int aadlen,
	 uint8_t *p, int len, uint8_t *tag)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int out;

	if (c == NULL || !EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, nonce) ||
	    !EVP_EncryptUpdate(c, NULL, &out, aad, aadlen) ||
	    (len && !EVP_EncryptUpdate(c, p, &out, p, len)) || !EVP_EncryptFinal_ex(c, p, &out) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag))
		abort();
	EVP_CIPHER_CTX_free(c);
}

static void
cbc_seal(const uint8_t *iv, uint8_t *p, int len)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int out;

	if (c == NULL || !EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, cbc_key, iv) ||
	    !EVP_CIPHER_CTX_set_padding(c, 0) || (len && !EVP_EncryptUpdate(c, p, &out, p, len)) ||
	    !EVP_EncryptFinal_ex(c, p, &out))
		abort();
	EVP_CIPHER_CTX_free(c);
}

/* The ESP part (header, IV, ciphertext, ICV) of SA @p d into @p esp;
 * @return its length. @p pt holds @p len plaintext bytes. */
static size_t
esp_seal(const struct sadef *d, uint64_t seq, const uint8_t *pt, size_t len, bool bad_icv,
	 uint8_t *esp)
{
	uint32_t spi = htonl(d->spi), lo = htonl((uint32_t)seq), hi = htonl((uint32_t)(seq >> 32));
	size_t ivlen = d->gcm ? 8 : 16, n;

	memcpy(esp, &spi, 4);
	memcpy(esp + 4, &lo, 4);
	/* A deterministic IV: the input alone decides the packet. */
	memset(esp + 8, 0, ivlen);
	memcpy(esp + 8, &lo, 4);
	memcpy(esp + 8 + ivlen, pt, len);
	n = 8 + ivlen + len;
	if (d->gcm) {
		uint8_t nonce[12], aad[12];
		int aadlen = 8;

		memcpy(nonce, gcm_key + 16, 4);
		memcpy(nonce + 4, esp + 8, 8);
		memcpy(aad, &spi, 4);
		if (d->esn) {
			memcpy(aad + 4, &hi, 4);
			memcpy(aad + 8, &lo, 4);
			aadlen = 12;
		} else {
			memcpy(aad + 4, &lo, 4);
		}
		gcm_seal(gcm_key, nonce, aad, aadlen, esp + 16, (int)len, esp + n);
	} else {
		unsigned int mdlen = 32;
		uint8_t md[32];

		/* Whole blocks only; a ragged tail goes out as it is, still
		 * under a valid ICV, for the length checks. */
		cbc_seal(esp + 8, esp + 24, (int)(len & ~(size_t)15));
		if (HMAC(EVP_sha256(), hmac_key, sizeof(hmac_key), esp, n, md, &mdlen) == NULL)
			abort();
		memcpy(esp + n, md, 16);
	}
	if (bad_icv)
		esp[n] ^= 1;
	return n + 16;
}

/* ---- frames ---- */

static void
put_eth(uint8_t *f, uint16_t type)
{
	static const uint8_t peer_mac[6] = { 2, 0, 0, 0, 0, 2 };

	memcpy(f, gw_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
}

/* Bytes before the ESP header: Ethernet, outer IP, and UDP for NAT-T. */
static size_t
outer_len(const struct sadef *d)
{
	return 14 + (d->v6 ? 40 : 20) + (d->encap ? 8 : 0);
}

/* Those headers in front of an ESP part of @p esplen bytes. */
static void
put_outer(const struct sadef *d, uint8_t *f, size_t esplen, uint16_t sport)
{
	size_t l4 = esplen + (d->encap ? 8 : 0);
	uint8_t *ip = f + 14;
	uint8_t proto = d->encap ? IPPROTO_UDP : IPPROTO_ESP;

	if (d->v6) {
		put_eth(f, RTE_ETHER_TYPE_IPV6);
		memset(ip, 0, 40);
		ip[0] = 0x60;
		ip[4] = (uint8_t)(l4 >> 8);
		ip[5] = (uint8_t)l4;
		ip[6] = proto;
		ip[7] = 64;
		memcpy(ip + 8, peer6, 16);
		memcpy(ip + 24, gw6, 16);
	} else {
		struct rte_ipv4_hdr h = {
			.version_ihl = 0x45,
			.total_length = htons((uint16_t)(20 + l4)),
			.time_to_live = 64,
			.next_proto_id = proto,
			.src_addr = htonl(PEER4),
			.dst_addr = htonl(GW4),
		};

		put_eth(f, RTE_ETHER_TYPE_IPV4);
		h.hdr_checksum = rte_ipv4_cksum(&h);
		memcpy(ip, &h, sizeof(h));
	}
	if (d->encap) {
		uint8_t *u = ip + (d->v6 ? 40 : 20);

		u[0] = (uint8_t)(sport >> 8);
		u[1] = (uint8_t)sport;
		u[2] = 4500 >> 8;
		u[3] = 4500 & 0xff;
		u[4] = (uint8_t)(l4 >> 8);
		u[5] = (uint8_t)l4;
		u[6] = u[7] = 0;
	}
}

static struct rte_mbuf *
frame_mbuf(const uint8_t *f, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(rx_pool);
	char *p;

	if (m == NULL)
		abort();
	p = rte_pktmbuf_append(m, (uint16_t)len);
	if (p == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memcpy(p, f, len);
	return m;
}

/* One frame record into an mbuf; NULL when the input holds none. */
static struct rte_mbuf *
next_frame(struct in *in, uint8_t kind)
{
	static uint8_t f[4096], pt[2048];
	const struct sadef *d = &sas[((kind >> 1) & 7) % NSA];
	uint64_t seq = 0;
	size_t len, n;
	uint8_t b[8];

	if (!(kind & 1)) {
		len = take8(in);
		len |= (size_t)take8(in) << 8;
		n = take(in, f, len < 2000 ? len : 2000);
		return frame_mbuf(f, n);
	}
	n = take(in, b, 8);
	while (n--)
		seq = seq << 8 | b[n];
	if (!d->esn)
		seq &= 0xffffffffu;
	len = take8(in);
	len |= (size_t)take8(in) << 8;
	len = take(in, pt, len < 1400 ? len : 1400);
	if (kind & 0x10)
		len &= d->gcm ? ~(size_t)3 : ~(size_t)15;
	n = esp_seal(d, seq, pt, len, kind & 0x40, f + outer_len(d));
	/* NAT-T: the peer's source port moves now and then (MAPPING). */
	put_outer(d, f, n, (kind & 0x20) ? 4501 : 4500);
	return frame_mbuf(f, outer_len(d) + n);
}

/* Poison what lies after the frame in its buffer (see the top). ARP
 * requests and neighbour solicitations are answered in place and may grow
 * to the answer's size (rte_pktmbuf_append(), which ASan cannot see):
 * their tail is poisoned from there. IP fragments are not poisoned at
 * all: reassembly (rte_pktmbuf_linearize(), not instrumented) fills the
 * first fragment's tailroom with the others. */
static void
poison_tail(struct rte_mbuf *m, bool on)
{
	const uint8_t *f = rte_pktmbuf_mtod(m, const uint8_t *);
	uint16_t len = rte_pktmbuf_data_len(m), from = len;

	if (!on) {
		ASAN_UNPOISON_MEMORY_REGION(m->buf_addr, m->buf_len);
		return;
	}
	if (len >= 22 && f[12] == 0x08 && f[13] == 0x00 && ((f[20] & 0x3f) | f[21]))
		return;
	if (len >= 21 && f[12] == 0x86 && f[13] == 0xdd && f[20] == 44)
		return;
	if (len >= 14 && f[12] == 0x08 && f[13] == 0x06)
		from = RTE_MAX(len, (uint16_t)42);
	else if (len >= 21 && f[12] == 0x86 && f[13] == 0xdd && f[20] == IPPROTO_ICMPV6)
		from = RTE_MAX(len, (uint16_t)(14 + 40 + 32));
	ASAN_POISON_MEMORY_REGION(rte_pktmbuf_mtod_offset(m, uint8_t *, from),
				  rte_pktmbuf_tailroom(m) - (from - len));
}

static void
drain_rings(void)
{
	uint8_t scratch[64 * sizeof(struct xg_acq_req) + 64 * sizeof(struct xg_neigh_seen)];

	while (rte_ring_dequeue_burst_elem(worker.learn, scratch, sizeof(struct xg_neigh_seen),
					   64, NULL))
		;
	while (rte_ring_dequeue_burst_elem(worker.acquire, scratch, sizeof(struct xg_acq_req),
					   64, NULL))
		;
	while (rte_ring_dequeue_burst_elem(worker.mapping, scratch, sizeof(struct xg_map_req),
					   32, NULL))
		;
}

static void
run_burst(struct rte_mbuf **mb, uint16_t n, uint16_t port)
{
	struct rte_mbuf *seen[BURST];
	uint16_t i;

	for (i = 0; i < n; i++) {
		seen[i] = mb[i];
		poison_tail(mb[i], true);
	}
	xg_worker_rx_once(&worker, port, mb, n);
	check_tx();
	/* The buffers are back in the pool (checked below) or sent and
	 * checked and freed by check_tx(): either way no longer the worker's. */
	for (i = 0; i < n; i++)
		poison_tail(seen[i], false);
}

/* FUZZ_ESP_STATS=1: the counters each input moved, to check what a seed
 * reaches (tests/fuzz/README.md). */
static void
print_stats(void)
{
	int k;

	for (k = 0; k < XG_STAT_MAX; k++)
		if (wstats.c[k] != last.c[k])
			fprintf(stderr, " %s=%lu", xg_stat_name((enum xg_stat)k),
				(unsigned long)(wstats.c[k] - last.c[k]));
	fprintf(stderr, "\n");
	last = wstats;
}

static size_t
rte_heap_used(void)
{
	struct rte_malloc_socket_stats st;

	if (rte_malloc_get_socket_stats((int)rte_socket_id(), &st))
		abort();
	return st.heap_allocsz_bytes;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int rx_used = rte_mempool_in_use_count(rx_pool);
	unsigned int tx_used = rte_mempool_in_use_count(tx_pool);
	size_t heap, rte_heap;
	struct in in = { data, size };
	struct rte_mbuf *mb[BURST];
	struct xg_dp *dp, *old;
	uint16_t n = 0, port = 0;
	unsigned int frames = 0;
	int err = 0;

	/* Fresh tables, fresh replay windows: the same input, the same run. */
	dp = xg_dp_build(model, routes, NULL, ++dp_seq, &err);
	if (dp == NULL)
		abort();
	old = xg_shared.dp;
	xg_shared.dp = dp;
	xg_dp_free(old);
	heap = __sanitizer_get_current_allocated_bytes();
	rte_heap = rte_heap_used();
	while (in.n && frames++ < MAX_FRAMES) {
		uint8_t kind = take8(&in);
		struct rte_mbuf *m = next_frame(&in, kind);

		if (n == 0)
			port = !(kind & 1) && (kind & 0x20) ? 1 : 0;
		if (m)
			mb[n++] = m;
		if (n == BURST || (kind & 0x80)) {
			run_burst(mb, n, port);
			n = 0;
		}
	}
	if (n)
		run_burst(mb, n, port);
	drain_rings();
	if (getenv("FUZZ_ESP_STATS"))
		print_stats();
	if (rte_mempool_in_use_count(rx_pool) != rx_used ||
	    rte_mempool_in_use_count(tx_pool) != tx_used) {
		fprintf(stderr, "fuzz_esp_in: mbuf leak: rx pool %u -> %u, tx pool %u -> %u\n",
			rx_used, rte_mempool_in_use_count(rx_pool), tx_used,
			rte_mempool_in_use_count(tx_pool));
		abort();
	}
	if (warm && (__sanitizer_get_current_allocated_bytes() != heap ||
		     rte_heap_used() != rte_heap)) {
		fprintf(stderr, "fuzz_esp_in: the worker kept memory: malloc %zu -> %zu, "
			"rte_malloc %zu -> %zu\n", heap, __sanitizer_get_current_allocated_bytes(),
			rte_heap, rte_heap_used());
		abort();
	}
	return 0;
}
