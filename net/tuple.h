// One end of a TCP connection (Endpoint) and one direction of a connection as Kmesh keys it (Tuple: src =
// client, dst = server pod), with the conversions at the edges: sockaddr in and out, Kmesh's 36-byte
// km_auth_res / km_tcargs key (struct bpf_sock_tuple) in and out, and text for people and command lines.
//
// Kmesh's key (kmesh-facts.md §1.3; Kmesh bpf/kmesh/workload/include/authz.h parser_tuple, sockops.c
// extract_skops_to_tuple_reverse): addresses in network order, IPv4 at bytes 0..3 and 4..7 with ports at
// 8..11 and bytes 12..35 zero, IPv6 at 0..15 and 16..31 with ports at 32..35. The port byte order changed
// between Kmesh versions:
//   PortOrder::kHost     current Kmesh (after commits 1c2ccfa2 and 3b352445, 2026-01-30): ports as
//                        bpf_ntohs() leaves them, little-endian on x86. The default.
//   PortOrder::kNetwork  Kmesh v1.2.0 and earlier: the raw TCP header bytes (big-endian).
// A key's family is told apart by bytes 12..35 being zero (a real IPv6 tuple never has both ports and 3/4
// of daddr zero).
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "bpf_probe/kmesh_abi.h"
#include "net/ip.h"

namespace kmesh::net {

struct Endpoint {
  IpAddr ip;
  uint16_t port = 0;

  // "10.244.1.5:8080" or "[fd00::1]:8080" (IPv6 must be bracketed).
  static Parsed<Endpoint> Parse(std::string_view text);
  // AF_INET / AF_INET6 only; anything else fails naming the family.
  static Parsed<Endpoint> FromSockaddr(const sockaddr* sa, socklen_t len);
  // Fills `out` (sockaddr_in or sockaddr_in6) and returns its length.
  socklen_t ToSockaddr(sockaddr_storage& out) const;
  std::string ToString() const { return ip.ToUrlHost() + ":" + std::to_string(port); }

  bool operator==(const Endpoint& o) const { return ip == o.ip && port == o.port; }
  bool operator!=(const Endpoint& o) const { return !(*this == o); }
  bool operator<(const Endpoint& o) const { return ip != o.ip ? ip < o.ip : port < o.port; }
};

struct Tuple {
  Endpoint src;  // the client
  Endpoint dst;  // the server (pod, or waypoint)

  Family family() const { return src.ip.family(); }
  // "10.244.1.5:40001 -> 10.244.2.7:8080", "[fd00::5]:40001 -> [fd00::7]:8080".
  std::string ToString() const { return src.ToString() + " -> " + dst.ToString(); }
  // ToString()'s form ("->" with or without spaces around it); both ends of one family.
  static Parsed<Tuple> Parse(std::string_view text);

  bool operator==(const Tuple& o) const { return src == o.src && dst == o.dst; }
  bool operator!=(const Tuple& o) const { return !(*this == o); }
  bool operator<(const Tuple& o) const { return src != o.src ? src < o.src : dst < o.dst; }
};

enum class PortOrder { kHost, kNetwork };
const char* ToString(PortOrder order);                    // "host" / "network"
Parsed<PortOrder> ParsePortOrder(std::string_view text);  // "host", "network" (or "net")

using TupleKey = std::array<uint8_t, KM_TUPLE_SIZE>;

// The 36-byte key Kmesh would store for `t`. Throws kmesh::Error when src and dst families differ.
TupleKey EncodeTupleKey(const Tuple& t, PortOrder order = PortOrder::kHost);
// Inverse of EncodeTupleKey; fails when `size` is not 36 (naming the size found).
Parsed<Tuple> DecodeTupleKey(const uint8_t* key, size_t size, PortOrder order = PortOrder::kHost);

}  // namespace kmesh::net
