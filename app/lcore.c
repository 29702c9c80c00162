/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker poll loop: rx_burst -> L2 -> inbound ESP (SAD, replay,
 * decrypt, policy check) -> forward policy check -> outbound policy (SPD)
 * -> ESP -> route -> neighbour -> tx_burst -> quiescent state.
 *
 * Packets go through one at a time in this first version (grouping a burst
 * by SA comes with the performance work); every drop is counted.
 */

#include <netinet/in.h>
#include <string.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ring_elem.h>
#include <rte_ip.h>
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

struct ctx {
	const struct xg_dp *dp;
	struct xg_worker *w;
	struct txbuf tx[XG_CFG_MAX_PORTS];
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
	 * address yet), from the target, with our link-layer address. */
	rte_pktmbuf_trim(m, (uint16_t)(len - 40 - 32));
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

/* Route the packet in @p m towards @p dst of @p family and send it in a
 * frame of that family. */
static void
send_to(struct ctx *c, struct rte_mbuf *m, uint8_t family, const uint8_t *dst)
{
	const struct xg_dp_nh *nh = xg_dp_route(c->dp->rt, family, dst);
	struct rte_ether_addr mac;
	struct rte_ether_hdr *eth;
	const uint8_t *hop;

	if (nh == NULL || !c->dp->rt->port[nh->port].up) {
		drop(c, m, XG_STAT_NO_ROUTE);
		return;
	}
	hop = nh->has_gw ? (family == AF_INET ? (const uint8_t *)&nh->gw.v4 : nh->gw.v6.s6_addr) :
			   dst;
	if (!xg_dp_neigh(c->dp->rt, family, hop, nh->port, &mac)) {
		solicit(c, nh->port, family, hop);
		drop(c, m, XG_STAT_NO_NEIGHBOUR);
		return;
	}
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, sizeof(*eth));
	if (eth == NULL) {
		drop(c, m, XG_STAT_MBUF_ALLOC);
		return;
	}
	eth->dst_addr = mac;
	eth->src_addr = c->dp->rt->port[nh->port].mac;
	eth->ether_type = rte_cpu_to_be_16(family == AF_INET ? RTE_ETHER_TYPE_IPV4 :
							       RTE_ETHER_TYPE_IPV6);
	queue_tx(c, nh->port, m);
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

static struct xg_pol_rt *
lookup(struct ctx *c, uint8_t family, enum xg_spd_dir dir, const void *key)
{
	uint32_t id;

	xg_spd_classify(c->dp->spd, family, dir, &key, &id, 1);
	return id == XG_SPD_NO_MATCH ? NULL : &c->dp->pols[id];
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

/* One packet of @p bytes on @p sa. The kernel counts, outbound, the
 * packet with the headers ESP adds before the trailer (props.header_len)
 * and, inbound, the ESP packet from the ESP header on. */
static void
sa_used(struct xg_sa_rt *sa, uint32_t bytes)
{
	__atomic_fetch_add(&sa->packets, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&sa->bytes, bytes, __ATOMIC_RELAXED);
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
		drop(c, m, XG_STAT_OUT_STATE_PROTO_ERROR);
		return;
	}
	m->ol_flags |= RTE_MBUF_F_TX_SEC_OFFLOAD;
	m->l2_len = RTE_ETHER_HDR_LEN;
	sa_used(sa, rte_pktmbuf_pkt_len(m) + sa->hdr_len);
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

/* Outbound policy (RFC 4301 5.1): bypass, discard or protect, then send. */
static void
outbound(struct ctx *c, struct rte_mbuf *m, uint8_t family, const void *key)
{
	struct xg_pol_rt *p = lookup(c, family, XG_SPD_OUT, key);
	uint32_t plain;
	uint8_t why;

	if (p)
		pol_used(p);
	if (p == NULL && c->dp->default_block[XFRM_POLICY_OUT]) {
		drop(c, m, XG_STAT_OUT_DEFAULT_BLOCK);
		return;
	}
	if (p == NULL || (p->action == XFRM_POLICY_ALLOW && p->ntmpl == 0)) {
		send_ip(c, m);
		return;
	}
	if (p->action == XFRM_POLICY_BLOCK) {
		drop(c, m, XG_STAT_OUT_POL_BLOCK);
		return;
	}
	if (p->ntmpl > 1) {
		drop(c, m, XG_STAT_OUT_BUNDLE_GEN_ERROR);
		return;
	}
	if (p->sa == NULL) {
		/* "level use": protect if an SA exists, else send in the clear. */
		if (p->tmpl.optional) {
			send_ip(c, m);
			return;
		}
		ask_for_sa(c, p, family, key);
		drop(c, m, XG_STAT_OUT_NO_STATES);
		return;
	}
	if (unlikely(sa_spent(p->sa))) {
		drop(c, m, XG_STAT_OUT_STATE_EXPIRED);
		return;
	}
	if (p->sa->off.action == RTE_SECURITY_ACTION_TYPE_INLINE_PROTOCOL) {
		offload_out(c, m, p->sa);
		return;
	}
	plain = rte_pktmbuf_pkt_len(m);
	if (xg_esp_outb(&p->sa->esp, &m, 1, &why) != 1) {
		drop(c, m, why);
		return;
	}
	if (p->sa->encap && !udp_encap(m, p->sa)) {
		drop(c, m, XG_STAT_MBUF_ALLOC);
		return;
	}
	sa_used(p->sa, plain + p->sa->hdr_len);
	count(c, XG_STAT_OUT_ENCRYPTED);
	send_ip(c, m);
}

/* After the forward policy check, every packet meets the outbound SPD. */
static void
forward(struct ctx *c, struct rte_mbuf *m, const struct xg_sa_rt *via)
{
	struct xg_spd_key4 k4;
	struct xg_spd_key6 k6;
	struct xg_pol_rt *p;
	const void *key;
	uint8_t family = family_of(m);

	if (!key_of(m, &k4, &k6, &key)) {
		drop(c, m, XG_STAT_RX_BAD_IP);
		return;
	}
	if (via && !sel_ok(via, family, key)) {
		drop(c, m, XG_STAT_IN_STATE_MISMATCH);
		return;
	}
	/* RFC 4301 5.2 / __xfrm_policy_check(): a forwarded packet must have
	 * come the way the fwd policy asks, protected or not. */
	p = lookup(c, family, XG_SPD_FWD, key);
	if (p)
		pol_used(p);
	if (p == NULL && c->dp->default_block[XFRM_POLICY_FWD]) {
		drop(c, m, XG_STAT_IN_NO_POLS);   /* SETDEFAULT fwd block */
		return;
	}
	if (p && p->action == XFRM_POLICY_BLOCK) {
		drop(c, m, XG_STAT_IN_POL_BLOCK);
		return;
	}
	/* Without a template to match, only transport-mode protection may
	 * pass (the kernel's secpath_has_nontransport()). */
	if (via && via->mode == XFRM_MODE_TUNNEL && (p == NULL || p->ntmpl == 0)) {
		drop(c, m, p ? XG_STAT_IN_TMPL_MISMATCH : XG_STAT_IN_NO_POLS);
		return;
	}
	/* An optional ("level use") template may be skipped; a tunnel-mode
	 * SA must still be the one the template names. */
	if (p && p->ntmpl && !(via ? tmpl_ok(&p->tmpl, via) ||
				     (p->tmpl.optional && via->mode != XFRM_MODE_TUNNEL) :
				     p->tmpl.optional)) {
		drop(c, m, XG_STAT_IN_TMPL_MISMATCH);
		return;
	}
	if (!hop(m)) {
		drop(c, m, XG_STAT_TTL_EXCEEDED);
		return;
	}
	outbound(c, m, family, key);
}

/* Decrypt @p m (bare IP + ESP) with @p sa and forward what comes out.
 * @return whether it was genuine. */
static bool
esp_in(struct ctx *c, struct rte_mbuf *m, struct xg_sa_rt *sa)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);
	uint32_t esp_bytes = rte_pktmbuf_pkt_len(m) - ((ip[0] >> 4) == 4 ? (ip[0] & 0xfu) * 4 : 40);
	uint8_t why;

	if (unlikely(sa_spent(sa))) {
		drop(c, m, XG_STAT_IN_STATE_EXPIRED);
		return false;
	}
	/* xg_esp_inb() checks the rest of the header and the lengths. */
	if (xg_esp_inb(&sa->esp, &m, 1, &why) != 1) {
		if (why == XG_STAT_IN_STATE_SEQ_ERROR)
			__atomic_fetch_add(&sa->replay_fail, 1, __ATOMIC_RELAXED);
		else if (why == XG_STAT_IN_STATE_PROTO_ERROR)
			__atomic_fetch_add(&sa->integrity_fail, 1, __ATOMIC_RELAXED);
		drop(c, m, why);
		return false;
	}
	sa_used(sa, esp_bytes);
	count(c, XG_STAT_IN_DECRYPTED);
	forward(c, m, sa);
	return true;
}

/* The inbound SA of ESP with SPI at @p esp for destination @p daddr. */
static struct xg_sa_rt *
sad_lookup(struct ctx *c, uint8_t family, const uint8_t *daddr, const uint8_t *esp)
{
	struct xg_sad_key key;
	struct xg_sa_rt *sa;

	memset(&key, 0, sizeof(key));
	key.family = family;
	memcpy(key.daddr, daddr, family == AF_INET ? 4 : 16);
	memcpy(&key.spi, esp, 4);
	return rte_hash_lookup_data(c->dp->sad_in, &key, (void **)&sa) < 0 ? NULL : sa;
}

/* ESP for one of our inbound SAs, or ESP that is ours to refuse. */
static bool
inbound_esp(struct ctx *c, struct rte_mbuf *m)
{
	const uint8_t *ip = rte_pktmbuf_mtod(m, const uint8_t *);
	size_t len = rte_pktmbuf_data_len(m);
	const uint8_t *daddr;
	struct xg_sa_rt *sa;
	unsigned int l3;
	uint8_t family;
	bool local;

	if ((ip[0] >> 4) == 4) {
		l3 = (ip[0] & 0xfu) * 4;
		if (ip[9] != IPPROTO_ESP)
			return false;
		family = AF_INET;
		daddr = ip + 16;
	} else {
		l3 = 40;
		if (ip[6] != IPPROTO_ESP)
			return false;
		family = AF_INET6;
		daddr = ip + 24;
	}
	local = xg_dp_is_local(c->dp->rt, family, daddr);
	if (len < l3 + 4) {
		if (!local)
			return false;
		drop(c, m, XG_STAT_IN_HDR_ERROR);
		return true;
	}
	sa = sad_lookup(c, family, daddr, ip + l3);
	if (sa == NULL) {
		if (!local)
			return false;   /* transit ESP: forwarded like any packet */
		drop(c, m, XG_STAT_IN_NO_STATES);
		return true;
	}
	if (unlikely(sa->encap)) {
		/* The SA was negotiated for ESP-in-UDP (xfrm_input()). */
		drop(c, m, XG_STAT_IN_STATE_MISMATCH);
		return true;
	}
	esp_in(c, m, sa);
	return true;
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

/* UDP to the NAT-T port of one of our addresses (RFC 3948): ESP-in-UDP is
 * ours and never the kernel's; keepalives (one 0xff byte) and IKE (the
 * non-ESP marker, four zero bytes) are left to the exception path.
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
	if (len < l3 + 8 + 8 + 1)
		return false;
	udp = ip + l3;
	ulen = (unsigned int)(udp[4] << 8 | udp[5]);
	/* ESP only with more than an ESP header after UDP and a non-zero SPI
	 * (xfrm4_udp_encap_rcv()); the rest is the socket's. */
	if (udp[2] != 0x11 || udp[3] != 0x94 || ulen != len - l3 || ulen <= 8 + 8 ||
	    (udp[8] | udp[9] | udp[10] | udp[11]) == 0 ||
	    !xg_dp_is_local(c->dp->rt, family, daddr))
		return false;
	sa = sad_lookup(c, family, daddr, udp + 8);
	if (sa == NULL) {
		drop(c, m, XG_STAT_IN_NO_STATES);
		return true;
	}
	if (!sa->encap) {
		drop(c, m, XG_STAT_IN_STATE_MISMATCH);
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
	if (esp_in(c, m, sa) &&
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

	if (rte_security_dynfield_is_registered())
		sa = xg_dp_sa_by_uid(c->dp, *rte_security_dynfield(m));
	if (sa == NULL || !sa->inbound || sa->off.action == RTE_SECURITY_ACTION_TYPE_NONE) {
		drop(c, m, XG_STAT_IN_NO_STATES);
		return;
	}
	if (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED) {
		__atomic_fetch_add(&sa->integrity_fail, 1, __ATOMIC_RELAXED);
		drop(c, m, XG_STAT_IN_STATE_PROTO_ERROR);
		return;
	}
	sa_used(sa, rte_pktmbuf_pkt_len(m) + sa->hdr_len);
	count(c, XG_STAT_IN_DECRYPTED);
	forward(c, m, sa);
}

static void
ip_in(struct ctx *c, uint16_t port, struct rte_mbuf *m)
{
	if (m->ol_flags & RTE_MBUF_F_RX_SEC_OFFLOAD) {
		offload_in(c, m);
		return;
	}
	if (inbound_esp(c, m) || inbound_natt(c, m))
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
	forward(c, m, NULL);
}

static void
rx_one(struct ctx *c, uint16_t port, struct rte_mbuf *m)
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
	if (type == RTE_ETHER_TYPE_ARP) {
		arp_in(c, port, m);
		return;
	}
	if (type != RTE_ETHER_TYPE_IPV4 && type != RTE_ETHER_TYPE_IPV6) {
		drop(c, m, XG_STAT_RX_NOT_IP);
		return;
	}
	rte_pktmbuf_adj(m, sizeof(*eth));
	if ((rte_pktmbuf_mtod(m, uint8_t *)[0] >> 4) != (type == RTE_ETHER_TYPE_IPV4 ? 4 : 6)) {
		drop(c, m, XG_STAT_RX_BAD_IP);
		return;
	}
	if (type == RTE_ETHER_TYPE_IPV6 && nd_in(c, port, m))
		return;
	ip_in(c, port, m);
}

int
xg_worker_main(void *arg)
{
	struct xg_worker *w = arg;
	struct rte_mbuf *mb[BURST];
	struct ctx c;
	uint16_t q, i, n;

	memset(&c, 0, sizeof(c));
	c.w = w;
	rte_rcu_qsbr_thread_register(xg_shared.qsbr, w->tid);
	rte_rcu_qsbr_thread_online(xg_shared.qsbr, w->tid);
	while (!xg_shared.stop) {
		for (q = 0; q < w->nrxq; q++) {
			n = rte_eth_rx_burst(w->rxq[q].port, w->rxq[q].queue, mb, BURST);
			if (n == 0)
				continue;
			xg_stats_add(w->stats, XG_STAT_RX_PACKETS, n);
			/* The newest tables for every burst; whatever the control
			 * thread publishes meanwhile, they stay valid until our
			 * next quiescent report. */
			c.dp = __atomic_load_n(&xg_shared.dp, __ATOMIC_ACQUIRE);
			for (i = 0; i < n; i++)
				rx_one(&c, w->rxq[q].port, mb[i]);
			flush_tx(&c);
		}
		rte_rcu_qsbr_quiescent(xg_shared.qsbr, w->tid);
	}
	rte_rcu_qsbr_thread_offline(xg_shared.qsbr, w->tid);
	rte_rcu_qsbr_thread_unregister(xg_shared.qsbr, w->tid);
	return 0;
}
