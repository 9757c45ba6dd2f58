// Unit tier: the kube env's first checks with the real kubectl of this machine, when it has one. Loopback
// only: the "cluster" is https://127.0.0.1:1, where nothing listens. Without kubectl on PATH the live
// part says so (WARN) and the "kubectl not found" path is what is checked.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "base/error.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kubectl.h"

using namespace kmesh::kube;
using Catch::Matchers::Contains;

namespace {

std::string Tmp() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::string Failure(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const kmesh::Error& e) {
    return e.what();
  }
  return "";
}

void ClearEnv() {
  for (const char* v :
       {"KUBECONFIG", "KMESH_E2E_KUBECTL", "KMESH_E2E_KUBE_DRY_RUN", "KMESH_E2E_KUBE_CONTEXT"})
    unsetenv(v);
}

}  // namespace

TEST_CASE("KubeEnv::FromEnvironment without KUBECONFIG looks where kubectl does, and stops there") {
  ClearEnv();
  const char* home = std::getenv("HOME");
  const std::string saved = home ? home : "";
  setenv("HOME", (Tmp() + "/no-such-home").c_str(), 1);
  const std::string m = Failure([] { KubeEnv::FromEnvironment(); });
  CHECK_THAT(m, Contains("~/.kube/config (" + Tmp() + "/no-such-home/.kube/config; KUBECONFIG is not set)"));
  CHECK_THAT(m, Contains("which is missing"));
  if (saved.empty()) {
    unsetenv("HOME");
  } else {
    setenv("HOME", saved.c_str(), 1);
  }
}

TEST_CASE(
    "KubeEnv::FromEnvironment with no kubectl says which binary it looked for and how to name another") {
  ClearEnv();
  const std::string kc = Tmp() + "/kubeconfig-none";
  std::ofstream(kc) << "apiVersion: v1\nkind: Config\n";
  setenv("KUBECONFIG", kc.c_str(), 1);
  setenv("KMESH_E2E_KUBECTL", "/nonexistent/kubectl", 1);
  const std::string m = Failure([] { KubeEnv::FromEnvironment(); });
  CHECK_THAT(m, Contains("kubectl not found (looked for \"/nonexistent/kubectl\")"));
  CHECK_THAT(m, Contains("KMESH_E2E_KUBECTL"));
  ClearEnv();
}

TEST_CASE("an unreachable API server is reported in seconds, with kubectl's words and the kubeconfig") {
  ClearEnv();
  const std::string kubectl = FindExecutable("kubectl");
  if (kubectl.empty()) {
    WARN(
        "kubectl is not on PATH here: the live unreachable-cluster check was not run (the recorded one in "
        "kubectl_test was)");
    return;
  }
  const std::string kc = Tmp() + "/kubeconfig-unreachable";
  std::ofstream(kc)
      << "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:1\n"
         "    insecure-skip-tls-verify: true\n  name: nowhere\ncontexts:\n- context:\n    cluster: nowhere\n"
         "    user: nobody\n  name: nowhere\ncurrent-context: nowhere\nusers:\n- name: nobody\n  user:\n"
         "    token: not-a-token\n";
  setenv("KUBECONFIG", kc.c_str(), 1);
  setenv("KMESH_E2E_KUBE_REACHABLE_MS", "5000", 1);
  const auto start = std::chrono::steady_clock::now();
  const std::string m = Failure([] { KubeEnv::FromEnvironment(); });
  INFO(m);
  CHECK_THAT(m, Contains("the cluster is unreachable"));
  CHECK_THAT(m, Contains("127.0.0.1:1"));
  CHECK_THAT(m, Contains("KUBECONFIG=" + kc));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(40));
  unsetenv("KMESH_E2E_KUBE_REACHABLE_MS");
  ClearEnv();
}
