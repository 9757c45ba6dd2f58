// KmeshPolicyWriter against Kmesh's own XDP datapath (//third_party/kmesh:xdp, loaded by
// KmeshAuthzDatapath into a bpffs of the test's own): policies translated from AuthorizationPolicy as
// istiod does, written by a node's kmesh-lab-daemon with Kmesh's C deserializer, read back two ways
// (Kmesh's deserial_lookup_elem and the project's km_authz_policy decoder), and judged by Kmesh's own
// xdp_authz -> policies_check -> policy_check on crafted SYNs (BPF_PROG_TEST_RUN). What policy_check
// writes to km_auth_res is Kmesh's: the test writes nothing there.
//
// Cases tagged [!shouldfail] reproduce Kmesh defects at the pinned commit; each names its evidence.
// The datapath is loaded once for the binary (the verifier spends ~2.7 s of CPU per load).
#include "e2e/lab/kmesh_policy_writer.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "base/names.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/verdict.h"
#include "e2e/lab/kmesh_daemon_protocol.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/lab/workload_authz.h"
#include "e2e/policy/policy.h"
#include "net/tuple.h"

namespace bp = kmesh::bpf_probe;
namespace wa = kmesh::lab::workloadapi;
using kmesh::lab::KmeshAuthzDatapath;
using kmesh::lab::KmeshPolicyWriter;
using kmesh::lab::NodeBpffs;
using kmesh::lab::WorkloadSpec;

namespace {

// One lab node: its bpffs, Kmesh's datapath pinned in it, and its kmesh-lab-daemon.
struct Node {
  std::string name;
  kmesh::ScratchDir work{"kmpw-test"};
  NodeBpffs bpffs;
  std::unique_ptr<KmeshAuthzDatapath> dp;
  std::unique_ptr<KmeshPolicyWriter> writer;

  explicit Node(std::string node_name)
      : name(std::move(node_name)),
        bpffs(NodeBpffs::Mount(work.path, name)),
        dp(KmeshAuthzDatapath::Load(bpffs)) {
    StartWriter();
  }
  ~Node() {
    writer.reset();  // the daemon first, then the maps it writes
    dp.reset();
  }
  void StartWriter() {
    kmesh::lab::PolicyWriterOptions o;
    o.node_name = name;
    o.pin_dir = dp->pin_dir();
    o.state_dir = work.path + "/state";
    writer = std::make_unique<KmeshPolicyWriter>(o);
  }

  bp::XdpAction Run(const kmesh::net::Tuple& t) const {
    return bp::TestRunXdp(dp->prog_fd("xdp_authz"), t).action;
  }
  std::optional<bp::Verdict> Cached(const kmesh::net::Tuple& t) const {
    return bp::AuthResultMap(dp->OpenMap(KM_MAP_AUTH_RES)).Lookup(t);
  }
};

Node& NodeB() {
  static std::unique_ptr<Node> node = std::make_unique<Node>("node-b");
  return *node;
}

// A selector policy on app=httpbin in test-ns1, translated as istiod does.
wa::Authorization Policy(const std::string& name, const std::string& action, const std::string& rules) {
  auto v = kmesh::policy::ParseManifests(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
      "metadata: {name: " +
          name +
          ", namespace: test-ns1}\n"
          "spec:\n  selector: {matchLabels: {app: httpbin}}\n  action: " +
          action + "\n  rules:\n" + rules + "\n",
      name + ".yaml");
  REQUIRE(v.size() == 1);
  return wa::Translate(v[0]);
}

// The httpbin pod on node-b, selected by `policies`.
WorkloadSpec Httpbin(std::vector<std::string> policies, const std::string& ip = "10.244.2.7") {
  WorkloadSpec w;
  w.uid = "Kubernetes//Pod/test-ns1/httpbin-" + ip;
  w.node = "node-b";
  w.addresses = {ip};
  w.policies = std::move(policies);
  return w;
}

// Each SYN gets a fresh source port: km_auth_res caches per 4-tuple and Kmesh never deletes a deny
// cached for a dropped SYN.
kmesh::net::Tuple Syn(const std::string& src, const std::string& dst = "10.244.2.7:8000") {
  static uint16_t port = 40000;
  return *kmesh::net::Tuple::Parse(src + ":" + std::to_string(++port) + " -> " + dst);
}

// The maps the daemon writes, but kmesh_map64: Kmesh's deserializer never frees an Address's bytes blob
// there (see the [kmesh-defect] case on it), so its count only says how many addresses were ever written.
const char* const kWriterMaps[] = {"km_authz_policy", "kmesh_map192", "kmesh_map296",
                                   "kmesh_map1600",   "km_frontend",  "km_wlpolicy"};

// The residue in those maps, one line per map ("km_wlpolicy: 0 -> 1 entries").
std::vector<std::string> WriterResidue(const std::map<std::string, kmesh::lab::MapEntryCount>& baseline,
                                       const std::string& pin_dir) {
  std::vector<std::string> out;
  for (const auto& line : kmesh::lab::ResidueAgainst(baseline, kmesh::lab::CountMapEntries(pin_dir))) {
    for (const char* m : kWriterMaps) {
      if (line.rfind(std::string(m) + ":", 0) == 0) out.push_back(line);
    }
  }
  return out;
}

uint64_t Entries(const std::string& pin_dir, const std::string& map) {
  return kmesh::lab::CountMapEntries(pin_dir).at(map).entries.value();
}

// Removes a policy and the workload the way Kmesh sees it: the Authorization is removed, istiod pushes the
// workload with an empty list, then the workload goes.
void RemoveAll(Node& n, const std::vector<std::string>& policies, const WorkloadSpec& w) {
  for (const auto& p : policies) CHECK(n.writer->RemoveAuthorization(p).ret == 0);
  WorkloadSpec emptied = w;
  emptied.policies.clear();
  n.writer->StoreWorkload(emptied);
  CHECK(n.writer->RemoveWorkload(w.uid));
}

std::string Bytes(const bp::Map& m, uint32_t key) {
  auto v = m.Lookup(bp::ByteView(reinterpret_cast<const uint8_t*>(&key), 4));
  return v ? std::string(v->begin(), v->end()) : std::string();
}

}  // namespace

TEST_CASE("a DENY ipBlocks policy, written like Kmesh's daemon, drops the listed client in Kmesh's XDP") {
  Node& n = NodeB();
  const auto baseline = kmesh::lab::CountMapEntries(n.dp->pin_dir());
  const WorkloadSpec w = Httpbin({"test-ns1/deny-ip"});
  const auto wl = n.writer->StoreWorkload(w);
  const wa::Authorization a =
      Policy("deny-ip", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}])");
  const auto t0 = std::chrono::steady_clock::now();
  const auto written = n.writer->ApplyAuthorization(a);
  WARN("ApplyAuthorization (pipe + Kmesh's deserializer) took "
       << std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()
       << " us");
  CHECK(written.policy_id == bp::PolicyId("test-ns1", "deny-ip"));
  REQUIRE(written.stored_key == written.policy_id);  // a name without a zero byte in its id

  SECTION("read back by Kmesh's deserial_lookup_elem: the same policy") {
    auto back = n.writer->LookupAuthorization("test-ns1/deny-ip");
    REQUIRE(back.has_value());
    CHECK(wa::ToJson(*back) == wa::ToJson(a));
  }
  SECTION("read back by the project's decoder: Kmesh's layout, outer keys into kmesh_map192") {
    const bp::AuthzPolicyMap policies(n.dp->OpenMap(KM_MAP_AUTHZ_POLICY));
    CHECK(policies.value_layout_problem().empty());
    const auto entries = policies.Entries();
    REQUIRE(entries.size() == 1);
    const auto& e = entries[0];
    CHECK(e.policy_id == written.policy_id);
    CHECK(e.decoded);
    CHECK(e.action == bp::PolicyAction::kDeny);
    CHECK(e.scope == bp::PolicyScope::kWorkloadSelector);
    CHECK(e.n_rules == 1);
    // Strings go to kmesh_map192 (MAP_VAL_STR_SIZE, inner_map_defs.h:22): type 1 in the top byte.
    CHECK((e.name_outer_key >> 24) == 1);
    CHECK((e.namespace_outer_key >> 24) == 1);
    const bp::Map map192 = n.dp->OpenMap("kmesh_map192");
    CHECK(Bytes(map192, e.name_outer_key & 0xffffff).substr(0, 8) == std::string("deny-ip\0", 8));
    CHECK(Bytes(map192, e.namespace_outer_key & 0xffffff).substr(0, 9) == std::string("test-ns1\0", 9));
  }
  SECTION("km_wlpolicy and km_frontend as the workload processor writes them") {
    CHECK(wl.workload_id == bp::WorkloadId(w.uid));
    CHECK(wl.wlpolicy_written);
    auto listed = bp::WorkloadPolicyMap(n.dp->OpenMap(KM_MAP_WLPOLICY)).Lookup(wl.workload_id);
    REQUIRE(listed.has_value());
    CHECK(listed->policy_ids == std::vector<uint32_t>{written.policy_id});
    CHECK(bp::FrontendMap(n.dp->OpenMap(KM_MAP_FRONTEND)).Lookup(*kmesh::net::IpAddr::Parse("10.244.2.7")) ==
          wl.workload_id);
  }
  SECTION("Kmesh's xdp_authz drops the listed client, and policy_check caches DENY for that tuple") {
    const auto denied = Syn("10.244.1.5");
    CHECK(n.Run(denied) == bp::XdpAction::kDrop);
    CHECK(n.Cached(denied) == bp::Verdict::kDeny);
    const auto other = Syn("10.244.1.6");
    CHECK(n.Run(other) == bp::XdpAction::kPass);
    CHECK_FALSE(n.Cached(other).has_value());
  }

  RemoveAll(n, {"test-ns1/deny-ip"}, w);
  CHECK_FALSE(n.writer->LookupAuthorization("test-ns1/deny-ip").has_value());
  CHECK(WriterResidue(baseline, n.dp->pin_dir()) == std::vector<std::string>{});
}

TEST_CASE("an ALLOW that matches nobody drops other clients uncached; the allowed client is cached ALLOW") {
  Node& n = NodeB();
  const auto baseline = kmesh::lab::CountMapEntries(n.dp->pin_dir());
  const WorkloadSpec w = Httpbin({"test-ns1/allow-ip"});
  n.writer->StoreWorkload(w);
  n.writer->ApplyAuthorization(
      Policy("allow-ip", "ALLOW", R"(  - from: [{source: {ipBlocks: ["10.244.1.9/32"]}}])"));

  const auto other = Syn("10.244.1.5");
  CHECK(n.Run(other) == bp::XdpAction::kDrop);
  CHECK_FALSE(n.Cached(other).has_value());  // the fall-through verdict is never cached (authz.h:677-689)
  const auto allowed = Syn("10.244.1.9");
  CHECK(n.Run(allowed) == bp::XdpAction::kPass);
  CHECK(n.Cached(allowed) == bp::Verdict::kAllow);

  RemoveAll(n, {"test-ns1/allow-ip"}, w);
  CHECK(WriterResidue(baseline, n.dp->pin_dir()) == std::vector<std::string>{});
}

TEST_CASE("ports: every entry of the list is enforced, whatever its position; notPorts excludes") {
  Node& n = NodeB();
  const WorkloadSpec w = Httpbin({"test-ns1/deny-ports"});
  n.writer->StoreWorkload(w);
  n.writer->ApplyAuthorization(
      Policy("deny-ports", "DENY", R"(  - to: [{operation: {ports: ["9090", "8000", "80", "443"]}}])"));
  for (const char* port : {"9090", "8000", "80", "443"}) {
    INFO("port " << port);
    CHECK(n.Run(Syn("10.244.1.5", std::string("10.244.2.7:") + port)) == bp::XdpAction::kDrop);
  }
  CHECK(n.Run(Syn("10.244.1.5", "10.244.2.7:8080")) == bp::XdpAction::kPass);
  RemoveAll(n, {"test-ns1/deny-ports"}, w);
}

TEST_CASE("more than 4 policies: Kmesh lists the first 4 in istiod's order and drops the rest") {
  Node& n = NodeB();
  const std::vector<std::string> names = {"test-ns1/p1", "test-ns1/p2", "test-ns1/p3", "test-ns1/p4",
                                          "test-ns1/p5"};
  const WorkloadSpec w = Httpbin(names);
  const auto wl = n.writer->StoreWorkload(w);
  CHECK(wl.dropped == std::vector<std::string>{"test-ns1/p5"});
  std::vector<uint32_t> first4;
  for (size_t i = 0; i < 4; ++i) first4.push_back(*n.writer->IdOf(names[i]));
  CHECK(wl.policy_ids == first4);
  CHECK(bp::WorkloadPolicyMap(n.dp->OpenMap(KM_MAP_WLPOLICY)).Lookup(wl.workload_id)->policy_ids == first4);
  CHECK_FALSE(n.writer->IdOf("test-ns1/p5").has_value());  // Kmesh never hashes a dropped name
  CHECK(n.writer->RemoveWorkload(w.uid));
}

TEST_CASE("an emptied policy list leaves the workload's km_wlpolicy entry, as Kmesh does") {
  Node& n = NodeB();
  const WorkloadSpec w = Httpbin({"test-ns1/deny-ip"});
  const auto wl = n.writer->StoreWorkload(w);
  WorkloadSpec emptied = w;
  emptied.policies.clear();
  CHECK_FALSE(n.writer->StoreWorkload(emptied).wlpolicy_written);
  // storeWorkloadPolicies returns early on an empty list (workload_processor.go:1183-1185).
  const bp::WorkloadPolicyMap wlp(n.dp->OpenMap(KM_MAP_WLPOLICY));
  REQUIRE(wlp.Lookup(wl.workload_id).has_value());
  CHECK(wlp.Lookup(wl.workload_id)->policy_ids == std::vector<uint32_t>{*n.writer->IdOf("test-ns1/deny-ip")});
  CHECK(n.writer->RemoveWorkload(w.uid));
  CHECK_FALSE(wlp.Lookup(wl.workload_id).has_value());
}

// --- Kmesh defects at the pinned commit ------------------------------------------------------------------

// match_ip_common indexes its list of outer keys as `void *` (&ipPtrs[i], &notIpPtrs[i]): GNU C steps one
// byte, so entry i > 0 is read from bytes i..i+7 of the first key's slot and names no Address.
TEST_CASE(
    "Istio: every ipBlocks entry is enforced, whatever its position (Kmesh defect: "
    "bpf/kmesh/workload/include/authz.h:361,393 read entry i at byte offset i)",
    "[!shouldfail][kmesh-defect][D5]") {
  Node& n = NodeB();
  const WorkloadSpec w = Httpbin({"test-ns1/deny-ips"});
  n.writer->StoreWorkload(w);
  n.writer->ApplyAuthorization(Policy(
      "deny-ips", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5", "10.244.1.6", "10.244.1.7"]}}])"));
  for (const char* ip : {"10.244.1.5", "10.244.1.6", "10.244.1.7"}) {
    INFO("client " << ip << " (entry " << (ip[9] - '5') << " of ipBlocks)");
    CHECK(n.Run(Syn(ip)) == bp::XdpAction::kDrop);
  }
  RemoveAll(n, {"test-ns1/deny-ips"}, w);
}

// policy_check reads rule i with bpf_probe_read_kernel(&rule_addr, 8, &rulesPtr[i]) where rulesPtr is a
// `void *`: byte offset i, so only the first rule is ever evaluated.
TEST_CASE(
    "Istio: every rule of a policy is evaluated (Kmesh defect: bpf/kmesh/workload/include/authz.h:643 reads "
    "rule i at byte offset i)",
    "[!shouldfail][kmesh-defect][D10]") {
  Node& n = NodeB();
  const WorkloadSpec w = Httpbin({"test-ns1/deny-rules"});
  n.writer->StoreWorkload(w);
  n.writer->ApplyAuthorization(
      Policy("deny-rules", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}]
  - from: [{source: {ipBlocks: ["10.244.1.6"]}}])"));
  CHECK(n.Run(Syn("10.244.1.5")) == bp::XdpAction::kDrop);
  INFO("the second rule's client");
  CHECK(n.Run(Syn("10.244.1.6")) == bp::XdpAction::kDrop);
  RemoveAll(n, {"test-ns1/deny-rules"}, w);
}

// deserial_update_elem copies the u32 policy id into the map key with strncpy (normalize_key), so an id
// with a zero byte is stored under a truncated key; XDP looks the policy up by the full id and misses it.
TEST_CASE(
    "Istio: a policy is enforced whatever its name (Kmesh defect: deserialization_to_bpf_map.c:91-106 "
    "strncpy's the policy id; authz.h:572-577 misses it)",
    "[!shouldfail][kmesh-defect][D8]") {
  // A policy name whose FNV-32a id has a zero byte before its last (about 1 name in 85).
  std::string name;
  for (int i = 0; name.empty(); ++i) {
    const std::string candidate = "zero-byte-" + std::to_string(i);
    const uint32_t id = bp::PolicyId("test-ns1", candidate);
    if (kmesh::lab::daemon_protocol::DeserializerStoredKey(id) != id) name = candidate;
  }
  Node& n = NodeB();
  const WorkloadSpec w = Httpbin({"test-ns1/" + name});
  n.writer->StoreWorkload(w);
  const auto written = n.writer->ApplyAuthorization(
      Policy(name, "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}])"));
  INFO("policy test-ns1/" << name << ": id " << written.policy_id << ", stored under key "
                          << written.stored_key);
  const bp::AuthzPolicyMap policies(n.dp->OpenMap(KM_MAP_AUTHZ_POLICY));
  CHECK(policies.Contains(written.stored_key));  // where Kmesh's deserializer put it
  CHECK(n.writer->LookupAuthorizationById(written.policy_id).has_value());  // the deserializer finds it again
  CHECK(policies.Contains(written.policy_id));  // what km_wlpolicy lists and XDP looks up
  CHECK(n.Run(Syn("10.244.1.5")) == bp::XdpAction::kDrop);
  RemoveAll(n, {"test-ns1/" + name}, w);
}

// The DENY policy_check caches for a dropped SYN is never deleted: only sockops' close (clean_auth_map) and
// xdp_shutdown_in_userspace delete km_auth_res entries, and no connection ever existed. xdp_authz writes
// km_tcargs before the tail calls; only a match deletes it, so every fall-through verdict leaves one.
TEST_CASE(
    "Istio: once the policy is gone, every Kmesh map is at its baseline and the client is unblocked (Kmesh "
    "defect: xdp.c:111 and authz.h:586, 668-689 leave km_auth_res and km_tcargs entries behind)",
    "[!shouldfail][kmesh-defect][D3]") {
  Node& n = NodeB();
  const auto baseline = kmesh::lab::CountMapEntries(n.dp->pin_dir());
  const WorkloadSpec w = Httpbin({"test-ns1/deny-then-gone"});
  n.writer->StoreWorkload(w);
  n.writer->ApplyAuthorization(
      Policy("deny-then-gone", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}])"));
  const auto denied = Syn("10.244.1.5");
  REQUIRE(n.Run(denied) == bp::XdpAction::kDrop);
  REQUIRE(n.Run(Syn("10.244.1.6")) == bp::XdpAction::kPass);
  RemoveAll(n, {"test-ns1/deny-then-gone"}, w);

  CHECK(WriterResidue(baseline, n.dp->pin_dir()) ==
        std::vector<std::string>{});  // what the daemon wrote is gone
  const auto residue = kmesh::lab::ResidueAgainst(baseline, kmesh::lab::CountMapEntries(n.dp->pin_dir()));
  std::string listed;
  for (const auto& r : residue) listed += "\n  " + r;
  INFO("maps not back to baseline:" << listed);
  CHECK(residue.empty());
  INFO("the same 4-tuple, policy and workload gone");
  CHECK(n.Run(denied) == bp::XdpAction::kPass);
}

// del_bpf_map -> field_del frees only message and string fields; a `bytes` field (Address.address) keeps
// its kmesh_map64 blob and its index stays allocated. deserial_update_elem deletes the old policy first
// (line 686), so every update of a policy leaks too.
TEST_CASE(
    "Kmesh: removing a policy frees every inner-map entry it used (Kmesh defect: "
    "deserialization_to_bpf_map.c:1190-1226 never deletes an Address's bytes blob from kmesh_map64)",
    "[!shouldfail][kmesh-defect][D9]") {
  Node& n = NodeB();
  const std::string pins = n.dp->pin_dir();
  const uint64_t before = Entries(pins, "kmesh_map64");
  const auto p = Policy("leak", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5", "10.244.1.6"]}}]
    when: [{key: destination.ip, values: ["10.244.2.7"]}])");
  n.writer->ApplyAuthorization(p);
  n.writer->ApplyAuthorization(p);  // istiod pushes the same policy again
  CHECK(n.writer->RemoveAuthorization("test-ns1/leak").ret == 0);
  const uint64_t after = Entries(pins, "kmesh_map64");
  INFO("kmesh_map64: " << before << " entries before, " << after << " after (3 addresses, written twice)");
  CHECK(after == before);
}

// --- the daemon design ---------------------------------------------------------------------------------

TEST_CASE("two nodes, two daemons: each node's deserializer writes only that node's maps") {
  Node& b = NodeB();
  Node a("node-a");
  const auto base_a = kmesh::lab::CountMapEntries(a.dp->pin_dir());
  const auto base_b = kmesh::lab::CountMapEntries(b.dp->pin_dir());
  CHECK(a.writer->daemon_pid() != b.writer->daemon_pid());

  WorkloadSpec wa_spec = Httpbin({"test-ns1/deny-ip"});
  wa_spec.node = "node-a";
  a.writer->StoreWorkload(wa_spec);
  a.writer->ApplyAuthorization(
      Policy("deny-ip", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}])"));
  CHECK(WriterResidue(base_b, b.dp->pin_dir()) == std::vector<std::string>{});  // node-b untouched
  CHECK_FALSE(b.writer->LookupAuthorization("test-ns1/deny-ip").has_value());
  CHECK(a.Run(Syn("10.244.1.5")) == bp::XdpAction::kDrop);
  CHECK(b.Run(Syn("10.244.1.5")) == bp::XdpAction::kPass);

  // The same policy on node-b too: each deserializer allocates its own inner-map indexes.
  const WorkloadSpec wb_spec = Httpbin({"test-ns1/deny-ip"});
  b.writer->StoreWorkload(wb_spec);
  b.writer->ApplyAuthorization(
      Policy("deny-ip", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.5"]}}])"));
  RemoveAll(a, {"test-ns1/deny-ip"}, wa_spec);
  CHECK(WriterResidue(base_a, a.dp->pin_dir()) == std::vector<std::string>{});
  auto still = b.writer->LookupAuthorization("test-ns1/deny-ip");
  REQUIRE(still.has_value());
  CHECK(still->rules.size() == 1);
  CHECK(b.Run(Syn("10.244.1.5")) == bp::XdpAction::kDrop);
  RemoveAll(b, {"test-ns1/deny-ip"}, wb_spec);
  CHECK(WriterResidue(base_b, b.dp->pin_dir()) == std::vector<std::string>{});
}

TEST_CASE("a restarted daemon keeps every name's id and leaves the policies already written intact") {
  // A fresh node: its inner-map indexes start at 1, so a restarted deserializer that forgot which ones
  // are taken (maps_restore, deserialization_to_bpf_map.c:1427-1460) would hand them out again and
  // overwrite the first policy's blobs.
  Node n("node-r");
  WorkloadSpec w = Httpbin({"test-ns1/before-restart", "test-ns1/after-restart"});
  w.node = n.name;
  n.writer->StoreWorkload(w);
  const wa::Authorization before =
      Policy("before-restart", "DENY",
             R"(  - from: [{source: {ipBlocks: ["10.244.1.5"], notIpBlocks: ["10.244.1.0/30"]}}]
    to: [{operation: {ports: ["8000"]}}])");
  const auto first = n.writer->ApplyAuthorization(before);
  const pid_t old_pid = n.writer->daemon_pid();

  n.StartWriter();  // the old daemon exits (its input closes), a new one restores from the maps
  CHECK(kill(old_pid, 0) != 0);
  CHECK(n.writer->IdOf("test-ns1/before-restart") == first.policy_id);
  CHECK(n.writer->IdOf(w.uid) == bp::WorkloadId(w.uid));
  n.writer->StoreWorkload(w);  // istiod resends everything to a restarted Kmesh
  n.writer->ApplyAuthorization(
      Policy("after-restart", "DENY", R"(  - from: [{source: {ipBlocks: ["10.244.1.9"]}}])"));
  auto back = n.writer->LookupAuthorization("test-ns1/before-restart");
  REQUIRE(back.has_value());
  CHECK(wa::ToJson(*back) == wa::ToJson(before));
  CHECK(n.Run(Syn("10.244.1.5")) == bp::XdpAction::kDrop);
  CHECK(n.Run(Syn("10.244.1.9")) == bp::XdpAction::kDrop);
  RemoveAll(n, {"test-ns1/before-restart", "test-ns1/after-restart"}, w);
}

TEST_CASE("a writer whose pin folder lacks Kmesh's maps says which pin is missing") {
  kmesh::ScratchDir work("kmpw-test");
  kmesh::lab::PolicyWriterOptions o;
  o.node_name = "node-x";
  o.pin_dir = work.path + "/no-such-pins";
  o.state_dir = work.path + "/state";
  CHECK_THROWS_WITH(KmeshPolicyWriter(o), Catch::Contains("no-such-pins/km_authz_policy"));
}

TEST_CASE("an Authorization that encodes to nothing is refused, as Kmesh's authorizationToClang refuses it") {
  wa::Authorization empty;  // no name, GLOBAL, ALLOW, no rules: proto3 writes no byte
  CHECK_THROWS_WITH(NodeB().writer->ApplyAuthorization(empty),
                    Catch::Contains("apply_authorization") && Catch::Contains("empty encoding"));
  CHECK_FALSE(NodeB().writer->IdOf("never/hashed").has_value());  // the daemon still answers
}

TEST_CASE("stopping a writer ends its daemon") {
  Node& n = NodeB();
  const pid_t pid = n.writer->daemon_pid();
  REQUIRE(kill(pid, 0) == 0);
  n.writer.reset();
  CHECK(kill(pid, 0) != 0);
  n.StartWriter();
}
