// Kernel tier: every probe outcome produced for real between two namespaces, by both probe paths
// (in-process socket and curl), with the reported tuple checked against what the server accepted.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <atomic>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fstream>
#include <linux/if_link.h>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "base/error.h"
#include "base/runfiles.h"
#include "e2e/framework/case_output.h"
#include "traffic/traffic.h"
#include "traffic/traffic_testing.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "netns/route.h"

using namespace std::chrono_literals;
using kmesh::e2e::OutcomeKind;
using kmesh::e2e::ProbeOutcome;
using kmesh::e2e::ProbeSpec;
using kmesh::netns::Netns;
using kmesh::netns::NetnsRef;
using kmesh::netns::RunIn;
using kmesh::e2e::testing::kClientIp;
using kmesh::e2e::testing::kServerIp;
using kmesh::e2e::testing::Pair;
using kmesh::e2e::testing::SynDropper;
using kmesh::e2e::testing::TestServer;


TEST_CASE("every probe outcome is produced for real, the same by socket and by curl") {
  Pair net;
  TestServer ok(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  TestServer denied(net.server.ref(), 8403, TestServer::Behaviour::kHttp, 403);
  TestServer resetting(net.server.ref(), 8666, TestServer::Behaviour::kReset);
  TestServer silent(net.server.ref(), 8777, TestServer::Behaviour::kSilent);
  TestServer behind_xdp(net.server.ref(), 8998, TestServer::Behaviour::kHttp, 200);
  SynDropper xdp(net.server.ref(), "s0", 8998);

  struct Row {
    const char* what;
    uint16_t port;
    OutcomeKind kind;
    int status;
    TestServer* server;  // the one that should have accepted (nullptr: none)
  };
  const std::vector<Row> rows = {
      {"a listening server", 8080, OutcomeKind::kOk, 200, &ok},
      {"a server answering 403", 8403, OutcomeKind::kHttpError, 403, &denied},
      {"no listener", 8999, OutcomeKind::kRefused, 0, nullptr},
      {"an XDP program dropping the SYN", 8998, OutcomeKind::kConnectTimeout, 0, nullptr},
      {"a server that resets", 8666, OutcomeKind::kReset, 0, &resetting},
      {"a server that accepts and never answers", 8777, OutcomeKind::kReadTimeout, 0, &silent},
  };
  nlohmann::json evidence = nlohmann::json::array();
  uint16_t chosen_port = 41000;
  for (const auto& row : rows) {
    for (const bool curl : {false, true}) {
      INFO(row.what << " via " << (curl ? "curl" : "socket"));
      ProbeSpec spec;
      spec.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
      spec.dst.port = row.port;
      spec.src_port = ++chosen_port;  // a fresh, known source port per probe
      spec.connect_timeout = 400ms;
      spec.response_timeout = 600ms;
      spec.headers = {{"X-Kmesh-Probe", "1"}};
      const size_t accepted_before = row.server ? row.server->Accepted().size() : 0;
      const ProbeOutcome o = curl ? kmesh::e2e::ProbeWithCurl(net.client.ref(), spec) : kmesh::e2e::Probe(net.client.ref(), spec);
      INFO(o.ToString());
      evidence.push_back(o.ToJson());
      CHECK(o.kind == row.kind);
      CHECK(o.http_status == row.status);
      CHECK(o.tuple.src.port == spec.src_port);
      CHECK(o.tuple.dst.ip.ToString() == kServerIp);
      CHECK(o.tuple.dst.port == row.port);
      if (row.kind == OutcomeKind::kConnectTimeout) {
        CHECK(o.timings.connect >= 350ms);
        CHECK(o.timings.total < 3s);
      }
      if (row.kind == OutcomeKind::kReadTimeout) CHECK(o.timings.total >= 550ms);  // the response bound
      if (row.server != nullptr) {
        // The server saw exactly the tuple the probe reported.
        const auto acc = row.server->Accepted();
        REQUIRE(acc.size() == accepted_before + 1);
        CHECK(acc.back().src.ip.ToString() == kClientIp);
        CHECK(acc.back().src.port == o.tuple.src.port);
      }
    }
  }
  CHECK(xdp.Dropped() >= 2);  // the SYNs of both paths met the program
  std::ofstream(kmesh::e2e::CaseOutputDir() + "/probes.json") << evidence.dump(2) << "\n";
}

TEST_CASE("a probe with no chosen port reports the port the kernel picked") {
  Pair net;
  TestServer ok(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  ProbeSpec spec;
  spec.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  spec.dst.port = 8080;
  spec.host = "httpbin.example";
  const ProbeOutcome o = kmesh::e2e::Probe(net.client.ref(), spec);
  INFO(o.ToString());
  CHECK(o.Summary() == "ok(200)");
  CHECK(o.tuple.src.ip.ToString() == kClientIp);
  CHECK(o.tuple.src.port != 0);
  REQUIRE(ok.Accepted().size() == 1);
  CHECK(ok.Accepted()[0].src.port == o.tuple.src.port);
  CHECK(o.timings.first_byte.count() > 0);
}

TEST_CASE("bad probe input is an error naming it") {
  Pair net;
  ProbeSpec spec;
  CHECK_THROWS_WITH(kmesh::e2e::Probe(net.client.ref(), spec),
                    Catch::Contains("no destination (ProbeSpec.dst is 0.0.0.0:80)"));
  CHECK_THROWS_WITH(kmesh::e2e::ProbeWithCurl(net.client.ref(), spec), Catch::Contains("no destination"));
  spec.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  CHECK_THROWS_WITH(kmesh::e2e::Probe(NetnsRef::Resolve("kme2e-no-such-ns"), spec),
                    Catch::Contains("kme2e-no-such-ns") && Catch::Contains("not found"));
  spec.src_ip = *kmesh::net::IpAddr::Parse("10.1.1.1");  // not an address of the client namespace
  CHECK_THROWS_WITH(kmesh::e2e::Probe(net.client.ref(), spec), Catch::Contains("bind to source 10.1.1.1") && Catch::Contains("assign"));
  // No route is not one of the six outcomes: it says so.
  spec.src_ip.reset();
  spec.dst.ip = *kmesh::net::IpAddr::Parse("10.200.0.1");
  const ProbeOutcome o = kmesh::e2e::Probe(net.client.ref(), spec);
  CHECK(o.kind == OutcomeKind::kError);
  CHECK_THAT(o.detail, Catch::Contains("ENETUNREACH"));
}
