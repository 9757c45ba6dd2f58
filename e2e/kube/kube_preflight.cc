// The checks before a kube env creates anything (kube_env.h, Preflight), in the order they stop a run.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "base/defaults.h"
#include "base/error.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kube_env_text.h"

namespace kmesh::kube {

using std::chrono::milliseconds;

ClusterFacts Preflight(Kubectl& k, const std::string& kmesh_ns) {
  const KubectlConfig& c = k.config();
  if (!k.dry_run()) {
    if (c.Files().empty()) {
      throw Error(
          "kube env: no kubeconfig: KUBECONFIG is not set and neither is HOME, so kubectl would look for "
          "no cluster. Set KUBECONFIG (bazel: --config=kind passes KUBECONFIG and HOME through), or for "
          "Kmesh's "
          "kind cluster `kind get kubeconfig --name kmesh-testing > /tmp/kmesh-testing.kubeconfig`. Without "
          "a "
          "cluster, run the lab env (KMESH_E2E_ENV=lab) or a dry run (KMESH_E2E_KUBE_DRY_RUN=1).");
    }
    std::stringstream paths(c.Files());
    for (std::string p; std::getline(paths, p, ':');) {
      if (!p.empty() && access(p.c_str(), R_OK) != 0) {
        const bool exists = std::filesystem::exists(p);
        throw Error(
            "kube env: " + c.Describe() + " names " + p + ", which is " +
            (exists ? "not readable" : "missing") +
            (c.kubeconfig.empty()
                 ? " (kind writes it when it creates a cluster; else set KUBECONFIG, e.g. after `kind get "
                   "kubeconfig --name kmesh-testing > /tmp/kmesh-testing.kubeconfig`; KMESH_E2E_ENV=lab or "
                   "KMESH_E2E_KUBE_DRY_RUN=1 need no cluster)"
                 : " (inside `bazel test`, --config=kind passes KUBECONFIG through; use an absolute path)"));
      }
    }
    if (FindExecutable(c.binary).empty()) {
      throw Error("kube env: kubectl not found (looked for \"" + c.binary + "\"" +
                  (c.binary.find('/') == std::string::npos ? " on PATH=" + EnvOr("PATH", "") : "") +
                  "). Install kubectl or set KMESH_E2E_KUBECTL=/path/to/kubectl (bazel: --test_env=PATH or "
                  "--test_env=KMESH_E2E_KUBECTL).");
    }
  }
  ClusterFacts f;
  const milliseconds reach = defaults::KubeReachable();
  const auto v =
      k.Try({"version", "-o", "json", "--request-timeout=" + Seconds(reach)}, reach + defaults::Kubectl());
  auto vj = nlohmann::json::parse(v.out, nullptr, false);
  if (!v.ok() || vj.is_discarded() || !vj.contains("serverVersion")) {
    std::string why = v.err.empty() ? v.out : v.err;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    throw Error("kube env: the cluster is unreachable: `" + ShellJoin(v.argv) + "` " +
                (v.timed_out ? "timed out" : "exited " + std::to_string(v.exit_code)) +
                (why.empty() ? "" : ": " + why) + " (" + c.Describe() +
                (c.context.empty() ? "" : ", context " + c.context) +
                "; `kubectl cluster-info` tells more; for kind, `kind get clusters` lists what runs)");
  }
  f.server_version = ParseServerVersion(vj, "kubectl version");

  f.kmesh_pods =
      ParsePodList(k.GetJson({"get", "pods", "-n", kmesh_ns, "-l", "app=kmesh"}, "look for Kmesh's pods"),
                   "Kmesh pods (" + kmesh_ns + ", -l app=kmesh)");
  if (f.kmesh_pods.empty()) {
    throw Error("kube env: Kmesh is not installed: no pods with label app=kmesh in namespace " + kmesh_ns +
                " (Kmesh's CI installs it with `helm install kmesh deploy/charts/kmesh-helm -n kmesh-system "
                "--create-namespace`; kmesh-facts.md §5)");
  }
  for (const auto& p : f.kmesh_pods) {
    if (const std::string problem = PodProblem(p); !problem.empty()) {
      throw Error("kube env: Kmesh pod " + p.Describe() + " is broken: " + problem);
    }
    if (p.phase != "Running" || !p.ready) {
      throw Error("kube env: Kmesh pod " + p.Describe() + " is not running and ready (`kubectl -n " +
                  kmesh_ns + " describe pod " + p.name + "`)");
    }
  }
  f.nodes = ParseNodeList(k.GetJson({"get", "nodes"}, "list the nodes"), "kubectl get nodes");
  if (f.nodes.size() < 2) {
    throw Error(
        "kube env: the suites need two nodes (server and client on different nodes, IPsec between them); the "
        "cluster has " +
        std::to_string(f.nodes.size()));
  }
  for (const auto& n : f.nodes) {
    bool has = false;
    for (const auto& p : f.kmesh_pods) has |= p.node == n.name;
    if (!has)
      throw Error("kube env: node " + n.name +
                  " has no Kmesh pod (the daemonset does not cover it: taints?)");
  }
  f.kmesh_flags = ParseKmeshDaemonFlags(f.kmesh_pods.front());
  for (const auto& p : f.kmesh_pods) {
    const auto flags = ParseKmeshDaemonFlags(p);
    if (flags.mode != "dual-engine") {
      throw Error("kube env: Kmesh pod " + p.name + " runs `" + flags.command_line + "`: mode " +
                  (flags.mode.empty() ? "not given" : flags.mode) +
                  "; XDP authorization runs only with --mode=dual-engine (kmesh-facts.md §1.2)");
    }
  }
  return f;
}

void RequireIpsec(const ClusterFacts& facts) {
  for (const auto& p : facts.kmesh_pods) {
    const auto flags = ParseKmeshDaemonFlags(p);
    if (!flags.ipsec) {
      throw Error(
          "kube env: IPsec is not enabled: Kmesh pod " + p.name + " on " + p.node + " runs `" +
          flags.command_line +
          "`, which lacks --enable-ipsec=true (Kmesh's e2e passes it in the helm values' kmeshDaemonArgs)");
    }
  }
}

std::string PodWorkloadUid(const std::string& cluster_id, const std::string& ns, const std::string& pod) {
  return cluster_id + "//Pod/" + ns + "/" + pod;
}
}  // namespace kmesh::kube
