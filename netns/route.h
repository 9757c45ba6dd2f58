// Interfaces and routes of a namespace, read over rtnetlink: "which interface does the route to the peer
// use" (where an IPsec capture must listen: with IPsec, decrypted packets recirculate and look like
// plaintext on `any`), and interface lookups with errors that name the namespace.
#pragma once

#include <string>
#include <vector>

#include "netns/netns.h"

namespace kmesh::netns {

struct Interface {
  int index = 0;
  std::string name;
  bool up = false;
};

struct RouteInfo {
  std::string destination;  // the address asked about
  std::string interface;    // output interface name, e.g. "eth0"
  int ifindex = 0;
  std::string source;       // preferred source address, "" if the kernel gave none
  std::string gateway;      // next hop, "" when directly connected
};

// Every interface of the namespace.
std::vector<Interface> ListInterfaces(const NetnsRef& ns);

// The interface named `name` in `ns`; throws kmesh::Error naming both and listing what exists.
Interface FindInterface(const NetnsRef& ns, const std::string& name);

// Waits until `ifname` in `ns` is operationally up (IF_OPER_UP), bounded by defaults::LinkUp(); throws
// kmesh::Error naming the state it was left in. Why: a veth end set up while its peer is still down has no
// carrier, and its transmit queue keeps the noop qdisc, which drops every packet, until the kernel's
// link-watch worker sees the carrier come on (dev_activate). Under load that worker (a kworker needing
// RTNL) can run hundreds of milliseconds after both ends are up: seen in the lab, where a fresh pod's ARP
// for its gateway was answered into the node side's noop qdisc (kfree_skb reason QDISC_DROP in
// __dev_queue_xmit), so its first SYN waited for the ARP retry, 1 s later. Each check is an RTM_GETLINK
// for the device, which on Linux >= 6.8 first runs the device's pending link-watch event
// (rtnl_getlink -> linkwatch_sync_dev), so the wait there is one request.
void WaitOperUp(const NetnsRef& ns, const std::string& ifname);

// The route the kernel of `ns` would use to reach `destination` (an IPv4 or IPv6 address), like
// `ip -n NS route get DEST`. Throws kmesh::Error naming the namespace when there is no route.
RouteInfo RouteTo(const NetnsRef& ns, const std::string& destination);

}  // namespace kmesh::netns
