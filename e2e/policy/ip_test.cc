#include "e2e/policy/ip.h"

#include <catch2/catch.hpp>

using kmesh::policy::Cidr;
using kmesh::policy::IpAddress;

namespace {
IpAddress Ip(const char* s) {
  auto ip = IpAddress::Parse(s);
  REQUIRE(ip.has_value());
  return *ip;
}
}  // namespace

TEST_CASE("CIDRs parse, canonicalise and contain what they should") {
  struct Row {
    const char* cidr;
    const char* canonical;  // nullptr: not a CIDR
    std::vector<const char*> inside, outside;
  };
  const std::vector<Row> rows = {
      {"10.244.1.5", "10.244.1.5/32", {"10.244.1.5", "::ffff:10.244.1.5"}, {"10.244.1.6", "::1"}},
      {"10.244.1.0/24", "10.244.1.0/24", {"10.244.1.0", "10.244.1.255"}, {"10.244.2.1"}},
      {"10.244.1.77/24", "10.244.1.0/24", {"10.244.1.1"}, {"10.244.0.255"}},
      {"10.0.0.0/9", "10.0.0.0/9", {"10.127.255.255"}, {"10.128.0.0"}},
      {"0.0.0.0/0", "0.0.0.0/0", {"1.2.3.4", "255.255.255.255"}, {"fd00::1"}},
      {"fd00::/64", "fd00::/64", {"fd00::1", "fd00::ffff:1"}, {"fd00:0:0:1::1", "10.0.0.1"}},
      {"::ffff:10.1.0.0/112", "10.1.0.0/16", {"10.1.200.3"}, {"10.2.0.1"}},
      {"10.244.1.300/32", nullptr, {}, {}},
      {"10.0.0.0/33", nullptr, {}, {}},
      {"10.0.0.0/", nullptr, {}, {}},
      {"10.0.0.0/-1", nullptr, {}, {}},
      {"fd00::/129", nullptr, {}, {}},
      {"example.com", nullptr, {}, {}},
      {"", nullptr, {}, {}},
  };
  for (const auto& row : rows) {
    SECTION(row.cidr) {
      auto c = Cidr::Parse(row.cidr);
      if (row.canonical == nullptr) {
        CHECK_FALSE(c.has_value());
        continue;
      }
      REQUIRE(c.has_value());
      CHECK(c->ToString() == row.canonical);
      for (const char* ip : row.inside) CHECK(c->Contains(Ip(ip)));
      for (const char* ip : row.outside) CHECK_FALSE(c->Contains(Ip(ip)));
    }
  }
}

TEST_CASE("v4-mapped IPv6 addresses fold to IPv4") {
  CHECK(Ip("::ffff:10.0.0.1") == Ip("10.0.0.1"));
  CHECK(Ip("::ffff:10.0.0.1").ToString() == "10.0.0.1");
  CHECK(IpAddress::V4(0x0a000001) == Ip("10.0.0.1"));
  CHECK_FALSE(IpAddress::Parse("10.0.0.1:80").has_value());
  CHECK_FALSE(IpAddress::Parse("[::1]").has_value());
}
