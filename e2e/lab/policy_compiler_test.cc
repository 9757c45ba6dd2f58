#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"
#include "e2e/lab/policy_compiler.h"
#include "e2e/policy/template.h"

using kmesh::lab::Compile;
using kmesh::lab::Enforcer;
using kmesh::lab::NamespaceIps;
using kmesh::policy::ParseManifests;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Vars;

namespace {

kmesh::policy::AuthorizationPolicy One(const std::string& yaml) {
  auto v = ParseManifests(yaml, "inline.yaml");
  REQUIRE(v.size() == 1);
  return v[0];
}

uint32_t Ip(const char* s) {
  uint32_t a = 0;
  inet_pton(AF_INET, s, &a);
  return a;
}

const char* kHeader = R"(apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: test-ns1}
spec:
)";

}  // namespace

TEST_CASE("ip-deny compiles to one DENY match on the client's /32, keyed by FNV-32a of ns/name") {
  auto m = RenderPolicyTemplate("ip-deny",
                                Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", "10.244.1.2"));
  auto c = Compile(One(m.text), {});
  CHECK(c.enforcer == Enforcer::kXdp);
  CHECK(c.id == kmesh::bpf_probe::PolicyId("test-ns1", "ip-deny-policy"));
  CHECK(c.xdp.action == KM_ACTION_DENY);
  REQUIRE(c.xdp.n_rules == 1);
  REQUIRE(c.xdp.rules[0].n_matches == 1);
  const auto& match = c.xdp.rules[0].matches[0];
  REQUIRE(match.n_src == 1);
  CHECK(match.src[0].addr == Ip("10.244.1.2"));
  CHECK(match.src[0].mask == 0xffffffff);
  CHECK(match.n_ports == 0);
}

TEST_CASE("port-allow compiles ports in host order and a CIDR is masked") {
  auto c = Compile(One(std::string(kHeader) + R"(  action: ALLOW
  rules:
  - from: [{source: {ipBlocks: ["10.244.1.77/24"]}}]
    to: [{operation: {ports: ["8000", "9090"], notPorts: ["22"]}}]
)"), {});
  CHECK(c.xdp.action == KM_ACTION_ALLOW);
  const auto& m = c.xdp.rules[0].matches[0];
  CHECK(m.src[0].addr == Ip("10.244.1.0"));
  CHECK(m.src[0].mask == Ip("255.255.255.0"));
  REQUIRE(m.n_ports == 2);
  CHECK(m.ports[0] == 8000);
  CHECK(m.ports[1] == 9090);
  REQUIRE(m.n_not_ports == 1);
  CHECK(m.not_ports[0] == 22);
}

TEST_CASE("source.namespaces compiles to the pod IPs of that namespace; an empty namespace matches nobody") {
  NamespaceIps ips{{"test-ns2", {"10.244.1.3", "10.244.1.4"}}};
  auto m = RenderPolicyTemplate(
      "namespace-deny", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("SourceNamespace", "test-ns2"));
  auto c = Compile(One(m.text), ips);
  const auto& match = c.xdp.rules[0].matches[0];
  REQUIRE(match.n_src == 2);
  CHECK(match.src[0].addr == Ip("10.244.1.3"));
  CHECK(match.src[1].addr == Ip("10.244.1.4"));

  auto empty = Compile(One(m.text), {});
  REQUIRE(empty.xdp.rules[0].matches[0].n_src == 1);
  CHECK(empty.xdp.rules[0].matches[0].src[0].addr == 0);
  CHECK(empty.xdp.rules[0].matches[0].src[0].mask == 0xffffffff);
}

TEST_CASE("from x to is a cross product of matches") {
  auto c = Compile(One(std::string(kHeader) + R"(  rules:
  - from: [{source: {ipBlocks: ["10.0.0.1"]}}, {source: {ipBlocks: ["10.0.0.2"]}}]
    to: [{operation: {ports: ["80"]}}, {operation: {ports: ["81"]}}]
)"), {});
  REQUIRE(c.xdp.rules[0].n_matches == 4);
  CHECK(c.xdp.rules[0].matches[3].src[0].addr == Ip("10.0.0.2"));
  CHECK(c.xdp.rules[0].matches[3].ports[0] == 81);
}

TEST_CASE("header and host policies with targetRefs go to the waypoint") {
  auto m = RenderPolicyTemplate("header-deny", Vars()
                                                   .Set("Namespace", "test-ns1")
                                                   .Set("Service", "httpbin")
                                                   .Set("HeaderName", "x-token")
                                                   .Set("HeaderValue", "bad"));
  CHECK(Compile(One(m.text), {}).enforcer == Enforcer::kWaypoint);
}

TEST_CASE("what the lab cannot enforce is refused, naming file, line and field") {
  struct Row {
    const char* spec;
    const char* expect;
  };
  const Row rows[] = {
      {R"(  rules: [{from: [{source: {principals: ["cluster.local/ns/a/sa/b"]}}]}])", "source.principals"},
      {R"(  rules: [{to: [{operation: {hosts: ["a.example"]}}]}])", "only by a waypoint"},
      {R"(  rules: [{from: [{source: {ipBlocks: ["fd00::1"]}}]}])", "IPv4-only"},
      {R"(  rules: [{from: [{source: {ipBlocks: ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5"]}}]}])",
       "more than 4"},
      {R"(  rules: [{when: [{key: source.ip, values: ["1.1.1.1"]}]}])", "not enforced by the lab"},
  };
  for (const auto& row : rows) {
    INFO(row.spec);
    auto p = One(std::string(kHeader) + row.spec + "\n");
    CHECK_THROWS_WITH(Compile(p, {}), Catch::Contains("inline.yaml:") && Catch::Contains("test-ns1/p") &&
                                          Catch::Contains(row.expect));
  }
}
