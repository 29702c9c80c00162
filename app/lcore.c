/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker poll loop: rx_burst -> L2 -> inbound ESP (SAD, replay,
 * decrypt, policy check) -> forward policy check -> outbound policy (SPD)
 * -> ESP -> route -> neighbour -> tx_burst -> quiescent state.
 *
 * A received burst goes through the stages together: one SAD lookup for
 * its ESP packets, one crypto call per SA among them, one ACL call per
 * direction and family, one crypto call per outbound SA, one tx burst per
 * port. Every drop is counted.
 */

#include <netinet/in.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ring_elem.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_security.h>
#include <rte_udp.h>

#include "xg_dp.h"
#include "xg_lcore.h"

#define BURST 32

struct xg_shared xg_shared;

struct txbuf {
	uint16_t n;
	struct rte_mbuf *m[BURST];
};

#define SOLICIT_SLOTS 64

struct rx_lists;

struct ctx {
	const struct xg_dp *dp;
	struct xg_worker *w;
	struct rx_lists *rx;          /* the burst being received */
	struct rte_ip_frag_tbl *frag; /* ESP fragments being reassembled */
	struct rte_ip_frag_death_row dr;
	struct txbuf tx[XG_CFG_MAX_PORTS];
	/* The last next hop resolved in this burst: a burst's packets mostly
	 * leave for one peer. */
	bool nh_valid;
	uint8_t nh_family;
	uint8_t nh_dst[16];
	uint16_t nh_port;
	struct rte_ether_addr nh_mac;
	/* When each recently solicited address was last asked for. */
	struct {
		uint8_t addr[16];
		uint64_t tsc;
	} asked[SOLICIT_SLOTS];
};

static inline void
count(struct ctx *c, enum xg_stat id)
{
	xg_stats_add(c->w->stats, id, 1);
}

static void
drop(struct ctx *c, struct rte_mbuf *m, enum xg_stat why)
{
	count(c, why);
	rte_pktmbuf_free(m);
}

/* A packet of @p sa dropped: also counted on the SA (/xfrmgw/sa,SPI), by
 * reason; the drop path only. */
static void
sa_drop(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf *m, enum xg_stat why)
{
	int k = xg_sa_drop_index(why);

	if (sa && why == XG_STAT_IN_STATE_SEQ_ERROR)
		__atomic_fetch_add(&sa->replay_fail, 1, __ATOMIC_RELAXED);
	else if (sa && why == XG_STAT_IN_STATE_PROTO_ERROR)
		__atomic_fetch_add(&sa->integrity_fail, 1, __ATOMIC_RELAXED);
	else if (sa && k >= 0)
		__atomic_fetch_add(&sa->drops[k], 1, __ATOMIC_RELAXED);
	drop(c, m, why);
}

static void
flush_tx(struct ctx *c)
{
	uint16_t p, sent;

	for (p = 0; p < XG_CFG_MAX_PORTS; p++) {
		struct txbuf *t = &c->tx[p];

		if (t->n == 0)
			continue;
		sent = rte_eth_tx_burst(p, c->w->txq, t->m, t->n);
		xg_stats_add(c->w->stats, XG_STAT_TX_PACKETS, sent);
		xg_stats_add(c->w->stats, XG_STAT_TX_FULL, t->n - sent);
		while (sent < t->n)
			rte_pktmbuf_free(t->m[sent++]);
		t->n = 0;
	}
}

static void
queue_tx(struct ctx *c, uint16_t port, struct rte_mbuf *m)
{
	struct txbuf *t = &c->tx[port];

	if (t->n == BURST)
		flush_tx(c);
	t->m[t->n++] = m;
}

/* Hand a frame that arrived on @p port to the kernel through the port's
 * exception TAP. @p l2 says whether the data starts at the Ethernet
 * header (else at IP, the header still in front of it).
 * @return false when the port has no exception path (the caller drops). */
static bool
punt(struct ctx *c, uint16_t port, struct rte_mbuf *m, bool l2)
{
	uint16_t tap = c->dp->rt->port[port].exc;

	if (tap == 0)
		return false;
	if (!l2)
		rte_pktmbuf_prepend(m, sizeof(struct rte_ether_hdr));
	count(c, XG_STAT_EXCEPTION_IN);
	queue_tx(c, (uint16_t)(tap - 1), m);
	return true;
}

/* Tell the control thread about a neighbour; losing one is harmless. */
static void
learn(struct ctx *c, uint16_t port, uint8_t family, const void *addr, const uint8_t *mac)
{
	struct xg_neigh_seen n;

	memset(&n, 0, sizeof(n));
	n.port = port;
	n.family = family;
	memcpy(n.mac, mac, 6);
	memcpy(n.addr, addr, family == AF_INET ? 4 : 16);
	rte_ring_sp_enqueue_elem(c->w->learn, &n, sizeof(n));
}

/* ICMPv6 checksum of an IPv6 packet whose payload is all ICMPv6. */
static void
icmp6_cksum(uint8_t *ip)
{
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]), sum = plen + IPPROTO_ICMPV6, i;
	uint8_t *icmp = ip + 40;

	icmp[2] = icmp[3] = 0;
	for (i = 8; i < 40; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	for (i = 0; i + 1 < plen; i += 2)
		sum += (uint32_t)(icmp[i] << 8 | icmp[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	icmp[2] = (uint8_t)(~sum >> 8);
	icmp[3] = (uint8_t)~sum;
}

/* Answer an ARP request for one of the port's addresses, in place. */
static void
arp_in(struct ctx *c, uint16_t port, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
	const struct xg_dp_port *p = &c->dp->rt->port[port];
	uint32_t tip;

	if (rte_pktmbuf_data_len(m) < sizeof(*eth) + sizeof(*arp) ||
	    arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
		drop(c, m, XG_STAT_RX_NOT_IP);
		return;
	}
	tip = arp->arp_data.arp_tip;
	learn(c, port, AF_INET, &arp->arp_data.arp_sip, arp->arp_data.arp_sha.addr_bytes);
	if (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) ||
	    !xg_dp_is_local(c->dp->rt, AF_INET, (const uint8_t *)&tip)) {
		/* A reply may answer the kernel's own request. */
		if (arp->arp_opcode == rte_cpu_to_be_16(RTE_ARP_OP_REPLY) &&
		    punt(c, port, m, true))
			return;
		drop(c, m, XG_STAT_NEIGH_SEEN);
		return;
	}
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
	arp->arp_data.arp_tha = arp->arp_data.arp_sha;
	arp->arp_data.arp_tip = arp->arp_data.arp_sip;
	arp->arp_data.arp_sha = p->mac;
	arp->arp_data.arp_sip = tip;
	eth->dst_addr = eth->src_addr;
	eth->src_addr = p->mac;
	count(c, XG_STAT_ARP_REPLIED);
	queue_tx(c, port, m);
}

/* The link-layer address option @p type (1 source, 2 target) of an ND
 * message whose options start at @p opt, or NULL. */
static const uint8_t *
nd_lladdr(const uint8_t *opt, size_t len, uint8_t type)
{
	while (len >= 8 && opt[1] != 0 && (size_t)opt[1] * 8 <= len) {
		if (opt[0] == type)
			return opt + 2;
		len -= (size_t)opt[1] * 8;
		opt += (size_t)opt[1] * 8;
	}
	return NULL;
}

/* Neighbour discovery (RFC 4861): learn from solicitations and
 * advertisements; answer a solicitation for one of the port's addresses
 * in place. The IPv6 header starts the mbuf data. */
static bool
nd_in(struct ctx *c, uint16_t port, struct rte_mbuf *m)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *), *icmp = ip + 40;
	const struct xg_dp_port *p = &c->dp->rt->port[port];
	size_t len = rte_pktmbuf_data_len(m);
	static const uint8_t unspec[16];
	const uint8_t *ll;
	struct rte_ether_hdr *eth;
	uint8_t target[16];

	if (len < 40 + 24 || ip[6] != IPPROTO_ICMPV6 || (icmp[0] != 135 && icmp[0] != 136) ||
	    icmp[1] != 0 || ip[7] != 255)
		return false;
	memcpy(target, icmp + 8, 16);
	if (icmp[0] == 136) {
		ll = nd_lladdr(icmp + 24, len - 64, 2);
		if (ll)
			learn(c, port, AF_INET6, target, ll);
		if (!punt(c, port, m, false))   /* may answer the kernel */
			drop(c, m, XG_STAT_NEIGH_SEEN);
		return true;
	}
	ll = nd_lladdr(icmp + 24, len - 64, 1);
	if (ll && memcmp(ip + 8, unspec, 16) != 0)
		learn(c, port, AF_INET6, ip + 8, ll);
	if (!xg_dp_is_local(c->dp->rt, AF_INET6, target)) {
		/* The kernel's own addresses (link-local) are its to answer. */
		if (!punt(c, port, m, false))
			drop(c, m, XG_STAT_NEIGH_SEEN);
		return true;
	}
	/* Advertisement: to the soliciting node (all nodes if it had no
	 * address yet), from the target, with our link-layer address: 32
	 * bytes of ICMPv6, 8 more than a solicitation without options (a
	 * unicast NUD probe) brings. */
	if (len > 40 + 32)
		rte_pktmbuf_trim(m, (uint16_t)(len - 40 - 32));
	else if (len < 40 + 32 && rte_pktmbuf_append(m, (uint16_t)(40 + 32 - len)) == NULL) {
		drop(c, m, XG_STAT_MBUF_ALLOC);
		return true;
	}
	if (memcmp(ip + 8, unspec, 16) == 0) {
		static const uint8_t all_nodes[16] = { 0xff, 0x02, [15] = 1 };

		memcpy(ip + 24, all_nodes, 16);
	} else {
		memcpy(ip + 24, ip + 8, 16);
	}
	memcpy(ip + 8, target, 16);
	ip[4] = 0, ip[5] = 32;
	memset(icmp, 0, 32);
	icmp[0] = 136;
	icmp[4] = 0x60;   /* solicited, override */
	memcpy(icmp + 8, target, 16);
	icmp[24] = 2;     /* target link-layer address option */
	icmp[25] = 1;
	memcpy(icmp + 26, p->mac.addr_bytes, 6);
	icmp6_cksum(ip);
	/* The received Ethernet header is still in front of the data. */
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eth));
	if (ip[24] == 0xff) {
		static const struct rte_ether_addr all_nodes = { { 0x33, 0x33, 0, 0, 0, 1 } };

		eth->dst_addr = all_nodes;
	} else {
		eth->dst_addr = eth->src_addr;
	}
	eth->src_addr = p->mac;
	count(c, XG_STAT_ND_REPLIED);
	queue_tx(c, port, m);
	return true;
}

/* At most one request a second per next hop: a flood of packets to an
 * unresolved neighbour must not become a flood of requests. */
static bool
may_ask(struct ctx *c, const uint8_t *addr, size_t alen)
{
	uint64_t now = rte_get_timer_cycles();
	unsigned int h = (addr[alen - 1] ^ addr[alen - 2] * 31u) % SOLICIT_SLOTS;

	if (memcmp(c->asked[h].addr, addr, alen) == 0 && now - c->asked[h].tsc < rte_get_timer_hz())
		return false;
	memset(c->asked[h].addr, 0, sizeof(c->asked[h].addr));
	memcpy(c->asked[h].addr, addr, alen);
	c->asked[h].tsc = now;
	return true;
}

#define ARP_FRAME (sizeof(struct rte_ether_hdr) + sizeof(struct rte_arp_hdr))
#define NS_FRAME (14 + 40 + 32)

static void
arp_request(struct ctx *c, uint16_t port, const uint8_t *tip, uint8_t *frame)
{
	const struct xg_cfg_prefix *src = xg_dp_port_addr(c->dp->rt, port, AF_INET);
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)frame;
	struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);

	memset(eth, 0xff, sizeof(eth->dst_addr));
	eth->src_addr = c->dp->rt->port[port].mac;
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	memset(arp, 0, sizeof(*arp));
	arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
	arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	arp->arp_hlen = RTE_ETHER_ADDR_LEN;
	arp->arp_plen = 4;
	arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
	arp->arp_data.arp_sha = c->dp->rt->port[port].mac;
	arp->arp_data.arp_sip = src ? src->v4.s_addr : 0;
	memcpy(&arp->arp_data.arp_tip, tip, 4);
}

static void
nd_solicit(struct ctx *c, uint16_t port, const uint8_t *target, uint8_t *f)
{
	const struct xg_cfg_prefix *src = xg_dp_port_addr(c->dp->rt, port, AF_INET6);
	static const uint8_t snm[13] = { 0xff, 0x02, [11] = 1, [12] = 0xff };
	uint8_t *ip = f + 14;

	memset(f, 0, NS_FRAME);
	f[0] = 0x33, f[1] = 0x33, f[2] = 0xff;   /* solicited-node multicast */
	memcpy(f + 3, target + 13, 3);
	memcpy(f + 6, c->dp->rt->port[port].mac.addr_bytes, 6);
	f[12] = 0x86, f[13] = 0xdd;
	ip[0] = 0x60;
	ip[5] = 32;
	ip[6] = IPPROTO_ICMPV6;
	ip[7] = 255;
	if (src)
		memcpy(ip + 8, src->v6.s6_addr, 16);
	memcpy(ip + 24, snm, 13);
	memcpy(ip + 37, target + 13, 3);
	ip[40] = 135;
	memcpy(ip + 48, target, 16);
	ip[64] = 1;   /* source link-layer address option */
	ip[65] = 1;
	memcpy(ip + 66, c->dp->rt->port[port].mac.addr_bytes, 6);
	icmp6_cksum(ip);
}

/* Ask who has @p addr on @p port (ARP or neighbour solicitation). */
static void
solicit(struct ctx *c, uint16_t port, uint8_t family, const uint8_t *addr)
{
	struct rte_mbuf *m;
	uint8_t *frame;

	if (!may_ask(c, addr, family == AF_INET ? 4 : 16))
		return;
	m = rte_pktmbuf_alloc(xg_shared.pool);
	frame = m ? (uint8_t *)rte_pktmbuf_append(m, family == AF_INET ? ARP_FRAME : NS_FRAME) :
		    NULL;
	if (frame == NULL) {
		rte_pktmbuf_free(m);
		count(c, XG_STAT_MBUF_ALLOC);
		return;
	}
	if (family == AF_INET)
		arp_request(c, port, addr, frame);
	else
		nd_solicit(c, port, addr, frame);
	count(c, XG_STAT_NEIGH_SOLICITED);
	queue_tx(c, port, m);
}

/* The IP header against the frame, as ip_rcv_core() and ipv6_rcv() check
 * it: a header that lies about its lengths or has a bad checksum is
 * dropped; bytes after the packet (Ethernet padding) are cut off, so that
 * they are neither forwarded nor encrypted. */
static bool
ip_sane(struct rte_mbuf *m)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), ihl, tot;

	if ((ip[0] >> 4) == 4) {
		ihl = (ip[0] & 0xfu) * 4;
		tot = (uint32_t)(ip[2] << 8 | ip[3]);
		if (ihl < 20 || tot < ihl || tot > len || rte_raw_cksum(ip, ihl) != 0xffff)
			return false;
	} else {
		if (len < 40)
			return false;
		tot = 40 + (uint32_t)(ip[4] << 8 | ip[5]);
		if (tot > len)
			return false;
	}
	rte_pktmbuf_trim(m, (uint16_t)(len - tot));
	return true;
}

static uint8_t
family_of(const struct rte_mbuf *m)
{
	return (rte_pktmbuf_mtod(m, const uint8_t *)[0] >> 4) == 4 ? AF_INET : AF_INET6;
}

static const uint8_t *
dst_of(const struct rte_mbuf *m)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);

	return (ip[0] >> 4) == 4 ? ip + 16 : ip + 24;
}

static void local_out(struct ctx *c, struct rte_mbuf *m);

/* The ICMP error's packet, @p hl bytes of headers then the quote, from
 * @p me to @p to. */
static void
icmp_fill(uint8_t *ip, uint8_t family, uint32_t hl, uint32_t q, const uint8_t *me,
	  const uint8_t *to)
{
	uint8_t *icmp = ip + hl - 8;

	if (family == AF_INET) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->version_ihl = 0x45;
		h->type_of_service = 0xc0;   /* internetwork control, as icmp_send() */
		h->total_length = rte_cpu_to_be_16((uint16_t)(hl + q));
		h->time_to_live = 64;
		h->next_proto_id = IPPROTO_ICMP;
		memcpy(&h->src_addr, me, 4);
		memcpy(&h->dst_addr, to, 4);
		h->hdr_checksum = rte_ipv4_cksum(h);
		icmp[0] = 3;   /* destination unreachable, fragmentation needed */
		icmp[1] = 4;
		*(uint16_t *)(icmp + 2) = (uint16_t)~rte_raw_cksum(icmp, 8 + q);
		return;
	}
	ip[0] = 0x60;
	ip[4] = (uint8_t)((8 + q) >> 8);
	ip[5] = (uint8_t)(8 + q);
	ip[6] = IPPROTO_ICMPV6;
	ip[7] = 64;
	memcpy(ip + 8, me, 16);
	memcpy(ip + 24, to, 16);
	icmp[0] = 2;   /* packet too big */
	icmp6_cksum(ip);
}

/* Send the sender of @p orig an ICMP "fragmentation needed" (RFC 1191) or
 * ICMPv6 "packet too big" (RFC 8201) with @p mtu, from our address on the
 * port towards it, by the routes. The quote is the packet as it arrived
 * (before this hop's TTL), as much as fits in 576 / 1280 bytes. It goes
 * through the out policies like any packet of ours (icmp_send() with the
 * source the route picks): protected where a policy covers it.
 * @return false when there is nobody to tell. */
static bool
icmp_too_big(struct ctx *c, const struct rte_mbuf *orig, uint32_t mtu)
{
	const uint8_t *in = rte_pktmbuf_mtod(orig, const uint8_t *);
	uint8_t family = family_of(orig);
	const uint8_t *src = in + (family == AF_INET ? 12 : 8);
	uint32_t hl = family == AF_INET ? 20 + 8 : 40 + 8;
	uint32_t q = RTE_MIN(rte_pktmbuf_pkt_len(orig), (family == AF_INET ? 576 : 1280) - hl);
	const struct xg_cfg_prefix *me;
	const struct xg_dp_nh *nh;
	struct rte_mbuf *m;
	uint8_t *ip, *quote;

	if (xg_dp_is_local(c->dp->rt, family, src))
		return false;
	nh = xg_dp_route(c->dp->rt, family, src);
	me = nh ? xg_dp_port_addr(c->dp->rt, nh->port, family) : NULL;
	if (me == NULL)
		return false;
	m = rte_pktmbuf_alloc(xg_shared.pool);
	ip = m ? (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(hl + q)) : NULL;
	if (ip == NULL) {
		rte_pktmbuf_free(m);
		count(c, XG_STAT_MBUF_ALLOC);
		return false;
	}
	memset(ip, 0, hl);
	quote = ip + hl;
	memcpy(quote, in, q);
	if (family == AF_INET) {
		struct rte_ipv4_hdr *qh = (struct rte_ipv4_hdr *)quote;

		qh->time_to_live++;
		qh->hdr_checksum = 0;
		qh->hdr_checksum = rte_ipv4_cksum(qh);
		quote[-2] = (uint8_t)(mtu >> 8);
		quote[-1] = (uint8_t)mtu;
	} else {
		quote[7]++;
		quote[-4] = (uint8_t)(mtu >> 24);
		quote[-3] = (uint8_t)(mtu >> 16);
		quote[-2] = (uint8_t)(mtu >> 8);
		quote[-1] = (uint8_t)mtu;
	}
	icmp_fill(ip, family, hl, q, family == AF_INET ? (const uint8_t *)&me->v4 : me->v6.s6_addr,
		  src);
	local_out(c, m);
	return true;
}

/* Must the sender of @p m hear that it does not fit @p mtu (IPv4 DF set;
 * IPv6 above the MTU, never announced below 1280, RFC 8200 5)? Else it
 * goes on, in fragments if need be. */
static bool
sender_must_know(const struct rte_mbuf *m, uint32_t mtu)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);

	if ((ip[0] >> 4) == 4)
		return (ip[6] & 0x40) != 0;
	return rte_pktmbuf_pkt_len(m) > RTE_MAX(mtu, 1280u);
}

/* @p m does not fit a path of @p mtu and may not be fragmented: the sender
 * is told (ICMP), the packet dropped. */
static void
too_big(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf *m, uint32_t mtu)
{
	if ((rte_pktmbuf_mtod(m, const uint8_t *)[0] >> 4) == 6)
		mtu = RTE_MAX(mtu, 1280u);
	if (icmp_too_big(c, m, mtu))
		sa_drop(c, sa, m, XG_STAT_PMTU_ICMP);
	else
		sa_drop(c, sa, m, XG_STAT_OUT_TOO_BIG);
}

/* The Ethernet header for the resolved next hop (ctx.nh_*), then the tx
 * queue. */
static void
emit(struct ctx *c, struct rte_mbuf *m, uint8_t family)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eth));

	if (eth == NULL) {
		drop(c, m, XG_STAT_MBUF_ALLOC);
		return;
	}
	eth->dst_addr = c->nh_mac;
	eth->src_addr = c->dp->rt->port[c->nh_port].mac;
	eth->ether_type = rte_cpu_to_be_16(family == AF_INET ? RTE_ETHER_TYPE_IPV4 :
							       RTE_ETHER_TYPE_IPV6);
	queue_tx(c, c->nh_port, m);
}

#define MAX_FRAGS 16

/* Too big for the port and allowed to be fragmented (IPv4 without DF, or
 * IPv6 that we originate: our ESP): sent in fragments, as the kernel's
 * ip_fragment() / ip6_fragment() would. */
static void
send_fragments(struct ctx *c, struct rte_mbuf *m, uint8_t family, uint16_t mtu)
{
	struct rte_mbuf *f[MAX_FRAGS];
	int32_t n, i;

	n = family == AF_INET ?
	    rte_ipv4_fragment_packet(m, f, MAX_FRAGS, mtu, xg_shared.pool, xg_shared.pool) :
	    rte_ipv6_fragment_packet(m, f, MAX_FRAGS, mtu, xg_shared.pool, xg_shared.pool);
	/* The fragments hold references to the data they need. */
	if (n <= 0) {
		drop(c, m, XG_STAT_OUT_TOO_BIG);
		return;
	}
	rte_pktmbuf_free(m);
	count(c, XG_STAT_OUT_FRAGMENTED);
	for (i = 0; i < n; i++)
		emit(c, f[i], family);
}

/* Route the packet in @p m towards @p dst of @p family and send it in a
 * frame of that family. */
static void
send_to(struct ctx *c, struct rte_mbuf *m, uint8_t family, const uint8_t *dst)
{
	size_t alen = family == AF_INET ? 4 : 16;
	const struct xg_dp_nh *nh;
	const uint8_t *hop;
	uint16_t mtu;

	if (!c->nh_valid || c->nh_family != family ||
	    (family == AF_INET ? memcmp(c->nh_dst, dst, 4) : memcmp(c->nh_dst, dst, 16)) != 0) {
		nh = xg_dp_route(c->dp->rt, family, dst);
		if (nh == NULL || !c->dp->rt->port[nh->port].up) {
			drop(c, m, XG_STAT_NO_ROUTE);
			return;
		}
		hop = nh->has_gw ? (family == AF_INET ? (const uint8_t *)&nh->gw.v4 :
							nh->gw.v6.s6_addr) : dst;
		if (!xg_dp_neigh(c->dp->rt, family, hop, nh->port, &c->nh_mac)) {
			c->nh_valid = false;
			solicit(c, nh->port, family, hop);
			drop(c, m, XG_STAT_NO_NEIGHBOUR);
			return;
		}
		c->nh_valid = true;
		c->nh_family = family;
		memcpy(c->nh_dst, dst, alen);
		c->nh_port = nh->port;
	}
	mtu = c->dp->rt->port[c->nh_port].mtu;
	if (likely(rte_pktmbuf_pkt_len(m) <= mtu))
		emit(c, m, family);
	else if (family == AF_INET ? !sender_must_know(m, mtu) :
		 xg_dp_is_local(c->dp->rt, AF_INET6, rte_pktmbuf_mtod(m, uint8_t *) + 8))
		send_fragments(c, m, family, mtu);
	else
		too_big(c, NULL, m, mtu);
}

/* Route the IP packet in @p m by its destination and send it. */
static void
send_ip(struct ctx *c, struct rte_mbuf *m)
{
	send_to(c, m, family_of(m), dst_of(m));
}

/* Forwarding costs a hop: the kernel decrements before the XFRM lookup. */
static bool
hop(struct rte_mbuf *m)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *);

	if ((ip[0] >> 4) == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;
		uint32_t sum;

		if (h->time_to_live <= 1)
			return false;
		h->time_to_live--;
		/* RFC 1624 incremental update for TTL - 1. */
		sum = (uint32_t)rte_be_to_cpu_16(h->hdr_checksum) + 0x100;
		h->hdr_checksum = rte_cpu_to_be_16((uint16_t)(sum + (sum >> 16)));
		return true;
	}
	if (ip[7] <= 1)
		return false;
	ip[7]--;
	return true;
}

static bool
key_of(const struct rte_mbuf *m, struct xg_spd_key4 *k4, struct xg_spd_key6 *k6,
       const void **key)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);
	size_t len = rte_pktmbuf_data_len(m);

	if ((ip[0] >> 4) == 4) {
		*key = k4;
		return xg_spd_key_v4(ip, len, k4);
	}
	*key = k6;
	return xg_spd_key_v6(ip, len, k6);
}

/* The policy's curlft.use_time: one store per policy and second at most. */
static inline void
pol_used(struct xg_pol_rt *p)
{
	uint64_t now = __atomic_load_n(&xg_shared.now, __ATOMIC_RELAXED);

	if (__atomic_load_n(&p->use_time, __ATOMIC_RELAXED) != now)
		__atomic_store_n(&p->use_time, now, __ATOMIC_RELAXED);
}

/* xfrm_policy_ok(), one template: did this SA do what the policy asks? */
static bool
tmpl_ok(const struct xfrm_user_tmpl *t, const struct xg_sa_rt *sa)
{
	if (t->id.proto != IPPROTO_ESP || t->mode != sa->mode || (t->reqid && t->reqid != sa->reqid))
		return false;
	if (t->mode != XFRM_MODE_TUNNEL)
		return true;
	return memcmp(&t->id.daddr, sa->daddr, sa->family == AF_INET ? 4 : 16) == 0;
}

/* The inner packet must be one the SA was negotiated for (RFC 4301 5.2). */
static bool
sel_ok(const struct xg_sa_rt *sa, uint8_t family, const void *key)
{
	return sa->sel_any || xg_spd_rule_match(&sa->sel, family, key);
}

/* Hard byte/packet lifetime reached: the SA carries nothing more (the
 * control thread sends the hard EXPIRE and deletes it within a second). */
static inline bool
sa_spent(const struct xg_sa_rt *sa)
{
	return __atomic_load_n(&sa->packets, __ATOMIC_RELAXED) >= sa->hard_packets ||
	       __atomic_load_n(&sa->bytes, __ATOMIC_RELAXED) >= sa->hard_bytes;
}

/* @p n packets of @p bytes in all on @p sa. The kernel counts, outbound,
 * the packet with the headers ESP adds before the trailer
 * (props.header_len) and, inbound, the ESP packet from the ESP header on. */
static void
sa_used(struct ctx *c, struct xg_sa_rt *sa, uint32_t n, uint64_t bytes)
{
	uint64_t me = 1ull << (c->w->tid & 63);

	if (unlikely(!(__atomic_load_n(&sa->workers, __ATOMIC_RELAXED) & me)))
		__atomic_fetch_or(&sa->workers, me, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sa->packets, n, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sa->bytes, bytes, __ATOMIC_RELAXED);
}

static void
drop_all(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf **mb, uint16_t n, enum xg_stat why)
{
	uint16_t i;

	for (i = 0; i < n; i++)
		sa_drop(c, sa, mb[i], why);
}

/* The bytes (@p len, by position in @p orig) of the packets an ESP burst
 * call let through: the first @p good of @p mb, in their original order. */
static uint64_t
good_bytes(struct rte_mbuf *const *orig, const uint32_t *len, uint16_t n,
	   struct rte_mbuf *const *mb, uint16_t good)
{
	uint64_t bytes = 0;
	uint16_t i, j;

	for (i = 0, j = 0; i < n && j < good; i++)
		if (orig[i] == mb[j]) {
			bytes += len[i];
			j++;
		}
	return bytes;
}

/* Inline protocol: the port encrypts, adds ESP (and the tunnel header)
 * and numbers the packets. The frame goes out in the outer family, routed
 * by the outer destination; the routes are static, so that is the port
 * the session was made on. */
static void
offload_out(struct ctx *c, struct rte_mbuf *m, struct xg_sa_rt *sa)
{
	const struct xg_offload_sess *o = &sa->off;
	bool tunnel = sa->mode == XFRM_MODE_TUNNEL;

	if (o->need_mdata && rte_security_set_pkt_metadata(o->ctx, o->sess, m, NULL)) {
		sa_drop(c, sa, m, XG_STAT_OUT_STATE_PROTO_ERROR);
		return;
	}
	m->ol_flags |= RTE_MBUF_F_TX_SEC_OFFLOAD;
	m->l2_len = RTE_ETHER_HDR_LEN;
	sa_used(c, sa, 1, rte_pktmbuf_pkt_len(m) + sa->hdr_len);
	count(c, XG_STAT_OUT_ENCRYPTED);
	send_to(c, m, tunnel ? (uint8_t)sa->family : family_of(m), tunnel ? sa->daddr : dst_of(m));
}

/* RFC 3948: a UDP header between the outer IP header and ESP, with the
 * SA's ports; checksum 0 over IPv4, a real one over IPv6 (Linux insists). */
static bool
udp_encap(struct rte_mbuf *m, const struct xg_sa_rt *sa)
{
	uint32_t ports = __atomic_load_n(&sa->encap_ports, __ATOMIC_RELAXED);
	uint8_t *ip = (uint8_t *)rte_pktmbuf_prepend(m, sizeof(struct rte_udp_hdr));
	unsigned int l3, len = rte_pktmbuf_pkt_len(m);
	struct rte_udp_hdr *u;

	if (ip == NULL)
		return false;
	l3 = (ip[8] >> 4) == 4 ? (ip[8] & 0xfu) * 4 : 40;
	memmove(ip, ip + 8, l3);
	u = (struct rte_udp_hdr *)(ip + l3);
	u->src_port = (uint16_t)(ports >> 16);
	u->dst_port = (uint16_t)ports;
	u->dgram_len = rte_cpu_to_be_16((uint16_t)(len - l3));
	u->dgram_cksum = 0;
	if ((ip[0] >> 4) == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->next_proto_id = IPPROTO_UDP;
		h->total_length = rte_cpu_to_be_16((uint16_t)len);
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		h->proto = IPPROTO_UDP;
		h->payload_len = rte_cpu_to_be_16((uint16_t)(len - 40));
		u->dgram_cksum = rte_ipv6_udptcp_cksum(h, u);
	}
	return true;
}

/* Rate limit shared by the workers: true for the first caller in a second
 * (stamping @p stamp, TSC cycles), false for the rest, including a
 * worker that lost the race to stamp it just now. */
static bool
once_a_second(uint64_t *stamp)
{
	uint64_t now = rte_get_timer_cycles(), last = __atomic_load_n(stamp, __ATOMIC_RELAXED);

	if (last && now - last < rte_get_timer_hz())
		return false;
	return __atomic_compare_exchange_n(stamp, &last, now, false, __ATOMIC_RELAXED,
					   __ATOMIC_RELAXED);
}

/* No SA for an out policy's template: ask the control thread for an
 * ACQUIRE, at most once a second per policy (it keeps one negotiation per
 * template in progress, as the kernel's larval states do). */
static void
ask_for_sa(struct ctx *c, struct xg_pol_rt *p, uint8_t family, const void *key)
{
	struct xg_acq_req r;

	if (!once_a_second(&p->acq_tsc))
		return;
	memset(&r, 0, sizeof(r));
	r.index = p->index;
	r.family = family;
	r.tmpl_family = (uint8_t)p->tmpl.family;
	memcpy(r.tmpl_daddr, &p->tmpl.id.daddr, 16);
	if (family == AF_INET) {
		const struct xg_spd_key4 *k = key;

		r.proto = k->proto;
		r.sport = k->sport;
		r.dport = k->dport;
		memcpy(r.saddr, &k->saddr, 4);
		memcpy(r.daddr, &k->daddr, 4);
	} else {
		const struct xg_spd_key6 *k = key;

		r.proto = k->proto;
		r.sport = k->sport;
		r.dport = k->dport;
		memcpy(r.saddr, k->saddr, 16);
		memcpy(r.daddr, k->daddr, 16);
	}
	if (rte_ring_sp_enqueue_elem(c->w->acquire, &r, sizeof(r)))
		count(c, XG_STAT_ACQUIRE_ERROR);
}

/* The SAD key of ESP with SPI at @p esp for destination @p daddr. */
static void
sad_key(struct xg_sad_key *key, uint8_t family, const uint8_t *daddr, const uint8_t *esp)
{
	memset(key, 0, sizeof(*key));
	key->family = family;
	memcpy(key->daddr, daddr, family == AF_INET ? 4 : 16);
	memcpy(&key->spi, esp, 4);
}

/* A packet between the stages of a burst, with what the stages learnt. */
struct pkt {
	struct rte_mbuf *m;
	struct xg_sa_rt *sa;          /* inbound: the SA that decrypted it */
	struct xg_pol_rt *pol;        /* outbound: the policy that matched */
	uint8_t family;
	union {
		struct xg_spd_key4 k4;
		struct xg_spd_key6 k6;
	} key;
};

static inline const void *
key_ptr(const struct pkt *p)
{
	return &p->key;
}

/* Classify the packets v[sel[0..n)] of @p family in direction @p dir with
 * one ACL call, leaving the policy (or NULL) in pkt.pol. The stages pass
 * index lists, not packets: copying a struct pkt just written costs more
 * than the lookups. */
static void
classify_family(struct ctx *c, struct pkt *v, const uint8_t *sel, uint16_t n, uint8_t family,
		enum xg_spd_dir dir)
{
	const void *keys[BURST];
	uint32_t ids[BURST];
	uint8_t idx[BURST];
	uint16_t k = 0, i;

	for (i = 0; i < n; i++)
		if (v[sel[i]].family == family) {
			keys[k] = key_ptr(&v[sel[i]]);
			idx[k++] = sel[i];
		}
	if (k == 0)
		return;
	xg_spd_classify(c->dp->spd, family, dir, keys, ids, k);
	for (i = 0; i < k; i++)
		v[idx[i]].pol = ids[i] == XG_SPD_NO_MATCH ? NULL : &c->dp->pols[ids[i]];
}

static void
classify_burst(struct ctx *c, struct pkt *v, const uint8_t *sel, uint16_t n, enum xg_spd_dir dir)
{
	classify_family(c, v, sel, n, AF_INET, dir);
	classify_family(c, v, sel, n, AF_INET6, dir);
}

/* The largest packet @p sa carries within the MTU of the port its ESP
 * leaves by (esp4_get_mtu(): headers, ICV and the trailer aligned to the
 * cipher's block), or UINT16_MAX without a route (counted later). */
static uint32_t
sa_mtu(struct ctx *c, const struct xg_sa_rt *sa)
{
	const struct xg_dp_nh *nh = xg_dp_route(c->dp->rt, (uint8_t)sa->family, sa->daddr);
	uint32_t net = sa->mode == XFRM_MODE_TUNNEL ? 0 : (sa->family == AF_INET ? 20 : 40);
	uint32_t mtu, over = sa->hdr_len + sa->esp.icv_len + net;

	if (nh == NULL)
		return UINT16_MAX;
	mtu = c->dp->rt->port[nh->port].mtu;
	if (mtu < over + sa->esp.align + 2)
		return 0;
	return ((mtu - over) & ~(sa->esp.align - 1u)) + net - 2;
}

/* Encapsulate @p n packets on @p sa (one crypto call), count them as the
 * kernel does and send them. */
static void
protect_run(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf **mb, uint16_t n)
{
	struct rte_mbuf *orig[BURST];
	uint32_t plain[BURST], mtu;
	uint8_t why[BURST];
	uint16_t good, i;

	if (unlikely(sa_spent(sa))) {
		drop_all(c, sa, mb, n, XG_STAT_OUT_STATE_EXPIRED);
		return;
	}
	mtu = sa_mtu(c, sa);
	for (i = 0, good = 0; i < n; i++)
		if (unlikely(rte_pktmbuf_pkt_len(mb[i]) > mtu) && sender_must_know(mb[i], mtu))
			too_big(c, sa, mb[i], mtu);
		else
			mb[good++] = mb[i];
	n = good;
	if (sa->off.action == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL) {
		for (i = 0; i < n; i++)
			offload_out(c, mb[i], sa);
		return;
	}
	for (i = 0; i < n; i++) {
		orig[i] = mb[i];
		plain[i] = rte_pktmbuf_pkt_len(mb[i]) + sa->hdr_len;
	}
	good = xg_esp_outb(&sa->esp, mb, n, why);
	for (i = good; i < n; i++)
		sa_drop(c, sa, mb[i], why[i]);
	if (good == 0)
		return;
	sa_used(c, sa, good, good_bytes(orig, plain, n, mb, good));
	xg_stats_add(c->w->stats, XG_STAT_OUT_ENCRYPTED, good);
	for (i = 0; i < good; i++) {
		if (sa->encap && !udp_encap(mb[i], sa)) {
			drop(c, mb[i], XG_STAT_MBUF_ALLOC);
			continue;
		}
		send_ip(c, mb[i]);
	}
}

/* Outbound policy (RFC 4301 5.1) for what pkt.pol says: bypass, discard,
 * or keep for protection (@return true, pkt.sa set). */
static bool
outbound_one(struct ctx *c, struct pkt *p)
{
	struct xg_pol_rt *pol = p->pol;

	if (pol)
		pol_used(pol);
	if (pol == NULL && c->dp->default_block[XFRM_POLICY_OUT]) {
		drop(c, p->m, XG_STAT_OUT_DEFAULT_BLOCK);
		return false;
	}
	if (pol == NULL || (pol->action == XFRM_POLICY_ALLOW && pol->ntmpl == 0)) {
		send_ip(c, p->m);
		return false;
	}
	if (pol->action == XFRM_POLICY_BLOCK) {
		drop(c, p->m, XG_STAT_OUT_POL_BLOCK);
		return false;
	}
	if (pol->ntmpl > 1) {
		drop(c, p->m, XG_STAT_OUT_BUNDLE_GEN_ERROR);
		return false;
	}
	if (pol->sa == NULL) {
		/* "level use": protect if an SA exists, else send in the clear. */
		if (pol->tmpl.optional) {
			send_ip(c, p->m);
			return false;
		}
		ask_for_sa(c, pol, p->family, key_ptr(p));
		drop(c, p->m, XG_STAT_OUT_NO_STATES);
		return false;
	}
	p->sa = pol->sa;
	return true;
}

/* Runs of packets v[sel[..]] for one SA, in arrival order within each SA:
 * every run gets one call of @p fn. Bursts hold few distinct SAs, so the
 * quadratic scan is cheaper than sorting. */
static void
per_sa(struct ctx *c, struct pkt *v, const uint8_t *sel, uint16_t n,
       void (*fn)(struct ctx *, struct xg_sa_rt *, struct rte_mbuf **, uint16_t))
{
	struct rte_mbuf *run[BURST];
	uint16_t i, j, k;

	for (i = 0; i < n; i++) {
		struct xg_sa_rt *sa = v[sel[i]].sa;

		if (sa == NULL)
			continue;
		k = 0;
		for (j = i; j < n; j++)
			if (v[sel[j]].sa == sa) {
				run[k++] = v[sel[j]].m;
				v[sel[j]].sa = NULL;
			}
		fn(c, sa, run, k);
	}
}

/* The outbound SPD for the (forwarded) packets v[sel[..]] with their keys. */
static void
outbound_burst(struct ctx *c, struct pkt *v, uint8_t *sel, uint16_t n)
{
	uint16_t i, k = 0;

	classify_burst(c, v, sel, n, XG_SPD_OUT);
	for (i = 0; i < n; i++)
		if (v[sel[i]].pol)
			rte_prefetch0(v[sel[i]].pol);
	for (i = 0; i < n; i++)
		if (outbound_one(c, &v[sel[i]])) {
			xg_sa_rt_prefetch(v[sel[i]].sa);
			sel[k++] = sel[i];
		}
	per_sa(c, v, sel, k, protect_run);
}

/* A packet the gateway itself sends (an ICMP error): the out policies
 * decide, as for forwarded packets, without the forwarding checks. */
static void
local_out(struct ctx *c, struct rte_mbuf *m)
{
	struct pkt v[1];
	uint8_t sel[1] = { 0 };
	const void *key;

	memset(v, 0, sizeof(v));
	v[0].m = m;
	v[0].family = family_of(m);
	if (!key_of(m, &v[0].key.k4, &v[0].key.k6, &key)) {
		drop(c, m, XG_STAT_OUT_ERROR);
		return;
	}
	outbound_burst(c, v, sel, 1);
}

/* RFC 4301 5.2 / __xfrm_policy_check(): a forwarded packet must have come
 * the way the fwd policy (pkt.pol) asks, protected (pkt.sa) or not. */
static bool
fwd_ok(struct ctx *c, struct pkt *p)
{
	struct xg_sa_rt *via = p->sa;
	struct xg_pol_rt *pol = p->pol;

	if (pol)
		pol_used(pol);
	if (pol == NULL && c->dp->default_block[XFRM_POLICY_FWD]) {
		drop(c, p->m, XG_STAT_IN_NO_POLS);   /* SETDEFAULT fwd block */
		return false;
	}
	if (pol && pol->action == XFRM_POLICY_BLOCK) {
		drop(c, p->m, XG_STAT_IN_POL_BLOCK);
		return false;
	}
	/* Without a template to match, only transport-mode protection may
	 * pass (the kernel's secpath_has_nontransport()). */
	if (via && via->mode == XFRM_MODE_TUNNEL && (pol == NULL || pol->ntmpl == 0)) {
		sa_drop(c, via, p->m, pol ? XG_STAT_IN_TMPL_MISMATCH : XG_STAT_IN_NO_POLS);
		return false;
	}
	/* An optional ("level use") template may be skipped; a tunnel-mode
	 * SA must still be the one the template names. */
	if (pol && pol->ntmpl && !(via ? tmpl_ok(&pol->tmpl, via) ||
					 (pol->tmpl.optional && via->mode != XFRM_MODE_TUNNEL) :
					 pol->tmpl.optional)) {
		sa_drop(c, via, p->m, XG_STAT_IN_TMPL_MISMATCH);
		return false;
	}
	if (!hop(p->m)) {
		drop(c, p->m, XG_STAT_TTL_EXCEEDED);
		return false;
	}
	return true;
}

/* Forwarding for a burst of IP packets (pkt.sa: the inbound SA that
 * decrypted each, or NULL): keys, selector and fwd policy checks, then
 * the outbound SPD. */
static void
forward_burst(struct ctx *c, struct pkt *v, uint16_t n)
{
	uint8_t sel[BURST];
	uint16_t i, k = 0;

	for (i = 0; i < n; i++) {
		struct pkt *p = &v[i];
		const void *key;

		/* A decrypted packet is checked as a received one is (the
		 * kernel's decapsulated packet goes through ip_rcv() again). */
		if (p->sa && !ip_sane(p->m)) {
			drop(c, p->m, XG_STAT_RX_BAD_IP);
			continue;
		}
		p->family = family_of(p->m);
		if (!key_of(p->m, &p->key.k4, &p->key.k6, &key)) {
			drop(c, p->m, XG_STAT_RX_BAD_IP);
			continue;
		}
		if (p->sa && !sel_ok(p->sa, p->family, key)) {
			sa_drop(c, p->sa, p->m, XG_STAT_IN_STATE_MISMATCH);
			continue;
		}
		sel[k++] = (uint8_t)i;
	}
	if (k == 0)
		return;
	classify_burst(c, v, sel, k, XG_SPD_FWD);
	for (i = 0, n = 0; i < k; i++)
		if (fwd_ok(c, &v[sel[i]])) {
			v[sel[i]].sa = NULL;
			sel[n++] = sel[i];
		}
	outbound_burst(c, v, sel, n);
}

/* The ESP packets of one inbound SA that a burst holds, decrypted with
 * one crypto call; what comes out joins @p out (pkt.sa set) for
 * forwarding. @return the number of genuine packets. */
static uint16_t
esp_in_run(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf **mb, uint16_t n, struct pkt *out,
	   uint16_t *nout)
{
	struct rte_mbuf *orig[BURST];
	uint32_t esp_bytes[BURST];
	uint8_t why[BURST];
	uint16_t good, i;

	if (unlikely(sa_spent(sa))) {
		drop_all(c, sa, mb, n, XG_STAT_IN_STATE_EXPIRED);
		return 0;
	}
	for (i = 0; i < n; i++) {
		const uint8_t *ip = rte_pktmbuf_mtod(mb[i], const uint8_t *);

		orig[i] = mb[i];
		esp_bytes[i] = rte_pktmbuf_pkt_len(mb[i]) -
			       ((ip[0] >> 4) == 4 ? (ip[0] & 0xfu) * 4 : 40);
	}
	/* xg_esp_inb() checks the rest of the header and the lengths. */
	good = xg_esp_inb(&sa->esp, mb, n, why);
	for (i = good; i < n; i++)
		sa_drop(c, sa, mb[i], why[i]);
	if (good == 0)
		return 0;
	sa_used(c, sa, good, good_bytes(orig, esp_bytes, n, mb, good));
	xg_stats_add(c->w->stats, XG_STAT_IN_DECRYPTED, good);
	for (i = 0; i < good; i++) {
		out[*nout].m = mb[i];
		out[(*nout)++].sa = sa;
	}
	return good;
}

/* The burst being received: ESP for our SAs (SAD key per packet) and IP
 * packets to forward, gathered by rx_burst() for their stages. */
struct rx_lists {
	struct pkt fwd[BURST];
	uint16_t nfwd;
	struct rte_mbuf *esp[BURST];
	struct xg_sad_key key[BURST];
	bool local[BURST];            /* ESP for one of our addresses */
	uint16_t nesp;
};

static void
esp_run_collect(struct ctx *c, struct xg_sa_rt *sa, struct rte_mbuf **mb, uint16_t n)
{
	struct rx_lists *l = c->rx;

	esp_in_run(c, sa, mb, n, l->fwd, &l->nfwd);
}

/* Look up every ESP packet's SA at once, then decrypt per SA. */
static void
esp_in_burst(struct ctx *c, struct rx_lists *l)
{
	const void *keys[BURST];
	void *data[BURST];
	struct pkt v[BURST];
	uint8_t sel[BURST];
	uint64_t hits = 0;
	uint16_t i, k = 0;

	if (l->nesp == 0)
		return;
	for (i = 0; i < l->nesp; i++)
		keys[i] = &l->key[i];
	rte_hash_lookup_bulk_data(c->dp->sad_in, keys, l->nesp, &hits, data);
	for (i = 0; i < l->nesp; i++)
		if (hits & (1ull << i))
			xg_sa_rt_prefetch(data[i]);
	for (i = 0; i < l->nesp; i++) {
		struct xg_sa_rt *sa = data[i];

		if (!(hits & (1ull << i))) {
			if (l->local[i]) {
				drop(c, l->esp[i], XG_STAT_IN_NO_STATES);
				continue;
			}
			/* Transit ESP: forwarded like any packet. */
			l->fwd[l->nfwd].m = l->esp[i];
			l->fwd[l->nfwd++].sa = NULL;
			continue;
		}
		if (unlikely(sa->encap)) {
			/* The SA was negotiated for ESP-in-UDP (xfrm_input()). */
			sa_drop(c, sa, l->esp[i], XG_STAT_IN_STATE_MISMATCH);
			continue;
		}
		v[k].m = l->esp[i];
		v[k].sa = sa;
		sel[k] = (uint8_t)k;
		k++;
	}
	c->rx = l;
	per_sa(c, v, sel, k, esp_run_collect);
}

/* Decrypt one packet of @p sa and forward it at once (NAT-T, which the
 * burst path leaves aside). @return whether it was genuine. */
static bool
esp_in_one(struct ctx *c, struct rte_mbuf *m, struct xg_sa_rt *sa)
{
	struct pkt out[1];
	uint16_t n = 0;

	if (esp_in_run(c, sa, &m, 1, out, &n) == 0)
		return false;
	forward_burst(c, out, n);
	return true;
}

/* IPv6 extension headers in front of ESP (hop-by-hop, destination
 * options, a routing header with no segments left) are the outer
 * header's and go with it: for ESP to one of our addresses they are
 * removed here (@p local), so that ESP follows the fixed header; transit
 * packets keep them. @return the ESP offset (40), with *proto the protocol after the chain and *frag set for
 * a fragment header; the packet is unchanged unless ESP follows. */
static unsigned int
v6_skip_ext(struct rte_mbuf *m, bool local, uint8_t *proto, bool *frag)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t len = rte_pktmbuf_data_len(m), off = 40;
	uint8_t nh = ip[6];
	int hops;

	*frag = false;
	for (hops = 0; hops < 16 && off + 8 <= len; hops++) {
		if (nh == IPPROTO_FRAGMENT) {
			*frag = true;
			nh = ip[off];
			break;
		}
		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS &&
		    !(nh == IPPROTO_ROUTING && ip[off + 3] == 0))
			break;
		nh = ip[off];
		off += ((uint32_t)ip[off + 1] + 1) * 8;
	}
	*proto = nh;
	if (off > len)
		return len;   /* the chain runs past the packet */
	if (nh != IPPROTO_ESP || *frag || off == 40 || !local)
		return 40;
	ip[6] = IPPROTO_ESP;
	memmove(ip + off - 40, ip, 40);
	ip = (uint8_t *)rte_pktmbuf_adj(m, (uint16_t)(off - 40));
	ip[4] = (uint8_t)((len - off) >> 8);
	ip[5] = (uint8_t)(len - off);
	return 40;
}

/* ESP for the gateway in fragments: reassembled first, as the kernel
 * does before xfrm_input(), in this lcore's table. An IPv6 fragment header
 * must follow the fixed header (rte_ip_frag's rule). @return the whole
 * packet in one segment, or NULL while fragments are missing (held) or
 * when it was dropped (counted). */
static struct rte_mbuf *
reassemble(struct ctx *c, struct rte_mbuf *m, uint8_t family)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *);
	uint32_t before = c->dr.cnt;

	if (c->frag == NULL) {
		drop(c, m, XG_STAT_FRAG_DROP);
		return NULL;
	}
	count(c, XG_STAT_IN_FRAGMENT);
	m->l2_len = 0;
	if (family == AF_INET) {
		m->l3_len = (ip[0] & 0xfu) * 4;
		m = rte_ipv4_frag_reassemble_packet(c->frag, &c->dr, m, rte_rdtsc(),
						    (struct rte_ipv4_hdr *)ip);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;
		struct rte_ipv6_fragment_ext *fh = rte_ipv6_frag_get_ipv6_fragment_header(h);

		if (fh == NULL) {
			drop(c, m, XG_STAT_FRAG_DROP);
			return NULL;
		}
		m->l3_len = sizeof(*h) + sizeof(*fh);
		m = rte_ipv6_frag_reassemble_packet(c->frag, &c->dr, m, rte_rdtsc(), h, fh);
	}
	xg_stats_add(c->w->stats, XG_STAT_FRAG_DROP, c->dr.cnt - before);
	if (m && rte_pktmbuf_linearize(m) != 0) {
		drop(c, m, XG_STAT_IN_BUFFER_ERROR);
		return NULL;
	}
	return m;
}

/* Is this ESP? Then the SAD decides (key filled in, *local set, @return
 * 1), or, too short, it is dropped here if it is for one of our addresses
 * (@return -1) and forwarded if not (@return 0, as anything not ESP).
 * Transit ESP of one of our SAs (transport mode to a host behind us) is
 * ours too, as in the kernel's xfrm_input(). */
static int
esp_candidate(struct ctx *c, struct rte_mbuf **mp, struct xg_sad_key *key, bool *local)
{
	struct rte_mbuf *m = *mp;
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);
	unsigned int l3;
	uint8_t family, proto;
	bool frag;

	if ((ip[0] >> 4) == 4) {
		proto = ip[9];
		l3 = (ip[0] & 0xfu) * 4;
		frag = (ip[6] & 0x3f) || ip[7];   /* MF or an offset */
		family = AF_INET;
	} else {
		l3 = v6_skip_ext(m, xg_dp_is_local(c->dp->rt, AF_INET6, ip + 24), &proto, &frag);
		ip = rte_pktmbuf_mtod(m, const uint8_t *);
		family = AF_INET6;
	}
	if (proto != IPPROTO_ESP)
		return 0;
	*local = xg_dp_is_local(c->dp->rt, family, dst_of(m));
	if (frag && *local) {
		m = reassemble(c, m, family);
		if (m == NULL)
			return -1;
		*mp = m;
		ip = rte_pktmbuf_mtod(m, const uint8_t *);
		l3 = family == AF_INET ? (ip[0] & 0xfu) * 4 : 40;
		frag = false;
	}
	if (frag || rte_pktmbuf_data_len(m) < l3 + 4) {
		if (!*local)
			return 0;
		drop(c, m, XG_STAT_IN_HDR_ERROR);
		return -1;
	}
	sad_key(key, family, dst_of(m), ip + l3);
	return 1;
}

/* The inbound SA of ESP with SPI at @p esp for destination @p daddr. */
static struct xg_sa_rt *
sad_lookup(struct ctx *c, uint8_t family, const uint8_t *daddr, const uint8_t *esp)
{
	struct xg_sad_key key;
	struct xg_sa_rt *sa;

	sad_key(&key, family, daddr, esp);
	return rte_hash_lookup_data(c->dp->sad_in, &key, (void **)&sa) < 0 ? NULL : sa;
}

/* A NAT-T peer's outer address or port changed: the key manager hears of
 * it (XFRM_MSG_MAPPING), once a second per SA at most. */
static void
report_mapping(struct ctx *c, struct xg_sa_rt *sa, uint8_t family, const uint8_t *saddr,
	       uint16_t sport)
{
	struct xg_map_req r;

	if (!once_a_second(&sa->map_tsc))
		return;
	memset(&r, 0, sizeof(r));
	r.uid = sa->uid;
	r.family = family;
	r.sport = sport;
	memcpy(r.saddr, saddr, family == AF_INET ? 4 : 16);
	if (rte_ring_sp_enqueue_elem(c->w->mapping, &r, sizeof(r)))
		count(c, XG_STAT_MAPPING_LOST);
}

static bool
udp_cksum_ok(const uint8_t *ip, uint8_t family)
{
	unsigned int l3 = family == AF_INET ? (ip[0] & 0xfu) * 4 : 40;
	const void *udp = ip + l3;

	if (family == AF_INET)
		return rte_ipv4_udptcp_cksum_verify((const struct rte_ipv4_hdr *)ip, udp) == 0;
	return ((const uint8_t *)udp)[6] | ((const uint8_t *)udp)[7] &&
	       rte_ipv6_udptcp_cksum_verify((const struct rte_ipv6_hdr *)ip, udp) == 0;
}

/* UDP to the NAT-T port of one of our addresses (RFC 3948): ESP-in-UDP is
 * ours and never the kernel's, keepalives (one 0xff byte) are consumed
 * here; IKE (the non-ESP marker, four zero bytes) is left to the
 * exception path.
 * @return true when the packet was taken. */
static bool
inbound_natt(struct ctx *c, struct rte_mbuf *m)
{
	uint8_t *ip = rte_pktmbuf_mtod(m, uint8_t *);
	size_t len = rte_pktmbuf_data_len(m);
	uint8_t family, osaddr[16];
	const uint8_t *daddr;
	struct xg_sa_rt *sa;
	unsigned int l3, ulen;
	uint16_t sport;
	uint8_t *udp;

	if ((ip[0] >> 4) == 4) {
		l3 = (ip[0] & 0xfu) * 4;
		if (ip[9] != IPPROTO_UDP || (ip[6] & 0x3f) || ip[7])
			return false;   /* fragments: not ESP-in-UDP we can take */
		family = AF_INET;
		daddr = ip + 16;
	} else {
		l3 = 40;
		if (ip[6] != IPPROTO_UDP)
			return false;
		family = AF_INET6;
		daddr = ip + 24;
	}
	if (len < l3 + 8 + 1)
		return false;
	udp = ip + l3;
	ulen = (unsigned int)(udp[4] << 8 | udp[5]);
	if (udp[2] != 0x11 || udp[3] != 0x94 || ulen != len - l3 ||
	    !xg_dp_is_local(c->dp->rt, family, daddr))
		return false;
	/* The checksum is checked before the encapsulation handler sees the
	 * datagram (udp_queue_rcv_one_skb()); IPv6 requires one. */
	if ((family == AF_INET6 || udp[6] | udp[7]) && !udp_cksum_ok(ip, family)) {
		drop(c, m, XG_STAT_UDP_CSUM);
		return true;
	}
	if (ulen == 8 + 1 && udp[8] == 0xff) {
		/* A NAT-T keepalive (RFC 3948 2.3) only keeps the mapping. */
		drop(c, m, XG_STAT_NATT_KEEPALIVE);
		return true;
	}
	/* ESP only with more than an ESP header after UDP and a non-zero SPI
	 * (xfrm4_udp_encap_rcv()); the rest is the socket's (IKE). */
	if (ulen <= 8 + 8 || (udp[8] | udp[9] | udp[10] | udp[11]) == 0)
		return false;
	sa = sad_lookup(c, family, daddr, udp + 8);
	if (sa == NULL) {
		drop(c, m, XG_STAT_IN_NO_STATES);
		return true;
	}
	if (!sa->encap) {
		sa_drop(c, sa, m, XG_STAT_IN_STATE_MISMATCH);
		return true;
	}
	memcpy(&sport, udp, 2);
	memcpy(osaddr, ip + (family == AF_INET ? 12 : 8), family == AF_INET ? 4 : 16);
	/* Out with the UDP header: the packet becomes plain ESP. */
	if (family == AF_INET) {
		ip[9] = IPPROTO_ESP;
		ip[2] = (uint8_t)((len - 8) >> 8);
		ip[3] = (uint8_t)(len - 8);
	} else {
		ip[6] = IPPROTO_ESP;
		ip[4] = (uint8_t)((len - 48) >> 8);
		ip[5] = (uint8_t)(len - 48);
	}
	memmove(ip + 8, ip, l3);
	rte_pktmbuf_adj(m, 8);
	/* A new outer source is reported once the packet proves genuine
	 * (esp_input_done2()). */
	if (esp_in_one(c, m, sa) &&
	    (sport != (uint16_t)(__atomic_load_n(&sa->encap_ports, __ATOMIC_RELAXED) >> 16) ||
	     memcmp(osaddr, sa->saddr, family == AF_INET ? 4 : 16) != 0))
		report_mapping(c, sa, family, osaddr, sport);
	return true;
}

/* Inline protocol, inbound: the port has checked, decrypted and stripped
 * ESP; the session's userdata (the SA's uid) says which SA did it. A uid
 * the tables no longer hold is an SA deleted while the packet was queued. */
static void
offload_in(struct ctx *c, struct rte_mbuf *m)
{
	struct xg_sa_rt *sa = NULL;
	struct pkt p;

	if (rte_security_dynfield_is_registered())
		sa = xg_dp_sa_by_uid(c->dp, *rte_security_dynfield(m));
	if (sa == NULL || !sa->inbound || sa->off.action == RTE_SECURITY_ACTION_TYPE_NONE) {
		drop(c, m, XG_STAT_IN_NO_STATES);
		return;
	}
	if (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED) {
		sa_drop(c, sa, m, XG_STAT_IN_STATE_PROTO_ERROR);
		return;
	}
	sa_used(c, sa, 1, rte_pktmbuf_pkt_len(m) + sa->hdr_len);
	count(c, XG_STAT_IN_DECRYPTED);
	p.m = m;
	p.sa = sa;
	forward_burst(c, &p, 1);
}

/* An IP packet (data at the IP header) that arrived on @p port: into the
 * burst's ESP or forwarding list, or handled here (NAT-T, offload, the
 * gateway's own traffic). */
static void
ip_in(struct ctx *c, uint16_t port, struct rte_mbuf *m, struct rx_lists *l)
{
	int esp;

	if (unlikely(m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD)) {
		offload_in(c, m);
		return;
	}
	esp = esp_candidate(c, &m, &l->key[l->nesp], &l->local[l->nesp]);
	if (esp) {
		if (esp > 0)
			l->esp[l->nesp++] = m;
		return;
	}
	if (inbound_natt(c, m))
		return;
	if (xg_dp_is_local(c->dp->rt, family_of(m), dst_of(m)) ||
	    (c->dp->rt->port[port].exc && family_of(m) == AF_INET6 && dst_of(m)[0] == 0xff)) {
		/* For the gateway itself and not ESP of a known SA (IKE, NAT-T
		 * keepalives, ICMP, ...), or IPv6 multicast with an exception
		 * path: the kernel's. */
		if (!punt(c, port, m, false))
			drop(c, m, XG_STAT_LOCAL_IN);
		return;
	}
	l->fwd[l->nfwd].m = m;
	l->fwd[l->nfwd++].sa = NULL;
}

/* Layer 2 of one received frame: ARP, neighbour discovery and the
 * exception path are handled here; IP goes on to ip_in(). */
static void
rx_one(struct ctx *c, uint16_t port, struct rte_mbuf *m, struct rx_lists *l)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint16_t type;

	/* What the kernel sends on an exception TAP leaves by its port as
	 * it is: IKE, echo replies, its own ARP/ND. */
	if (unlikely(c->dp->rt->port[port].exc_of)) {
		count(c, XG_STAT_EXCEPTION_OUT);
		queue_tx(c, (uint16_t)(c->dp->rt->port[port].exc_of - 1), m);
		return;
	}
	if (rte_pktmbuf_data_len(m) < sizeof(*eth) + 20 || !rte_pktmbuf_is_contiguous(m)) {
		drop(c, m, XG_STAT_RX_BAD_IP);
		return;
	}
	type = rte_be_to_cpu_16(eth->ether_type);
	if (unlikely(type == RTE_ETHER_TYPE_ARP)) {
		arp_in(c, port, m);
		return;
	}
	if (type != RTE_ETHER_TYPE_IPV4 && type != RTE_ETHER_TYPE_IPV6) {
		drop(c, m, XG_STAT_RX_NOT_IP);
		return;
	}
	rte_pktmbuf_adj(m, sizeof(*eth));
	if ((rte_pktmbuf_mtod(m, uint8_t *)[0] >> 4) != (type == RTE_ETHER_TYPE_IPV4 ? 4 : 6) ||
	    !ip_sane(m)) {
		drop(c, m, XG_STAT_RX_BAD_IP);
		return;
	}
	if (type == RTE_ETHER_TYPE_IPV6 && nd_in(c, port, m))
		return;
	ip_in(c, port, m, l);
}

/* One received burst through every stage: layer 2 and sorting, inbound
 * ESP per SA, then forwarding of the plain and the decrypted packets
 * together. */
static void
rx_burst(struct ctx *c, uint16_t port, struct rte_mbuf **mb, uint16_t n)
{
	struct rx_lists l;
	uint16_t i;

	l.nfwd = 0;
	l.nesp = 0;
	c->nh_valid = false;
	for (i = 0; i < n; i++)
		rte_prefetch0(rte_pktmbuf_mtod(mb[i], void *));
	for (i = 0; i < n; i++)
		rx_one(c, port, mb[i], &l);
	esp_in_burst(c, &l);
	forward_burst(c, l.fwd, l.nfwd);
	rte_ip_frag_free_death_row(&c->dr, 0);
}

/* A received burst of @p n (> 0) packets, start to finish. */
static void
rx_round(struct ctx *c, uint16_t port, struct rte_mbuf **mb, uint16_t n)
{
	xg_stats_add(c->w->stats, XG_STAT_RX_PACKETS, n);
	/* The newest tables for every burst; whatever the control thread
	 * publishes meanwhile, they stay valid until our next quiescent
	 * report. */
	c->dp = __atomic_load_n(&xg_shared.dp, __ATOMIC_ACQUIRE);
	rx_burst(c, port, mb, n);
	flush_tx(c);
}

/* Fragments wait up to 30 s (the kernel's ipfrag_time) for the rest of
 * their packet, w->frag_max packets at most (main.c sizes it to a share
 * of the mbuf pool: fragments that never complete must not starve the
 * ports). A full table drops new fragments (XgFragDrop); without a table
 * every fragment is dropped. */
static struct rte_ip_frag_tbl *
frag_table(const struct xg_worker *w)
{
	uint32_t max = w->frag_max ? w->frag_max : 512, buckets = 1;

	while (buckets * 4 < max)
		buckets <<= 1;
	return rte_ip_frag_table_create(buckets, 4, max, rte_get_tsc_hz() * 30, rte_socket_id());
}

void
xg_worker_rx_once(struct xg_worker *w, uint16_t port, struct rte_mbuf **mb, uint16_t n)
{
	struct ctx c;
	uint16_t k;

	memset(&c, 0, sizeof(c));
	c.w = w;
	/* As xg_worker_main()'s; fragments are held for this call only. */
	c.frag = frag_table(w);
	for (; n; n -= k, mb += k) {
		k = RTE_MIN(n, (uint16_t)BURST);
		rx_round(&c, port, mb, k);
	}
	if (c.frag)
		rte_ip_frag_table_destroy(c.frag);
}

RTE_LOG_REGISTER(xg_worker_logtype, xfrmgw.worker, INFO);

static void
log_start(const struct xg_worker *w, bool frag)
{
	char q[XG_CFG_MAX_RXQ * 12 + 1] = "";
	size_t off = 0;
	uint16_t i;

	for (i = 0; i < w->nrxq && off < sizeof(q); i++)
		off += (size_t)snprintf(q + off, sizeof(q) - off, " %u:%u", w->rxq[i].port,
					w->rxq[i].queue);
	rte_log(RTE_LOG_INFO, xg_worker_logtype, "worker %u: lcore %u polls port:queue%s%s\n",
		w->tid, w->lcore, q, frag ? "" : " (no reassembly table: ESP fragments dropped)");
}

int
xg_worker_main(void *arg)
{
	struct xg_worker *w = arg;
	struct rte_mbuf *mb[BURST];
	struct ctx c;
	uint64_t last, now;
	uint16_t q, n;
	bool busy;

	memset(&c, 0, sizeof(c));
	c.w = w;
	c.frag = frag_table(w);
	log_start(w, c.frag != NULL);
	rte_rcu_qsbr_thread_register(xg_shared.qsbr, w->tid);
	rte_rcu_qsbr_thread_online(xg_shared.qsbr, w->tid);
	last = rte_rdtsc();
	while (!xg_shared.stop) {
		busy = false;
		for (q = 0; q < w->nrxq; q++) {
			n = rte_eth_rx_burst(w->rxq[q].port, w->rxq[q].queue, mb, BURST);
			if (n == 0)
				continue;
			busy = true;
			rx_round(&c, w->rxq[q].port, mb, n);
		}
		rte_rcu_qsbr_quiescent(xg_shared.qsbr, w->tid);
		/* How long one round took: a stall (the longest round) would
		 * show here, whatever the control thread does meanwhile. */
		now = rte_rdtsc();
		if (unlikely(w->load.reset_seen != __atomic_load_n(&xg_shared.load_reset,
								   __ATOMIC_RELAXED))) {
			w->load.reset_seen = xg_shared.load_reset;
			w->load.max_round_cycles = 0;
		}
		xg_lcore_round(&w->load, now - last, busy);
		last = now;
	}
	if (c.frag)
		rte_ip_frag_table_destroy(c.frag);
	rte_rcu_qsbr_thread_offline(xg_shared.qsbr, w->tid);
	rte_rcu_qsbr_thread_unregister(xg_shared.qsbr, w->tid);
	xg_esp_thread_fini();
	return 0;
}
