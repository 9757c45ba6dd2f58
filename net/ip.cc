#include "net/ip.h"

#include <arpa/inet.h>

#include <cstring>

namespace kmesh::net {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

Parsed<IpAddr> IpAddr::Parse(std::string_view text) {
  const std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) return a;
  if (inet_pton(AF_INET6, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::kIPv6;
    return a;
  }
  return Parsed<IpAddr>::Failed("\"" + s + "\" is not an IPv4 or IPv6 address");
}

IpAddr IpAddr::V4(const uint8_t bytes[4]) {
  IpAddr a;
  std::memcpy(a.bytes_.data(), bytes, 4);
  return a;
}

IpAddr IpAddr::V4(uint32_t host_order) {
  const uint32_t n = htonl(host_order);
  return V4(reinterpret_cast<const uint8_t*>(&n));
}

IpAddr IpAddr::V6(const uint8_t bytes[16]) {
  IpAddr a;
  a.family_ = Family::kIPv6;
  std::memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

bool IpAddr::unspecified() const {
  for (size_t i = 0; i < size(); ++i) {
    if (bytes_[i] != 0) return false;
  }
  return true;
}

bool IpAddr::v4_mapped() const { return !is_v4() && std::memcmp(bytes_.data(), kMappedPrefix, 12) == 0; }

IpAddr IpAddr::Unmapped() const { return v4_mapped() ? V4(bytes_.data() + 12) : *this; }

IpAddr IpAddr::Masked(int prefix_len) const {
  IpAddr out = *this;
  for (int bit = prefix_len; bit < bits(); ++bit)
    out.bytes_[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  return out;
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

Parsed<Cidr> Cidr::Parse(std::string_view text) {
  const std::string s(text);
  auto fail = [&](const std::string& why) {
    return Parsed<Cidr>::Failed("\"" + s + "\" is not a CIDR block (ADDRESS or ADDRESS/PREFIX): " + why);
  };
  const size_t slash = s.find('/');
  const auto parsed = IpAddr::Parse(s.substr(0, slash));
  if (!parsed) return fail(parsed.error());
  const IpAddr ip = parsed->Unmapped();
  // A v4-mapped IPv6 block is folded like its addresses, its prefix shortened by the 96 mapped bits.
  const bool folded = parsed->v4_mapped();
  int len = ip.bits();
  if (slash != std::string::npos) {
    const std::string p = s.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) {
      return fail("the prefix \"" + p + "\" is not a number");
    }
    len = std::stoi(p);
    if (folded) {
      if (len < 96) return fail("an IPv4-mapped block needs a prefix of at least 96");
      len -= 96;
    }
    if (len > ip.bits()) return fail("the prefix is longer than " + std::to_string(ip.bits()) + " bits");
  }
  Cidr c;
  c.prefix_len_ = len;
  c.address_ = ip.Masked(len);
  return c;
}

bool Cidr::Contains(const IpAddr& addr) const {
  const IpAddr ip = addr.Unmapped();
  if (ip.family() != address_.family()) return false;
  const int full = prefix_len_ / 8;
  if (std::memcmp(address_.data(), ip.data(), full) != 0) return false;
  const int rest = prefix_len_ % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
  return (address_[full] & mask) == (ip[full] & mask);
}

std::string Cidr::ToString() const { return address_.ToString() + "/" + std::to_string(prefix_len_); }

}  // namespace kmesh::net
