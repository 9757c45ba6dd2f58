// Kernel tier: xfrm policies programmed with iproute2 in a fresh namespace are read back over netlink
// field by field, and agree with `ip xfrm policy` and with libnl-xfrm on the same namespace. States need
// ESP, which this host lacks: they live in xfrm_state_test (tag needs_esp).
#include <catch2/catch.hpp>

#include <fstream>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sstream>

#include "e2e/framework/case_output.h"
#include "xfrm/xfrm.h"
#include "xfrm/xfrm_libnl.h"
#include "netns/drop_caps.h"
#include "netns/netns.h"
#include "netns/process.h"

using namespace kmesh::xfrm;

namespace Catch {
template <>
struct StringMaker<Mark> {
  static std::string convert(const Mark& m) { return m.ToString(); }
};
template <>
struct StringMaker<XfrmTemplate> {
  static std::string convert(const XfrmTemplate& t) { return t.ToString(); }
};
template <>
struct StringMaker<Selector> {
  static std::string convert(const Selector& s) { return s.ToString(); }
};
}  // namespace Catch
using kmesh::netns::Netns;
using kmesh::netns::RunIn;

namespace {

struct PolicyRow {
  std::vector<std::string> ip_args;  // after `ip xfrm policy add`
  // Expected read-back:
  Dir dir;
  std::string src, dst;
  uint8_t sel_proto;
  uint16_t dport;
  uint32_t priority;
  Mark mark;
  Action action;
  std::vector<XfrmTemplate> tmpls;
};

XfrmTemplate Tmpl(std::string src, std::string dst, uint32_t spi, uint32_t reqid, Mode mode, bool optional = false) {
  XfrmTemplate t;
  t.src = std::move(src);
  t.dst = std::move(dst);
  t.proto = IPPROTO_ESP;
  t.spi = Spi{spi};
  t.reqid = reqid;
  t.mode = mode;
  t.optional = optional;
  return t;
}

// Kmesh's three policies (kmesh-facts.md §3.4) plus the shapes a reader must not trip on.
const std::vector<PolicyRow>& Rows() {
  static const std::vector<PolicyRow> rows = {
      {{"src", "0.0.0.0/0", "dst", "10.244.1.0/24", "dir", "out", "mark", "0xe0", "mask", "0xffffffff", "tmpl", "src",
        "172.18.0.2", "dst", "172.18.0.3", "proto", "esp", "spi", "0x00000002", "reqid", "1", "mode", "tunnel"},
       Dir::kOut, "0.0.0.0/0", "10.244.1.0/24", 0, 0, 0, {0xe0, 0xffffffff}, Action::kAllow,
       {Tmpl("172.18.0.2", "172.18.0.3", 2, 1, Mode::kTunnel)}},
      {{"src", "0.0.0.0/0", "dst", "10.244.0.0/24", "dir", "in", "mark", "0xd0", "mask", "0xffffffff", "tmpl", "src",
        "172.18.0.3", "dst", "172.18.0.2", "proto", "esp", "reqid", "1", "mode", "tunnel"},
       Dir::kIn, "0.0.0.0/0", "10.244.0.0/24", 0, 0, 0, {0xd0, 0xffffffff}, Action::kAllow,
       {Tmpl("172.18.0.3", "172.18.0.2", 0, 1, Mode::kTunnel)}},
      {{"src", "0.0.0.0/0", "dst", "10.244.0.0/24", "dir", "fwd", "mark", "0xd0", "mask", "0xffffffff", "tmpl", "src",
        "172.18.0.3", "dst", "172.18.0.2", "proto", "esp", "reqid", "1", "mode", "tunnel"},
       Dir::kFwd, "0.0.0.0/0", "10.244.0.0/24", 0, 0, 0, {0xd0, 0xffffffff}, Action::kAllow,
       {Tmpl("172.18.0.3", "172.18.0.2", 0, 1, Mode::kTunnel)}},
      {{"src", "10.1.0.0/16", "dst", "10.2.0.5/32", "proto", "tcp", "dport", "8080", "dir", "out", "priority", "100",
        "action", "block"},
       Dir::kOut, "10.1.0.0/16", "10.2.0.5/32", IPPROTO_TCP, 8080, 100, {0, 0}, Action::kBlock, {}},
      {{"src", "fd00:1::/64", "dst", "fd00:2::/64", "dir", "in", "priority", "7", "tmpl", "src", "fd00::1", "dst",
        "fd00::2", "proto", "esp", "spi", "0x1000", "reqid", "5", "mode", "tunnel", "tmpl", "src", "fd00::1", "dst",
        "fd00::3", "proto", "esp", "reqid", "6", "mode", "tunnel", "level", "use"},
       Dir::kIn, "fd00:1::/64", "fd00:2::/64", 0, 0, 7, {0, 0}, Action::kAllow,
       {Tmpl("fd00::1", "fd00::2", 0x1000, 5, Mode::kTunnel), Tmpl("fd00::1", "fd00::3", 0, 6, Mode::kTunnel, true)}},
  };
  return rows;
}

void AddAll(const Netns& ns) {
  for (const auto& row : Rows()) {
    std::vector<std::string> argv = {"ip", "xfrm", "policy", "add"};
    argv.insert(argv.end(), row.ip_args.begin(), row.ip_args.end());
    RunIn(ns.ref(), argv);
  }
}

const XfrmPolicy* FindPolicy(const std::vector<XfrmPolicy>& ps, Dir dir, const std::string& dst) {
  for (const auto& p : ps)
    if (p.dir == dir && p.selector.dst == dst) return &p;
  return nullptr;
}

void CheckRow(const XfrmPolicy& p, const PolicyRow& row) {
  CHECK(p.selector.src == row.src);
  CHECK(p.selector.dst == row.dst);
  CHECK(int(p.selector.proto) == int(row.sel_proto));
  CHECK(p.selector.dport == row.dport);
  CHECK(p.priority == row.priority);
  CHECK(p.mark == row.mark);
  CHECK(p.action == row.action);
  CHECK_FALSE(p.sub);
  REQUIRE(p.templates.size() == row.tmpls.size());
  for (size_t i = 0; i < row.tmpls.size(); ++i) {
    INFO("template " << i << ": " << p.templates[i].ToString());
    CHECK(p.templates[i] == row.tmpls[i]);
  }
}

// `ip xfrm policy` text, one block per policy: a selector line, then indented lines.
struct IpPolicy {
  std::string sel_src, sel_dst, dir, priority, mark = "", action = "allow";
  std::vector<std::string> tmpl;  // "src A dst B proto esp spi 0x.. reqid 1 mode tunnel"
};

std::vector<IpPolicy> ParseIpXfrmPolicy(const std::string& text) {
  std::vector<IpPolicy> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    std::istringstream w(line);
    std::vector<std::string> t;
    for (std::string x; w >> x;) t.push_back(x);
    auto after = [&](const std::string& key) -> std::string {
      for (size_t i = 0; i + 1 < t.size(); ++i)
        if (t[i] == key) return t[i + 1];
      return "";
    };
    if (line[0] != '\t' && line[0] != ' ') {
      out.emplace_back();
      out.back().sel_src = after("src");
      out.back().sel_dst = after("dst");
    } else if (out.empty()) {
      continue;
    } else if (t[0] == "dir") {
      out.back().dir = t[1];
      out.back().priority = after("priority");
      if (!after("action").empty()) out.back().action = after("action");
    } else if (t[0] == "mark") {
      out.back().mark = t[1];
    } else if (t[0] == "tmpl") {
      out.back().tmpl.push_back("src " + after("src") + " dst " + after("dst"));
    } else if (t[0] == "proto" && !out.back().tmpl.empty()) {
      std::string& last = out.back().tmpl.back();
      last += " proto " + t[1];
      if (!after("spi").empty()) last += " spi " + after("spi");
      last += " reqid " + after("reqid") + " mode " + after("mode");
    } else if (t[0] == "action") {
      out.back().action = t[1];
    }
  }
  return out;
}

std::string TmplAsIp(const XfrmTemplate& t) {
  // iproute2 prints an unset template source as 0.0.0.0 / ::, and spi 0x00000000.
  return "src " + t.src + " dst " + t.dst + " proto " + ProtoName(t.proto) +
         (t.spi.value ? " spi " + t.spi.ToString() : "") + " reqid " + std::to_string(t.reqid) + " mode " + ToString(t.mode);
}

void SaveEvidence(const std::string& name, const nlohmann::json& j) {
  std::ofstream(kmesh::e2e::CaseOutputDir() + "/" + name) << j.dump(2) << "\n";
}

}  // namespace

TEST_CASE("xfrm policies read back over netlink field by field") {
  Netns ns = Netns::Create("xfrmpol");
  AddAll(ns);
  XfrmSnapshot snap = Snapshot(ns.ref());
  SaveEvidence("xfrm_snapshot.json", snap.ToJson());
  CHECK(snap.states.empty());
  REQUIRE(snap.policies.size() == Rows().size());
  for (const auto& row : Rows()) {
    INFO("policy dir " << ToString(row.dir) << " dst " << row.dst);
    const XfrmPolicy* p = FindPolicy(snap.policies, row.dir, row.dst);
    REQUIRE(p != nullptr);
    CheckRow(*p, row);
  }
  CHECK(snap.stats.Has("XfrmOutNoStates"));
  CHECK(snap.ToJson()["policies"].size() == Rows().size());
}

TEST_CASE("the netlink reader agrees with `ip xfrm policy` and with libnl-xfrm on the same namespace") {
  Netns ns = Netns::Create("xfrmcmp");
  AddAll(ns);
  const auto ours = DumpPolicies(ns.ref());

  const auto ip = ParseIpXfrmPolicy(RunIn(ns.ref(), {"ip", "xfrm", "policy", "show"}).out);
  REQUIRE(ip.size() == ours.size());
  for (const auto& p : ours) {
    INFO("policy " << p.Id());
    const IpPolicy* match = nullptr;
    for (const auto& q : ip)
      if (q.dir == ToString(p.dir) && q.sel_dst == p.selector.dst) match = &q;
    REQUIRE(match != nullptr);
    CHECK(match->sel_src == p.selector.src);
    CHECK(match->priority == std::to_string(p.priority));
    CHECK(match->action == ToString(p.action));
    CHECK(match->mark == (p.mark.mask ? p.mark.ToString() : ""));
    REQUIRE(match->tmpl.size() == p.templates.size());
    for (size_t i = 0; i < p.templates.size(); ++i) CHECK(match->tmpl[i] == TmplAsIp(p.templates[i]));
  }

  const auto libnl = DumpPoliciesWithLibnl(ns.ref());
  REQUIRE(libnl.size() == ours.size());
  for (const auto& p : ours) {
    INFO("policy " << p.Id());
    const XfrmPolicy* q = FindPolicy(libnl, p.dir, p.selector.dst);
    REQUIRE(q != nullptr);
    CHECK(q->selector == p.selector);
    CHECK(q->priority == p.priority);
    CHECK(q->index == p.index);
    CHECK(q->mark == p.mark);
    CHECK(q->action == p.action);
    REQUIRE(q->templates.size() == p.templates.size());
    for (size_t i = 0; i < p.templates.size(); ++i) CHECK(q->templates[i] == p.templates[i]);
  }
}

TEST_CASE("xfrm_stat is the namespace's own, and a diff shows policies and error counters moving") {
  Netns ns = Netns::Create("xfrmdiff");
  // Not on lo: loopback routes skip xfrm (disable_xfrm), so the probe goes out of a veth.
  RunIn(ns.ref(), {"ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"});
  RunIn(ns.ref(), {"ip", "addr", "add", "10.66.0.1/24", "dev", "x0"});
  RunIn(ns.ref(), {"ip", "link", "set", "x0", "up"});
  RunIn(ns.ref(), {"ip", "link", "set", "x1", "up"});
  AddAll(ns);
  const XfrmSnapshot before = Snapshot(ns.ref());
  const XfrmStats host_before = ReadXfrmStat(kmesh::netns::NetnsRef::Self());

  // Rotation-like update of the out policy, one policy removed, one added.
  RunIn(ns.ref(), {"ip", "xfrm", "policy", "update", "src", "0.0.0.0/0", "dst", "10.244.1.0/24", "dir", "out", "mark",
                   "0xe0", "mask", "0xffffffff", "tmpl", "src", "172.18.0.2", "dst", "172.18.0.3", "proto", "esp", "spi",
                   "0x00000003", "reqid", "1", "mode", "tunnel"});
  RunIn(ns.ref(), {"ip", "xfrm", "policy", "delete", "src", "0.0.0.0/0", "dst", "10.244.0.0/24", "dir", "fwd", "mark",
                   "0xd0", "mask", "0xffffffff"});
  // An out policy with a template but no state: packets to 10.66.0.9 are dropped as XfrmOutNoStates,
  // which is what a missing egress state looks like.
  RunIn(ns.ref(), {"ip", "xfrm", "policy", "add", "src", "10.66.0.1/32", "dst", "10.66.0.9/32", "dir", "out", "tmpl",
                   "src", "10.66.0.1", "dst", "10.66.0.9", "proto", "esp", "reqid", "9", "mode", "tunnel"});
  kmesh::netns::ProcessOptions in_ns;
  in_ns.netns = ns.ref();
  auto ping = kmesh::netns::Run({"ping", "-c", "1", "-W", "1", "10.66.0.9"}, in_ns);
  CHECK_FALSE(ping.ok());

  const XfrmSnapshot after = Snapshot(ns.ref());
  const SnapshotDiff d = Diff(before, after);
  SaveEvidence("xfrm_diff.json", d.ToJson());
  INFO(d.Describe());
  REQUIRE(d.changed_policies.size() == 1);
  CHECK_THAT(d.changed_policies[0].id, Catch::Contains("dir out") && Catch::Contains("10.244.1.0/24"));
  CHECK(d.changed_policies[0].what == "tmpl spi 0x00000002 -> 0x00000003");
  REQUIRE(d.disappeared_policies.size() == 1);
  CHECK_THAT(d.disappeared_policies[0], Catch::StartsWith("dir fwd src 0.0.0.0/0 dst 10.244.0.0/24"));
  REQUIRE(d.appeared_policies.size() == 1);
  CHECK_THAT(d.appeared_policies[0], Catch::Contains("dst 10.66.0.9/32"));
  CHECK(after.stats.Get("XfrmOutNoStates") > before.stats.Get("XfrmOutNoStates"));
  bool counted = false;
  for (const auto& c : d.ErrorsRaised()) counted = counted || c.name == "XfrmOutNoStates";
  CHECK(counted);
  // The machine's own counters did not see it (the ping ran only in the test namespace).
  CHECK(ReadXfrmStat(kmesh::netns::NetnsRef::Self()).Get("XfrmOutNoStates") == host_before.Get("XfrmOutNoStates"));
}

TEST_CASE("xfrm reads fail with errors that name the namespace and the missing privilege") {
  std::string gone_path;
  {
    Netns ns = Netns::Create("xfrmgone");
    kmesh::netns::NetnsRef ref = ns.ref();
    gone_path = ref.path();
    Netns dropped = std::move(ns);  // destroyed at the end of this scope; `ref` outlives it
  }
  CHECK_THROWS_WITH(kmesh::netns::NetnsRef::Resolve(gone_path), Catch::Contains(gone_path) && Catch::Contains("not found"));

  Netns ns = Netns::Create("xfrmcap");
  kmesh::netns::WithoutCapabilities({CAP_NET_ADMIN}, [&] {
    CHECK_THROWS_WITH(DumpPolicies(ns.ref()), Catch::Contains("xfrm policy dump of network namespace " + ns.name()) &&
                                                  Catch::Contains("EPERM") && Catch::Contains("CAP_NET_ADMIN"));
    CHECK_THROWS_WITH(Snapshot(ns.ref()), Catch::Contains("CAP_NET_ADMIN"));
  });
}

TEST_CASE("the ESP probe agrees with iproute2 about whether this kernel takes an rfc4106 state") {
  const std::string why = EspUnsupportedReason();
  Netns ns = Netns::Create("espagree");
  kmesh::netns::ProcessOptions in_ns;
  in_ns.netns = ns.ref();
  const auto ip = kmesh::netns::Run({"ip", "xfrm", "state", "add", "src", "10.9.0.1", "dst", "10.9.0.2", "proto", "esp", "spi",
                                     "0x100", "reqid", "1", "mode", "tunnel", "aead", "rfc4106(gcm(aes))",
                                     "0x" + std::string(72, '2'), "128"},
                                    in_ns);
  INFO("EspUnsupportedReason: " << (why.empty() ? "(none)" : why) << "; ip: " << ip.Describe());
  CHECK(why.empty() == ip.ok());
  if (!why.empty()) CHECK_THAT(why, Catch::StartsWith("kernel lacks ESP with rfc4106(gcm(aes)): xfrm state add returned "));
}
