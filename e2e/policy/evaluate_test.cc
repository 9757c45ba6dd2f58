#include "e2e/policy/evaluate.h"

#include <catch2/catch.hpp>
#include <functional>

#include "base/error.h"
#include "e2e/policy/seed_vars_testing.h"
#include "e2e/policy/template.h"

using Catch::Contains;
using kmesh::policy::AuthorizationPolicy;
using kmesh::policy::Evaluate;
using kmesh::policy::HostMatch;
using kmesh::policy::ParseManifests;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Request;
using kmesh::policy::StringMatch;
using kmesh::policy::Verdict;
using kmesh::policy::testing::SeedVars;

namespace {

constexpr Verdict kAllow = Verdict::kAllow;
constexpr Verdict kDeny = Verdict::kDeny;

std::vector<AuthorizationPolicy> Seed(std::initializer_list<const char*> names) {
  std::vector<AuthorizationPolicy> out;
  for (const char* n : names) {
    const auto m = RenderPolicyTemplate(n, SeedVars(n));
    for (auto& p : ParseManifests(m.text, m.origin)) out.push_back(std::move(p));
  }
  return out;
}

std::vector<AuthorizationPolicy> Inline(const std::string& spec, const std::string& name = "p") {
  return ParseManifests("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " +
                            name + "\n  namespace: ns\nspec:\n" + spec,
                        "inline.yaml");
}

// The seed templates' default client: 10.244.1.5 in test-ns2, GET httpbin.test-ns1:8000/headers.
Request Base() {
  Request r;
  r.source_ip = *kmesh::net::IpAddr::Parse("10.244.1.5");
  r.source_namespace = "test-ns2";
  r.destination_port = 8000;
  r.host = "httpbin.test-ns1:8000";
  r.method = "GET";
  r.path = "/headers?show_env=1";
  return r;
}

using Tweak = std::function<void(Request&)>;
Tweak Src(const char* ip) {
  return [=](Request& r) { r.source_ip = *kmesh::net::IpAddr::Parse(ip); };
}
Tweak Port(uint16_t p) {
  return [=](Request& r) { r.destination_port = p; };
}
Tweak Ns(const char* ns) {
  return [=](Request& r) { r.source_namespace = ns; };
}
Tweak Header(const char* k, const char* v) {
  return [=](Request& r) { r.headers.Add(k, v); };
}
Tweak Host(const char* h) {
  return [=](Request& r) { r.host = h; };
}
Tweak Tcp() {
  return [](Request& r) { r.http = false; };
}
Tweak None() {
  return [](Request&) {};
}

}  // namespace

TEST_CASE("each seed policy kind: ALLOW and DENY, matching and not matching") {
  struct Row {
    const char* policy;
    const char* request;
    Tweak tweak;
    Verdict expected;
  };
  const std::vector<Row> rows = {
      {"ip-allow", "client in the block", None(), kAllow},
      {"ip-allow", "client outside the block", Src("10.244.1.6"), kDeny},
      {"ip-allow", "client in the block, v4-mapped", Src("::ffff:10.244.1.5"), kAllow},
      {"ip-deny", "client in the block", None(), kDeny},
      {"ip-deny", "client outside the block", Src("10.244.1.6"), kAllow},
      {"port-allow", "listed port 8000", None(), kAllow},
      {"port-allow", "listed port 9090", Port(9090), kAllow},
      {"port-allow", "unlisted port", Port(8080), kDeny},
      {"port-deny", "listed port", Port(9090), kDeny},
      {"port-deny", "unlisted port", Port(8080), kAllow},
      {"namespace-allow", "client from the namespace", None(), kAllow},
      {"namespace-allow", "client from another namespace", Ns("test-ns3"), kDeny},
      {"namespace-allow", "client of no known namespace", Ns(""), kDeny},
      {"namespace-deny", "client from the namespace", None(), kDeny},
      {"namespace-deny", "client from another namespace", Ns("test-ns3"), kAllow},
      {"header-allow", "header with the value", Header("x-kmesh", "deny-me"), kAllow},
      {"header-allow", "header name in other case", Header("X-Kmesh", "deny-me"), kAllow},
      {"header-allow", "header with another value", Header("x-kmesh", "other"), kDeny},
      {"header-allow", "no header", None(), kDeny},
      {"header-deny", "header with the value", Header("x-kmesh", "deny-me"), kDeny},
      {"header-deny", "header value in other case (values are case-sensitive)", Header("x-kmesh", "Deny-Me"),
       kAllow},
      {"header-deny", "no header", None(), kAllow},
      {"host-allow", "the host, with port", None(), kAllow},
      {"host-allow", "the host in capitals, without port", Host("HTTPBIN.Test-Ns1"), kAllow},
      {"host-allow", "another host", Host("httpbin.other:8000"), kDeny},
      {"host-deny", "the host", None(), kDeny},
      {"host-deny", "another host", Host("sleep.test-ns1"), kAllow},
      // Plain TCP (what XDP sees): an ALLOW rule with HTTP-only fields never matches, a DENY rule drops them.
      {"header-allow", "TCP, even with the header", Tcp(), kDeny},
      {"header-deny", "TCP: the header condition is dropped, the rule denies everything", Tcp(), kDeny},
      {"host-deny", "TCP: the host is dropped, the rule denies everything", Tcp(), kDeny},
      {"ip-allow", "TCP: L4 fields still apply", Tcp(), kAllow},
  };
  for (const auto& row : rows) {
    SECTION(std::string(row.policy) + ": " + row.request) {
      Request r = Base();
      row.tweak(r);
      const auto d = Evaluate(Seed({row.policy}), r);
      INFO(d.reason);
      CHECK(d.verdict == row.expected);
      // A match names the policy; a default decision names none.
      const bool matched =
          (row.expected == kDeny) == (std::string(row.policy).find("-deny") != std::string::npos);
      CHECK(d.policy == (matched ? "test-ns1/" + std::string(row.policy) + "-policy" : ""));
      CHECK(d.rule == (matched ? 0 : -1));
    }
  }
}

TEST_CASE("DENY wins over ALLOW; defaults follow Istio's order") {
  struct Row {
    const char* what;
    std::vector<AuthorizationPolicy> policies;
    Tweak tweak;
    Verdict expected;
    const char* policy;  // the deciding policy, "" for a default
    const char* reason;
  };
  const std::vector<Row> rows = {
      {"ALLOW and DENY both match: DENY", Seed({"ip-allow", "ip-deny"}), None(), kDeny,
       "test-ns1/ip-deny-policy", "DENY policy test-ns1/ip-deny-policy matched (rule 0)"},
      {"ALLOW listed first changes nothing", Seed({"ip-allow", "port-deny"}), None(), kDeny,
       "test-ns1/port-deny-policy", "DENY policy"},
      {"DENY does not match, ALLOW does", Seed({"ip-allow", "port-deny"}), Port(8080), kAllow,
       "test-ns1/ip-allow-policy", "ALLOW policy test-ns1/ip-allow-policy matched"},
      {"neither matches, an ALLOW exists", Seed({"ip-allow", "port-deny"}),
       [](Request& r) {
         r.destination_port = 8080;
         r.source_ip = *kmesh::net::IpAddr::Parse("10.9.9.9");
       },
       kDeny, "", "no ALLOW policy matched (test-ns1/ip-allow-policy)"},
      {"no policies at all", {}, None(), kAllow, "", "no ALLOW policy applies"},
      {"only a DENY that does not match", Seed({"ip-deny"}), Src("10.0.0.1"), kAllow, "",
       "no ALLOW policy applies"},
      {"ALLOW with no rules allows nothing", Inline("  action: ALLOW\n"), None(), kDeny, "",
       "no ALLOW policy matched"},
      {"ALLOW with one empty rule allows all", Inline("  rules:\n  - {}\n"), None(), kAllow, "ns/p",
       "ALLOW policy ns/p"},
      {"DENY with no rules denies nothing", Inline("  action: DENY\n"), None(), kAllow, "",
       "no ALLOW policy applies"},
      {"DENY with one empty rule denies all", Inline("  action: DENY\n  rules:\n  - {}\n"), None(), kDeny,
       "ns/p", "DENY policy ns/p"},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      Request r = Base();
      row.tweak(r);
      const auto d = Evaluate(row.policies, r);
      CHECK(d.verdict == row.expected);
      CHECK(d.policy == row.policy);
      CHECK_THAT(d.reason, Contains(row.reason));
    }
  }
}

TEST_CASE("a rule needs all its parts; from and to are any-of, when is all-of") {
  const auto policies = Inline(
      "  action: ALLOW\n"
      "  rules:\n"
      "  - from:\n"
      "    - source: {ipBlocks: [\"10.0.0.0/8\"], notIpBlocks: [\"10.244.9.0/24\"]}\n"
      "    - source: {namespaces: [\"trusted-*\"]}\n"
      "    to:\n"
      "    - operation: {methods: [GET], paths: [\"/headers\", \"/status/*\"]}\n"
      "    - operation: {methods: [POST], paths: [\"/post\"], notPorts: [\"9090\"]}\n"
      "    when:\n"
      "    - {key: \"request.headers[x-team]\", values: [\"blue\", \"green*\"]}\n"
      "    - {key: \"request.headers[x-debug]\", notValues: [\"*\"]}\n");
  struct Row {
    const char* what;
    std::vector<Tweak> tweaks;
    Verdict expected;
  };
  const std::vector<Row> rows = {
      {"all parts match", {Header("x-team", "blue")}, kAllow},
      {"prefix header value", {Header("x-team", "green-2")}, kAllow},
      {"missing the required header", {}, kDeny},
      {"a forbidden header is present", {Header("x-team", "blue"), Header("x-debug", "1")}, kDeny},
      {"source excluded by notIpBlocks, but its namespace is trusted",
       {Header("x-team", "blue"), Src("10.244.9.1"), Ns("trusted-a")},
       kAllow},
      {"source excluded by notIpBlocks and untrusted", {Header("x-team", "blue"), Src("10.244.9.1")}, kDeny},
      {"path by prefix", {Header("x-team", "blue"), [](Request& r) { r.path = "/status/418"; }}, kAllow},
      {"method not allowed on that path",
       {Header("x-team", "blue"), [](Request& r) { r.method = "DELETE"; }},
       kDeny},
      {"second operation matches",
       {Header("x-team", "blue"),
        [](Request& r) {
          r.method = "POST";
          r.path = "/post";
        }},
       kAllow},
      {"second operation excluded by notPorts",
       {Header("x-team", "blue"), Port(9090),
        [](Request& r) {
          r.method = "POST";
          r.path = "/post";
        }},
       kDeny},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      Request r = Base();
      for (const auto& t : row.tweaks) t(r);
      CHECK(Evaluate(policies, r).verdict == row.expected);
    }
  }
}

TEST_CASE("a policy the lab cannot evaluate makes Evaluate throw, not guess") {
  const auto principals =
      Inline("  action: DENY\n  rules:\n  - from:\n    - source: {principals: [\"*\"]}\n");
  CHECK_THROWS_WITH(Evaluate(principals, Base()), Contains("the lab does not support source.principals"));
  // Even when an earlier policy would already have decided.
  auto both = Seed({"ip-deny"});
  both.push_back(principals[0]);
  CHECK_THROWS_WITH(Evaluate(both, Base()), Contains("policy ns/p"));
  const auto claims = Inline("  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [x]}\n");
  CHECK_THROWS_WITH(Evaluate(claims, Base()), Contains("the condition key request.auth.claims[iss]"));
}

TEST_CASE("principals are evaluated when the request carries one (Istio string match, no spiffe://)") {
  const auto deny = Inline(
      "  action: DENY\n  rules:\n  - from:\n    - source: {principals: [\"cluster.local/ns/a/*\"], "
      "notPrincipals: [\"*/sa/admin\"]}\n");
  Request r = Base();
  r.source_principal = "cluster.local/ns/a/sa/web";
  CHECK(Evaluate(deny, r).verdict == kDeny);
  r.source_principal = "cluster.local/ns/a/sa/admin";
  CHECK(Evaluate(deny, r).verdict == kAllow);
  r.source_principal = "";  // no identity: matches no principal, and no notPrincipals either
  CHECK(Evaluate(deny, r).verdict == kAllow);
  const auto allow_any = Inline("  rules:\n  - when:\n    - {key: source.principal, values: [\"*\"]}\n");
  CHECK(Evaluate(allow_any, r).verdict == kDeny);  // "*" is presence: an empty principal is absent
  r.source_principal = "cluster.local/ns/b/sa/x";
  CHECK(Evaluate(allow_any, r).verdict == kAllow);
  // Other keys are still refused.
  const auto claims = Inline("  rules:\n  - when:\n    - {key: \"request.auth.claims[iss]\", values: [x]}\n");
  CHECK_THROWS_WITH(Evaluate(claims, r), Contains("the condition key request.auth.claims[iss]"));
}

TEST_CASE("when keys on L4 attributes") {
  const auto p = Inline(
      "  action: DENY\n  rules:\n  - when:\n    - {key: source.ip, values: [\"10.244.1.0/24\"]}\n"
      "    - {key: destination.port, notValues: [\"8080\"]}\n    - {key: source.namespace, values: "
      "[\"test-*\"]}\n");
  CHECK(Evaluate(p, Base()).verdict == kDeny);
  Request r = Base();
  r.destination_port = 8080;
  CHECK(Evaluate(p, r).verdict == kAllow);
  r = Base();
  r.source_namespace = "prod";
  CHECK(Evaluate(p, r).verdict == kAllow);
  const auto dst =
      Inline("  action: DENY\n  rules:\n  - when:\n    - {key: destination.ip, values: [\"10.1.0.0/16\"]}\n");
  CHECK_THROWS_WITH(Evaluate(dst, Base()),
                    Contains("destination.ip needs the request's destination address"));
  r = Base();
  r.destination_ip = *kmesh::net::IpAddr::Parse("10.1.2.3");
  CHECK(Evaluate(dst, r).verdict == kDeny);
}

TEST_CASE("string and host matching follow Istio") {
  struct Row {
    const char* pattern;
    const char* value;
    bool string_match;
    bool host_match;
  };
  const std::vector<Row> rows = {
      {"abc", "abc", true, true},
      {"abc", "abcd", false, false},
      {"abc*", "abcd", true, true},
      {"abc*", "ab", false, false},
      {"*.example.com", "www.example.com", true, true},
      {"*.example.com", "example.com", false, false},
      {"*", "anything", true, true},
      {"*", "", false, false},
      {"httpbin", "HTTPBIN", false, true},
      {"httpbin", "httpbin:8000", false, true},
      {"httpbin:8000", "httpbin:8000", true, true},
      {"httpbin:8000", "httpbin:9000", false, false},
      {"httpbin:*", "httpbin:9000", true, true},
      {"httpbin:*", "httpbin", false, false},
      {"*.example.com", "www.EXAMPLE.com:443", false, true},
      {"[::1]", "[::1]:80", false, true},
  };
  for (const auto& row : rows) {
    INFO(row.pattern << " vs " << row.value);
    CHECK(StringMatch(row.pattern, row.value) == row.string_match);
    CHECK(HostMatch(row.pattern, row.value) == row.host_match);
  }
}

TEST_CASE("policies attach to workloads by selector and to services by targetRefs") {
  const auto ip = Seed({"ip-deny"})[0];
  CHECK(kmesh::policy::AppliesToWorkload(ip, "test-ns1", {{"app", "httpbin"}, {"version", "v1"}}));
  CHECK_FALSE(kmesh::policy::AppliesToWorkload(ip, "test-ns1", {{"app", "sleep"}}));
  CHECK_FALSE(kmesh::policy::AppliesToWorkload(ip, "test-ns2", {{"app", "httpbin"}}));
  const auto hdr = Seed({"header-deny"})[0];
  CHECK_FALSE(kmesh::policy::AppliesToWorkload(hdr, "test-ns1", {{"app", "httpbin"}}));
  CHECK(kmesh::policy::TargetsService(hdr, "test-ns1", "httpbin"));
  CHECK_FALSE(kmesh::policy::TargetsService(hdr, "test-ns1", "sleep"));
  CHECK_FALSE(kmesh::policy::TargetsService(ip, "test-ns1", "httpbin"));
  const auto mesh = ParseManifests(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: all, namespace: "
      "istio-system}\n"
      "spec: {}\n",
      "mesh.yaml")[0];
  CHECK(kmesh::policy::AppliesToWorkload(mesh, "anything", {}));
}
