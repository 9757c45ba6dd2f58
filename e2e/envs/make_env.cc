// The Env the suites run on: KMESH_E2E_ENV=lab (the default) or kube.
#include <cstdlib>
#include <memory>
#include <string>

#include "base/error.h"
#include "e2e/framework/env.h"
#include "e2e/kube/cluster.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kubectl.h"
#include "e2e/lab/lab_env.h"

namespace kmesh::e2e {

std::unique_ptr<Env> MakeEnv() {
  const char* v = std::getenv("KMESH_E2E_ENV");
  const std::string which = v && *v ? v : "lab";
  if (which == "lab") return std::make_unique<lab::LabEnv>();
  // A real cluster (KUBECONFIG); KMESH_E2E_KUBE_DRY_RUN=1 prints its kubectl commands instead (e2e/kube).
  if (which == "kube") return kube::KubeEnv::FromEnvironment();
  throw Error("KMESH_E2E_ENV=" + which + ": unknown environment (known: lab, kube)");
}

std::vector<net::Family> EnvFamilies() {
  if (const char* f = std::getenv("KMESH_E2E_FAMILIES"); f && *f) return ParseFamilies(f);
  const char* v = std::getenv("KMESH_E2E_ENV");
  const std::string which = v && *v ? v : "lab";
  // The lab's nodes and pods are dual stack (e2e/lab/topology.h).
  if (which != "kube") return {net::Family::kIPv4, net::Family::kIPv6};
  // --config=kind: what the cluster's pods have, from the nodes' podCIDRs.
  auto kubectl = kube::Kubectl::FromEnvironment();
  return kube::PodFamilies(kube::ParseNodeList(
      kubectl->GetJson({"get", "nodes"}, "read the nodes' pod CIDRs (which address families to test)"),
      "kubectl get nodes"));
}

}  // namespace kmesh::e2e
