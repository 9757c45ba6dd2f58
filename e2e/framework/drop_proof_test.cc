// Kernel tier: the XDP drop proof on a real veth pair with a real XDP program (traffic_drop_syn.bpf.c,
// native on the server's end). A dropped SYN and a dropped request are proven, and a probe that asks ends
// its wait as soon as they are; a SYN XDP passed, a SYN that never left, and a drop counter that did not
// move are not proof. The client's end of the veth plays the node side of a pod's veth.
#include "e2e/framework/drop_proof.h"

#include <catch2/catch.hpp>
#include <thread>

#include "e2e/framework/case_output.h"
#include "traffic/traffic.h"
#include "traffic/traffic_testing.h"

using namespace std::chrono_literals;
using kmesh::e2e::DropProof;
using kmesh::e2e::DropStage;
using kmesh::e2e::OutcomeKind;
using kmesh::e2e::PodLink;
using kmesh::e2e::ProbeOutcome;
using kmesh::e2e::ProbeSpec;
using kmesh::e2e::testing::TupleOf;
using kmesh::e2e::XdpDropCounter;
using kmesh::e2e::XdpDropWatch;
using kmesh::e2e::testing::kClientIp;
using kmesh::e2e::testing::kServerIp;
using kmesh::e2e::testing::Pair;
using kmesh::e2e::testing::SynDropper;
using kmesh::e2e::testing::TestServer;

namespace {

// Resolves the server's neighbour entry first (a refused connect), so that a probe's SYN leaves at once:
// on a fresh veth pair the first packet waits for ARP, which a loaded machine has been seen to take longer
// than a probe's 500 ms connect bound to answer.
void Warm(Pair& net) {
  ProbeSpec s;
  s.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  s.dst.port = 1;
  s.http = false;
  s.connect_timeout = std::chrono::milliseconds(3000);
  kmesh::e2e::Probe(net.client.ref(), s);
}

PodLink LinkOf(Pair& net) {
  Warm(net);
  return PodLink{net.client.ref(), "c0", net.server.ref(), "s0", "client-ns", "server-ns"};
}

ProbeSpec Spec(uint16_t src_port, uint16_t dst_port) {
  ProbeSpec s;
  s.dst.ip = *kmesh::net::IpAddr::Parse(kServerIp);
  s.dst.port = dst_port;
  s.src_ip = *kmesh::net::IpAddr::Parse(kClientIp);
  s.src_port = src_port;
  s.path = "/get";
  return s;
}

// A probe that ends its wait once the watch proves `stage`, then the watch's final proof.
std::pair<ProbeOutcome, DropProof> ProvenProbe(Pair& net, XdpDropWatch& watch, ProbeSpec spec,
                                               DropStage stage) {
  spec.proven = [&](ProbeSpec::Phase phase) -> std::string {
    if ((phase == ProbeSpec::Phase::kConnect) != (stage == DropStage::kSyn)) return "";
    const DropProof p = watch.Check(stage);
    return p.proven ? p.Describe() : "";
  };
  ProbeOutcome out = kmesh::e2e::Probe(net.client.ref(), spec);
  return {out, watch.Finish(stage)};
}

}  // namespace

TEST_CASE("a SYN dropped by XDP is proven by the kernel, and the probe's wait ends there") {
  Pair net;
  TestServer server(net.server.ref(), 8080, TestServer::Behaviour::kHttp, 200);
  SynDropper xdp(net.server.ref(), "s0", 8080);
  const auto t = TupleOf(kClientIp, 43001, kServerIp, 8080);
  XdpDropWatch watch = XdpDropWatch::Start(LinkOf(net), t, kmesh::e2e::CaseOutputDir(), "syn-drop");
  auto [out, proof] = ProvenProbe(net, watch, Spec(43001, 8080), DropStage::kSyn);
  INFO(out.ToString());
  INFO(proof.Describe());
  CHECK(out.kind == OutcomeKind::kConnectTimeout);
  CHECK_FALSE(out.ended_early.empty());
  CHECK(out.timings.total < 200ms);  // the connect bound is 500 ms
  CHECK(proof.proven);
  CHECK(proof.sent >= 1);
  CHECK(proof.arrived == 0);
  CHECK(proof.answered == 0);
  CHECK(proof.xdp_drops >= proof.sent);
  CHECK(xdp.Dropped() >= 1);          // the program's own count agrees
  CHECK(proof.markers_arrived >= 1);  // a packet sent behind the SYN got through
  CHECK(proof.marker_covers >= proof.sent);
  CHECK_THAT(proof.xdp_program, Catch::StartsWith("drop_syn (prog "));
  REQUIRE(proof.xdp_runs.has_value());
  CHECK(*proof.xdp_runs >= 1);
  CHECK_THAT(proof.Describe(), Catch::StartsWith("SYN dropped by XDP, proven by the kernel: 1 SYN left c0"));
  CHECK(server.Accepted().empty());
}

TEST_CASE("a request dropped by XDP after the handshake is proven, and the read wait ends there") {
  Pair net;
  TestServer server(net.server.ref(), 8081, TestServer::Behaviour::kHttp, 200);
  SynDropper xdp(net.server.ref(), "s0", 0, 8081);  // data to 8081 dropped; the handshake passes
  const auto t = TupleOf(kClientIp, 43002, kServerIp, 8081);
  XdpDropWatch watch = XdpDropWatch::Start(LinkOf(net), t, kmesh::e2e::CaseOutputDir(), "request-drop");
  auto [out, proof] = ProvenProbe(net, watch, Spec(43002, 8081), DropStage::kRequest);
  INFO(out.ToString());
  INFO(proof.Describe());
  CHECK(out.kind == OutcomeKind::kReadTimeout);
  CHECK_FALSE(out.ended_early.empty());
  CHECK(out.timings.total < 1000ms);  // the response bound is 3 s
  CHECK(proof.proven);
  CHECK(proof.handshake);
  CHECK(proof.sent >= 1);
  CHECK(proof.arrived == 0);
  CHECK(proof.answered == 0);
  CHECK(proof.xdp_drops >= proof.sent);
  // The connection was accepted (the test server polls its listener every 50 ms): only its request vanished.
  const auto until = std::chrono::steady_clock::now() + 1000ms;
  while (server.Accepted().empty() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(10ms);
  CHECK(server.Accepted().size() == 1);
}

TEST_CASE("a SYN XDP passed is not proven dropped") {
  Pair net;
  TestServer server(net.server.ref(), 8082, TestServer::Behaviour::kHttp, 200);
  SynDropper xdp(net.server.ref(), "s0", 8080);  // another port
  const auto t = TupleOf(kClientIp, 43003, kServerIp, 8082);
  XdpDropWatch watch = XdpDropWatch::Start(LinkOf(net), t, "", "passed");
  auto [out, proof] = ProvenProbe(net, watch, Spec(43003, 8082), DropStage::kSyn);
  INFO(proof.Describe());
  CHECK(out.kind == OutcomeKind::kOk);
  CHECK_FALSE(proof.proven);
  CHECK(proof.arrived >= 1);
  CHECK(proof.answered >= 1);
  CHECK(proof.xdp_drops == 0);
  CHECK_THAT(proof.Describe(), Catch::Contains("s0 of server-ns received 1 SYN: XDP passed it"));
}

TEST_CASE("a SYN that never left toward the server is not proven dropped") {
  Pair net;
  SynDropper xdp(net.server.ref(), "s0", 8080);
  // A tuple no probe uses: the drop counter may move for others, the captures see nothing of this one.
  XdpDropWatch watch =
      XdpDropWatch::Start(LinkOf(net), TupleOf(kClientIp, 43004, kServerIp, 8080), "", "never-sent");
  const ProbeOutcome other = kmesh::e2e::Probe(net.client.ref(), Spec(43005, 8080));
  CHECK(other.kind == OutcomeKind::kConnectTimeout);
  const DropProof proof = watch.Finish(DropStage::kSyn);
  INFO(proof.Describe());
  CHECK_FALSE(proof.proven);
  CHECK(proof.sent == 0);
  CHECK(proof.xdp_drops >= 1);  // the other probe's SYN: counted, but not this tuple's
  CHECK_THAT(proof.Describe(), Catch::Contains("no SYN of the tuple left c0 in client-ns toward the pod"));
}

TEST_CASE("a refused SYN is not proven dropped: it arrived, was answered, and no XDP drop was counted") {
  Pair net;
  // No listener and no XDP: the server's kernel answers the SYN with a RST, so nothing is dropped.
  const auto t = TupleOf(kClientIp, 43006, kServerIp, 8099);
  XdpDropWatch watch = XdpDropWatch::Start(LinkOf(net), t, "", "refused");
  auto [out, proof] = ProvenProbe(net, watch, Spec(43006, 8099), DropStage::kSyn);
  INFO(proof.Describe());
  CHECK(out.kind == OutcomeKind::kRefused);
  CHECK_FALSE(proof.proven);
  CHECK(proof.xdp_drops == 0);
  CHECK(proof.xdp_program.empty());  // nothing attached
  CHECK_THAT(proof.Describe(), Catch::Contains("received 1 SYN: XDP passed it; the pod answered"));
}

TEST_CASE("the XDP drop counter names an interface that has none") {
  Pair net;
  CHECK_THROWS_WITH(XdpDropCounter::Open(net.server.ref(), "lo"), Catch::Contains("lo in"));
  CHECK_THROWS_WITH(XdpDropCounter::Open(net.server.ref(), "nope0"), Catch::Contains("no interface nope0"));
  const XdpDropCounter c = XdpDropCounter::Open(net.server.ref(), "s0");
  CHECK(c.Read() == 0);
}
