// Kmesh's connection tuple (the key of km_auth_res and km_tcargs) and the verdict stored under it.
//
// A Tuple holds addresses as IpAddr (text in and out) and ports as plain numbers. Encoding it to the
// 36-byte key (struct km_tuple, Linux's struct bpf_sock_tuple) needs to know the port byte order, which
// changed between Kmesh versions (kmesh-facts.md §1.3):
//   PortOrder::kHost     current Kmesh (after commits 1c2ccfa2 and 3b352445, 2026-01-30): ports as
//                        bpf_ntohs() leaves them, little-endian on x86. The default.
//   PortOrder::kNetwork  Kmesh v1.2.0 and earlier: the raw TCP header bytes (big-endian).
// Addresses are always network order. IPv4 keys have bytes 12..35 zero; that is how a key's family is
// told apart when decoding (a real IPv6 tuple never has both ports and 3/4 of daddr zero).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bpf_probe/bytes.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::bpf_probe {

enum class PortOrder { kHost, kNetwork };

// "host" / "network".
const char* ToString(PortOrder order);
// Accepts "host" or "network"; throws kmesh::Error naming the accepted values otherwise.
PortOrder ParsePortOrder(std::string_view text);

enum class Family { kIPv4, kIPv6 };

// An IPv4 or IPv6 address, kept as network-order bytes.
class IpAddr {
 public:
  // "10.244.1.5" or "fd00::1" (brackets allowed: "[fd00::1]"). Throws kmesh::Error quoting the text.
  static IpAddr Parse(std::string_view text);
  static std::optional<IpAddr> TryParse(std::string_view text);
  static IpAddr V4(const uint8_t bytes[4]);
  static IpAddr V6(const uint8_t bytes[16]);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kIPv4; }
  // 4 bytes for IPv4, 16 for IPv6, network order.
  ByteView bytes() const { return ByteView(bytes_.data(), is_v4() ? 4 : 16); }
  // Canonical text: "10.244.1.5", "fd00::1".
  std::string ToString() const;

  bool operator==(const IpAddr& o) const { return family_ == o.family_ && bytes_ == o.bytes_; }
  bool operator!=(const IpAddr& o) const { return !(*this == o); }
  bool operator<(const IpAddr& o) const {
    return family_ != o.family_ ? family_ < o.family_ : bytes_ < o.bytes_;
  }

 private:
  Family family_ = Family::kIPv4;
  std::array<uint8_t, 16> bytes_{};
};

// One direction of a TCP connection as Kmesh keys it: src = client, dst = server pod.
struct Tuple {
  IpAddr src;
  uint16_t sport = 0;
  IpAddr dst;
  uint16_t dport = 0;

  Family family() const { return src.family(); }
  // "10.244.1.5:40001 -> 10.244.2.7:8080", "[fd00::5]:40001 -> [fd00::7]:8080".
  std::string ToString() const;
  // Parses ToString()'s form ("->" with or without spaces). Throws kmesh::Error naming the bad part.
  static Tuple Parse(std::string_view text);

  bool operator==(const Tuple& o) const {
    return src == o.src && sport == o.sport && dst == o.dst && dport == o.dport;
  }
  bool operator!=(const Tuple& o) const { return !(*this == o); }
  bool operator<(const Tuple& o) const;
};

using TupleKey = std::array<uint8_t, KM_TUPLE_SIZE>;

// The 36-byte key Kmesh would store for `t`. Throws kmesh::Error when src and dst families differ.
TupleKey EncodeTupleKey(const Tuple& t, PortOrder order = PortOrder::kHost);
// Inverse of EncodeTupleKey. Throws kmesh::Error when `key` is not 36 bytes (naming the size found).
Tuple DecodeTupleKey(ByteView key, PortOrder order = PortOrder::kHost);

// km_auth_res value. XDP drops on any non-zero value; Kmesh itself only writes 0 and 1, so other values
// are kept as they are and shown as UNKNOWN(n).
enum class Verdict : uint32_t { kAllow = KM_AUTH_ALLOW, kDeny = KM_AUTH_DENY };

// "ALLOW", "DENY", "UNKNOWN(7)".
std::string ToString(Verdict v);
// "allow" / "deny" (any case). Throws kmesh::Error naming the accepted values.
Verdict ParseVerdict(std::string_view text);
// True when xdp_authz drops a packet cached with this verdict (value != 0).
inline bool Drops(Verdict v) { return static_cast<uint32_t>(v) != 0; }

}  // namespace kmesh::bpf_probe
