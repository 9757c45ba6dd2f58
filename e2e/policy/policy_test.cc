#include "e2e/policy/policy.h"

#include <algorithm>
#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/policy/seed_vars_testing.h"
#include "e2e/policy/support.h"
#include "e2e/policy/template.h"

using Catch::Contains;
using kmesh::policy::Action;
using kmesh::policy::AuthorizationPolicy;
using kmesh::policy::Mechanism;
using kmesh::policy::ParseManifests;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::SupportedBy;
using kmesh::policy::Vars;
using kmesh::policy::testing::SeedVars;

namespace {

AuthorizationPolicy ParseOne(const std::string& text, const std::string& origin = "t.yaml") {
  auto ps = ParseManifests(text, origin);
  REQUIRE(ps.size() == 1);
  return ps[0];
}

std::string ErrorOf(const std::string& text, const std::string& origin = "t.yaml") {
  try {
    ParseManifests(text, origin);
  } catch (const kmesh::Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kHead =
    "apiVersion: security.istio.io/v1\n"
    "kind: AuthorizationPolicy\n"
    "metadata:\n"
    "  name: p\n"
    "  namespace: ns\n";

}  // namespace

TEST_CASE("every seed template renders and parses into the policy it describes") {
  for (const auto& name : kmesh::policy::PolicyTemplateNames()) {
    SECTION(name) {
      const auto m = RenderPolicyTemplate(name, SeedVars(name));
      const auto p = ParseOne(m.text, m.origin);
      CHECK(p.name == name + "-policy");
      CHECK(p.ns == "test-ns1");
      CHECK(p.IdKey() == "test-ns1/" + name + "-policy");
      CHECK(p.action == (name.find("-allow") != std::string::npos ? Action::kAllow : Action::kDeny));
      REQUIRE(p.rules.size() == 1);
      const auto& rule = p.rules[0];
      if (name.rfind("header-", 0) == 0 || name.rfind("host-", 0) == 0) {
        CHECK_FALSE(p.has_selector);
        REQUIRE(p.target_refs.size() == 1);
        CHECK(p.target_refs[0].kind == "Service");
        CHECK(p.target_refs[0].group.empty());
        CHECK(p.target_refs[0].name == "httpbin");
      } else {
        CHECK(p.has_selector);
        CHECK(p.selector == std::map<std::string, std::string>{{"app", "httpbin"}});
        CHECK(p.target_refs.empty());
      }
      if (name.rfind("ip-", 0) == 0) {
        REQUIRE(rule.from.size() == 1);
        REQUIRE(rule.from[0].ip_blocks.size() == 1);
        CHECK(rule.from[0].ip_blocks[0].ToString() == "10.244.1.5/32");
      } else if (name.rfind("port-", 0) == 0) {
        REQUIRE(rule.to.size() == 1);
        CHECK(rule.to[0].ports == std::vector<uint16_t>{8000, 9090});
      } else if (name.rfind("namespace-", 0) == 0) {
        REQUIRE(rule.from.size() == 1);
        CHECK(rule.from[0].namespaces == std::vector<std::string>{"test-ns2"});
      } else if (name.rfind("header-", 0) == 0) {
        REQUIRE(rule.when.size() == 1);
        CHECK(rule.when[0].key.kind == kmesh::policy::ConditionKey::Kind::kRequestHeader);
        CHECK(rule.when[0].key.header == "x-kmesh");
        CHECK(rule.when[0].values == std::vector<std::string>{"deny-me"});
      } else {
        REQUIRE(rule.to.size() == 1);
        CHECK(rule.to[0].hosts == std::vector<std::string>{"httpbin.test-ns1"});
      }
      CHECK(p.origin.file == name + ".yaml");
      CHECK(p.origin.line > 1);  // after the template's comment lines
    }
  }
}

TEST_CASE("the mechanism of each seed template is the one kmesh-facts §1.6 names") {
  const std::vector<std::pair<std::string, Mechanism>> rows = {
      {"ip-allow", Mechanism::kXdp},
      {"ip-deny", Mechanism::kXdp},
      {"port-allow", Mechanism::kXdp},
      {"port-deny", Mechanism::kXdp},
      {"namespace-allow", Mechanism::kUserspace},
      {"namespace-deny", Mechanism::kUserspace},
      {"header-allow", Mechanism::kWaypoint},
      {"header-deny", Mechanism::kWaypoint},
      {"host-allow", Mechanism::kWaypoint},
      {"host-deny", Mechanism::kWaypoint},
  };
  for (const auto& [name, mechanism] : rows) {
    SECTION(name) {
      const auto s = SupportedBy(ParseOne(RenderPolicyTemplate(name, SeedVars(name)).text));
      REQUIRE(s.fields.size() == 1);
      CHECK(s.fields[0].mechanism == mechanism);
      CHECK_NOTHROW(s.RequireSupported());
    }
  }
}

TEST_CASE("a bad CIDR or port in a rendered template names file, line and field path") {
  SECTION("CIDR") {
    const auto m = RenderPolicyTemplate("ip-deny", SeedVars("ip-deny").Set("Ip", "10.244.1.300/32"));
    CHECK(ErrorOf(m.text, m.origin) ==
          "ip-deny.yaml:17: spec.rules[0].from[0].source.ipBlocks[0]: \"10.244.1.300/32\" is not a CIDR "
          "(an IPv4/IPv6 address, optionally /prefix)");
  }
  SECTION("port") {
    const auto m =
        RenderPolicyTemplate("port-allow", SeedVars("port-allow").SetList("Ports", {"8000", "70000"}));
    CHECK(ErrorOf(m.text, m.origin) ==
          "port-allow.yaml:16: spec.rules[0].to[0].operation.ports[1]: \"70000\" is not a port (1-65535)");
  }
  SECTION("a single string where the template expects a list") {
    const auto m = RenderPolicyTemplate("port-allow", SeedVars("port-allow").Set("Ports", "8000"));
    CHECK_THAT(ErrorOf(m.text, m.origin), Contains("port-allow.yaml:16: spec.rules[0].to[0].operation.ports: "
                                                   "expected a sequence, found the number 8000"));
  }
}

TEST_CASE("bad manifests are refused with origin, line and field path") {
  struct Row {
    const char* what;
    std::string text;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {"malformed YAML", kHead + "spec:\n  rules: [\n  - {\n", "t.yaml:8:"},
      {"malformed YAML says so", "a: [1, 2\nb: c\n", "not valid YAML"},
      {"an unknown kind",
       "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: "
       "ns}\nspec: {}\n",
       "t.yaml:2: kind: \"PeerAuthentication\" is not supported here (expected AuthorizationPolicy)"},
      {"an unknown apiVersion",
       "apiVersion: security.istio.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: "
       "ns}\nspec: {}\n",
       "t.yaml:1: apiVersion: \"security.istio.io/v1alpha1\" is not supported"},
      {"an unknown field",
       kHead + "spec:\n  rules:\n  - from:\n    - source:\n        ipBlock: [\"1.2.3.4\"]\n",
       "t.yaml:10: spec.rules[0].from[0].source.ipBlock: unknown field (expected one of: ipBlocks,"},
      {"an unknown top-level field", kHead + "spec: {}\nstatus: {}\n", "t.yaml:7: status: unknown field"},
      {"an Istio field the model does not cover",
       kHead + "spec:\n  rules:\n  - from:\n    - source:\n        remoteIpBlocks: [\"1.2.3.4\"]\n",
       "t.yaml:10: spec.rules[0].from[0].source.remoteIpBlocks: source.remoteIpBlocks"},
      {"a string where a list belongs",
       kHead + "spec:\n  rules:\n  - from:\n    - source:\n        ipBlocks: \"1.2.3.4\"\n",
       "t.yaml:10: spec.rules[0].from[0].source.ipBlocks: expected a sequence, found the string \"1.2.3.4\""},
      {"a number where a string belongs",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: "
       "123\nspec: {}\n",
       "t.yaml:5: metadata.namespace: expected a string, found the number 123 (quote it)"},
      {"a bad namespace name",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: "
       "Test_NS\nspec: {}\n",
       "metadata.namespace: \"Test_NS\" is not a valid namespace"},
      {"a missing namespace",
       "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\nspec: {}\n",
       "t.yaml:3: metadata.namespace: missing"},
      {"an AUDIT action", kHead + "spec:\n  action: AUDIT\n",
       "t.yaml:7: spec.action: AUDIT is not supported by the lab"},
      {"a misspelled action", kHead + "spec:\n  action: Deny\n",
       "spec.action: \"Deny\" is not an action (ALLOW or DENY)"},
      {"an empty from", kHead + "spec:\n  rules:\n  - from: []\n",
       "t.yaml:8: spec.rules[0].from: must not be empty"},
      {"an empty source", kHead + "spec:\n  rules:\n  - from:\n    - source: {}\n",
       "t.yaml:9: spec.rules[0].from[0].source: must set at least one field"},
      {"a condition without values", kHead + "spec:\n  rules:\n  - when:\n    - key: source.ip\n",
       "spec.rules[0].when[0]: needs values or notValues"},
      {"an unknown condition key",
       kHead + "spec:\n  rules:\n  - when:\n    - key: request.header[x]\n      values: [a]\n",
       "t.yaml:9: spec.rules[0].when[0].key: \"request.header[x]\" is not an Istio condition key"},
      {"a bad source.ip value",
       kHead + "spec:\n  rules:\n  - when:\n    - values: [\"1.2.3.4/40\"]\n      key: source.ip\n",
       "t.yaml:9: spec.rules[0].when[0].values[0]: \"1.2.3.4/40\" is not a CIDR"},
      {"a duplicate key", kHead + "spec:\n  action: ALLOW\n  action: DENY\n",
       "t.yaml:8: spec.action: appears twice"},
      {"selector and targetRefs together",
       kHead + "spec:\n  selector:\n    matchLabels: {app: a}\n  targetRefs:\n  - {kind: Service, group: "
               "\"\", name: a}\n",
       "t.yaml:6: spec: sets both selector and targetRef(s)"},
      {"a targetRef without a name", kHead + "spec:\n  targetRefs:\n  - {kind: Service, group: \"\"}\n",
       "spec.targetRefs[0].name: missing"},
      {"a label that is not a string", kHead + "spec:\n  selector:\n    matchLabels:\n      app: true\n",
       "t.yaml:9: spec.selector.matchLabels.app: expected a string, found the boolean true"},
  };
  for (const auto& row : rows) {
    SECTION(row.what) { CHECK_THAT(ErrorOf(row.text), Contains(row.expected)); }
  }
}

TEST_CASE("a multi-document manifest parses all policies, or none when any is bad") {
  const std::string ip_deny = RenderPolicyTemplate("ip-deny", SeedVars("ip-deny")).text;
  const std::string ip_allow = RenderPolicyTemplate("ip-allow", SeedVars("ip-allow")).text;
  auto both = ParseManifests(ip_allow + "---\n" + ip_deny + "---\n", "both.yaml");
  REQUIRE(both.size() == 2);
  CHECK(both[0].name == "ip-allow-policy");
  CHECK(both[1].name == "ip-deny-policy");

  // The second document is bad: nothing is returned, and the line counts from the top of the file.
  const int lines_before = static_cast<int>(std::count(ip_allow.begin(), ip_allow.end(), '\n')) + 1;
  const std::string bad = RenderPolicyTemplate("ip-deny", SeedVars("ip-deny").Set("Ip", "10.0.0.0/33")).text;
  CHECK_THAT(ErrorOf(ip_allow + "---\n" + bad, "both.yaml"),
             Contains("both.yaml:" + std::to_string(lines_before + 17) +
                      ": spec.rules[0].from[0].source.ipBlocks[0]"));

  CHECK_THAT(ErrorOf(ip_deny + "---\n" + ip_deny, "twice.yaml"),
             Contains("policy test-ns1/ip-deny-policy is defined twice (first at twice.yaml:"));
  CHECK(ParseManifests("---\n# nothing here\n---\n", "empty.yaml").empty());
}

TEST_CASE("empty rules, an empty rule and a missing action follow Istio") {
  auto nothing = ParseOne(kHead + "spec: {}\n");
  CHECK(nothing.action == Action::kAllow);
  CHECK(nothing.rules.empty());
  auto all = ParseOne(kHead + "spec:\n  rules:\n  - {}\n");
  REQUIRE(all.rules.size() == 1);
  CHECK(all.rules[0].from.empty());
  CHECK(all.rules[0].to.empty());
  CHECK(all.rules[0].when.empty());
  CHECK_THAT(ErrorOf(kHead + "spec:\n"), Contains("t.yaml:6: spec: is null"));
}

TEST_CASE("principals and unsupported condition keys parse, but the lab refuses them by name") {
  const auto p = ParseOne(
      kHead +
      "spec:\n  rules:\n  - from:\n    - source:\n        principals: [\"cluster.local/ns/a/sa/b\"]\n"
      "    when:\n    - key: request.auth.claims[iss]\n      values: [x]\n");
  const auto s = SupportedBy(p);
  REQUIRE(s.Unsupported().size() == 2);
  CHECK(s.Unsupported()[0].path == "spec.rules[0].from[0].source.principals");
  CHECK_THROWS_WITH(s.RequireSupported(),
                    Contains("t.yaml:1: policy ns/p: the lab does not support source.principals "
                             "(spec.rules[0].from[0].source.principals)"));
}

TEST_CASE("a targetRefs policy is the waypoint's for every field it can evaluate") {
  const auto p =
      ParseOne(kHead +
               "spec:\n  targetRefs:\n  - {kind: Service, group: \"\", name: httpbin}\n  rules:\n"
               "  - from:\n    - source:\n        ipBlocks: [\"10.0.0.0/8\"]\n    to:\n    - operation:\n"
               "        ports: [\"8000\"]\n        methods: [GET]\n");
  const auto s = SupportedBy(p);
  CHECK(s.fields.size() == 3);
  CHECK(s.Of(Mechanism::kWaypoint).size() == 3);
  CHECK_FALSE(s.Needs(Mechanism::kXdp));
}
