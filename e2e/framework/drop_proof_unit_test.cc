// Unit tier: the XDP drop judgement (JudgeDrop) over hand-made captures: each thing that is not proof
// says so, and absence at the pod counts only once a later packet (the marker) got there.
#include <catch2/catch.hpp>

#include "capture/capture.h"
#include "e2e/framework/drop_proof.h"

using namespace std::chrono_literals;
using kmesh::capture::CaptureSummary;
using kmesh::capture::PlaintextHit;
using kmesh::e2e::DropProof;
using kmesh::e2e::DropStage;

namespace {

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kPsh = 0x08;

PlaintextHit Packet(double t, bool toward_server, uint8_t flags, uint32_t payload = 0) {
  return PlaintextHit{t, "packet", toward_server, flags, payload};
}

// `covered`: packets of the stage sent before the newest marker that reached the pod.
DropProof Judge(DropStage stage, std::vector<PlaintextHit> node, std::vector<PlaintextHit> pod,
                uint64_t drops, size_t covered) {
  CaptureSummary n, p;
  n.plaintext = std::move(node);
  p.plaintext = std::move(pod);
  DropProof proof;
  proof.stage = stage;
  proof.xdp_drops = drops;
  proof.marker_covers = covered;
  proof.node_side = "lxc2 in node2";
  proof.pod_side = "eth0 of httpbin";
  kmesh::e2e::JudgeDrop(proof, n, p);
  return proof;
}

std::string Missing(const DropProof& p) {
  std::string s;
  for (const auto& m : p.missing) s += m + "|";
  return s;
}

}  // namespace

TEST_CASE("a dropped SYN: sent, not received though a later packet was, not answered, counted") {
  const auto p = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn)}, {}, 1, 1);
  INFO(Missing(p));
  CHECK(p.proven);
  CHECK(p.sent == 1);
  CHECK_THAT(p.Describe(),
             Catch::StartsWith("SYN dropped by XDP, proven by the kernel: 1 SYN left lxc2 in node2 "
                               "toward the pod, eth0 of httpbin (after XDP) received none though a later "
                               "packet (the marker sent behind) reached it, nothing came back, its XDP drop "
                               "count +1"));
  CaptureSummary handshake;
  handshake.plaintext = {Packet(1, true, kSyn), Packet(2, false, kSyn | kAck), Packet(3, true, kAck),
                         Packet(4, true, kPsh | kAck, 80)};
  CHECK(kmesh::e2e::StagePacketsSent(DropStage::kSyn, handshake) == 1);
  CHECK(kmesh::e2e::StagePacketsSent(DropStage::kRequest, handshake) == 1);
}

TEST_CASE("a drop is not proven before a packet sent after it has reached the pod") {
  const auto none = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn)}, {}, 1, 0);
  CHECK_FALSE(none.proven);
  CHECK(none.waiting);
  CHECK_THAT(Missing(none),
             Catch::Contains("no later packet has reached eth0 of httpbin yet (the marker sent "
                             "after the SYN toward the pod): it may still be on the way"));
  // A marker sent before a retransmission covers only the first SYN.
  const auto retx = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn), Packet(101.0, true, kSyn)}, {}, 2, 1);
  CHECK_FALSE(retx.proven);
  CHECK(retx.waiting);
  CHECK_THAT(Missing(retx), Catch::Contains("the last of the 2 SYNs"));
}

TEST_CASE("an XDP drop count that did not keep up is not proof") {
  const auto none = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn)}, {}, 0, 1);
  CHECK_FALSE(none.proven);
  CHECK_FALSE(none.waiting);
  CHECK_THAT(Missing(none),
             Catch::Contains("the XDP drop count of eth0 of httpbin moved by 0, fewer than the 1 SYN sent"));
  // A retransmitted SYN is a second packet to account for.
  const auto retx = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn), Packet(101.0, true, kSyn)}, {}, 1, 2);
  CHECK_FALSE(retx.proven);
  CHECK_THAT(Missing(retx), Catch::Contains("moved by 1, fewer than the 2 SYNs sent"));
}

TEST_CASE("a SYN the pod received and answered was passed by XDP") {
  const auto p = Judge(DropStage::kSyn, {Packet(100.0, true, kSyn), Packet(100.0001, false, kSyn | kAck)},
                       {Packet(100.00005, true, kSyn)}, 0, 1);
  CHECK_FALSE(p.proven);
  CHECK(p.arrived == 1);
  CHECK(p.answered == 1);
  CHECK_THAT(Missing(p), Catch::Contains("eth0 of httpbin received 1 SYN: XDP passed it") &&
                             Catch::Contains("the pod answered (1 packet back on lxc2 in node2)"));
}

TEST_CASE("no SYN toward the pod is no proof") {
  const auto p = Judge(DropStage::kSyn, {}, {}, 3, 0);  // others' drops do not count
  CHECK_FALSE(p.proven);
  CHECK_THAT(Missing(p), Catch::Contains("no SYN of the tuple left lxc2 in node2 toward the pod"));
}

TEST_CASE("a request dropped after the handshake") {
  const std::vector<PlaintextHit> node = {Packet(100.0, true, kSyn), Packet(100.0001, false, kSyn | kAck),
                                          Packet(100.0002, true, kAck),
                                          Packet(100.020, true, kPsh | kAck, 120)};
  const std::vector<PlaintextHit> pod = {Packet(100.00005, true, kSyn), Packet(100.00025, true, kAck)};
  const auto p = Judge(DropStage::kRequest, node, pod, 1, 1);
  INFO(Missing(p));
  CHECK(p.proven);
  CHECK(p.handshake);
  CHECK(p.sent == 1);
  CHECK_THAT(p.Describe(),
             Catch::StartsWith("request dropped by XDP, proven by the kernel: handshake passed"));

  SECTION("the pod's answer is no drop") {
    auto answered = node;
    answered.push_back(Packet(100.021, false, kPsh | kAck, 300));
    const auto q = Judge(DropStage::kRequest, answered, pod, 1, 1);
    CHECK_FALSE(q.proven);
    CHECK_THAT(Missing(q), Catch::Contains("the pod answered (1 packet back"));
  }
  SECTION("a request the pod received is no drop") {
    auto received = pod;
    received.push_back(Packet(100.0201, true, kPsh | kAck, 120));
    const auto q = Judge(DropStage::kRequest, node, received, 0, 1);
    CHECK_FALSE(q.proven);
    CHECK_THAT(Missing(q), Catch::Contains("eth0 of httpbin received 1 request packet: XDP passed it"));
  }
  SECTION("without a handshake at the pod it is no request drop") {
    const auto q = Judge(DropStage::kRequest, {Packet(100.0, true, kSyn)}, {}, 1, 0);
    CHECK_FALSE(q.proven);
    CHECK_THAT(Missing(q),
               Catch::Contains("no handshake at the pod (SYN not seen by eth0 of httpbin, SYN-ACK not "
                               "seen on lxc2 in node2)") &&
                   Catch::Contains("no request packet of the tuple left lxc2 in node2"));
  }
}
