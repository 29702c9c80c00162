/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The example program of the classic XFRM programming tutorial, rewritten
 * with raw sockets: one bare XFRM_MSG_NEWPOLICY carrying only an
 * xfrm_userpolicy_info (family AF_INET, direction in, infinite byte and
 * packet limits), flags NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL, no ack
 * asked. Run it against the kernel or through libxfrmgw-preload.so; then
 * `ip xfrm policy list` shows the policy.
 */

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/xfrm.h>

int
main(void)
{
	struct {
		struct nlmsghdr n;
		struct xfrm_userpolicy_info xpinfo;
	} req;
	struct sockaddr_nl local = { .nl_family = AF_NETLINK };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int fd;

	fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_XFRM);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	if (bind(fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
		perror("bind");
		return 1;
	}
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(sizeof(req.xpinfo));
	req.n.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
	req.n.nlmsg_type = XFRM_MSG_NEWPOLICY;
	req.n.nlmsg_seq = 1;
	req.xpinfo.sel.family = AF_INET;
	req.xpinfo.dir = XFRM_POLICY_IN;
	req.xpinfo.lft.soft_byte_limit = XFRM_INF;
	req.xpinfo.lft.hard_byte_limit = XFRM_INF;
	req.xpinfo.lft.soft_packet_limit = XFRM_INF;
	req.xpinfo.lft.hard_packet_limit = XFRM_INF;
	if (sendto(fd, &req, req.n.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		perror("sendto");
		return 1;
	}
	close(fd);
	return 0;
}
