// A lab run that will be killed: brings a lab up with Kmesh loaded (namespaces, node bpffs, node cgroups
// with servers, kmesh-lab-daemon processes), applies a DENY and probes once (so the maps hold entries),
// prints what it made as one line "INVENTORY {json}", then waits to be killed (lab_crash_test).
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "e2e/framework/expect.h"
#include "e2e/lab/lab_env.h"
#include "e2e/policy/template.h"

int main() {
  try {
    kmesh::lab::LabEnv env;
    const auto server = env.Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, false});
    const auto a = env.Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
    auto policies = env.Apply(kmesh::policy::RenderPolicyTemplate(
        "ip-deny",
        kmesh::policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip.ToString())));
    env.WaitRealized(policies.at(0), server);
    kmesh::e2e::ProbeSpec spec;
    spec.path = "/get";
    const auto j = kmesh::e2e::JudgeProbe(
        env, a, server, spec,
        kmesh::e2e::AuthzExpect{kmesh::e2e::Want::kDenied, kmesh::e2e::Mechanism::kXdp, true, 200,
                                kmesh::e2e::AuthzExpect::WhileOpen::kNotChecked},
        "before the crash", kmesh::e2e::JudgeOptions{});
    if (!j.ok) {
      std::fprintf(stderr, "lab_crash_child: the probe disagreed:\n%s\n", j.explanation.c_str());
      return 1;
    }
    kmesh::lab::Lab& lab = env.lab();
    nlohmann::json inv = {{"pid", getpid()}, {"workdir", lab.workdir()}};
    for (const auto& n : lab.topology().nodes()) {
      inv["namespaces"].push_back(n->ns.name());
      auto& k = lab.kmesh(n->spec.name);
      inv["bpffs"].push_back(k.bpffs.path());
      inv["cgroups"].push_back(k.cgroup.name());
      inv["daemons"].push_back(k.daemon->daemon_pid());
      for (pid_t p : k.cgroup.Pids()) inv["cgroup_pids"].push_back(p);
      for (const auto& prog : k.xdp->identity().programs) inv["programs"].push_back(prog.id);
      inv["maps"].push_back(k.xdp->map_id("km_auth_res"));
    }
    for (const auto& p : lab.topology().pods()) inv["namespaces"].push_back(p->ns.name());
    std::printf("INVENTORY %s\n", inv.dump().c_str());
    std::fflush(stdout);
    // Waits, lab up, to be killed; PR_SET_PDEATHSIG (netns::Process) ends it if the test goes first.
    while (true) pause();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lab_crash_child: %s\n", e.what());
    return 1;
  }
}
