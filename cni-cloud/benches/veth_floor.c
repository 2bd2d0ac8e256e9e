/* The floor of a veth CNI ADD/DEL, for benches/plugin_vs_reference.rs: one exec of a
 * static binary that sends the one netlink request any veth plugin must send.
 *   veth_floor add <host-name> <peer-name> <peer-netns-path>  (RTM_NEWLINK veth, peer in netns)
 *   veth_floor del <host-name>                                 (RTM_DELLINK)
 * Exit 0 when the kernel acked. Built by the bench with `cc -O2 -static`. */
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct req {
    struct nlmsghdr h;
    struct ifinfomsg i;
    char buf[512];
};

static struct rtattr *put(struct nlmsghdr *h, unsigned short type, const void *data, int len) {
    struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->rta_type = type;
    a->rta_len = RTA_LENGTH(len);
    if (len) memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
    return a;
}

static void end(struct nlmsghdr *h, struct rtattr *a) {
    a->rta_len = (char *)h + h->nlmsg_len - (char *)a;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    struct req r;
    memset(&r, 0, sizeof r);
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    r.h.nlmsg_seq = 1;
    r.i.ifi_family = AF_UNSPEC;
    put(&r.h, IFLA_IFNAME, argv[2], strlen(argv[2]) + 1);
    if (strcmp(argv[1], "add") == 0) {
        if (argc < 5) return 2;
        int ns = open(argv[4], O_RDONLY | O_CLOEXEC);
        if (ns < 0) return 3;
        r.h.nlmsg_type = RTM_NEWLINK;
        r.h.nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
        struct rtattr *info = put(&r.h, IFLA_LINKINFO, 0, 0);
        put(&r.h, IFLA_INFO_KIND, "veth", 4);
        struct rtattr *data = put(&r.h, IFLA_INFO_DATA, 0, 0);
        struct rtattr *peer = put(&r.h, VETH_INFO_PEER, 0, 0);
        struct ifinfomsg pi = {.ifi_family = AF_UNSPEC};
        memcpy((char *)&r.h + r.h.nlmsg_len, &pi, sizeof pi);
        r.h.nlmsg_len += NLMSG_ALIGN(sizeof pi);
        put(&r.h, IFLA_IFNAME, argv[3], strlen(argv[3]) + 1);
        put(&r.h, IFLA_NET_NS_FD, &ns, sizeof ns);
        end(&r.h, peer);
        end(&r.h, data);
        end(&r.h, info);
    } else {
        r.h.nlmsg_type = RTM_DELLINK;
    }
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0 || send(s, &r, r.h.nlmsg_len, 0) < 0) return 4;
    char ack[1024];
    if (recv(s, ack, sizeof ack, 0) < (int)NLMSG_LENGTH(sizeof(struct nlmsgerr))) return 5;
    struct nlmsgerr *e = NLMSG_DATA((struct nlmsghdr *)ack);
    return e->error == 0 ? 0 : 1;
}
