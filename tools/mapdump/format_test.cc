// kmesh-mapdump's output formats against golden files (bpf_probe/testdata/mapdump/). On a mismatch the
// actual output is written to the case's evidence folder; to accept a change on purpose, run the test
// binary with KMESH_UPDATE_GOLDEN=<workspace>/bpf_probe/testdata/mapdump and review the diff.
#include <catch2/catch.hpp>

#include <linux/bpf.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/runfiles.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/testing/policy_layout.h"
#include "e2e/framework/case_output.h"
#include "tools/mapdump/commands.h"
#include "tools/mapdump/format.h"

using namespace kmesh::bpf_probe;
using namespace kmesh::net;
using namespace kmesh::mapdump;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void CheckGolden(const std::string& name, const std::string& actual) {
  if (const char* dir = std::getenv("KMESH_UPDATE_GOLDEN"); dir && *dir) {
    std::ofstream(std::string(dir) + "/" + name) << actual;
    return;
  }
  const std::string golden = ReadFile(kmesh::Runfile("bpf_probe/testdata/mapdump/" + name));
  if (golden != actual) {
    const std::string where = kmesh::e2e::CaseOutputDir() + "/" + name;
    std::ofstream(where) << actual;
    INFO("golden bpf_probe/testdata/mapdump/" << name << " differs; actual output written to " << where);
    CHECK(actual == golden);
  }
}

MapInfo Info(uint32_t id, const char* name, uint32_t type, uint32_t k, uint32_t v, uint32_t max, uint32_t flags,
             uint32_t btf) {
  MapInfo i;
  i.id = id;
  i.name = name;
  i.type = type;
  i.key_size = k;
  i.value_size = v;
  i.max_entries = max;
  i.flags = flags;
  i.btf_id = btf;
  return i;
}

std::vector<MapRow> SomeMaps() {
  std::vector<MapRow> rows;
  rows.push_back({Info(12, KM_MAP_AUTH_RES, BPF_MAP_TYPE_HASH, 36, 4, 8192, 1, 40), 3, ""});
  rows.push_back({Info(13, KM_MAP_AUTH_REQ, BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0, 0), std::nullopt, ""});
  rows.push_back({Info(14, KM_MAP_AUTHZ_POLICY, BPF_MAP_TYPE_HASH, 4, 64, 512, 1, 40), 2, ""});
  MapInfo odd = Info(15, KM_MAP_WLPOLICY, BPF_MAP_TYPE_HASH, 4, 8, 512, 1, 0);
  rows.push_back({odd, 0, KmeshLayoutProblem(odd, KM_MAP_WLPOLICY)});
  rows.push_back({Info(16, KM_MAP_XDP_TAILCALL, BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 8, 0, 0), 3, ""});
  return rows;
}

std::vector<AuthEntry> SomeAuth(PortOrder order) {
  std::vector<AuthEntry> out;
  for (auto [t, v] : {std::pair{"10.244.1.5:40001 -> 10.244.2.7:8080", Verdict::kDeny},
                      std::pair{"10.244.1.5:40002 -> 10.244.2.7:8080", Verdict::kAllow},
                      std::pair{"10.244.3.9:51234 -> 10.244.2.7:19090", Verdict::kDeny},
                      std::pair{"[fd00:10:244::5]:40001 -> [fd00:10:244::7]:8080", Verdict::kDeny},
                      std::pair{"10.244.3.9:51235 -> 10.244.2.7:19090", static_cast<Verdict>(7)}}) {
    const Tuple tuple = *Tuple::Parse(t);
    out.push_back(AuthEntry{tuple, v, EncodeTupleKey(tuple, order)});
  }
  return out;
}

ProgramInfo Prog(uint32_t id, const char* name, std::vector<uint32_t> maps, bool stats) {
  ProgramInfo p;
  p.id = id;
  p.name = name;
  p.type = BPF_PROG_TYPE_XDP;
  p.tag = "8e5a1f9b3c2d4e6f";
  p.map_ids = std::move(maps);
  p.stats.collected = stats;
  p.stats.run_cnt = stats ? 1234 : 0;
  p.stats.run_time_ns = stats ? 567890 : 0;
  return p;
}

}  // namespace

TEST_CASE("maps: text and JSON") {
  CheckGolden("maps.txt", FormatMaps("pin folder /sys/fs/bpf/bpf_kmesh_workload/map", SomeMaps(), {KM_MAP_TCARGS},
                                     false));
  CheckGolden("maps.json", FormatMaps("pin folder /sys/fs/bpf/bpf_kmesh_workload/map", SomeMaps(),
                                      {KM_MAP_TCARGS}, true));
  CheckGolden("maps_empty.txt", FormatMaps("kernel map names", {}, {KM_MAP_AUTH_RES, KM_MAP_WLPOLICY}, false));
}

TEST_CASE("auth: one line per tuple, filters, summary, JSON") {
  const auto entries = SomeAuth(PortOrder::kHost);
  struct Case {
    const char* golden;
    AuthFilter filter;
  };
  AuthFilter deny;
  deny.verdict = Verdict::kDeny;
  AuthFilter by_ip;
  by_ip.ip = *IpAddr::Parse("10.244.3.9");
  AuthFilter by_port;
  by_port.port = 19090;
  AuthFilter dst_port;
  dst_port.dst = *IpAddr::Parse("fd00:10:244::7");
  dst_port.dport = 8080;
  const Case kCases[] = {{"auth.txt", {}},
                         {"auth_deny.txt", deny},
                         {"auth_ip.txt", by_ip},
                         {"auth_port.txt", by_port},
                         {"auth_dst_dport.txt", dst_port}};
  for (const auto& c : kCases) {
    CAPTURE(c.golden);
    CheckGolden(c.golden, FormatAuth(entries, c.filter, PortOrder::kHost, false) + "# " +
                              AuthSummary(entries, c.filter, PortOrder::kHost) + "\n");
  }
  CheckGolden("auth.json", FormatAuth(SomeAuth(PortOrder::kNetwork), deny, PortOrder::kNetwork, true));
}

TEST_CASE("policies: workloads with their policy ids, policies present, names given") {
  const std::vector<WorkloadPolicies> wl = {{0x0e65bee4u, {0x442a2c3du, 12345}}, {7, {}}};
  AuthzPolicy deny;
  deny.policy_id = 0x442a2c3du;
  deny.action = PolicyAction::kDeny;
  deny.scope = PolicyScope::kWorkloadSelector;
  deny.n_rules = 1;
  AuthzPolicy allow;
  allow.policy_id = 99;
  allow.action = PolicyAction::kAllow;
  allow.scope = PolicyScope::kNamespace;
  allow.n_rules = 2;
  const std::map<uint32_t, std::string> names = {{0x442a2c3du, "default/deny-by-ip"},
                                                 {0x52c96190u, "ns/name"}};
  CheckGolden("policies.txt", FormatPolicies(wl, {deny, allow}, names, false));
  CheckGolden("policies.json", FormatPolicies(wl, {deny, allow}, names, true));
  // A datapath whose km_authz_policy values are its own format: ids only.
  AuthzPolicy own;
  own.policy_id = 0x442a2c3du;
  own.decoded = false;
  CheckGolden("policies_ids_only.txt", FormatPolicies({}, {own}, names, false));
}

TEST_CASE("frontends and xdp attachments") {
  CheckGolden("frontends.txt", FormatFrontends({{*IpAddr::Parse("10.244.2.7"), 245235428},
                                                {*IpAddr::Parse("fd00:10:244::7"), 42}},
                                               false));
  XdpAttachment lo;
  lo.ifname = "lo";
  lo.ifindex = 1;
  XdpAttachment eth0;
  eth0.ifname = "eth0";
  eth0.ifindex = 2;
  eth0.mode = XdpMode::kNative;
  eth0.programs.push_back({XdpMode::kNative, Prog(42, "xdp_authz", {12, 14, 15, 16}, true)});
  XdpAttachment eth1;
  eth1.ifname = "eth1";
  eth1.ifindex = 3;
  eth1.mode = XdpMode::kGeneric;
  eth1.programs.push_back({XdpMode::kGeneric, Prog(43, "xdp_authz", {12}, false)});
  CheckGolden("xdp.txt", FormatXdp("/run/netns/pod1", {lo, eth0}, false));
  CheckGolden("xdp_stats_off.txt", FormatXdp("/proc/4242/ns/net", {lo, eth1}, false));
  CheckGolden("xdp.json", FormatXdp("/run/netns/pod1", {lo, eth0, eth1}, true));
}

TEST_CASE("usage and command-line errors") {
  CheckGolden("usage.txt", Usage());
  // Each bad command line: exit code 2 and a message naming what was wrong (no kernel needed).
  const std::vector<std::vector<std::string>> kBad = {
      {},
      {"bogus"},
      {"auth", "--port", "70000"},
      {"auth", "--ip", "10.0.0.300"},
      {"auth", "--verdict", "drop"},
      {"auth", "--port-order", "little"},
      {"auth", "extra"},
      {"maps", "--frobnicate"},
      {"maps", "--prog"},
      {"xdp"},
      {"xdp", "--netns", "a", "--pid", "1"},
      {"dump"},
      {"policies", "--name", "no-slash", "--by-name"},
      {"explain", "10.244.1.5:40001"},
      {"explain", "10.244.1.5:40001", "10.244.2.7"},
      {"explain", "10.244.1.5", "[fd00::7]:8080"},
      {"explain", "10.244.1.5:99999", "10.244.2.7:8080"},
      {"explain", "[fd00::5", "[fd00::7]:8080"},
      {"explain", "10.244.1.5", "10.244.2.7:8080", "--port-order", "network"},
      {"residue", "extra"},
      {"residue", "--limit", "x"},
      {"watch", "--interval", "0"},
      {"watch", "--count"},
  };
  std::string transcript;
  for (const auto& args : kBad) {
    int pipefd[2];
    REQUIRE(pipe(pipefd) == 0);
    const int rc = Run(args, pipefd[1], pipefd[1]);
    close(pipefd[1]);
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
    close(pipefd[0]);
    std::string line = "$ kmesh-mapdump";
    for (const auto& a : args) line += " " + a;
    if (args.empty()) text = text.substr(0, text.find('\n') + 1) + "[usage text]\n";
    transcript += line + "\nexit " + std::to_string(rc) + "\n" + text + "\n";
    CHECK(rc == kExitUsage);
  }
  CheckGolden("errors.txt", transcript);
}

// --- policies in full and explain, on policies laid out like Kmesh's deserializer lays them out ---------

namespace {

using kmesh::bpf_probe::testing::Cidr;
using kmesh::bpf_probe::testing::Exact;
using kmesh::bpf_probe::testing::InMemoryXdpMaps;
using kmesh::bpf_probe::testing::PolicyLayout;

DecodedPolicy Policy(const std::string& ns, const std::string& name, PolicyScope scope, PolicyAction action,
                     std::vector<PolicyRule> rules) {
  DecodedPolicy p;
  p.ns = ns;
  p.name = name;
  p.scope_raw = static_cast<uint32_t>(scope);
  p.action_raw = static_cast<uint32_t>(action);
  p.rules = std::move(rules);
  return p;
}

PolicyRule RuleOf(std::vector<PolicyMatch> clause_matches) {
  PolicyRule r;
  for (auto& m : clause_matches) r.clauses.push_back(PolicyClause{{m}, ""});
  return r;
}

std::array<uint8_t, 16> FrontendKey(const std::string& ip) {
  std::array<uint8_t, 16> k{};
  const IpAddr a = *IpAddr::Parse(ip);
  std::copy(a.data(), a.data() + a.size(), k.begin());
  return k;
}

// A node: httpbin (10.244.2.7, workload 77) with a DENY on one client's IP and an ALLOW on port 8080 or a
// second client (its second rule, which Kmesh reads at a byte offset, D10); echo (10.244.2.8, workload 78)
// with a DENY on a namespace and port 9999; a namespace-wide ALLOW no km_wlpolicy lists (D30).
struct Node {
  InMemoryXdpMaps maps;
  uint32_t deny = PolicyId("test-ns1", "deny-by-ip"), allow = PolicyId("test-ns1", "allow-8080"),
           ns_deny = PolicyId("test-ns1", "deny-ns-a"), wide = PolicyId("test-ns1", "namespace-wide");
  Node() {
    PolicyLayout layout(maps.memory);
    PolicyMatch a;
    a.source_ips = {Cidr("10.244.1.5/32")};
    layout.Write(deny, Policy("test-ns1", "deny-by-ip", PolicyScope::kWorkloadSelector, PolicyAction::kDeny, {RuleOf({a})}));
    PolicyMatch port;
    port.destination_ports = {8080};
    PolicyMatch second;
    second.source_ips = {Cidr("10.244.1.9/32")};
    layout.Write(allow, Policy("test-ns1", "allow-8080", PolicyScope::kWorkloadSelector, PolicyAction::kAllow,
                               {RuleOf({port}), RuleOf({second})}));
    PolicyMatch ns;
    ns.namespaces = {Exact("ns-a")};
    ns.destination_ports = {9999};
    layout.Write(ns_deny, Policy("test-ns1", "deny-ns-a", PolicyScope::kWorkloadSelector, PolicyAction::kDeny, {RuleOf({ns})}));
    layout.Write(wide, Policy("test-ns1", "namespace-wide", PolicyScope::kNamespace, PolicyAction::kAllow, {PolicyRule{}}));
    maps.frontend[FrontendKey("10.244.2.7")] = 77;
    maps.frontend[FrontendKey("10.244.2.8")] = 78;
    maps.wlpolicy[77] = {deny, allow, 0, 0};
    maps.wlpolicy[78] = {ns_deny, 0, 0, 0};
    maps.auth_res[EncodeTupleKey(*Tuple::Parse("10.244.1.6:40004 -> 10.244.2.7:8080"))] = KM_AUTH_DENY;
  }
  std::string Explain(const std::string& tuple, bool json = false) {
    const XdpExplanation e = ExplainXdp(*Tuple::Parse(tuple), maps);
    return json ? FormatExplainJson(e, true, {}) : FormatExplainText(e, true, {});
  }
};

}  // namespace

TEST_CASE("policies in full: rules -> clauses -> matches, the workloads listing each, broken chains") {
  Node n;
  const std::vector<DecodedPolicy> decoded = DecodePolicies(n.maps.memory);
  const std::vector<WorkloadPolicies> wl = {{77, {n.deny, n.allow}}, {78, {n.ns_deny}}};
  std::vector<AuthzPolicy> summary;
  for (const auto& d : decoded) {
    AuthzPolicy p;
    p.policy_id = d.key;
    p.action = d.action();
    p.scope = d.scope();
    p.n_rules = d.n_rules;
    summary.push_back(p);
  }
  CheckGolden("policies_full.txt", FormatPolicies(wl, summary, {}, false, &decoded));
  CheckGolden("policies_full.json", FormatPolicies(wl, summary, {}, true, &decoded));
  CheckGolden("policies_full_named.txt",
              FormatPolicies(wl, summary, {{n.allow, "test-ns1/allow-8080"}}, false, &decoded));

  // The ALLOW's second rule loses its blob: reported where the chain breaks, the rest still shown.
  PolicyMemorySnapshot broken;
  const DecodedPolicy allow = DecodePolicy(n.allow, *n.maps.memory.Policy(n.allow), n.maps.memory);
  BlobRef second_rule{};  // the layout hands out the second rule's kmesh_map64 index last
  for (const auto& b : allow.blobs) {
    if (b.map == InnerMap::k64) second_rule = b;
  }
  for (const auto& [ref, v] : n.maps.memory.blobs()) {
    if (!(ref == second_rule)) broken.PutBlob(ref, v);
  }
  broken.PutPolicy(n.allow, *n.maps.memory.Policy(n.allow));
  const std::vector<DecodedPolicy> one = DecodePolicies(broken);
  CheckGolden("policies_broken.txt", FormatPolicyDetails(one, wl));
}

TEST_CASE("explain: which entry decides, and why, for each way xdp_authz ends") {
  Node n;
  CheckGolden("explain_deny_match.txt", n.Explain("10.244.1.5:40001 -> 10.244.2.7:8080"));
  CheckGolden("explain_deny_match.json", n.Explain("10.244.1.5:40001 -> 10.244.2.7:8080", true));
  CheckGolden("explain_allow_match.txt", n.Explain("10.244.1.6:40002 -> 10.244.2.7:8080"));
  // 10.244.1.9 is in the ALLOW's second rule, which Kmesh reads at byte offset 1 (D10): dropped.
  CheckGolden("explain_second_rule.txt", n.Explain("10.244.1.9:40003 -> 10.244.2.7:9090"));
  CheckGolden("explain_cached_stale.txt", n.Explain("10.244.1.6:40004 -> 10.244.2.7:8080"));
  CheckGolden("explain_no_frontend.txt", n.Explain("10.244.1.6:40005 -> 10.244.3.3:8080"));
  CheckGolden("explain_userspace.txt", n.Explain("10.244.1.6:40006 -> 10.244.2.8:8080"));
  // No source port: the walk of a new connection, and the verdicts cached for any port.
  Tuple t = *Tuple::Parse("10.244.1.6:0 -> 10.244.2.7:8080");
  const XdpExplanation e = ExplainXdp(t, n.maps, false);
  CheckGolden("explain_any_port.txt",
              FormatExplainText(e, false, {{*Tuple::Parse("10.244.1.6:40004 -> 10.244.2.7:8080"), KM_AUTH_DENY}}));
}

TEST_CASE("residue: unreachable blobs, km_tcargs entries, verdicts without a connection, baseline changes") {
  ResidueReport r;
  r.source = "pin folder /sys/fs/bpf/bpf_kmesh_workload/map";
  r.blobs = 40;
  r.blobs_reached = 33;
  r.policies = 3;
  r.unreachable[InnerMap::k64] = {17, 18, 23, 24, 31, 32};
  r.unreachable[InnerMap::k1600] = {9};
  r.broken_policies = {"test-ns1/x: rules[0]: kmesh_map64[5] is missing (a Rule)"};
  TcArgs ctx;
  ctx.policy_index = 1;
  ctx.auth_result = 1;
  ctx.n_rules = 1;
  r.tcargs = {{*Tuple::Parse("10.244.1.6:40002 -> 10.244.2.7:8080"), ctx}};
  r.auth_entries = 2;
  r.connections_checked = true;
  r.namespaces_checked = 12;
  r.auth_without_connection = {{*Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080"), Verdict::kDeny}};
  const std::vector<CountChange> changes =
      CompareEntryCounts(std::map<std::string, uint64_t>{{"kmesh_map64", 11}, {"km_tcargs", 0}, {"km_old", 2}},
                         std::map<std::string, uint64_t>{{"kmesh_map64", 17}, {"km_tcargs", 1}, {"km_new", 1}});
  CheckGolden("residue.txt", FormatResidue(r, &changes, "before.json", 5, false));
  CheckGolden("residue.json", FormatResidue(r, &changes, "before.json", 5, true));
  ResidueReport clean;
  clean.source = "program 42 (xdp_authz)";
  clean.connections_checked = true;
  clean.namespaces_checked = 3;
  const std::vector<CountChange> none;
  CheckGolden("residue_clean.txt", FormatResidue(clean, &none, "before.json", 5, false));
}

TEST_CASE("watch: one line per change, with a UTC timestamp, decoded for Kmesh's maps") {
  const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796030462123));
  const TupleKey key = EncodeTupleKey(*Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080"));
  const Bytes k(key.begin(), key.end());
  const Bytes deny = {1, 0, 0, 0}, allow = {0, 0, 0, 0};
  Bytes wl_before(16, 0), wl_after(16, 0);
  wl_before[0] = wl_after[0] = 7;
  wl_after[4] = 9;
  const std::vector<MapChange> changes = {
      {MapChange::Kind::kAdded, KM_MAP_AUTH_RES, 12, k, {}, deny},
      {MapChange::Kind::kChanged, KM_MAP_AUTH_RES, 12, k, deny, allow},
      {MapChange::Kind::kRemoved, KM_MAP_AUTH_RES, 12, k, allow, {}},
      {MapChange::Kind::kChanged, KM_MAP_WLPOLICY, 13, {77, 0, 0, 0}, wl_before, wl_after},
      {MapChange::Kind::kRemoved, "kmesh_map64", 14, {17, 0, 0, 0}, Bytes(64, 0), {}},
      {MapChange::Kind::kAdded, "other_map", 15, {1, 2}, {}, {0xab, 0xcd}},
  };
  std::string text, json;
  for (const auto& c : changes) {
    text += FormatWatchLine(when, c, PortOrder::kHost, false);
    json += FormatWatchLine(when, c, PortOrder::kHost, true);
  }
  CheckGolden("watch.txt", text);
  CheckGolden("watch.jsonl", json);
}
