#include "net/ip.h"

#include <catch2/catch.hpp>
#include <vector>

#include "net/ipsec.h"

using kmesh::net::Cidr;
using kmesh::net::IpAddr;

namespace {
IpAddr Ip(const char* s) {
  auto ip = IpAddr::Parse(s);
  REQUIRE(ip.ok());
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
        CHECK_FALSE(c.ok());
        CHECK_THAT(c.error(), Catch::Contains(std::string("\"") + row.cidr + "\" is not a CIDR block"));
        continue;
      }
      REQUIRE(c.ok());
      CHECK(c->ToString() == row.canonical);
      for (const char* ip : row.inside) CHECK(c->Contains(Ip(ip)));
      for (const char* ip : row.outside) CHECK_FALSE(c->Contains(Ip(ip)));
    }
  }
}

TEST_CASE("addresses: literal only, canonical text, v4-mapped kept until unmapped") {
  CHECK(Ip("FD00:0:0::0001").ToString() == "fd00::1");
  CHECK_FALSE(Ip("::ffff:10.0.0.1").is_v4());
  CHECK(Ip("::ffff:10.0.0.1").v4_mapped());
  CHECK(Ip("::ffff:10.0.0.1").Unmapped() == Ip("10.0.0.1"));
  CHECK(Ip("::ffff:10.0.0.1").Unmapped().ToString() == "10.0.0.1");
  CHECK(Ip("fd00::1").Unmapped() == Ip("fd00::1"));
  CHECK(IpAddr::V4(0x0a000001) == Ip("10.0.0.1"));
  CHECK(Ip("fd00::1").ToUrlHost() == "[fd00::1]");
  CHECK(IpAddr().unspecified());
  CHECK(Ip("::").unspecified());
  CHECK_FALSE(Ip("10.0.0.1").unspecified());
  CHECK(Ip("10.1.2.3").Masked(16) == Ip("10.1.0.0"));
  for (const char* bad : {"10.0.0.1:80", "[::1]", " 10.0.0.1", "nope", ""}) {
    CAPTURE(bad);
    const auto p = IpAddr::Parse(bad);
    CHECK_FALSE(p.ok());
    CHECK(p.error() == std::string("\"") + bad + "\" is not an IPv4 or IPv6 address");
    CHECK_THROWS_WITH(*p, p.error());
  }
}

TEST_CASE("SPIs and marks print as iproute2 does") {
  CHECK(kmesh::net::Spi{2}.ToString() == "0x00000002");
  CHECK(kmesh::net::kDecryptedMark.ToString() == "0xd0/0xffffffff");
  CHECK(kmesh::net::kEncryptMark.ToString() == "0xe0/0xffffffff");
}
