// The model of Kmesh's XDP (bpf_probe/xdp_explain.h) on the readings it rests on that the generator rarely
// reaches, each checked on Kmesh's own XDP (fresh node, Kmesh's deserializer, BPF_PROG_TEST_RUN): what Kmesh
// does and that the model, with every known defect present, predicts exactly that. These characterize Kmesh
// at the pinned commit (the [!shouldfail] cases of regression_test say what it should do instead).
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "bpf_probe/fnv.h"
#include "e2e/conformance/conformance.h"

namespace kc = kmesh::conformance;
namespace bp = kmesh::bpf_probe;
namespace pol = kmesh::policy;

namespace {

kc::Differential& Diff() {
  static auto node = std::make_unique<kc::KmeshXdpUnderTest>("/tmp");
  static auto diff = std::make_unique<kc::Differential>(*node);
  return *diff;
}

std::string Policy(const std::string& ns, const std::string& name, const std::string& selector,
                   const std::string& action, const std::string& rules) {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n" + selector + "  action: " + action + "\n  rules:\n" + rules +
         "\n";
}
const char* const kSelectsHttpbin = "  selector: {matchLabels: {app: httpbin}}\n";

kc::ConnVerdict Run(const std::string& yaml, const std::string& tuple, std::string* maps = nullptr) {
  kc::Case c = kc::Generate(1);
  c.policies = pol::ParseManifests(yaml, "model_test.yaml");
  c.connections = {kc::Connection{*kmesh::net::Tuple::Parse(tuple)}};
  std::string m;
  kc::ConnVerdict v = Diff().Replay(c, &m);
  if (maps != nullptr) *maps = m;
  return v;
}

}  // namespace

TEST_CASE("D33 as compiled: an IPv6 block matches exactly the clients whose bytes 4-7 are ff:ff:ff:ff") {
  // convert_ipv6_to_ip6addr ORs into a union of which only the first word is initialized; clang 19 -O2
  // folds word 1 to all ones (authz.h:242-246, 306). So fd00::/64 holds fd00:0:ffff:ffff::1 for Kmesh,
  // and not fd00::1.
  const std::string deny =
      Policy("ns-a", "v6", kSelectsHttpbin, "DENY", "  - from: [{source: {ipBlocks: [\"fd00::/64\"]}}]");
  const auto inside = Run(deny, "[fd00::1]:40000 -> [fd00:10:244:2::7]:8000");
  INFO(kc::ModelMiss(inside));
  CHECK(inside.model_matches);
  CHECK(inside.kmesh.action == bp::XdpAction::kPass);  // Istio: deny
  const auto outside = Run(deny, "[fd00:0:ffff:ffff::1]:40000 -> [fd00:10:244:2::7]:8000");
  INFO(kc::ModelMiss(outside));
  CHECK(outside.model_matches);
  CHECK(outside.kmesh.action == bp::XdpAction::kDrop);  // Istio: allow
  CHECK(outside.kmesh.auth_res == bp::Verdict::kDeny);
}

TEST_CASE("D32: an IPv4 block is compared with an IPv6 SYN's first address bytes") {
  const std::string deny =
      Policy("ns-a", "v4", kSelectsHttpbin, "DENY", "  - from: [{source: {ipBlocks: [\"10.0.0.1/32\"]}}]");
  // a00:1::1 begins with the bytes of 10.0.0.1: Kmesh drops it, Istio allows it.
  const auto v6 = Run(deny, "[a00:1::1]:40000 -> [fd00:10:244:2::7]:8000");
  INFO(kc::ModelMiss(v6));
  CHECK(v6.model_matches);
  CHECK(v6.kmesh.action == bp::XdpAction::kDrop);
  // ::ffff:10.0.0.1 is 10.0.0.1 for Istio; Kmesh compares 0.0.0.0 (its first 4 bytes) and passes it.
  const auto mapped = Run(deny, "[::ffff:10.0.0.1]:40000 -> [::ffff:10.244.2.7]:8000");
  INFO(kc::ModelMiss(mapped));
  CHECK(mapped.model_matches);
  CHECK(mapped.kmesh.action == bp::XdpAction::kPass);
}

TEST_CASE(
    "D35: the policy stored under key 0 is evaluated in every empty km_wlpolicy slot, of any workload") {
  // A DENY in another namespace, selecting nothing here, whose id's first byte is zero: Kmesh's
  // deserializer stores it under key 0 (D8), and XDP looks up the empty slots of our workload's list.
  std::string name;
  for (int i = 0; name.empty(); ++i) {
    const std::string candidate = "key-zero-" + std::to_string(i);
    if ((bp::PolicyId("ns-b", candidate) & 0xff) == 0) name = candidate;
  }
  const std::string yaml =
      Policy("ns-b", name, "  selector: {matchLabels: {app: other}}\n", "DENY", "  - {}") + "---\n" +
      Policy("ns-a", "allow-all", kSelectsHttpbin, "ALLOW", "  - to: [{operation: {ports: [\"9090\"]}}]");
  std::string maps;
  const auto v = Run(yaml, "10.0.0.1:40000 -> 10.244.2.7:8000", &maps);
  INFO(kc::ModelMiss(v) << "\n" << maps);
  CHECK(v.model_matches);
  CHECK(v.istio.expected == kc::Expected::kDrop);  // the ALLOW does not match port 8000
  CHECK(v.kmesh.action == bp::XdpAction::kDrop);
  CHECK(v.kmesh.auth_res == bp::Verdict::kDeny);  // dropped by ns-b's DENY, from slot 1 (empty)
  const auto allowed = Run(yaml, "10.0.0.1:40000 -> 10.244.2.7:9090");
  INFO(kc::ModelMiss(allowed));
  CHECK(allowed.model_matches);
  CHECK(allowed.istio.expected == kc::Expected::kPass);
  CHECK(allowed.kmesh.action == bp::XdpAction::kPass);  // the ALLOW in slot 0 decides first (D1)
}

TEST_CASE("D31: a policy without rules ends XDP's evaluation with XDP_PASS") {
  // Sorted first ("a-..."), an allow-nothing passes everything, and the DENY after it is never read.
  const std::string yaml =
      Policy("ns-a", "a-allow-nothing", kSelectsHttpbin, "ALLOW", "    []") + "---\n" +
      Policy("ns-a", "b-deny", kSelectsHttpbin, "DENY", "  - from: [{source: {ipBlocks: [\"10.0.0.1\"]}}]");
  const auto v = Run(yaml, "10.0.0.1:40000 -> 10.244.2.7:8000");
  INFO(kc::ModelMiss(v));
  CHECK(v.model_matches);
  CHECK(v.istio.expected == kc::Expected::kDrop);
  CHECK(v.kmesh.action == bp::XdpAction::kPass);
  REQUIRE(v.kmesh.tcargs.has_value());
  CHECK(v.kmesh.tcargs->policy_index == 0);  // it stopped at slot 0
}

TEST_CASE("D10 on a node with history: rule 1 is read from whatever blob index (rule 0's index >> 8) names") {
  // On a fresh node the byte-offset read of rule 1 names index 0, which holds nothing. Past 255 blobs in
  // kmesh_map64 it names a real one. Here: F's empty rule is the node's first kmesh_map64 blob (index 1),
  // G's 130 addresses take the next 262, so P's rule 0 gets index 264 and P's "rule 1" is read at index
  // 264 >> 8 = 1: F's rule, which matches everything. F and G apply to other workloads.
  std::string addresses;
  for (int i = 0; i < 130; ++i)
    addresses += std::string(i ? ", " : "") + "\"192.0.2." + std::to_string(i) + "\"";
  const std::string other = "  selector: {matchLabels: {app: other}}\n";
  const std::string yaml =
      Policy("ns-b", "f", other, "DENY", "  - {}") + "---\n" +
      Policy("ns-b", "g", other, "ALLOW", "  - from: [{source: {ipBlocks: [" + addresses + "]}}]") + "---\n" +
      Policy("ns-a", "p", kSelectsHttpbin, "ALLOW",
             "  - from: [{source: {ipBlocks: [\"198.51.100.1\"]}}]\n  - from: [{source: {ipBlocks: "
             "[\"198.51.100.2\"]}}]");
  std::string maps;
  const auto v = Run(yaml, "10.0.0.1:40000 -> 10.244.2.7:8000", &maps);
  INFO(kc::ModelMiss(v) << "\n" << bp::FormatExplanation(v.model) << maps);
  CHECK(v.model_matches);
  CHECK(v.istio.expected == kc::Expected::kDrop);  // neither of P's rules holds 10.0.0.1
  CHECK(v.kmesh.action == bp::XdpAction::kPass);
  CHECK(v.kmesh.auth_res == bp::Verdict::kAllow);  // "rule 1" matched: F's rule {}
  // The model says so too: P's rule 1, read at byte offset 1 (D10), matched and decided.
  CHECK(v.model.decided_by == "ns-a/p rule 1");
  CHECK(std::any_of(v.model.steps.begin(), v.model.steps.end(), [](const bp::ExplainStep& s) {
    return s.defect == "D10" && s.text.rfind("rule 1 (read at byte offset 1 ", 0) == 0 &&
           s.text.size() >= 9 && s.text.compare(s.text.size() - 9, 9, ": MATCHED") == 0;
  }));
}
