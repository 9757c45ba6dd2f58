// Unit tier: the dry run. One case of the authz suite (ip-deny: the world of four apps, the policy
// applied and realized, the selected and the other client probed, the policy removed, the cleanup) is
// walked on a dry-run KubeEnv with the framework's own ProbeAndJudge. The test prints every kubectl
// command that case would run and asserts the list (testdata/kubectl/dry_run_authz_ip_deny.txt). It also
// asserts that the dry run passes nothing: a dry run is never a pass of the suite.
#include "e2e/kube/dry_run.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "base/runfiles.h"
#include "e2e/framework/case.h"
#include "e2e/framework/case_output.h"
#include "e2e/framework/expect.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/replay_testing.h"
#include "e2e/policy/template.h"

using namespace kmesh;
using namespace kmesh::e2e;
using Catch::Matchers::Contains;

namespace {

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

// Paths, the per-process source ports and the tunable timeouts differ between runs; the commands do not.
std::string Normalize(std::string line, const std::string& workdir, const std::string& probe) {
  for (const auto& [from, to] :
       {std::pair{workdir, std::string("<workdir>")}, std::pair{probe, std::string("<kmesh-probe>")}}) {
    for (size_t at; (at = line.find(from)) != std::string::npos;) line.replace(at, from.size(), to);
  }
  line = std::regex_replace(line, std::regex("--local-port [0-9]+"), "--local-port <port>");
  line = std::regex_replace(line, std::regex("--(connect-timeout|max-time) [0-9.]+"), "--$1 <seconds>");
  line = std::regex_replace(line, std::regex("--request-timeout=[0-9]+s"), "--request-timeout=<seconds>");
  return std::regex_replace(line, std::regex(":[0-9]+ -> "), ":<port> -> ");
}

}  // namespace

TEST_CASE("dry run: every kubectl command of the authz suite's ip-deny case, and no pass") {
  setenv("KMESH_E2E_KUBE_POLL_MS", "5", 1);
  kube::KubectlConfig config;
  config.dry_run = true;
  auto kubectl = std::make_unique<kube::Kubectl>(config, std::make_unique<kube::DryRunRunner>());
  kube::KubeOptions o;
  o.run_id = "rdry";
  o.workdir = TmpDir() + "/kube-dry-run";
  o.node_access.run_id = "rdry";
  o.node_access.local_probe = Runfile("tools/probe/kmesh-probe");
  auto env = std::make_unique<kube::KubeEnv>(std::move(kubectl), o);

  // The suite's world (e2e/authz/authz_test.cc), then its ip-deny row.
  const App server = env->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const App wp_server = env->Deploy({"httpbin-wp", AppKind::kServer, 1, "test-ns1", {}, true});
  const App a = env->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const App b = env->Deploy({"sleep-b", AppKind::kClient, 0, "test-ns3", {}, false});
  CHECK(server.node == "kmesh-testing-worker");
  CHECK(a.node == "kmesh-testing-control-plane");
  CHECK(env->ServiceAddress(wp_server).first.rfind("10.96.0.", 0) == 0);  // through the waypoint's service

  Case c("authz", "ip-deny (dry run)", env->name());
  const auto vars = policy::Vars().Set("Namespace", "test-ns1").Set("App", server.name).Set("Ip", a.ip);
  const auto policies = env->Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  const Realized r = env->WaitRealized(policies.at(0), server);
  CHECK_THAT(r.evidence, Contains("dry run, not checked"));
  const Mechanism mech = env->MechanismOf(policies.at(0));
  CHECK(mech == Mechanism::kXdp);
  const Judgement selected =
      ProbeAndJudge(*env, c, a, server, ProbeSpec{}, {Want::kDenied, mech, true}, "selected client");
  const Judgement other =
      ProbeAndJudge(*env, c, b, server, ProbeSpec{}, {Want::kAllowed, mech}, "other client");
  env->Remove(policies);

  // Nothing in a dry run can pass: every probe reports that it was not sent.
  CHECK_FALSE(selected.ok);
  CHECK_FALSE(other.ok);
  CHECK_THAT(selected.explanation, Contains(kube::DryRunRunner::kCurlError));
  CHECK_THAT(other.explanation, Contains(kube::DryRunRunner::kCurlError));

  CHECK(env->CleanupNow().empty());
  std::vector<std::string> actual;
  for (const auto& cmd : env->kubectl().Commands())
    actual.push_back(Normalize(cmd, o.workdir, o.node_access.local_probe));

  std::cout << "kubectl commands of the authz suite's ip-deny case (" << actual.size() << "):\n";
  for (const auto& line : actual) std::cout << "  " << line << "\n";
  std::ofstream(CaseOutputDir() + "/dry_run_commands.txt") << [&] {
    std::string s;
    for (const auto& l : actual) s += l + "\n";
    return s;
  }();

  std::vector<std::string> expected;
  std::istringstream golden(kube::testing::Recorded("dry_run_authz_ip_deny.txt"));
  for (std::string line; std::getline(golden, line);) {
    if (!line.empty() && line[0] != '#') expected.push_back(line);
  }
  for (size_t i = 0; i < std::max(actual.size(), expected.size()); ++i) {
    INFO("command " << i);
    CHECK((i < actual.size() ? actual[i] : "(none)") == (i < expected.size() ? expected[i] : "(none)"));
  }
  // The run owns only what it made: three namespaces, the probe copy, the policy (removed by the suite).
  CHECK(std::count_if(actual.begin(), actual.end(), [](const std::string& s) {
          return s.find("delete namespace") != std::string::npos;
        }) == 3);
}

TEST_CASE(
    "dry run: KMESH_E2E_ENV=kube with KMESH_E2E_KUBE_DRY_RUN=1 needs no cluster, KUBECONFIG or kubectl") {
  setenv("KMESH_E2E_ENV", "kube", 1);
  setenv("KMESH_E2E_KUBE_DRY_RUN", "1", 1);
  unsetenv("KUBECONFIG");
  setenv("KMESH_E2E_KUBECTL", "/nonexistent/kubectl", 1);
  auto env = MakeEnv();
  CHECK(env->name() == "kube");
  CHECK(env->Nodes().size() == 2);
  auto* kube_env = dynamic_cast<kube::KubeEnv*>(env.get());
  REQUIRE(kube_env != nullptr);
  CHECK(kube_env->kubectl().dry_run());
  CHECK(kube_env->kubectl().Commands().at(0).rfind("/nonexistent/kubectl version -o json --request-timeout=",
                                                   0) == 0);
  for (const char* v : {"KMESH_E2E_ENV", "KMESH_E2E_KUBE_DRY_RUN", "KMESH_E2E_KUBECTL"}) unsetenv(v);
}
