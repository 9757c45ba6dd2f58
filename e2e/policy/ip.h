// Addresses and CIDR blocks as AuthorizationPolicy uses them (source.ipBlocks, when source.ip, ...):
// IPv4 or IPv6, a bare address meaning a single host. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
// folded to IPv4, as Kmesh's XDP program does, so either spelling of a client matches the same block.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace kmesh::policy {

class IpAddress {
 public:
  enum class Family { kV4, kV6 };
  // nullopt unless `text` is a literal IPv4 or IPv6 address (no brackets, no zone, no port).
  static std::optional<IpAddress> Parse(const std::string& text);
  static IpAddress V4(uint32_t host_order);

  Family family() const { return family_; }
  // Network order; 4 bytes used for IPv4.
  const std::array<uint8_t, 16>& bytes() const { return bytes_; }
  int bits() const { return family_ == Family::kV4 ? 32 : 128; }
  std::string ToString() const;
  // This address with every bit after the first `prefix_len` cleared.
  IpAddress Masked(int prefix_len) const;
  bool operator==(const IpAddress& o) const { return family_ == o.family_ && bytes_ == o.bytes_; }
  bool operator!=(const IpAddress& o) const { return !(*this == o); }

 private:
  Family family_ = Family::kV4;
  std::array<uint8_t, 16> bytes_{};
};

class Cidr {
 public:
  // "10.0.0.0/8", "10.1.2.3" (= /32), "fd00::/64". nullopt when it is not one; host bits set below the
  // prefix ("10.0.0.1/8") are accepted and masked, as Istio does.
  static std::optional<Cidr> Parse(const std::string& text);

  bool Contains(const IpAddress& ip) const;
  const IpAddress& address() const { return address_; }
  int prefix_len() const { return prefix_len_; }
  std::string ToString() const;  // canonical: masked address and prefix
  bool operator==(const Cidr& o) const { return address_ == o.address_ && prefix_len_ == o.prefix_len_; }

 private:
  IpAddress address_;
  int prefix_len_ = 0;
};

}  // namespace kmesh::policy
