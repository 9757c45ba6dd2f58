// The pure parts of the conformance run: the generator (reproducible, within what istiod sends Kmesh),
// the YAML it prints (what ParseManifests reads back), the oracle (Istio per identity class, the contract's
// three answers) and the judgement of a verdict.
#include <catch2/catch.hpp>
#include <set>

#include "e2e/conformance/differential.h"
#include "e2e/conformance/generator.h"
#include "e2e/conformance/manifest.h"
#include "e2e/conformance/oracle.h"
#include "e2e/lab/workload_authz.h"

namespace kc = kmesh::conformance;
namespace pol = kmesh::policy;
namespace bp = kmesh::bpf_probe;

namespace {

kc::Case WithPolicies(const std::string& yaml, const std::string& tuple) {
  kc::Case c = kc::Generate(1);
  c.policies = pol::ParseManifests(yaml, "inline.yaml");
  c.connections = {kc::Connection{*kmesh::net::Tuple::Parse(tuple)}};
  return c;
}

std::string Selector(const std::string& name, const std::string& action, const std::string& rules) {
  return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: " + name +
         ", namespace: ns-a}\nspec:\n  selector: {matchLabels: {app: httpbin}}\n  action: " + action +
         "\n  rules:\n" + rules + "\n";
}

}  // namespace

TEST_CASE("the same seed gives the same case; different seeds differ") {
  const kc::Case a = kc::Generate(42), b = kc::Generate(42), c = kc::Generate(43);
  CHECK(kc::ToYaml(a.policies) == kc::ToYaml(b.policies));
  REQUIRE(a.connections.size() == b.connections.size());
  for (size_t i = 0; i < a.connections.size(); ++i) CHECK(a.connections[i].tuple == b.connections[i].tuple);
  CHECK(kc::ToYaml(a.policies) != kc::ToYaml(c.policies));
  CHECK(kc::CaseSeed(1, 0) == kc::CaseSeed(1, 0));
  CHECK(kc::CaseSeed(1, 0) != kc::CaseSeed(1, 1));
  CHECK(kc::CaseSeed(1, 0) != kc::CaseSeed(2, 0));
}

TEST_CASE("generated cases: within what istiod sends Kmesh, printed as YAML that parses back to them") {
  std::set<kc::Family> families;
  int applying_min = 100, applying_max = 0, over_four_rules = 0, zero_rules = 0, scoped = 0, decoys = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const kc::Case c = kc::Generate(kc::CaseSeed(7, seed));
    INFO("case seed " << c.seed);
    const std::string yaml = kc::ToYaml(c.policies);
    const auto back = pol::ParseManifests(yaml, "generated.yaml");
    REQUIRE(back.size() == c.policies.size());
    CHECK(kc::ToYaml(back) == yaml);
    for (const auto& p : c.policies) {
      CHECK_NOTHROW(kmesh::lab::workloadapi::Translate(p));  // no L7 field, no targetRefs
      over_four_rules += p.rules.size() > 4;
      zero_rules += p.rules.empty();
      scoped += !p.has_selector;
      for (const auto& rule : p.rules) {
        for (const auto& s : rule.from) {  // Istio refuses an empty source
          CHECK(!(s.ip_blocks.empty() && s.not_ip_blocks.empty() && s.namespaces.empty() &&
                  s.not_namespaces.empty() && s.principals.empty() && s.not_principals.empty()));
        }
        for (const auto& o : rule.to) CHECK(!(o.ports.empty() && o.not_ports.empty()));
        for (const auto& w : rule.when) CHECK(!(w.values.empty() && w.not_values.empty()));
      }
    }
    const int applying = static_cast<int>(kc::ApplyingPolicies(c).size());
    decoys += static_cast<int>(c.policies.size()) - applying;
    applying_min = std::min(applying_min, applying);
    applying_max = std::max(applying_max, applying);
    for (const auto& conn : c.connections) {
      families.insert(conn.family());
      CHECK((conn.tuple.dst.ip == c.workload.ipv4 || conn.tuple.dst.ip == c.workload.ipv6 ||
             conn.tuple.dst.ip.ToString() == "::ffff:" + c.workload.ipv4.ToString()));
    }
  }
  CHECK(applying_min == 1);
  CHECK(applying_max == 6);
  CHECK(families.size() == 3);
  CHECK(over_four_rules > 0);
  CHECK(zero_rules > 0);
  CHECK(scoped > 0);
  CHECK(decoys > 0);
}

TEST_CASE("identity classes: one representative per way the patterns can match, same answers as the domain") {
  for (uint64_t seed = 0; seed < 60; ++seed) {
    const kc::Case c = kc::Generate(kc::CaseSeed(11, seed));
    const auto applying = kc::ApplyingPolicies(c);
    const kc::Oracle oracle(c);
    INFO("case seed " << c.seed << ", " << oracle.identities().size() << " classes");
    CHECK(oracle.identities().size() <= kc::IdentityDomain().size());
    for (size_t i = 0; i < c.connections.size(); i += 7) {
      const kc::IstioAnswer a = oracle.Judge(c.connections[i]);
      int denied = 0;
      for (const auto& id : kc::IdentityDomain()) {
        denied += pol::Evaluate(applying, kc::ToRequest(c.connections[i], id)).allowed() ? 0 : 1;
      }
      const int all = static_cast<int>(kc::IdentityDomain().size());
      const kc::Expected full = denied == all ? kc::Expected::kDrop
                                : denied == 0 ? kc::Expected::kPass
                                              : kc::Expected::kDefer;
      CHECK(a.expected == full);
    }
  }
}

TEST_CASE("the oracle: Istio per identity class, and what XDP must do") {
  SECTION("a DENY on addresses: drop, with km_auth_res = DENY") {
    const kc::Case c =
        WithPolicies(Selector("d", "DENY", "  - from: [{source: {ipBlocks: [\"10.0.0.0/8\"]}}]"),
                     "10.0.0.1:40000 -> 10.244.2.7:8000");
    const kc::IstioAnswer a = kc::Oracle(c).Judge(c.connections[0]);
    CHECK(a.expected == kc::Expected::kDrop);
    CHECK(a.cache.ToString() == "DENY");
    CHECK(a.identities == 1);
  }
  SECTION("an ALLOW that matches nothing here: drop, nothing cached") {
    const kc::Case c = WithPolicies(Selector("a", "ALLOW", "  - to: [{operation: {ports: [\"9090\"]}}]"),
                                    "10.0.0.1:40000 -> 10.244.2.7:8000");
    const kc::IstioAnswer a = kc::Oracle(c).Judge(c.connections[0]);
    CHECK(a.expected == kc::Expected::kDrop);
    CHECK(a.cache.ToString() == "no entry");
  }
  SECTION("a DENY on a namespace: Istio's verdict depends on the identity, so XDP must defer") {
    const kc::Case c = WithPolicies(Selector("d", "DENY", "  - from: [{source: {namespaces: [\"ns-b\"]}}]"),
                                    "10.0.0.1:40000 -> 10.244.2.7:8000");
    const kc::Oracle oracle(c);
    CHECK(oracle.identities().size() == 2);  // ns-b, and everything else
    const kc::IstioAnswer a = oracle.Judge(c.connections[0]);
    CHECK(a.expected == kc::Expected::kDefer);
    CHECK(a.cache.ToString() == "no entry");
  }
  SECTION("a namespace tautology denies every identity: XDP can and must drop") {
    const kc::Case c = WithPolicies(
        Selector("d", "DENY",
                 "  - from: [{source: {namespaces: [\"ns-b\"]}}, {source: {notNamespaces: [\"ns-b\"]}}]"),
        "10.0.0.1:40000 -> 10.244.2.7:8000");
    CHECK(kc::Oracle(c).Judge(c.connections[0]).expected == kc::Expected::kDrop);
  }
  SECTION("an IPv4-mapped client is the IPv4 client for Istio") {
    const kc::Case c = WithPolicies(Selector("d", "DENY", "  - from: [{source: {ipBlocks: [\"10.0.0.1\"]}}]"),
                                    "[::ffff:10.0.0.1]:40000 -> [::ffff:10.244.2.7]:8000");
    CHECK(c.connections[0].family() == kc::Family::kIPv4MappedIPv6);
    CHECK(kc::Oracle(c).Judge(c.connections[0]).expected == kc::Expected::kDrop);
  }
  SECTION("an IPv4 block never holds an IPv6 client") {
    const kc::Case c =
        WithPolicies(Selector("d", "DENY", "  - from: [{source: {ipBlocks: [\"0.0.0.0/0\"]}}]"),
                     "[fd00::1]:40000 -> [fd00:10:244:2::7]:8000");
    CHECK(kc::Oracle(c).Judge(c.connections[0]).expected == kc::Expected::kPass);
  }
  SECTION("policies that do not apply to the workload are not asked") {
    const kc::Case c = WithPolicies(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: d, namespace: ns-b}\n"
        "spec:\n  selector: {matchLabels: {app: httpbin}}\n  action: DENY\n  rules:\n  - {}\n",
        "10.0.0.1:40000 -> 10.244.2.7:8000");
    CHECK(kc::ApplyingPolicies(c).empty());
    CHECK(kc::Oracle(c).Judge(c.connections[0]).expected == kc::Expected::kPass);
  }
}

TEST_CASE("judging a verdict against the oracle names the contract rule it breaks") {
  kc::IstioAnswer drop, pass, defer;
  drop.expected = kc::Expected::kDrop;
  drop.cache.deny_ok = true;
  pass.expected = kc::Expected::kPass;
  pass.cache.allow_ok = pass.cache.none_ok = true;
  defer.expected = kc::Expected::kDefer;
  defer.cache.none_ok = true;
  using A = bp::XdpAction;
  const auto deny = bp::Verdict::kDeny, allow = bp::Verdict::kAllow;
  CHECK_FALSE(kc::Judge(A::kDrop, deny, drop).has_value());
  CHECK(kc::Judge(A::kPass, std::nullopt, drop) == kc::Kind::kPassedDenied);
  CHECK(kc::Judge(A::kDrop, std::nullopt, drop) == kc::Kind::kWrongCache);
  CHECK(kc::Judge(A::kDrop, deny, pass) == kc::Kind::kDroppedAllowed);
  CHECK(kc::Judge(A::kPass, deny, pass) == kc::Kind::kWrongCache);
  CHECK_FALSE(kc::Judge(A::kPass, allow, pass).has_value());
  CHECK(kc::Judge(A::kDrop, deny, defer) == kc::Kind::kDroppedDeferred);
  CHECK(kc::Judge(A::kPass, allow, defer) == kc::Kind::kCachedDeferred);
  CHECK_FALSE(kc::Judge(A::kPass, std::nullopt, defer).has_value());
  CHECK(kc::Judge(A::kAborted, std::nullopt, pass) == kc::Kind::kAborted);
}

TEST_CASE("a regression case file round-trips") {
  kc::RegressionCase r;
  r.name = "d1-passed-denied-ipv4";
  r.defect = "D1";
  r.kind = "passed-denied";
  r.explanation = "Istio denies \"x\"; Kmesh passes";
  r.found_seed = 123;
  r.c = WithPolicies(Selector("a", "ALLOW", "  - {}") + "---\n" +
                         Selector("b", "DENY", "  - from: [{source: {ipBlocks: [\"10.0.0.1\"]}}]"),
                     "10.0.0.1:40000 -> 10.244.2.7:8000");
  r.istio = "drop";
  r.kmesh = "XDP_PASS, km_auth_res = ALLOW";
  const std::string text = kc::ToYaml(r);
  const kc::RegressionCase back = kc::ParseRegressionCase(text, "r.yaml");
  CHECK(kc::ToYaml(back) == text);
  CHECK(back.c.connections.at(0).tuple == r.c.connections.at(0).tuple);
  CHECK(back.c.workload.ipv6 == r.c.workload.ipv6);
  CHECK_THROWS_WITH(kc::ParseRegressionCase("name: x\n", "bad.yaml"),
                    Catch::Contains("bad.yaml: defect: missing"));
}
