// Kernel tier: the load generator keeps its rate with a new connection per request, and shows a
// continuity break (the server gone for half a second) as a run of failures at the right time.
#include <catch2/catch.hpp>

#include <fstream>
#include <optional>
#include <set>

#include "e2e/framework/case_output.h"
#include "traffic/load.h"
#include "traffic/traffic_testing.h"

using namespace std::chrono_literals;
using kmesh::e2e::LoadGenerator;
using kmesh::e2e::LoadSpec;
using kmesh::e2e::OutcomeKind;
using kmesh::e2e::testing::kServerIp;
using kmesh::e2e::testing::Pair;
using kmesh::e2e::testing::TestServer;

namespace {

LoadSpec Spec(double rps, std::chrono::milliseconds duration) {
  LoadSpec s;
  s.probe.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  s.probe.dst.port = 8080;
  s.probe.connect_timeout = 300ms;
  s.probe.response_timeout = 500ms;
  s.requests_per_second = rps;
  s.duration = duration;
  return s;
}

}  // namespace

TEST_CASE("N requests per second for T seconds, each on a new connection, all recorded") {
  Pair net;
  TestServer server(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  auto report = LoadGenerator::Start(net.client.ref(), Spec(40, 1000ms)).Wait();
  INFO(report.Describe());
  REQUIRE(report.records.size() == 40);
  CHECK(report.Count(OutcomeKind::kOk) == 40);
  CHECK(report.LongestFailureStreak() == 0);
  CHECK(report.MaxLag() < 200ms);
  CHECK(report.records.back().scheduled == 975ms);
  CHECK(report.elapsed >= 950ms);
  std::set<uint16_t> ports;
  for (const auto& r : report.records) ports.insert(r.outcome.tuple.src.port);
  CHECK(ports.size() == 40);  // a fresh source port each time
  const auto accepted = server.Accepted();
  REQUIRE(accepted.size() == 40);
  for (const auto& a : accepted) CHECK(ports.count(a.src.port) == 1);
}

TEST_CASE("a break in service shows as a run of failures at the time it happened") {
  Pair net;
  std::optional<TestServer> server;
  server.emplace(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  LoadGenerator load = LoadGenerator::Start(net.client.ref(), Spec(40, 1500ms));
  std::this_thread::sleep_for(500ms);
  server.reset();  // the listener is gone: refused
  std::this_thread::sleep_for(500ms);
  server.emplace(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  const auto report = load.Wait();
  std::ofstream(kmesh::e2e::CaseOutputDir() + "/load.json") << report.ToJson().dump(2) << "\n";
  INFO(report.Describe());
  REQUIRE(report.records.size() == 60);
  CHECK(report.Count(OutcomeKind::kRefused) >= 15);
  CHECK(report.Count(OutcomeKind::kRefused) <= 25);
  CHECK(report.Count(OutcomeKind::kRefused) + report.Count(OutcomeKind::kOk) == 60);
  CHECK(report.LongestFailureStreak() >= 15);
  for (const auto& r : report.records) {
    if (r.outcome.kind == OutcomeKind::kRefused) {
      CHECK(r.started >= 450ms);
      CHECK(r.started <= 1100ms);
    }
  }
  CHECK(report.FailureLines().size() == report.Failures());
}

TEST_CASE("bad load input is refused with the reason") {
  Pair net;
  auto spec = Spec(10, 1000ms);
  spec.probe.src_port = 40000;
  CHECK_THROWS_WITH(LoadGenerator::Start(net.client.ref(), spec), Catch::Contains("src_port must be 0"));
  spec = Spec(0, 1000ms);
  CHECK_THROWS_WITH(LoadGenerator::Start(net.client.ref(), spec), Catch::Contains("requests_per_second"));
}
