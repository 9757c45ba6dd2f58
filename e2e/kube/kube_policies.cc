// AuthorizationPolicies on a cluster: applied (all or none), removed, which part of Kmesh enforces each, and
// the barrier that waits until the datapath (or the waypoint) holds one.
#include <chrono>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kube_env_text.h"
#include "e2e/policy/support.h"

namespace kmesh::kube {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<policy::AuthorizationPolicy> KubeEnv::Apply(const policy::Manifest& m) {
  // Parsed (and so checked) before anything reaches the cluster: all policies or none.
  auto policies = policy::ParseManifests(m.text, m.origin);
  if (policies.empty()) throw Error("kube env: " + m.origin + " holds no AuthorizationPolicy");
  const std::string path = WriteManifest(m, "policy-" + m.origin);
  for (const auto& p : policies) {
    cleanup_.Push("authorizationpolicy/" + p.IdKey(), "delete AuthorizationPolicy " + p.IdKey(), [this, p] {
      k_->Run({"delete", "authorizationpolicies.security.istio.io", p.name, "-n", p.ns, "--ignore-not-found"},
              "delete AuthorizationPolicy " + p.IdKey());
    });
  }
  k_->Run({"apply", "-f", path}, "apply " + m.origin);
  return policies;
}

void KubeEnv::Remove(const std::vector<policy::AuthorizationPolicy>& policies) {
  for (const auto& p : policies) {
    k_->Run({"delete", "authorizationpolicies.security.istio.io", p.name, "-n", p.ns, "--ignore-not-found"},
            "remove AuthorizationPolicy " + p.IdKey());
    cleanup_.Cancel("authorizationpolicy/" + p.IdKey());
  }
}

e2e::Mechanism KubeEnv::MechanismOf(const policy::AuthorizationPolicy& p) const {
  const policy::Support s = policy::SupportedBy(p);
  // istiod sends targetRefs policies only to the waypoint; L7 fields are the waypoint's (kmesh-facts.md
  // §1.6).
  if (!p.target_refs.empty() || s.Needs(policy::Mechanism::kWaypoint)) return e2e::Mechanism::kWaypoint;
  bool userspace = s.Needs(policy::Mechanism::kUserspace);
  for (const auto& f : s.Unsupported()) {
    // The lab cannot do principals; Kmesh's userspace can (source IP -> workload identity).
    if (f.path.find("rincipal") != std::string::npos) {
      userspace = true;
    } else {
      throw Error(p.origin.ToString() + ": policy " + p.IdKey() + ": " + f.path +
                  " is enforced by no part of Kmesh (" + f.note + ")");
    }
  }
  return userspace ? e2e::Mechanism::kUserspace : e2e::Mechanism::kXdp;
}

std::vector<uint32_t> KubeEnv::PolicyKeys(const policy::AuthorizationPolicy& p, const e2e::App&) {
  return {bpf_probe::PolicyId(p.ns, p.name)};
}

e2e::Env::RealizeTiming KubeEnv::MapsTiming() const {
  return {defaults::PolicyRealized(), defaults::KubePoll(), "KMESH_E2E_POLICY_REALIZED_MS"};
}

// istiod's workload UID (inference); km_frontend[pod IP] is Kmesh's own word, and the barrier uses it.
std::string KubeEnv::WorkloadIdSource(const e2e::App& server) {
  return "FNV-32a of the inferred UID " +
         PodWorkloadUid(opts_.cluster_id, server.k8s_namespace, Record(server).pod);
}

e2e::Realized KubeEnv::WaitInWaypoint(const policy::AuthorizationPolicy& p, const e2e::App& server) {
  const auto start = Clock::now();
  e2e::Realized r;
  r.policy_id = bpf_probe::PolicyId(p.ns, p.name);
  r.mechanism = e2e::Mechanism::kWaypoint;
  const AppRecord rec = Record(server);
  if (rec.waypoint.empty()) {
    throw Error("policy " + p.IdKey() + " is enforced by a waypoint, but " + server.k8s_namespace + "/" +
                server.name + " was deployed without one (AppSpec.waypoint)");
  }
  const PodInfo wp =
      WaitPodReady(server.k8s_namespace, "gateway.networking.k8s.io/gateway-name=" + rec.waypoint,
                   "waypoint of " + server.name, defaults::WaypointReady());
  // Envoy names its RBAC rules "ns[<ns>]-policy[<name>]-rule[<i>]" (Istio's naming; inference for Kmesh's
  // waypoint, which is built on Istio's proxy).
  const std::string needle = "ns[" + p.ns + "]-policy[" + p.name + "]";
  const auto deadline = start + defaults::PolicyRealized();
  std::string seen;
  while (true) {
    const auto out = k_->Try(
        {"exec", "-n", server.k8s_namespace, wp.name, "--", "pilot-agent", "request", "GET", "config_dump"});
    if (!out.ok()) throw Error("read the config of waypoint " + wp.name + ": " + DescribeResult(out));
    const bool found = out.out.find(needle) != std::string::npos;
    seen = "waypoint " + rec.waypoint + " (pod " + wp.name + ") config_dump " + (found ? "holds" : "lacks") +
           " RBAC policy " + needle;
    if (found) break;
    if (k_->dry_run()) {
      seen = "dry run, not checked: " + seen;
      break;
    }
    if (Clock::now() >= deadline) {
      throw Error("policy " + p.IdKey() + " was not realized in the waypoint within " +
                  Ms(defaults::PolicyRealized()) + " (KMESH_E2E_POLICY_REALIZED_MS): " + seen);
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
  r.evidence = seen;
  r.waited = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  return r;
}
}  // namespace kmesh::kube
