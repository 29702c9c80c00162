/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Run lib/esp over a pcap file: every packet of IN goes through one SA
 * (outbound: encapsulate, inbound: decapsulate) and the good ones are
 * written to OUT as raw IP. The test suite feeds it scapy's packets and
 * checks its output with scapy, in both directions.
 *
 * esp_pcap dir=out|in mode=tunnel|transport src=ADDR dst=ADDR spi=N
 *          (aead=gcm|chacha key=HEX salt=HEX | cipher=cbc|ctr|null key=HEX
 *          [salt=HEX] auth=sha1|sha256|sha384|sha512 authkey=HEX) icv=BYTES
 *          [esn=1] [window=N] [seq=N] in=FILE out=FILE
 *
 * Prints "good G bad B" and one "drop NAME COUNT" line per reason.
 */

#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "xg_crypto.h"
#include "xg_esp.h"
#include "xg_stats.h"

#define BURST 32

static const char *
arg(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);
	int i;

	for (i = 1; i < argc; i++)
		if (strncmp(argv[i], name, n) == 0 && argv[i][n] == '=')
			return argv[i] + n + 1;
	return NULL;
}

static int
hex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	if (s[0] == '0' && s[1] == 'x')
		s += 2;
	while (s[0] && s[1] && n < cap) {
		unsigned int b;

		if (sscanf(s, "%2x", &b) != 1)
			return -1;
		out[n++] = (uint8_t)b;
		s += 2;
	}
	return (int)n;
}

static int
parse_addr(const char *s, uint8_t *a, uint8_t *family)
{
	if (s && inet_pton(AF_INET, s, a) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (s && inet_pton(AF_INET6, s, a) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static int
build_cfg(int argc, char **argv, struct xg_esp_cfg *c)
{
	const char *aead = arg(argc, argv, "aead"), *cipher = arg(argc, argv, "cipher");
	const char *auth = arg(argc, argv, "auth"), *v;
	int klen;

	memset(c, 0, sizeof(*c));
	c->outbound = strcmp(arg(argc, argv, "dir") ?: "", "out") == 0;
	c->tunnel = strcmp(arg(argc, argv, "mode") ?: "", "tunnel") == 0;
	c->esn = (v = arg(argc, argv, "esn")) && atoi(v);
	c->replay_window = (v = arg(argc, argv, "window")) ? (uint32_t)atoi(v) : 0;
	c->seq = (v = arg(argc, argv, "seq")) ? strtoull(v, NULL, 0) : 0;
	c->spi = htonl((uint32_t)strtoul(arg(argc, argv, "spi") ?: "0", NULL, 0));
	c->icv_bytes = (uint8_t)atoi(arg(argc, argv, "icv") ?: "0");
	if (parse_addr(arg(argc, argv, "src"), c->saddr, &c->family) ||
	    parse_addr(arg(argc, argv, "dst"), c->daddr, &c->family))
		return -1;
	klen = hex(arg(argc, argv, "key"), c->key, sizeof(c->key));
	if (klen < 0 || hex(arg(argc, argv, "salt"), c->salt, sizeof(c->salt)) < 0)
		return -1;
	c->key_len = (uint8_t)klen;
	if (aead) {
		c->aead = strcmp(aead, "gcm") == 0 ? XG_AEAD_AES_GCM : XG_AEAD_CHACHA20_POLY1305;
		return 0;
	}
	c->cipher = strcmp(cipher ?: "", "cbc") == 0 ? XG_CIPHER_AES_CBC :
		    strcmp(cipher ?: "", "ctr") == 0 ? XG_CIPHER_AES_CTR : XG_CIPHER_NULL;
	c->auth = strcmp(auth ?: "", "sha1") == 0 ? XG_AUTH_SHA1 :
		  strcmp(auth ?: "", "sha256") == 0 ? XG_AUTH_SHA256 :
		  strcmp(auth ?: "", "sha384") == 0 ? XG_AUTH_SHA384 :
		  strcmp(auth ?: "", "sha512") == 0 ? XG_AUTH_SHA512 : XG_AUTH_NONE;
	klen = hex(arg(argc, argv, "authkey"), c->auth_key, sizeof(c->auth_key));
	if (klen < 0)
		return -1;
	c->auth_key_len = (uint8_t)klen;
	return 0;
}

static void
flush(struct xg_esp_sa *sa, struct rte_mbuf **mb, uint16_t n, pcap_dumper_t *out,
      uint64_t drops[])
{
	uint8_t why[BURST];
	uint16_t good, i;

	good = sa->outbound ? xg_esp_outb(sa, mb, n, why) : xg_esp_inb(sa, mb, n, why);
	for (i = 0; i < n; i++) {
		if (i < good) {
			struct pcap_pkthdr h = { .caplen = rte_pktmbuf_pkt_len(mb[i]),
						 .len = rte_pktmbuf_pkt_len(mb[i]) };

			pcap_dump((u_char *)out, &h, rte_pktmbuf_mtod(mb[i], u_char *));
		} else {
			drops[why[i]]++;
		}
		rte_pktmbuf_free(mb[i]);
	}
}

int
main(int argc, char **argv)
{
	char *eal[] = { argv[0], "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "-l", "0",
			"--log-level", "*:error" };
	char errbuf[PCAP_ERRBUF_SIZE];
	uint64_t drops[XG_STAT_MAX] = { 0 }, bad = 0, total = 0;
	struct rte_mbuf *mb[BURST];
	struct rte_mempool *pool;
	struct xg_esp_cfg cfg;
	struct xg_esp_sa sa;
	const u_char *data;
	struct pcap_pkthdr *h;
	pcap_dumper_t *dump;
	pcap_t *in, *dead;
	uint16_t n = 0;
	int k, l2;

	if (build_cfg(argc, argv, &cfg) || !arg(argc, argv, "in") || !arg(argc, argv, "out")) {
		fprintf(stderr, "usage: see the comment at the top of esp_pcap.c\n");
		return 2;
	}
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])), eal) < 0 || xg_crypto_init(0, 1))
		return 1;
	pool = rte_pktmbuf_pool_create("p", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (pool == NULL || xg_esp_sa_init(&sa, &cfg)) {
		fprintf(stderr, "SA set-up failed\n");
		return 1;
	}
	in = pcap_open_offline(arg(argc, argv, "in"), errbuf);
	dead = pcap_open_dead(DLT_RAW, 65535);
	dump = in && dead ? pcap_dump_open(dead, arg(argc, argv, "out")) : NULL;
	if (dump == NULL) {
		fprintf(stderr, "pcap: %s\n", errbuf);
		return 1;
	}
	l2 = pcap_datalink(in) == DLT_EN10MB ? 14 : 0;
	while ((k = pcap_next_ex(in, &h, &data)) == 1) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(pool);

		if (m == NULL || h->caplen <= (unsigned int)l2)
			return 1;
		memcpy(rte_pktmbuf_append(m, (uint16_t)(h->caplen - l2)), data + l2, h->caplen - l2);
		mb[n++] = m;
		total++;
		if (n == BURST) {
			flush(&sa, mb, n, dump, drops);
			n = 0;
		}
	}
	if (n)
		flush(&sa, mb, n, dump, drops);
	pcap_dump_close(dump);
	for (k = 0; k < XG_STAT_MAX; k++)
		bad += drops[k];
	printf("good %lu bad %lu\n", (unsigned long)(total - bad), (unsigned long)bad);
	for (k = 0; k < XG_STAT_MAX; k++)
		if (drops[k])
			printf("drop %s %lu\n", xg_stat_name((enum xg_stat)k), (unsigned long)drops[k]);
	pcap_close(in);
	pcap_close(dead);
	xg_esp_sa_fini(&sa);
	xg_crypto_fini();
	/* Every packet was written out or dropped: a drop path that forgot
	 * to free its mbuf shows here (ASan cannot see into mempools). */
	k = (int)rte_mempool_in_use_count(pool);
	if (k)
		printf("esp_pcap: %d mbufs not returned to pool %s\n", k, pool->name);
	rte_mempool_free(pool);
	rte_eal_cleanup();
	return k ? 1 : 0;
}
