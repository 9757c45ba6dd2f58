// The Env the suites run on: KMESH_E2E_ENV=lab (the default) or kube.
#include <cstdlib>
#include <memory>
#include <string>

#include "base/error.h"
#include "e2e/framework/env.h"
#include "e2e/kube/kube_env.h"
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

}  // namespace kmesh::e2e
