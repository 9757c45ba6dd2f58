#include "e2e/lab/workload_authz.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/policy/seed_vars_testing.h"
#include "e2e/policy/template.h"

namespace wa = kmesh::lab::workloadapi;
using kmesh::policy::ParseManifests;
using kmesh::policy::RenderPolicyTemplate;
using wa::Action;
using wa::Address;
using wa::Scope;
using wa::StringMatch;

namespace {

kmesh::policy::AuthorizationPolicy One(const std::string& yaml, const std::string& origin = "inline.yaml") {
  auto v = ParseManifests(yaml, origin);
  REQUIRE(v.size() == 1);
  return v[0];
}

// A selector policy test-ns1/p on app=httpbin; `spec` continues the spec mapping.
wa::Authorization Translated(const std::string& spec) {
  return wa::Translate(One(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: test-ns1}
spec:
  selector: {matchLabels: {app: httpbin}}
)" + spec + "\n"));
}

Address Addr(const char* cidr) { return Address::FromCidr(*kmesh::net::Cidr::Parse(cidr)); }

std::vector<std::string> Texts(const std::vector<Address>& v) {
  std::vector<std::string> out;
  for (const auto& a : v) out.push_back(a.ToString());
  return out;
}

// The single Match of a policy whose one rule has one clause with one match.
const wa::Match& OnlyMatch(const wa::Authorization& a) {
  REQUIRE(a.rules.size() == 1);
  REQUIRE(a.rules[0].clauses.size() == 1);
  REQUIRE(a.rules[0].clauses[0].matches.size() == 1);
  return a.rules[0].clauses[0].matches[0];
}

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

}  // namespace

// --- the seed templates ----------------------------------------------------------------------------------

TEST_CASE("ip-allow and ip-deny: one rule, one from clause, one match with the client's address") {
  for (const char* name : {"ip-allow", "ip-deny"}) {
    INFO(name);
    auto a = wa::Translate(One(RenderPolicyTemplate(name, kmesh::policy::testing::SeedVars(name)).text));
    CHECK(a.name == std::string(name) + "-policy");
    CHECK(a.ns == "test-ns1");
    CHECK(a.ResourceName() == "test-ns1/" + std::string(name) + "-policy");
    CHECK(a.scope == Scope::kWorkloadSelector);
    CHECK(a.action == (std::string(name) == "ip-deny" ? Action::kDeny : Action::kAllow));
    const auto& m = OnlyMatch(a);
    CHECK(Texts(m.source_ips) == std::vector<std::string>{"10.244.1.5/32"});
    CHECK(m.source_ips[0].bytes == std::vector<uint8_t>{10, 244, 1, 5});
    CHECK(m.destination_ports.empty());
    CHECK(m.namespaces.empty());
  }
}

TEST_CASE("port-allow and port-deny: one to clause whose match lists every port, in order") {
  for (const char* name : {"port-allow", "port-deny"}) {
    INFO(name);
    auto a = wa::Translate(One(RenderPolicyTemplate(name, kmesh::policy::testing::SeedVars(name)).text));
    CHECK(a.action == (std::string(name) == "port-deny" ? Action::kDeny : Action::kAllow));
    const auto& m = OnlyMatch(a);
    CHECK(m.destination_ports == std::vector<uint32_t>{8000, 9090});
    CHECK(m.source_ips.empty());
  }
}

TEST_CASE("namespace-allow and namespace-deny: namespaces as exact string matches") {
  for (const char* name : {"namespace-allow", "namespace-deny"}) {
    INFO(name);
    auto a = wa::Translate(One(RenderPolicyTemplate(name, kmesh::policy::testing::SeedVars(name)).text));
    const auto& m = OnlyMatch(a);
    REQUIRE(m.namespaces.size() == 1);
    CHECK(m.namespaces[0] == StringMatch::Exact("test-ns2"));
    CHECK(m.source_ips.empty());
  }
}

TEST_CASE("header and host templates (targetRefs) are refused: istiod sends them to no node dataplane") {
  for (const char* name : {"header-allow", "header-deny", "host-allow", "host-deny"}) {
    INFO(name);
    auto m = RenderPolicyTemplate(name, kmesh::policy::testing::SeedVars(name));
    auto p = One(m.text, m.origin);
    CHECK_THROWS_WITH(wa::Translate(p), Catch::Contains(std::string(name) + ".yaml:") &&
                                            Catch::Contains("test-ns1/" + std::string(name) + "-policy") &&
                                            Catch::Contains("spec.targetRefs") &&
                                            Catch::Contains("waypoint"));
  }
}

// --- the shapes the authz suite needs ----------------------------------------------------------------------

TEST_CASE("several ipBlocks and ports: every entry, in the order written") {
  auto a = Translated(R"(  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["10.244.1.5", "10.244.1.6", "10.244.1.7/32", "10.244.3.0/24"]}}]
    to: [{operation: {ports: ["8000", "9090", "80", "443"]}}])");
  REQUIRE(a.rules.size() == 1);
  REQUIRE(a.rules[0].clauses.size() == 2);
  const auto& to = a.rules[0].clauses[0].matches;  // the to clause comes first
  REQUIRE(to.size() == 1);
  CHECK(to[0].destination_ports == std::vector<uint32_t>{8000, 9090, 80, 443});
  const auto& from = a.rules[0].clauses[1].matches;
  REQUIRE(from.size() == 1);
  CHECK(Texts(from[0].source_ips) ==
        std::vector<std::string>{"10.244.1.5/32", "10.244.1.6/32", "10.244.1.7/32", "10.244.3.0/24"});
}

TEST_CASE("notIpBlocks and notPorts go to the not_ twins of the same match") {
  auto a = Translated(R"(  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: ["10.244.0.0/16"], notIpBlocks: ["10.244.1.5"]}}]
    to: [{operation: {notPorts: ["22", "23"]}}])");
  const auto& to = a.rules[0].clauses[0].matches[0];
  CHECK(to.destination_ports.empty());
  CHECK(to.not_destination_ports == std::vector<uint32_t>{22, 23});
  const auto& from = a.rules[0].clauses[1].matches[0];
  CHECK(Texts(from.source_ips) == std::vector<std::string>{"10.244.0.0/16"});
  CHECK(Texts(from.not_source_ips) == std::vector<std::string>{"10.244.1.5/32"});
}

TEST_CASE("CIDR ranges keep their prefix length; IPv6 sends 16 bytes") {
  auto a = Translated(R"(  rules:
  - from: [{source: {ipBlocks: ["10.244.0.0/16", "0.0.0.0/0", "fd00:10:244::/48", "fd00::5"]}}])");
  const auto& m = OnlyMatch(a);
  REQUIRE(m.source_ips.size() == 4);
  CHECK(m.source_ips[0].length == 16);
  CHECK(m.source_ips[0].bytes == std::vector<uint8_t>{10, 244, 0, 0});
  CHECK(m.source_ips[1].length == 0);
  CHECK(m.source_ips[2].bytes.size() == 16);
  CHECK(m.source_ips[2].length == 48);
  CHECK(m.source_ips[3].ToString() == "fd00::5/128");
}

TEST_CASE("several from entries are several matches of one clause; several rules stay apart, in order") {
  auto a = Translated(R"(  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["10.244.1.5"]}}, {source: {ipBlocks: ["10.244.1.6"]}}]
  - to: [{operation: {ports: ["9090"]}}, {operation: {ports: ["8000"]}}]
  - from: [{source: {ipBlocks: ["10.244.1.7"]}}]
    to: [{operation: {ports: ["80"]}}])");
  REQUIRE(a.rules.size() == 3);
  REQUIRE(a.rules[0].clauses.size() == 1);
  REQUIRE(a.rules[0].clauses[0].matches.size() == 2);
  CHECK(Texts(a.rules[0].clauses[0].matches[1].source_ips) == std::vector<std::string>{"10.244.1.6/32"});
  REQUIRE(a.rules[1].clauses.size() == 1);
  REQUIRE(a.rules[1].clauses[0].matches.size() == 2);
  CHECK(a.rules[1].clauses[0].matches[0].destination_ports == std::vector<uint32_t>{9090});
  CHECK(a.rules[1].clauses[0].matches[1].destination_ports == std::vector<uint32_t>{8000});
  REQUIRE(a.rules[2].clauses.size() == 2);
  CHECK(a.rules[2].clauses[0].matches[0].destination_ports == std::vector<uint32_t>{80});
  CHECK(Texts(a.rules[2].clauses[1].matches[0].source_ips) == std::vector<std::string>{"10.244.1.7/32"});
}

TEST_CASE("namespace-only and principal-only matches, with istiod's string forms") {
  auto ns = OnlyMatch(Translated(R"(  rules:
  - from: [{source: {namespaces: ["test-ns2", "team-*", "*-prod", "*"], notNamespaces: ["kube-system"]}}])"));
  CHECK(ns.namespaces == std::vector<StringMatch>{StringMatch::Exact("test-ns2"),
                                                  {StringMatch::Kind::kPrefix, "team-"},
                                                  {StringMatch::Kind::kSuffix, "-prod"},
                                                  {StringMatch::Kind::kPresence, ""}});
  CHECK(ns.not_namespaces == std::vector<StringMatch>{StringMatch::Exact("kube-system")});
  CHECK(ns.source_ips.empty());

  auto pr = OnlyMatch(Translated(R"(  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/test-ns2/sa/sleep"], notPrincipals: ["*/sa/admin"]}}])"));
  CHECK(pr.principals == std::vector<StringMatch>{StringMatch::Exact("cluster.local/ns/test-ns2/sa/sleep")});
  CHECK(pr.not_principals == std::vector<StringMatch>{{StringMatch::Kind::kSuffix, "/sa/admin"}});
  CHECK(pr.namespaces.empty());
}

TEST_CASE("when conditions: one clause each, after to and from; notValues in the same match") {
  auto a = Translated(R"(  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["10.244.1.0/24"]}}]
    to: [{operation: {ports: ["8000"]}}]
    when:
    - {key: destination.ip, values: ["10.244.2.7"], notValues: ["10.244.2.8"]}
    - {key: source.ip, values: ["10.244.1.5"]}
    - {key: destination.port, values: ["8000"], notValues: ["9090"]}
    - {key: source.namespace, values: ["test-ns2"]}
    - {key: source.principal, notValues: ["cluster.local/ns/a/sa/b"]})");
  REQUIRE(a.rules.size() == 1);
  const auto& c = a.rules[0].clauses;
  REQUIRE(c.size() == 7);
  CHECK(c[0].matches[0].destination_ports == std::vector<uint32_t>{8000});                // to
  CHECK(Texts(c[1].matches[0].source_ips) == std::vector<std::string>{"10.244.1.0/24"});  // from
  REQUIRE(c[2].matches.size() == 1);
  CHECK(Texts(c[2].matches[0].destination_ips) == std::vector<std::string>{"10.244.2.7/32"});
  CHECK(Texts(c[2].matches[0].not_destination_ips) == std::vector<std::string>{"10.244.2.8/32"});
  CHECK(c[2].matches[0].source_ips.empty());
  CHECK(Texts(c[3].matches[0].source_ips) == std::vector<std::string>{"10.244.1.5/32"});
  CHECK(c[4].matches[0].destination_ports == std::vector<uint32_t>{8000});
  CHECK(c[4].matches[0].not_destination_ports == std::vector<uint32_t>{9090});
  CHECK(c[5].matches[0].namespaces == std::vector<StringMatch>{StringMatch::Exact("test-ns2")});
  CHECK(c[6].matches[0].principals.empty());
  CHECK(c[6].matches[0].not_principals ==
        std::vector<StringMatch>{StringMatch::Exact("cluster.local/ns/a/sa/b")});
}

TEST_CASE("a destination-IP-only DENY is one when clause with one match") {
  auto a = Translated(R"(  action: DENY
  rules:
  - when: [{key: destination.ip, values: ["10.244.2.7/32"]}])");
  const auto& m = OnlyMatch(a);
  CHECK(Texts(m.destination_ips) == std::vector<std::string>{"10.244.2.7/32"});
  CHECK(m.source_ips.empty());
  CHECK(a.action == Action::kDeny);
}

TEST_CASE("empty policies: spec {} is ALLOW with no rules, rules [{}] is one rule without clauses") {
  auto allow_nothing = wa::Translate(One(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: test-ns1}
spec:
  selector: {matchLabels: {app: httpbin}}
)"));
  CHECK(allow_nothing.action == Action::kAllow);
  CHECK(allow_nothing.rules.empty());
  auto deny_all = Translated("  action: DENY\n  rules: [{}]");
  REQUIRE(deny_all.rules.size() == 1);
  CHECK(deny_all.rules[0].clauses.empty());
}

TEST_CASE("scope: selector -> WORKLOAD_SELECTOR, none -> NAMESPACE, none in the root namespace -> GLOBAL") {
  const char* tmpl = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: NS}
spec:
  action: DENY
  rules: [{from: [{source: {ipBlocks: ["10.0.0.1"]}}]}]
)";
  auto with_ns = [&](const std::string& ns) {
    std::string y = tmpl;
    y.replace(y.find("NS"), 2, ns);
    return One(y);
  };
  CHECK(wa::Translate(with_ns("test-ns1")).scope == Scope::kNamespace);
  CHECK(wa::Translate(with_ns("istio-system")).scope == Scope::kGlobal);
  wa::TranslateOptions root;
  root.root_namespace = "mesh-root";
  CHECK(wa::Translate(with_ns("istio-system"), root).scope == Scope::kNamespace);
  CHECK(wa::Translate(with_ns("mesh-root"), root).scope == Scope::kGlobal);
  CHECK(Translated("  rules: [{}]").scope == Scope::kWorkloadSelector);
}

TEST_CASE("L7 attributes of a selector policy are refused, naming file, policy and field") {
  struct Row {
    const char* spec;
    const char* field;
  };
  const Row rows[] = {
      {R"(  rules: [{to: [{operation: {ports: ["80"], methods: ["GET"]}}]}])",
       "spec.rules[0].to[0].operation.methods"},
      {R"(  rules: [{to: [{operation: {hosts: ["a.example"]}}]}])", "spec.rules[0].to[0].operation.hosts"},
      {R"(  rules: [{}, {to: [{operation: {notPaths: ["/x"]}}]}])", "spec.rules[1].to[0].operation.notPaths"},
      {R"(  rules: [{when: [{key: "request.headers[x-token]", values: ["a"]}]}])",
       "spec.rules[0].when[0] (key request.headers[x-token])"},
      {R"(  rules: [{when: [{key: remote.ip, values: ["10.0.0.1"]}]}])",
       "spec.rules[0].when[0] (key remote.ip)"},
  };
  for (const auto& row : rows) {
    INFO(row.spec);
    CHECK_THROWS_WITH(Translated(std::string("  action: DENY\n") + row.spec),
                      Catch::Contains("inline.yaml:") && Catch::Contains("policy test-ns1/p") &&
                          Catch::Contains(row.field) && Catch::Contains("L7"));
  }
}

// --- wire and JSON -----------------------------------------------------------------------------------------

TEST_CASE("Marshal writes proto3 wire bytes: fields in order, zero scalars omitted, ports packed") {
  wa::Authorization a;
  a.name = "p";
  a.ns = "n";
  a.scope = Scope::kWorkloadSelector;
  a.action = Action::kDeny;
  wa::Match m;
  m.source_ips = {Addr("10.0.0.1")};
  m.destination_ports = {80, 8080};
  a.rules = {wa::Rule{{wa::Clause{{m}}}}};
  // name, namespace, scope 2, action 1, rules{clauses{matches{source_ips{address, length 32}, ports packed}}}
  CHECK(Hex(wa::Marshal(a)) ==
        "0a0170"
        "12016e"
        "1802"
        "2001"
        "2a13"
        "0a11"
        "120f"
        "2a08"
        "0a040a000001"
        "1020"
        "4a03"
        "50"
        "903f");

  wa::Authorization defaults;  // GLOBAL, ALLOW, no name: nothing at all
  CHECK(wa::Marshal(defaults).empty());

  wa::Authorization strings;
  strings.rules = {wa::Rule{{wa::Clause{{wa::Match{}}}}}};
  strings.rules[0].clauses[0].matches[0].namespaces = {
      StringMatch::Exact(""), {StringMatch::Kind::kPresence, ""}, {StringMatch::Kind::kUnset, ""}};
  // an empty exact still says "exact"; presence is an empty message in field 4; unset is an empty message
  CHECK(Hex(wa::Marshal(strings)) ==
        "2a0e"
        "0a0c"
        "120a"
        "0a020a00"
        "0a022200"
        "0a00");
}

TEST_CASE("JSON round trip keeps every field; bad JSON is reported with its place") {
  auto a = Translated(R"(  action: DENY
  rules:
  - from: [{source: {ipBlocks: ["10.244.1.5", "fd00::/8"], notIpBlocks: ["10.244.1.6"], namespaces: ["a*"],
             notNamespaces: ["*"], principals: ["p"], notPrincipals: ["*q"]}}]
    to: [{operation: {ports: ["1"], notPorts: ["2"]}}]
    when: [{key: destination.ip, values: ["10.0.0.1"], notValues: ["10.0.0.2"]}])");
  auto j = wa::ToJson(a);
  CHECK(j["action"] == "DENY");
  CHECK(j["scope"] == "WORKLOAD_SELECTOR");
  CHECK(j["rules"][0]["clauses"][1]["matches"][0]["source_ips"][1] == "fd00::/8");
  CHECK(wa::FromJson(j) == a);

  wa::Address odd;
  odd.bytes = {1, 2, 3};
  odd.length = 7;
  wa::Authorization b;
  b.rules = {wa::Rule{{wa::Clause{{wa::Match{}}}}}};
  b.rules[0].clauses[0].matches[0].destination_ips = {odd};
  CHECK(wa::FromJson(wa::ToJson(b)) == b);

  j["rules"][0]["clauses"][0]["matches"][0]["destination_portz"] = {1};
  CHECK_THROWS_WITH(wa::FromJson(j), Catch::Contains("rules[0].clauses[0].matches[0]") &&
                                         Catch::Contains("destination_portz"));
}

TEST_CASE("workload policy names: selected policies of the workload's and the root namespace, sorted") {
  auto ps = ParseManifests(R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: z-deny, namespace: test-ns1}
spec: {selector: {matchLabels: {app: httpbin}}, action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a-allow, namespace: test-ns1}
spec: {selector: {matchLabels: {app: httpbin, version: v1}}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system}
spec: {selector: {matchLabels: {app: httpbin}}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: test-ns2}
spec: {selector: {matchLabels: {app: httpbin}}, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ns-wide, namespace: test-ns1}
spec: {rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-app, namespace: test-ns1}
spec: {selector: {matchLabels: {app: sleep}}, rules: [{}]}
)",
                           "set.yaml");
  CHECK(wa::WorkloadPolicyNames(ps, "test-ns1", {{"app", "httpbin"}, {"version", "v1"}}) ==
        std::vector<std::string>{"istio-system/mesh-wide", "test-ns1/a-allow", "test-ns1/z-deny"});
  CHECK(wa::WorkloadPolicyNames(ps, "test-ns1", {{"app", "httpbin"}}) ==
        std::vector<std::string>{"istio-system/mesh-wide", "test-ns1/z-deny"});
  CHECK(wa::WorkloadPolicyNames(ps, "test-ns3", {{"app", "sleep"}}).empty());
}
