// Offload authorization suite (seed proposal §3): for each of ip, port, namespace, header and hosts, an
// ALLOW and a DENY policy, each probed with a request it selects and one it does not. A case passes only
// when what the client saw and what the kernel holds agree with the mechanism the Env enforces that
// kind with (XDP: connect_timeout + km_auth_res; waypoint: 403; Kmesh userspace: read_timeout).
#include <catch2/catch.hpp>

#include <functional>
#include <iostream>
#include <memory>

#include "e2e/framework/case.h"
#include "e2e/framework/env.h"
#include "e2e/framework/expect.h"
#include "e2e/policy/template.h"

namespace kmesh::e2e {
namespace {

using policy::RenderPolicyTemplate;
using policy::Vars;

// The world of this suite, deployed once: upstream's layout (kmesh-facts.md §1.6) with httpbin and sleep.
struct World {
  std::unique_ptr<Env> env;
  App server;     // "enrolled-to-kmesh": selected by ip/port/namespace policies, no waypoint
  App wp_server;  // "service-with-waypoint": header/host policies target it
  App a;          // sleep in test-ns2: the client a policy selects
  App b;          // sleep in test-ns3: the client it does not
};

World& TheWorld() {
  static World* w = [] {
    auto* w = new World();
    w->env = MakeEnv();
    w->server = w->env->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
    w->wp_server = w->env->Deploy({"httpbin-wp", AppKind::kServer, 1, "test-ns1", {}, true});
    w->a = w->env->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
    w->b = w->env->Deploy({"sleep-b", AppKind::kClient, 0, "test-ns3", {}, false});
    std::atexit([] { delete TheWorld().env.release(); });
    return w;
  }();
  return *w;
}

// One probe of a row: who asks, how, and what must happen.
struct ProbeRow {
  std::string label;
  std::function<const App&(World&)> client;
  std::function<ProbeSpec(World&)> spec;  // dst left empty: the server's service address
  Want want;
  bool cached = true;  // for an XDP denial: DENY matched (cached) vs ALLOW missed (not cached)
};

struct PolicyRow {
  std::string kind;      // "ip", "port", "namespace", "header", "hosts"
  std::string template_name;
  bool waypoint;         // the policy targets the waypoint service
  std::function<Vars(World&)> vars;
  std::vector<ProbeRow> probes;
};

const std::string kHeader = "x-kmesh-e2e";
const std::string kHost = "httpbin-wp.test-ns1.svc.cluster.local";

ProbeSpec Http() { return ProbeSpec{}; }
ProbeSpec OnPort(World& w, uint16_t port) {
  ProbeSpec s;
  s.dst_ip = w.server.ip;
  s.dst_port = port;
  return s;
}
ProbeSpec WithHeader(const std::string& value) {
  ProbeSpec s;
  s.path = "/headers";
  s.headers.push_back({kHeader, value});
  return s;
}
ProbeSpec WithHost(const std::string& host) {
  ProbeSpec s;
  s.host = host;
  return s;
}

const App& A(World& w) { return w.a; }
const App& B(World& w) { return w.b; }

std::vector<PolicyRow> Rows() {
  auto selector = [](World& w) { return Vars().Set("Namespace", "test-ns1").Set("App", w.server.name); };
  auto target = [](World& w) { return Vars().Set("Namespace", "test-ns1").Set("Service", w.wp_server.name); };
  return {
      {"ip", "ip-allow", false, [=](World& w) { return selector(w).Set("Ip", w.a.ip); },
       {{"selected client", A, [](World&) { return Http(); }, Want::kAllowed},
        {"other client", B, [](World&) { return Http(); }, Want::kDenied, false}}},
      {"ip", "ip-deny", false, [=](World& w) { return selector(w).Set("Ip", w.a.ip); },
       {{"selected client", A, [](World&) { return Http(); }, Want::kDenied},
        {"other client", B, [](World&) { return Http(); }, Want::kAllowed}}},
      {"port", "port-allow", false, [=](World& w) { return selector(w).SetList("Ports", {std::to_string(w.server.port)}); },
       {{"listed port", A, [](World& w) { return OnPort(w, w.server.port); }, Want::kAllowed},
        {"other port", A, [](World& w) { return OnPort(w, w.server.alt_port); }, Want::kDenied, false}}},
      {"port", "port-deny", false, [=](World& w) { return selector(w).SetList("Ports", {std::to_string(w.server.alt_port)}); },
       {{"listed port", A, [](World& w) { return OnPort(w, w.server.alt_port); }, Want::kDenied},
        {"other port", A, [](World& w) { return OnPort(w, w.server.port); }, Want::kAllowed}}},
      {"namespace", "namespace-allow", false, [=](World& w) { return selector(w).Set("SourceNamespace", w.a.k8s_namespace); },
       {{"selected namespace", A, [](World&) { return Http(); }, Want::kAllowed},
        {"other namespace", B, [](World&) { return Http(); }, Want::kDenied, false}}},
      {"namespace", "namespace-deny", false, [=](World& w) { return selector(w).Set("SourceNamespace", w.a.k8s_namespace); },
       {{"selected namespace", A, [](World&) { return Http(); }, Want::kDenied},
        {"other namespace", B, [](World&) { return Http(); }, Want::kAllowed}}},
      {"header", "header-allow", true, [=](World& w) { return target(w).Set("HeaderName", kHeader).Set("HeaderValue", "yes"); },
       {{"header present", A, [](World&) { return WithHeader("yes"); }, Want::kAllowed},
        {"header absent", A, [](World&) { return WithHeader("no"); }, Want::kDenied}}},
      {"header", "header-deny", true, [=](World& w) { return target(w).Set("HeaderName", kHeader).Set("HeaderValue", "yes"); },
       {{"header present", A, [](World&) { return WithHeader("yes"); }, Want::kDenied},
        {"header absent", A, [](World&) { return WithHeader("no"); }, Want::kAllowed}}},
      {"hosts", "host-allow", true, [=](World& w) { return target(w).Set("TargetHost", kHost); },
       {{"listed host", A, [](World&) { return WithHost(kHost); }, Want::kAllowed},
        {"other host", A, [](World&) { return WithHost("other.test-ns1.svc.cluster.local"); }, Want::kDenied}}},
      {"hosts", "host-deny", true, [=](World& w) { return target(w).Set("TargetHost", kHost); },
       {{"listed host", A, [](World&) { return WithHost(kHost); }, Want::kDenied},
        {"other host", A, [](World&) { return WithHost("other.test-ns1.svc.cluster.local"); }, Want::kAllowed}}},
  };
}

// Applies the manifest, waits until realized, records both in the case; returns the policies.
std::vector<policy::AuthorizationPolicy> ApplyAndWait(World& w, Case& c, const policy::Manifest& m, const App& server) {
  auto policies = w.env->Apply(m);
  for (const auto& p : policies) {
    Realized r = w.env->WaitRealized(p, server);
    c.Add("policies", {{"origin", m.origin},
                       {"id_key", p.IdKey()},
                       {"policy_id", r.policy_id},
                       {"mechanism", ToString(r.mechanism)},
                       {"realized", r.evidence},
                       {"waited_ms", r.waited.count()},
                       {"manifest", m.text}});
  }
  return policies;
}

void Report(const Judgement& j) {
  if (!j.ok) std::cerr << j.explanation << "\n";
  CHECK(j.ok);
}

}  // namespace

TEST_CASE("authz: each policy kind x ALLOW/DENY x selected/not selected", "[authz]") {
  World& w = TheWorld();
  for (const PolicyRow& row : Rows()) {
    DYNAMIC_SECTION(row.template_name) {
      Case c("authz", row.template_name, w.env->name());
      const App& server = row.waypoint ? w.wp_server : w.server;
      const auto m = RenderPolicyTemplate(row.template_name, row.vars(w));
      const auto policies = ApplyAndWait(w, c, m, server);
      const Mechanism mech = w.env->MechanismOf(policies.at(0));
      c.Set("mechanism", ToString(mech));
      for (const ProbeRow& pr : row.probes) {
        INFO(row.template_name << ": " << pr.label);
        AuthzExpect want{pr.want, mech, pr.cached};
        Report(ProbeAndJudge(*w.env, c, pr.client(w), server, pr.spec(w), want, pr.label));
      }
      w.env->Remove(policies);
    }
  }
}

TEST_CASE("authz: DENY wins over ALLOW for the same client", "[authz]") {
  World& w = TheWorld();
  Case c("authz", "deny-wins-over-allow", w.env->name());
  auto vars = Vars().Set("Namespace", "test-ns1").Set("App", w.server.name).Set("Ip", w.a.ip);
  auto allow = ApplyAndWait(w, c, RenderPolicyTemplate("ip-allow", vars), w.server);
  auto deny = ApplyAndWait(w, c, RenderPolicyTemplate("ip-deny", vars), w.server);
  const Mechanism mech = w.env->MechanismOf(deny.at(0));
  Report(ProbeAndJudge(*w.env, c, w.a, w.server, ProbeSpec{}, {Want::kDenied, mech, true}, "allowed and denied client"));
  Report(ProbeAndJudge(*w.env, c, w.b, w.server, ProbeSpec{}, {Want::kDenied, mech, false}, "client in neither"));
  w.env->Remove(deny);
  w.env->Remove(allow);
}

TEST_CASE("authz: removing a policy restores access for new connections", "[authz]") {
  World& w = TheWorld();
  Case c("authz", "remove-restores-access", w.env->name());
  auto vars = Vars().Set("Namespace", "test-ns1").Set("App", w.server.name).Set("Ip", w.a.ip);
  auto deny = ApplyAndWait(w, c, RenderPolicyTemplate("ip-deny", vars), w.server);
  const Mechanism mech = w.env->MechanismOf(deny.at(0));
  Report(ProbeAndJudge(*w.env, c, w.a, w.server, ProbeSpec{}, {Want::kDenied, mech, true}, "while applied"));
  w.env->Remove(deny);
  Report(ProbeAndJudge(*w.env, c, w.a, w.server, ProbeSpec{}, {Want::kAllowed, mech}, "after removal, new connection"));
}

}  // namespace kmesh::e2e
