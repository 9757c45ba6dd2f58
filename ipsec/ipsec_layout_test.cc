#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <netinet/in.h>
#include <nlohmann/json.hpp>

#include "base/runfiles.h"
#include "ipsec/ipsec_layout.h"

using namespace kmesh::ipsec;
using kmesh::xfrm::Dir;
using kmesh::xfrm::Mark;
using kmesh::xfrm::Mode;
using kmesh::xfrm::Spi;
using kmesh::xfrm::XfrmPolicy;
using kmesh::xfrm::XfrmSnapshot;
using kmesh::xfrm::XfrmState;
using kmesh::xfrm::XfrmTemplate;

TEST_CASE("key derivation matches vectors computed independently with hashlib and openssl") {
  std::ifstream in(kmesh::Runfile("testdata/ipsec/derivation_vectors.json"));
  const auto doc = nlohmann::json::parse(in);
  REQUIRE(doc["vectors"].size() >= 4);
  for (const auto& v : doc["vectors"]) {
    INFO(v["name"].get<std::string>());
    const KeyMaterial key = KeyMaterial::FromHex(v["key_hex"]);
    const KeyMaterial derived = DeriveKey(key, v["src"], v["dst"], v["src_boot_id"], v["dst_boot_id"]);
    CHECK(derived.size() == 36);
    CHECK(derived.RevealHex() == v["derived_hex"].get<std::string>());
  }
}

namespace {

const KeyMaterial kKey1 = KeyMaterial::FromHex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223");
const KeyMaterial kKey2 = KeyMaterial::FromHex(std::string(72, '7'));

NodeInfo NodeA() { return {"A", "172.18.0.2", {"10.244.0.0/24"}, 1, "3f1c2b9e-6a0d-4c55-9e71-2b8f0e4d1a77"}; }
NodeInfo NodeB() { return {"B", "172.18.0.3", {"10.244.1.0/24"}, 1, "b5e0d6a2-91f4-4e3b-8c2d-7a6f5e4d3c21"}; }

SecretHistory Secrets() {
  SecretHistory h;
  IpsecSecret s1;
  s1.spi = 1;
  s1.aead_key = kKey1;
  h.Add(s1);
  IpsecSecret s2;
  s2.spi = 2;
  s2.aead_key = kKey2;
  h.Add(s2);
  return h;
}

XfrmState State(const NodeInfo& src, const NodeInfo& dst, uint32_t spi, bool ingress) {
  XfrmState s;
  s.family = AF_INET;
  s.src = src.address;
  s.dst = dst.address;
  s.proto = IPPROTO_ESP;
  s.spi = Spi{spi};
  s.reqid = 1;
  s.mode = Mode::kTunnel;
  s.aead_name = "rfc4106(gcm(aes))";
  s.icv_bits = 128;
  s.aead_key = DeriveKey(Secrets().Find(spi)->aead_key, src.address, dst.address, src.boot_id, dst.boot_id);
  if (ingress) s.output_mark = Mark{0xd0, 0xffffffff};
  return s;
}

XfrmPolicy Policy(Dir dir, const std::string& cidr, Mark mark, const NodeInfo& src, const NodeInfo& dst, uint32_t spi) {
  XfrmPolicy p;
  p.dir = dir;
  p.selector.family = AF_INET;
  p.selector.src = "0.0.0.0/0";
  p.selector.dst = cidr;
  p.mark = mark;
  XfrmTemplate t;
  t.family = AF_INET;
  t.src = src.address;
  t.dst = dst.address;
  t.proto = IPPROTO_ESP;
  t.spi = Spi{spi};
  t.reqid = 1;
  t.mode = Mode::kTunnel;
  p.templates.push_back(t);
  return p;
}

// What Kmesh programs on `local` for `remote` (kmesh-facts.md §3.4).
XfrmSnapshot KmeshLayout(const NodeInfo& local, const NodeInfo& remote) {
  XfrmSnapshot s;
  s.states.push_back(State(remote, local, local.spi, true));
  s.states.push_back(State(local, remote, remote.spi, false));
  s.policies.push_back(Policy(Dir::kIn, local.pod_cidrs[0], {0xd0, 0xffffffff}, remote, local, 0));
  s.policies.push_back(Policy(Dir::kFwd, local.pod_cidrs[0], {0xd0, 0xffffffff}, remote, local, 0));
  s.policies.push_back(Policy(Dir::kOut, remote.pod_cidrs[0], {0xe0, 0xffffffff}, local, remote, remote.spi));
  return s;
}

XfrmState* Find(XfrmSnapshot& s, const std::string& src, uint32_t spi) {
  for (auto& x : s.states)
    if (x.src == src && x.spi.value == spi) return &x;
  return nullptr;
}
XfrmPolicy* Find(XfrmSnapshot& s, Dir dir) {
  for (auto& p : s.policies)
    if (p.dir == dir) return &p;
  return nullptr;
}

// Whether one of the report's findings says `text`.
bool Names(const LayoutReport& r, const std::string& text) {
  for (const auto& f : r.findings) {
    if (f.ToString().find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("Kmesh's layout on both nodes passes, and both ends of each direction hold the derived key") {
  NodeEvidence a{NodeA(), KmeshLayout(NodeA(), NodeB())};
  NodeEvidence b{NodeB(), KmeshLayout(NodeB(), NodeA())};
  LayoutReport r = CheckLayout(a, b, Secrets());
  INFO(r.Describe());
  CHECK(r.ok());
  REQUIRE(r.directions.size() == 2);
  for (const auto& d : r.directions) {
    CHECK(d.agree);
    CHECK(d.sender_fingerprint == d.expected_fingerprint);
    CHECK(d.receiver_fingerprint == d.expected_fingerprint);
  }
  // The two directions use different keys (addresses and boot ids swap places).
  CHECK(r.directions[0].expected_fingerprint != r.directions[1].expected_fingerprint);
  // The report never carries a raw key.
  CHECK_THAT(r.ToJson().dump(), !Catch::Contains(DeriveKey(kKey1, "172.18.0.2", "172.18.0.3", NodeA().boot_id, NodeB().boot_id).RevealHex()));
}

TEST_CASE("each departure from Kmesh's layout is reported by name") {
  struct Row {
    const char* name;
    std::function<void(XfrmSnapshot& on_b)> fault;  // applied to node B's kernel
    std::string finding;                            // expected text of one finding
  };
  const std::vector<Row> rows = {
      {"ingress state lost its output-mark", [](XfrmSnapshot& s) { Find(s, "172.18.0.2", 1)->output_mark.reset(); },
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000001: output-mark is not set, expected 0xd0/0xffffffff"},
      {"ingress output-mark with a node id", [](XfrmSnapshot& s) { Find(s, "172.18.0.2", 1)->output_mark = Mark{0x1d0, 0xffffffff}; },
       "output-mark is 0x1d0/0xffffffff, expected 0xd0/0xffffffff"},
      {"ingress state missing", [](XfrmSnapshot& s) { s.states.erase(s.states.begin()); },
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000001: missing"},
      {"stale key on the receiver", [](XfrmSnapshot& s) { Find(s, "172.18.0.2", 1)->aead_key = kKey2; },
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000001: key is sha256:"},
      {"wrong ICV", [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->icv_bits = 64; }, "ICV is 64 bits, expected 128"},
      {"transport mode", [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->mode = Mode::kTransport; }, "mode is transport, expected tunnel"},
      {"reqid", [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->reqid = 7; }, "reqid is 7, expected 1"},
      {"other AEAD", [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->aead_name = "rfc7539esp(chacha20,poly1305)"; },
       "aead is rfc7539esp(chacha20,poly1305), expected rfc4106(gcm(aes))"},
      {"egress with an output-mark", [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->output_mark = Mark{0xd0, 0xffffffff}; },
       "node B: egress state src 172.18.0.3 dst 172.18.0.2 spi 0x00000001: output-mark is 0xd0/0xffffffff, expected none"},
      {"in policy mark", [](XfrmSnapshot& s) { Find(s, Dir::kIn)->mark = Mark{0, 0}; },
       "node B: policy dir in src 0.0.0.0/0 dst 10.244.1.0/24: mark is 0x0/0x0, expected 0xd0/0xffffffff"},
      {"fwd policy missing", [](XfrmSnapshot& s) { s.policies.erase(s.policies.begin() + 1); },
       "node B: policy dir fwd src 0.0.0.0/0 dst 10.244.1.0/24: missing"},
      {"out policy on the old SPI", [](XfrmSnapshot& s) { Find(s, Dir::kOut)->templates[0].spi = Spi{9}; },
       "node B: policy dir out src 0.0.0.0/0 dst 10.244.0.0/24: template spi is 0x00000009, expected 0x00000001"},
      {"out policy mark", [](XfrmSnapshot& s) { Find(s, Dir::kOut)->mark = Mark{0xe0, 0xff}; }, "mark is 0xe0/0xff, expected 0xe0/0xffffffff"},
      {"out template reversed", [](XfrmSnapshot& s) { std::swap(Find(s, Dir::kOut)->templates[0].src, Find(s, Dir::kOut)->templates[0].dst); },
       "template goes src 172.18.0.2 dst 172.18.0.3, expected src 172.18.0.3 dst 172.18.0.2"},
      {"in template with an spi", [](XfrmSnapshot& s) { Find(s, Dir::kIn)->templates[0].spi = Spi{1}; },
       "template spi is 0x00000001, expected any (none set)"},
  };
  for (const auto& row : rows) {
    INFO("fault: " << row.name);
    NodeEvidence a{NodeA(), KmeshLayout(NodeA(), NodeB())};
    NodeEvidence b{NodeB(), KmeshLayout(NodeB(), NodeA())};
    row.fault(b.snapshot);
    LayoutReport r = CheckLayout(a, b, Secrets());
    INFO(r.Describe());
    CHECK_FALSE(r.ok());
    CHECK(Names(r, row.finding));
  }
}

TEST_CASE("a key that differs between the two ends of a direction is named, with fingerprints only") {
  NodeEvidence a{NodeA(), KmeshLayout(NodeA(), NodeB())};
  NodeEvidence b{NodeB(), KmeshLayout(NodeB(), NodeA())};
  Find(b.snapshot, "172.18.0.2", 1)->aead_key = kKey2;  // B decrypts A's traffic with a stale key
  LayoutReport r = CheckLayout(a, b, Secrets());
  bool named = false;
  for (const auto& f : r.findings) {
    named = named || (f.node == "A -> B" && f.problem.find("the two ends hold different keys") != std::string::npos);
  }
  CHECK(named);
  CHECK_FALSE(r.directions[0].agree);  // A -> B
  CHECK(r.directions[1].agree);        // B -> A untouched
  CHECK_THAT(r.Describe(), !Catch::Contains(kKey2.RevealHex()));
}

TEST_CASE("during a rotation, a node whose peer moved ahead reports egress not yet programmed") {
  NodeInfo a_info = NodeA(), b_info = NodeB();
  b_info.spi = 2;  // B rotated; A has not yet
  XfrmSnapshot on_a = KmeshLayout(a_info, b_info);
  // Kmesh leaves A's egress on SPI 1 until A rotates too.
  on_a.states.erase(on_a.states.begin() + 1);
  on_a.policies.pop_back();
  NodeEvidence a{a_info, on_a};
  NodeEvidence b{b_info, KmeshLayout(b_info, a_info)};
  LayoutReport r = CheckLayout(a, b, Secrets());
  CHECK(Names(r, "node A: egress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000002: not expected yet"));
}

TEST_CASE("an SPI with no secret in the history is reported, not silently trusted") {
  NodeInfo a_info = NodeA(), b_info = NodeB();
  NodeEvidence a{a_info, KmeshLayout(a_info, b_info)};
  NodeEvidence b{b_info, KmeshLayout(b_info, a_info)};
  SecretHistory none;
  LayoutReport r = CheckLayout(a, b, none);
  CHECK_FALSE(r.ok());
  CHECK_THAT(r.Describe(), Catch::Contains("no secret for spi 1 in the secret history"));
  CHECK_FALSE(r.directions[0].agree);
}

TEST_CASE("exactly Kmesh's layout: extra, stale and duplicate objects are findings; kept SPIs are checked") {
  // Both nodes rotated 1 -> 2: Kmesh keeps SPI 1's states on both (it removes none on a rotation).
  NodeInfo a_info = NodeA(), b_info = NodeB();
  a_info.spi = b_info.spi = 2;
  auto rotated = [](const NodeInfo& local, const NodeInfo& remote) {
    XfrmSnapshot s = KmeshLayout(local, remote);
    s.states.push_back(State(remote, local, 1, true));
    s.states.push_back(State(local, remote, 1, false));
    return s;
  };
  const RetainedSpis kept{{"A", {1}}, {"B", {1}}};
  struct Row {
    const char* name;
    std::function<void(XfrmSnapshot& on_b)> fault;
    RetainedSpis retained;
    std::string finding;
  };
  const std::vector<Row> rows = {
      {"a kept SPI's state missing", [](XfrmSnapshot& s) { s.states.erase(s.states.begin() + 2); }, kept,
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000001: missing: Kmesh keeps every earlier SPI's"},
      {"a kept SPI's state with another key",
       [](XfrmSnapshot& s) { Find(s, "172.18.0.3", 1)->aead_key = kKey2; }, kept,
       "egress state src 172.18.0.3 dst 172.18.0.2 esp spi 0x00000001 (kept from an earlier SPI): key is"},
      {"stale: SPI 1's states after a flush", [](XfrmSnapshot&) {}, RetainedSpis{},
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 esp spi 0x00000001: stale"},
      {"extra: a state to an address no KmeshNodeInfo has",
       [](XfrmSnapshot& s) {
         XfrmState x = s.states[0];
         x.src = "172.18.0.9";
         s.states.push_back(x);
       },
       kept, "node B: state src 172.18.0.9 dst 172.18.0.3 esp spi 0x00000002: extra"},
      {"extra: an SPI newer than any KmeshNodeInfo",
       [](XfrmSnapshot& s) {
         XfrmState x = s.states[0];
         x.spi = Spi{7};
         s.states.push_back(x);
       },
       kept, "spi 0x00000007: extra: spi 7 is newer than any KmeshNodeInfo reports"},
      {"a state with a lookup mark", [](XfrmSnapshot& s) { Find(s, "172.18.0.2", 2)->mark = Mark{0x5, 0xff}; }, kept,
       "carries a lookup mark 0x5/0xff"},
      {"duplicate: a second out policy at another priority",
       [](XfrmSnapshot& s) {
         XfrmPolicy p = *Find(s, Dir::kOut);
         p.priority = 5;
         p.mark = Mark{0xe1, 0xffffffff};
         s.policies.push_back(p);
       },
       kept, "node B: policy dir out 10.244.0.0/24: duplicate: 2 policies with Kmesh's selector"},
      {"extra: a policy Kmesh never writes",
       [](XfrmSnapshot& s) {
         XfrmPolicy p = *Find(s, Dir::kIn);
         p.selector.dst = "10.99.0.0/16";
         s.policies.push_back(p);
       },
       kept, "node B: policy dir in src 0.0.0.0/0 dst 10.99.0.0/16"},
  };
  {
    NodeEvidence a{a_info, rotated(a_info, b_info)};
    NodeEvidence b{b_info, rotated(b_info, a_info)};
    LayoutReport r = CheckLayout(a, b, Secrets(), kept);
    INFO(r.Describe());
    CHECK(r.ok());
  }
  for (const auto& row : rows) {
    INFO("fault: " << row.name);
    NodeEvidence a{a_info, rotated(a_info, b_info)};
    NodeEvidence b{b_info, rotated(b_info, a_info)};
    row.fault(b.snapshot);
    LayoutReport r = CheckLayout(a, b, Secrets(), row.retained);
    INFO(r.Describe());
    CHECK_FALSE(r.ok());
    CHECK(Names(r, row.finding));
  }
}

TEST_CASE("states of SPIs older than the run's secrets are noted, not judged") {
  NodeInfo a_info = NodeA(), b_info = NodeB();
  XfrmSnapshot on_b = KmeshLayout(b_info, a_info);
  XfrmState older = on_b.states[0];
  older.spi = Spi{1};
  // The run's only secret is SPI 3 (a cluster left at SPI 2, as Env::FirstSpi assumes).
  SecretHistory run;
  IpsecSecret s3;
  s3.spi = 3;
  s3.aead_key = kKey1;
  run.Add(s3);
  a_info.spi = b_info.spi = 3;
  auto layout = [&](const NodeInfo& l, const NodeInfo& r) {
    XfrmSnapshot s;
    auto st = [&](const NodeInfo& src, const NodeInfo& dst, bool in) {
      XfrmState x = State(src, dst, 1, in);
      x.spi = Spi{3};
      x.aead_key = DeriveKey(kKey1, src.address, dst.address, src.boot_id, dst.boot_id);
      return x;
    };
    s.states.push_back(st(r, l, true));
    s.states.push_back(st(l, r, false));
    s.policies.push_back(Policy(Dir::kIn, l.pod_cidrs[0], {0xd0, 0xffffffff}, r, l, 0));
    s.policies.push_back(Policy(Dir::kFwd, l.pod_cidrs[0], {0xd0, 0xffffffff}, r, l, 0));
    s.policies.push_back(Policy(Dir::kOut, r.pod_cidrs[0], {0xe0, 0xffffffff}, l, r, 3));
    return s;
  };
  NodeEvidence a{a_info, layout(a_info, b_info)};
  NodeEvidence b{b_info, layout(b_info, a_info)};
  b.snapshot.states.push_back(older);  // a cluster's SPI 1 from before the run
  LayoutReport r = CheckLayout(a, b, run);
  INFO(r.Describe());
  CHECK(r.ok());
  REQUIRE(r.notes.size() == 1);
  CHECK_THAT(r.notes[0], Catch::Contains("spi 0x00000001 predates this run's secrets"));
}
