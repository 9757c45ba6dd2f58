#include "netns/route.h"

#include <arpa/inet.h>
#include <cstring>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <chrono>
#include <thread>

#include "base/defaults.h"
#include "netns/netlink.h"

namespace kmesh::netns {
namespace {

std::string Where(const NetnsRef& ns) {
  return "network namespace " + (ns.name().empty() ? ns.path() : ns.name());
}

std::string AddrText(int family, const uint8_t* data, size_t len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if ((family == AF_INET && len >= 4) || (family == AF_INET6 && len >= 16)) {
    inet_ntop(family, data, buf, sizeof buf);
  }
  return buf;
}

}  // namespace

std::vector<Interface> ListInterfaces(const NetnsRef& ns) {
  NetlinkSocket sock = NetlinkSocket::Open(ns, NETLINK_ROUTE);
  NetlinkMessage msg(RTM_GETLINK, NLM_F_DUMP);
  msg.Put(ifinfomsg{});
  std::vector<Interface> out;
  sock.Request(
      msg,
      [&](const nlmsghdr* m) {
        if (m->nlmsg_type != RTM_NEWLINK) return;
        const auto* ifi = reinterpret_cast<const ifinfomsg*>(NLMSG_DATA(m));
        Interface i;
        i.index = ifi->ifi_index;
        i.up = (ifi->ifi_flags & IFF_UP) != 0;
        ForEachAttr(m, sizeof(ifinfomsg), [&](uint16_t type, const uint8_t* data, size_t len) {
          if (type == IFLA_IFNAME) i.name = AttrString(data, len);
        });
        out.push_back(i);
      },
      "list interfaces of " + Where(ns));
  return out;
}

Interface FindInterface(const NetnsRef& ns, const std::string& name) {
  std::vector<Interface> all = ListInterfaces(ns);
  std::string names;
  for (const auto& i : all) {
    if (i.name == name) return i;
    names += (names.empty() ? "" : ", ") + i.name;
  }
  throw Error("interface " + name + " not found in " + Where(ns) + " (it has: " + names +
              "; `ip -n " + (ns.name().empty() ? ns.path() : ns.name()) + " link` lists them)");
}

RouteInfo RouteTo(const NetnsRef& ns, const std::string& destination) {
  uint8_t addr[16];
  int family = AF_INET;
  if (inet_pton(AF_INET, destination.c_str(), addr) != 1) {
    family = AF_INET6;
    if (inet_pton(AF_INET6, destination.c_str(), addr) != 1) {
      throw Error("route lookup in " + Where(ns) + ": \"" + destination +
                  "\" is not an IPv4 or IPv6 address");
    }
  }
  NetlinkSocket sock = NetlinkSocket::Open(ns, NETLINK_ROUTE);
  NetlinkMessage msg(RTM_GETROUTE, 0);
  rtmsg rt{};
  rt.rtm_family = static_cast<unsigned char>(family);
  rt.rtm_dst_len = family == AF_INET ? 32 : 128;
  msg.Put(rt);
  msg.AddAttr(RTA_DST, addr, family == AF_INET ? 4 : 16);
  RouteInfo info;
  info.destination = destination;
  const std::string what = "route to " + destination + " in " + Where(ns);
  try {
    sock.Request(
        msg,
        [&](const nlmsghdr* m) {
          if (m->nlmsg_type != RTM_NEWROUTE) return;
          ForEachAttr(m, sizeof(rtmsg), [&](uint16_t type, const uint8_t* data, size_t len) {
            if (type == RTA_OIF && len >= 4) std::memcpy(&info.ifindex, data, 4);
            if (type == RTA_PREFSRC) info.source = AddrText(family, data, len);
            if (type == RTA_GATEWAY) info.gateway = AddrText(family, data, len);
          });
        },
        what);
  } catch (const NetlinkError& e) {
    throw Error(std::string(e.what()) + " (`ip -n " + (ns.name().empty() ? ns.path() : ns.name()) +
                " route` shows the routes)");
  }
  if (info.ifindex == 0) throw Error(what + ": the kernel answered without an output interface");
  for (const auto& i : ListInterfaces(ns)) {
    if (i.index == info.ifindex) info.interface = i.name;
  }
  if (info.interface.empty()) {
    throw Error(what + ": output interface index " + std::to_string(info.ifindex) + " has no name");
  }
  return info;
}

void WaitOperUp(const NetnsRef& ns, const std::string& ifname) {
  // IFLA_OPERSTATE's values, RFC 2863's operStatus (linux/if.h, which clashes with net/if.h here).
  static const char* const kStates[] = {"UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN",
                                        "TESTING", "DORMANT",    "UP"};
  constexpr int kOperUp = 6;
  const auto deadline = std::chrono::steady_clock::now() + defaults::LinkUp();
  NetlinkSocket sock = NetlinkSocket::Open(ns, NETLINK_ROUTE);
  while (true) {
    NetlinkMessage msg(RTM_GETLINK, 0);
    msg.Put(ifinfomsg{});
    msg.AddAttr(IFLA_IFNAME, ifname.c_str(), ifname.size() + 1);
    int state = -1;
    sock.Request(
        msg,
        [&](const nlmsghdr* m) {
          ForEachAttr(m, sizeof(ifinfomsg), [&](uint16_t type, const uint8_t* data, size_t len) {
            if (type == IFLA_OPERSTATE && len >= 1) state = data[0];
          });
        },
        "link state of " + ifname + " in " + Where(ns));
    if (state == kOperUp) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(ifname + " in " + Where(ns) + " is not operationally up within " +
                  std::to_string(defaults::LinkUp().count()) + " ms (KMESH_E2E_LINK_UP_MS): it is " +
                  (state >= 0 && state <= kOperUp ? kStates[state] : "without a state") + "; `ip -n " +
                  (ns.name().empty() ? ns.path() : ns.name()) + " link show " + ifname + "` shows it");
    }
    std::this_thread::sleep_for(defaults::PollInterval());
  }
}

}  // namespace kmesh::netns
