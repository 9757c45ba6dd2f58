#include <catch2/catch.hpp>
#include <cstdlib>

#include "base/error.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "netns/route.h"

using kmesh::netns::Netns;
using kmesh::netns::RunIn;

TEST_CASE("the route to a peer names the interface it leaves by, as `ip route get` does") {
  Netns a = Netns::Create("ra");
  Netns b = Netns::Create("rb");
  RunIn(a.ref(), {"ip", "link", "add", "up0", "type", "veth", "peer", "name", "down0", "netns", b.name()});
  RunIn(a.ref(), {"ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1"});
  RunIn(a.ref(), {"ip", "addr", "add", "10.98.0.1/30", "dev", "up0"});
  RunIn(a.ref(), {"ip", "addr", "add", "10.97.0.1/24", "dev", "side0"});
  RunIn(a.ref(), {"ip", "link", "set", "up0", "up"});
  RunIn(a.ref(), {"ip", "link", "set", "side0", "up"});
  RunIn(a.ref(), {"ip", "link", "set", "side1", "up"});
  RunIn(a.ref(), {"ip", "route", "add", "10.244.2.0/24", "via", "10.98.0.2", "dev", "up0"});

  struct Row {
    const char* dst;
    const char* interface;
    const char* gateway;
  };
  for (const Row& row : {Row{"10.98.0.2", "up0", ""}, Row{"10.97.0.9", "side0", ""},
                         Row{"10.244.2.7", "up0", "10.98.0.2"}}) {
    INFO("destination " << row.dst);
    auto r = kmesh::netns::RouteTo(a.ref(), row.dst);
    CHECK(r.interface == row.interface);
    CHECK(r.gateway == row.gateway);
    // iproute2 agrees: "10.244.2.7 via 10.98.0.2 dev up0 src 10.98.0.1 ..."
    auto ip = RunIn(a.ref(), {"ip", "route", "get", row.dst});
    CHECK_THAT(ip.out, Catch::Contains("dev " + r.interface + " "));
    if (!r.source.empty()) CHECK_THAT(ip.out, Catch::Contains("src " + r.source));
  }
}

TEST_CASE("route and interface lookups fail with errors that name what is missing") {
  Netns a = Netns::Create("rerr");
  // Only loopback, and it is down: no route anywhere.
  CHECK_THROWS_WITH(kmesh::netns::RouteTo(a.ref(), "10.1.2.3"),
                    Catch::Contains("route to 10.1.2.3") && Catch::Contains(a.name()) &&
                        Catch::Contains("ENETUNREACH"));
  CHECK_THROWS_WITH(kmesh::netns::RouteTo(a.ref(), "not-an-ip"), Catch::Contains("not an IPv4 or IPv6 address"));
  CHECK_THROWS_WITH(kmesh::netns::FindInterface(a.ref(), "eth9"),
                    Catch::Contains("interface eth9 not found") && Catch::Contains(a.name()) &&
                        Catch::Contains("it has: lo"));
  CHECK(kmesh::netns::FindInterface(a.ref(), "lo").index == 1);
}

TEST_CASE("a veth end is operationally up only once its peer is, and WaitOperUp waits for that, bounded") {
  Netns a = Netns::Create("oa");
  Netns b = Netns::Create("ob");
  RunIn(a.ref(), {"ip", "link", "add", "w0", "type", "veth", "peer", "name", "w1", "netns", b.name()});
  RunIn(a.ref(), {"ip", "link", "set", "w0", "up"});
  // Its peer is down: no carrier, so w0 cannot send (the state WaitOperUp must not take for up).
  setenv("KMESH_E2E_LINK_UP_MS", "200", 1);
  CHECK_THROWS_WITH(kmesh::netns::WaitOperUp(a.ref(), "w0"),
                    Catch::Contains("w0 in network namespace " + a.name()) &&
                        Catch::Contains("not operationally up within 200 ms") && Catch::Contains("it is "));
  unsetenv("KMESH_E2E_LINK_UP_MS");
  RunIn(b.ref(), {"ip", "link", "set", "w1", "up"});
  CHECK_NOTHROW(kmesh::netns::WaitOperUp(a.ref(), "w0"));
  CHECK_NOTHROW(kmesh::netns::WaitOperUp(b.ref(), "w1"));
  CHECK_THROWS_WITH(kmesh::netns::WaitOperUp(a.ref(), "w9"), Catch::Contains("w9") && Catch::Contains("ENODEV"));
}
