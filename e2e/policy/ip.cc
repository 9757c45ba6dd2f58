#include "e2e/policy/ip.h"

#include <arpa/inet.h>

#include <cstring>

namespace kmesh::policy {
namespace {

bool IsV4Mapped(const uint8_t* b) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(b, prefix, 12) == 0;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(const std::string& text) {
  IpAddress ip;
  if (inet_pton(AF_INET, text.c_str(), ip.bytes_.data()) == 1) {
    ip.family_ = Family::kV4;
    return ip;
  }
  uint8_t b[16];
  if (inet_pton(AF_INET6, text.c_str(), b) == 1) {
    if (IsV4Mapped(b)) {
      ip.family_ = Family::kV4;
      std::memcpy(ip.bytes_.data(), b + 12, 4);
    } else {
      ip.family_ = Family::kV6;
      std::memcpy(ip.bytes_.data(), b, 16);
    }
    return ip;
  }
  return std::nullopt;
}

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress ip;
  ip.family_ = Family::kV4;
  const uint32_t n = htonl(host_order);
  std::memcpy(ip.bytes_.data(), &n, 4);
  return ip;
}

IpAddress IpAddress::Masked(int prefix_len) const {
  IpAddress out = *this;
  for (int bit = prefix_len; bit < bits(); ++bit) {
    out.bytes_[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return out;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family_ == Family::kV4 ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

std::optional<Cidr> Cidr::Parse(const std::string& text) {
  const size_t slash = text.find('/');
  auto ip = IpAddress::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  // A v4-mapped IPv6 block is folded like its addresses, its prefix shortened by the 96 mapped bits.
  const bool folded = ip->family() == IpAddress::Family::kV4 && text.find(':') != std::string::npos;
  int len = ip->bits();
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    len = std::stoi(p);
    if (folded) {
      if (len < 96) return std::nullopt;  // would span beyond the mapped range
      len -= 96;
    }
    if (len > ip->bits()) return std::nullopt;
  }
  Cidr c;
  c.prefix_len_ = len;
  c.address_ = ip->Masked(len);
  return c;
}

bool Cidr::Contains(const IpAddress& ip) const {
  if (ip.family() != address_.family()) return false;
  const auto& a = address_.bytes();
  const auto& b = ip.bytes();
  int full = prefix_len_ / 8;
  if (std::memcmp(a.data(), b.data(), full) != 0) return false;
  int rest = prefix_len_ % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (a[full] & mask) == (b[full] & mask);
}

std::string Cidr::ToString() const { return address_.ToString() + "/" + std::to_string(prefix_len_); }

}  // namespace kmesh::policy
