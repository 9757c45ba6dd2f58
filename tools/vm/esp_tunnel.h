// The smallest proof that a kernel can do what the IPsec suites need: two fresh network namespaces joined
// by a veth, an ESP tunnel between them with rfc4106(gcm(aes)) states and policies (Kmesh's AEAD, key size
// and ICV), TCP through it both ways, and every state's packet counter read back over netlink. Used by
// tools/vm's tests to show the VM has ESP where the host does not, and by `esp_tunnel_check` by hand.
// No Catch2 here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xfrm/xfrm.h"

namespace kmesh::vm {

struct EspTunnelOptions {
  // false leaves the policies out: the TCP traffic then bypasses ESP, and the check must say so.
  bool install_policies = true;
  // TCP messages sent each way through the tunnel.
  int round_trips = 5;
};

// One SA as the kernel counted it after the traffic.
struct SaCount {
  std::string side;       // "left" or "right" namespace
  std::string netns;      // its name under /run/netns
  std::string direction;  // "out" (this side encrypts) or "in" (this side decrypts)
  xfrm::XfrmState state;  // as dumped over NETLINK_XFRM after the traffic
};

struct EspTunnelReport {
  std::string aead;  // "rfc4106(gcm(aes))"
  int round_trips = 0;
  uint64_t bytes_echoed = 0;  // payload the client got back, byte for byte what it sent
  std::vector<SaCount> sas;   // four: each side's out and in state
  // A few lines for people: each SA with its SPI, key fingerprint, packets and bytes.
  std::string ToText() const;
};

// Builds the tunnel, sends the traffic and checks that each of the four states counted at least
// `round_trips` packets and carries the key that was programmed (compared by fingerprint). Throws
// kmesh::Error saying what is missing (the kernel rejected the rfc4106 state: no ESP or GCM here) or what
// did not happen (a state counted nothing: the traffic bypassed ESP). Namespaces are removed on return.
EspTunnelReport RunEspTunnelCheck(const EspTunnelOptions& options = {});

}  // namespace kmesh::vm
