// Kernel tier: a plaintext TCP exchange across a veth pair captured on the interface the route uses,
// classified, saved as a .pcap that tcpdump reads back; bounds and bad input. Encrypted captures need ESP
// (xfrm_state_test, tag needs_esp); the verdict logic is also checked here on hand-made summaries.
#include <catch2/catch.hpp>

#include <linux/capability.h>
#include <sstream>

#include "capture/capture.h"
#include "e2e/framework/case_output.h"
#include "traffic/traffic.h"
#include "traffic/traffic_testing.h"
#include "netns/drop_caps.h"
#include "netns/process.h"
#include "netns/route.h"

using namespace std::chrono_literals;
using namespace kmesh::capture;
using kmesh::e2e::ProbeSpec;
using kmesh::e2e::testing::TupleOf;
using kmesh::e2e::testing::kClientIp;
using kmesh::e2e::testing::kServerIp;
using kmesh::e2e::testing::Pair;
using kmesh::e2e::testing::TestServer;

TEST_CASE("a plaintext exchange is captured on the route's interface, flagged, and saved for tcpdump") {
  Pair net;
  TestServer server(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  const auto route = kmesh::netns::RouteTo(net.client.ref(), kServerIp);
  REQUIRE(route.interface == "c0");

  const auto inner = TupleOf(kClientIp, 42001, kServerIp, 8080);
  CaptureSpec spec;
  spec.interface = route.interface;
  spec.filter = AssertFilter("172.31.0.1", "172.31.0.2", inner);  // no ESP here: only the plaintext part matches
  spec.save_dir = kmesh::e2e::CaseOutputDir();
  spec.label = "plaintext";
  spec.inner = inner;
  spec.marker = "kmesh-e2e-marker-7f3a";
  Capture cap = Capture::Start(net.client.ref(), spec);

  ProbeSpec probe;
  probe.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  probe.dst.port = 8080;
  probe.src_port = inner.src.port;
  probe.headers = {{"X-Marker", spec.marker}};
  const auto outcome = kmesh::e2e::Probe(net.client.ref(), probe);
  REQUIRE(outcome.Summary() == "ok(200)");
  // Traffic of another tuple is not the probe's.
  probe.src_port = 42002;
  probe.headers.clear();
  REQUIRE(kmesh::e2e::Probe(net.client.ref(), probe).Summary() == "ok(200)");

  const CaptureSummary s = cap.Finish();
  INFO(s.Describe());
  // SYN, SYN-ACK, ACK, request, response, FINs and ACKs, for the probe's tuple only.
  CHECK(s.plaintext.size() >= 6);
  CHECK(s.plaintext.size() <= s.packets);
  CHECK_THAT(s.plaintext.front().description, Catch::StartsWith("10.77.0.1:42001 -> 10.77.0.2:8080 TCP [S]"));
  CHECK(s.marker_hits.size() == 1);  // the request carries it once
  CHECK(s.esp_packets == 0);
  CHECK(s.first_time > 0);
  CHECK(s.last_time >= s.first_time);
  CHECK(s.link_type == "EN10MB");

  CHECK(JudgePlaintextVisible(s).pass);
  const Verdict encrypted = JudgeEncrypted(s, 2);
  CHECK_FALSE(encrypted.pass);
  CHECK_THAT(encrypted.Describe(), Catch::Contains("no ESP packet seen on c0") && Catch::Contains("no ESP with spi 0x00000002") &&
                                       Catch::Contains("plaintext packet of the probe on the wire: 10.77.0.1:42001") &&
                                       Catch::Contains("kmesh-e2e-marker-7f3a"));

  // tcpdump reads the saved file and sees the same packets.
  REQUIRE_FALSE(s.pcap_path.empty());
  auto dump = kmesh::netns::RunChecked({"tcpdump", "-nn", "-r", s.pcap_path});
  std::istringstream lines(dump.out);
  size_t n = 0;
  for (std::string l; std::getline(lines, l);) n += l.empty() ? 0 : 1;
  CHECK(n == s.packets);
  CHECK_THAT(dump.out, Catch::Contains("10.77.0.1.42001 > 10.77.0.2.8080: Flags [S]"));
}

TEST_CASE("a capture stops at its packet bound and at its time bound") {
  Pair net;
  TestServer server(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  CaptureSpec spec;
  spec.interface = "c0";
  spec.filter = "tcp port 8080";
  spec.max_packets = 3;
  Capture counted = Capture::Start(net.client.ref(), spec);
  ProbeSpec probe;
  probe.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  probe.dst.port = 8080;
  REQUIRE(kmesh::e2e::Probe(net.client.ref(), probe).Summary() == "ok(200)");
  const auto s = counted.Wait();
  CHECK(s.packets == 3);
  CHECK(s.hit_count_bound);

  spec.max_packets = 1000;
  spec.max_duration = 300ms;
  const auto start = std::chrono::steady_clock::now();
  const auto idle = Capture::Start(net.client.ref(), spec).Wait();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(idle.packets == 0);
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  CHECK_FALSE(JudgePlaintextVisible(idle).pass);
}

TEST_CASE("capture input errors name what is wrong") {
  Pair net;
  CaptureSpec spec;
  spec.interface = "c0";
  spec.filter = "tcp port nope and";
  CHECK_THROWS_WITH(Capture::Start(net.client.ref(), spec),
                    Catch::Contains("capture filter 'tcp port nope and' does not compile"));
  CHECK_THROWS_WITH(ValidateFilter("esp or (tcp port 80"), Catch::Contains("esp or (tcp port 80") && Catch::Contains("syntax error"));
  spec.filter = "tcp";
  spec.interface = "eth9";
  CHECK_THROWS_WITH(Capture::Start(net.client.ref(), spec),
                    Catch::Contains("interface eth9 not found in network namespace " + net.client.name()) && Catch::Contains("c0"));
  spec.interface = "c0";
  kmesh::netns::WithoutCapabilities({CAP_NET_RAW, CAP_NET_ADMIN}, [&] {
    CHECK_THROWS_WITH(Capture::Start(net.client.ref(), spec),
                      Catch::Contains("capture on c0 in network namespace " + net.client.name()) && Catch::Contains("CAP_NET_RAW"));
  });
}

TEST_CASE("verdicts over hand-made summaries") {
  CaptureSummary esp;
  esp.interface = "eth0";
  esp.packets = 10;
  esp.esp_packets = 10;
  esp.esp_spis = {{2, 10}};
  CHECK(JudgeEncrypted(esp, 2).pass);
  CHECK(JudgeEncrypted(esp).pass);
  CHECK_FALSE(JudgeEncrypted(esp, 1).pass);  // old SPI expected, new one on the wire
  esp.marker_hits.push_back({0, "payload marker \"m\" in clear at offset 80"});
  CHECK_FALSE(JudgeEncrypted(esp, 2).pass);
  CHECK(PlaintextFilter(TupleOf("10.244.1.5", 40000, "10.244.2.7", 8080)) == "tcp and host 10.244.1.5 and host 10.244.2.7 and port 8080");
  CHECK_NOTHROW(ValidateFilter(AssertFilter("172.18.0.2", "172.18.0.3", TupleOf("10.244.1.5", 40000, "10.244.2.7", 8080))));
}
