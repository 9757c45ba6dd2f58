// Addresses and CIDR blocks: one type each, IPv4 and IPv6 alike, used by every package (the policy
// evaluator, the readers of Kmesh's maps, the probes, the tools).
//
// Parsing returns a Parsed<T>: the value, or the reason the text is not one. There is one parse per type;
// a caller that cannot go on without the value dereferences it (`*IpAddr::Parse(s)` throws kmesh::Error
// with the reason), a caller that can checks it first (`if (auto ip = IpAddr::Parse(s)) ...`).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace kmesh::net {

// A parse's value, or why the text was not one ("\"10.0.0.300\" is not an IPv4 or IPv6 address").
template <typename T>
class Parsed {
 public:
  Parsed(T value) : value_(std::move(value)) {}  // NOLINT: implicit, so a parser can `return value;`
  static Parsed Failed(std::string why) {
    Parsed p;
    p.error_ = std::move(why);
    return p;
  }

  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  // Empty when ok().
  const std::string& error() const { return error_; }
  // The value; throws kmesh::Error with error() when the parse failed.
  const T& value() const {
    if (!value_) throw Error(error_);
    return *value_;
  }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }

 private:
  Parsed() = default;
  std::optional<T> value_;
  std::string error_;
};

enum class Family { kIPv4, kIPv6 };

// An IPv4 or IPv6 address as network-order bytes. Default: 0.0.0.0 (unspecified()).
class IpAddr {
 public:
  IpAddr() = default;
  // A literal address, "10.244.1.5" or "fd00::1" (no brackets, port, zone or spaces). An IPv4-mapped
  // IPv6 address stays IPv6 (a packet carries it that way); Unmapped() folds it.
  static Parsed<IpAddr> Parse(std::string_view text);
  static IpAddr V4(const uint8_t bytes[4]);
  static IpAddr V4(uint32_t host_order);
  static IpAddr V6(const uint8_t bytes[16]);

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kIPv4; }
  int bits() const { return is_v4() ? 32 : 128; }
  // Network order: 4 bytes for IPv4, 16 for IPv6.
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return is_v4() ? 4 : 16; }
  uint8_t operator[](size_t i) const { return bytes_[i]; }
  std::vector<uint8_t> ToBytes() const { return std::vector<uint8_t>(data(), data() + size()); }
  bool unspecified() const;  // 0.0.0.0 or ::
  bool v4_mapped() const;    // ::ffff:a.b.c.d
  // ::ffff:a.b.c.d as a.b.c.d (Kmesh's XDP and Istio match such a client as IPv4); others unchanged.
  IpAddr Unmapped() const;
  // This address with every bit after the first `prefix_len` cleared.
  IpAddr Masked(int prefix_len) const;
  // Canonical text: "10.244.1.5", "fd00::1".
  std::string ToString() const;
  // In a URL or "host:port": IPv6 in brackets.
  std::string ToUrlHost() const { return is_v4() ? ToString() : "[" + ToString() + "]"; }

  bool operator==(const IpAddr& o) const { return family_ == o.family_ && bytes_ == o.bytes_; }
  bool operator!=(const IpAddr& o) const { return !(*this == o); }
  bool operator<(const IpAddr& o) const {
    return family_ != o.family_ ? family_ < o.family_ : bytes_ < o.bytes_;
  }

 private:
  Family family_ = Family::kIPv4;
  std::array<uint8_t, 16> bytes_{};
};

// A CIDR block as AuthorizationPolicy and Kmesh use it: a bare address is one host; host bits below the
// prefix are accepted and cleared (as Istio does); an IPv4-mapped IPv6 block is folded to IPv4 like its
// addresses ("::ffff:10.1.0.0/112" = 10.1.0.0/16).
class Cidr {
 public:
  static Parsed<Cidr> Parse(std::string_view text);

  // IPv4-mapped IPv6 addresses are matched as IPv4.
  bool Contains(const IpAddr& ip) const;
  const IpAddr& address() const { return address_; }
  int prefix_len() const { return prefix_len_; }
  std::string ToString() const;  // canonical: masked address and prefix
  bool operator==(const Cidr& o) const { return address_ == o.address_ && prefix_len_ == o.prefix_len_; }

 private:
  IpAddr address_;
  int prefix_len_ = 0;
};

}  // namespace kmesh::net
