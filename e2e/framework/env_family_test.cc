// The address-family helpers of env.h: an app reached over a family, and KMESH_E2E_FAMILIES's form.
#include <catch2/catch.hpp>

#include "e2e/framework/env.h"

using kmesh::e2e::App;
using kmesh::e2e::OverFamily;
using kmesh::e2e::ParseFamilies;
using kmesh::net::Family;
using kmesh::net::IpAddr;

TEST_CASE("OverFamily: a dual-stack app's ip is its IPv6 address over IPv6, unchanged over IPv4") {
  App a;
  a.name = "httpbin";
  a.ip = *IpAddr::Parse("10.244.2.2");
  a.ip6 = *IpAddr::Parse("fd00:10:244:2::2");
  CHECK(OverFamily(a, Family::kIPv4).ip == a.ip);
  CHECK(OverFamily(a, Family::kIPv6).ip == a.ip6);
  CHECK(OverFamily(a, Family::kIPv6).name == "httpbin");

  App v4only = a;
  v4only.ip6.reset();
  CHECK_THROWS_WITH(OverFamily(v4only, Family::kIPv6), Catch::Contains("not dual stack"));

  App v6only = a;  // an IPv6 cluster: the pod's one address is IPv6
  v6only.ip = *a.ip6;
  v6only.ip6.reset();
  CHECK(OverFamily(v6only, Family::kIPv6).ip == *a.ip6);
  CHECK_THROWS_WITH(OverFamily(v6only, Family::kIPv4), Catch::Contains("no IPv4 address"));
}

TEST_CASE("ParseFamilies: ipv4, ipv6 or both, in the order given; anything else is named") {
  CHECK(ParseFamilies("ipv4") == std::vector<Family>{Family::kIPv4});
  CHECK(ParseFamilies("ipv6,ipv4") == std::vector<Family>{Family::kIPv6, Family::kIPv4});
  CHECK(ParseFamilies("ipv4,ipv4") == std::vector<Family>{Family::kIPv4});
  CHECK_THROWS_WITH(ParseFamilies("ipv4,v6"), Catch::Contains("\"v6\" is not ipv4 or ipv6"));
  CHECK_THROWS_WITH(ParseFamilies(""), Catch::Contains("is not ipv4 or ipv6"));
}
