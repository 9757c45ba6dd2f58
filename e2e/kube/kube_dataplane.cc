// Kmesh's daemon on a node: restarted (its pod deleted, the replacement waited for), its log read.
#include <chrono>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/kube_env_text.h"

namespace kmesh::kube {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

void KubeEnv::RestartDataplane(const std::string& n) {
  const std::string selector = "app=kmesh";
  auto kmesh_pods = [&] {
    return ParsePodList(k_->GetJson({"get", "pods", "-n", opts_.kmesh_namespace, "-l", selector,
                                     "--field-selector", "spec.nodeName=" + n},
                                    "find the Kmesh pod of " + n),
                        "Kmesh pods of " + n);
  };
  std::string old_name, old_uid;
  for (const auto& p : kmesh_pods()) {
    if (!p.deleting) {
      old_name = p.name;
      old_uid = p.uid;
    }
  }
  if (old_name.empty()) throw Error("kube env: node " + n + " has no Kmesh pod to restart");
  k_->Run({"delete", "pod", old_name, "-n", opts_.kmesh_namespace, "--wait=false"},
          "restart Kmesh on " + n + " (delete its pod)");
  const auto deadline = Clock::now() + defaults::DataplaneRestart();
  std::string last;
  while (true) {
    bool replaced = false;
    last.clear();
    for (const auto& p : kmesh_pods()) {
      if (p.uid == old_uid || p.deleting) continue;
      if (const std::string problem = PodProblem(p); !problem.empty()) {
        throw Error("kube env: the replacement Kmesh pod on " + n + " is broken: " + p.Describe() + ": " +
                    problem);
      }
      last = p.Describe();
      replaced |= p.phase == "Running" && p.ready;
    }
    if (replaced || k_->dry_run()) break;
    if (Clock::now() >= deadline) {
      throw Error("kube env: Kmesh pod " + old_name + " on " + n +
                  " was deleted, and no replacement was ready within " + Ms(defaults::DataplaneRestart()) +
                  " (KMESH_E2E_DATAPLANE_RESTART_MS): " + (last.empty() ? "none yet" : last));
    }
    std::this_thread::sleep_for(defaults::KubePoll());
  }
  node(n).Invalidate();
}

std::string KubeEnv::KmeshLogs(const std::string& n, int lines) {
  const auto pods = ParsePodList(k_->GetJson({"get", "pods", "-n", opts_.kmesh_namespace, "-l", "app=kmesh",
                                              "--field-selector", "spec.nodeName=" + n},
                                             "find the Kmesh pod of " + n),
                                 "Kmesh pods of " + n);
  for (const auto& p : pods) {
    if (p.deleting) continue;
    return k_
        ->Run({"logs", "-n", opts_.kmesh_namespace, p.name, "--tail=" + std::to_string(lines)},
              "read Kmesh's log on " + n)
        .out;
  }
  throw Error("kube env: node " + n + " has no Kmesh pod to read the log of");
}
}  // namespace kmesh::kube
