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

// The route the kernel of `ns` would use to reach `destination` (an IPv4 or IPv6 address), like
// `ip -n NS route get DEST`. Throws kmesh::Error naming the namespace when there is no route.
RouteInfo RouteTo(const NetnsRef& ns, const std::string& destination);

}  // namespace kmesh::netns
