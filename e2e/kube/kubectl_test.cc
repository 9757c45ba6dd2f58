// Unit tier: the kubectl driver and the preflight checks, against recorded kubectl outputs. The
// preflight must stop at the first failing check, with a message that says what is wrong and what to do,
// and run nothing after it.
#include "e2e/kube/kubectl.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "e2e/kube/kube_env.h"
#include "e2e/kube/replay_testing.h"

using namespace kmesh::kube;
using namespace kmesh::kube::testing;
using Catch::Matchers::Contains;

namespace {

std::string TempKubeconfig() {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir ? dir : "/tmp") + "/kubeconfig-" + std::to_string(getpid());
  std::ofstream(path) << "apiVersion: v1\nkind: Config\n";
  return path;
}

struct Driver {
  ReplayRunner* replay;
  std::unique_ptr<Kubectl> k;
};

// A Kubectl over a replay; "/bin/true" stands for kubectl so the "is kubectl there" check passes.
Driver Make(std::string kubeconfig = TempKubeconfig(), std::string binary = "/bin/true",
            std::string home_kubeconfig = "") {
  auto r = std::make_unique<ReplayRunner>();
  ReplayRunner* raw = r.get();
  KubectlConfig c;
  c.binary = binary;
  c.kubeconfig = kubeconfig;
  c.home_kubeconfig = home_kubeconfig;
  return Driver{raw, std::make_unique<Kubectl>(c, std::move(r))};
}

void HealthyCluster(ReplayRunner& r) {
  r.On({"version"}, File("version.handwritten.json"));
  r.On({"get", "pods", "kmesh-system"}, File("pods_kmesh.handwritten.json"));
  r.On({"get", "nodes"}, File("nodes.handwritten.json"));
}

}  // namespace

TEST_CASE("kubectl: global flags, and errors that name the command, its exit status and stderr") {
  Kubectl with_context(KubectlConfig{"kubectl", "/k/config", "kind-kmesh-testing", false, ""},
                       std::make_unique<ReplayRunner>());
  CHECK(with_context.Argv({"get", "pods"}) == std::vector<std::string>{"kubectl", "--kubeconfig", "/k/config",
                                                                       "--context", "kind-kmesh-testing",
                                                                       "get", "pods"});

  ReplayRunner* r = new ReplayRunner();
  r->On({"get", "secrets"}, Text("", 1,
                                 "Error from server (Forbidden): secrets is forbidden: User \"e2e\" cannot "
                                 "list resource \"secrets\"\n"));
  r->On({"exec"}, Text("{\"aead_key_hex\":\"0011deadbeef\"}", 1, ""));
  Kubectl k(KubectlConfig{"kubectl", "/k/config", "", false, ""}, std::unique_ptr<CommandRunner>(r));
  try {
    k.Run({"get", "secrets", "-A"}, "list secrets");
    FAIL("no error");
  } catch (const KubectlError& e) {
    CHECK_THAT(e.what(), Contains("list secrets: `kubectl --kubeconfig /k/config get secrets -A` exited 1: "
                                  "Error from server (Forbidden)"));
    CHECK_FALSE(e.NotFound());
    CHECK(e.result().exit_code == 1);
  }
  // Output that carries key material is never put into a message.
  try {
    k.Run({"exec", "p", "--", "kmesh-probe", "xfrm"}, "read xfrm", std::chrono::milliseconds(1000), true);
    FAIL("no error");
  } catch (const KubectlError& e) {
    CHECK_THAT(e.what(), !Contains("deadbeef"));
    CHECK_THAT(e.what(), Contains("stdout withheld"));
  }
  CHECK(k.Log().size() == 2);
  CHECK(k.Log()[0].exit_code == 1);
}

TEST_CASE("shell quoting of logged commands") {
  CHECK(ShellJoin({"kubectl", "exec", "-n", "ns", "p", "--", "curl", "-w", "%{json}", "-H", "Host: a b"}) ==
        "kubectl exec -n ns p -- curl -w '%{json}' -H 'Host: a b'");
  CHECK(ShellJoin({"it's"}) == "'it'\\''s'");
  CHECK(ShellJoin({""}) == "''");
}

TEST_CASE("kubectl on PATH or by path") {
  CHECK_FALSE(FindExecutable("sh").empty());
  CHECK(FindExecutable("/nonexistent/kubectl").empty());
  CHECK(FindExecutable("no-such-kubectl-anywhere").empty());
}

TEST_CASE("preflight passes on a healthy cluster and learns its nodes and Kmesh's flags") {
  auto d = Make();
  HealthyCluster(*d.replay);
  const ClusterFacts f = Preflight(*d.k);
  CHECK(f.server_version == "v1.30.0");
  REQUIRE(f.nodes.size() == 2);
  CHECK(f.nodes[0].name == "kmesh-testing-control-plane");
  CHECK(f.kmesh_pods.size() == 2);
  CHECK(f.kmesh_flags.mode == "dual-engine");
  CHECK(f.kmesh_flags.ipsec);
  CHECK_NOTHROW(RequireIpsec(f));
  CHECK(d.replay->unmatched().empty());
}

TEST_CASE("preflight stops at the first failing check with a message that says what to do") {
  struct Row {
    std::string what;
    std::string kubeconfig;  // "" = unset; "missing" = a path that does not exist
    std::string binary;
    std::function<void(ReplayRunner&)> cluster;
    std::vector<std::string> expected;
    size_t commands;  // how many kubectl commands ran before it stopped
  };
  auto with = [](std::function<void(ReplayRunner&)> f) { return f; };
  const std::vector<Row> rows = {
      {"KUBECONFIG unset and no HOME",
       "",
       "/bin/true",
       with([](ReplayRunner& r) { HealthyCluster(r); }),
       {"no kubeconfig: KUBECONFIG is not set and neither is HOME",
        "kind get kubeconfig --name kmesh-testing", "KMESH_E2E_ENV=lab"},
       0},
      {"KUBECONFIG unset, ~/.kube/config missing",
       "home-missing",
       "/bin/true",
       with([](ReplayRunner& r) { HealthyCluster(r); }),
       {"~/.kube/config (/nonexistent/home/.kube/config; KUBECONFIG is not set) names "
        "/nonexistent/home/.kube/config, which is missing",
        "kind writes it when it creates a cluster"},
       0},
      {"KUBECONFIG names a missing file",
       "missing",
       "/bin/true",
       with([](ReplayRunner& r) { HealthyCluster(r); }),
       {"KUBECONFIG=/nonexistent/kubeconfig names /nonexistent/kubeconfig, which is missing",
        "--config=kind passes KUBECONFIG through"},
       0},
      {"kubectl not found",
       "tmp",
       "/nonexistent/bin/kubectl",
       with([](ReplayRunner& r) { HealthyCluster(r); }),
       {"kubectl not found (looked for \"/nonexistent/bin/kubectl\")", "KMESH_E2E_KUBECTL"},
       0},
      {"cluster unreachable",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version_unreachable.stdout", 1, "version_unreachable.stderr"));
       }),
       {"the cluster is unreachable", "exited 1: The connection to the server 127.0.0.1:1 was refused",
        "kubectl cluster-info"},
       1},
      {"Kmesh not installed",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version.handwritten.json"));
         r.On({"get", "pods"}, File("pods_empty.handwritten.json"));
       }),
       {"Kmesh is not installed: no pods with label app=kmesh in namespace kmesh-system",
        "helm install kmesh"},
       2},
      {"Kmesh crash-looping",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version.handwritten.json"));
         r.On({"get", "pods"}, File("pods_kmesh_crashloop.handwritten.json"));
       }),
       {"Kmesh pod kmesh-system/kmesh-9fm2k (node kmesh-testing-worker)", "keeps crashing",
        "kubectl logs -n kmesh-system kmesh-9fm2k"},
       2},
      {"one node",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version.handwritten.json"));
         r.On({"get", "pods"}, File("pods_kmesh.handwritten.json"));
         r.On({"get", "nodes"}, File("nodes_single.handwritten.json"));
       }),
       {"the suites need two nodes", "the cluster has 1"},
       3},
      {"a node without Kmesh",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version.handwritten.json"));
         r.On({"get", "pods"}, File("pods_kmesh_worker_only.handwritten.json"));
         r.On({"get", "nodes"}, File("nodes.handwritten.json"));
       }),
       {"node kmesh-testing-control-plane has no Kmesh pod"},
       3},
      {"Kmesh not in dual-engine mode",
       "tmp",
       "/bin/true",
       with([](ReplayRunner& r) {
         r.On({"version"}, File("version.handwritten.json"));
         r.On({"get", "pods"}, File("pods_kmesh_kernel_native.handwritten.json"));
         r.On({"get", "nodes"}, File("nodes.handwritten.json"));
       }),
       {"mode kernel-native", "XDP authorization runs only with --mode=dual-engine"},
       3},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    std::string kc = row.kubeconfig == "tmp"       ? TempKubeconfig()
                     : row.kubeconfig == "missing" ? "/nonexistent/kubeconfig"
                                                   : "";
    auto d = Make(kc, row.binary, row.kubeconfig == "home-missing" ? "/nonexistent/home/.kube/config" : "");
    row.cluster(*d.replay);
    std::string message;
    try {
      Preflight(*d.k);
    } catch (const kmesh::Error& e) {
      message = e.what();
    }
    INFO(message);
    REQUIRE_FALSE(message.empty());
    for (const auto& part : row.expected) CHECK_THAT(message, Contains(part));
    CHECK(d.k->Log().size() == row.commands);
  }
}

TEST_CASE("IPsec not enabled is reported before the first IPsec step, naming the pod and its flags") {
  auto d = Make();
  d.replay->On({"version"}, File("version.handwritten.json"));
  d.replay->On({"get", "pods"}, File("pods_kmesh_no_ipsec.handwritten.json"));
  d.replay->On({"get", "nodes"}, File("nodes.handwritten.json"));
  const ClusterFacts f = Preflight(*d.k);  // the authz suites need no IPsec
  CHECK_THROWS_WITH(
      RequireIpsec(f),
      Contains("IPsec is not enabled: Kmesh pod kmesh-4xq7z on kmesh-testing-control-plane runs "
               "`/bin/sh -c ./start_kmesh.sh --mode=dual-engine --enable-bypass=false`, which lacks "
               "--enable-ipsec=true"));
}

TEST_CASE("without KUBECONFIG, kubectl's default ~/.kube/config is used, found and named, not passed") {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string home = std::string(tmp ? tmp : "/tmp") + "/home-" + std::to_string(getpid());
  std::filesystem::create_directories(home + "/.kube");
  std::ofstream(home + "/.kube/config") << "apiVersion: v1\nkind: Config\n";
  const char* old_home = std::getenv("HOME");
  const std::string saved = old_home ? old_home : "";
  unsetenv("KUBECONFIG");
  setenv("HOME", home.c_str(), 1);
  const auto c = KubectlConfig::FromEnvironment();
  CHECK(c.kubeconfig.empty());
  CHECK(c.home_kubeconfig == home + "/.kube/config");
  CHECK(c.Files() == home + "/.kube/config");
  CHECK_THAT(c.Describe(), Contains("~/.kube/config (" + home + "/.kube/config; KUBECONFIG is not set)"));
  // Passed to kubectl as it would find it: not at all (same HOME), so kubectl's own lookup decides.
  Kubectl k(c, std::make_unique<ReplayRunner>());
  CHECK(k.Argv({"get", "nodes"}) == std::vector<std::string>{"kubectl", "get", "nodes"});
  // The preflight goes past the kubeconfig check (and stops at the next one, the binary here).
  auto d = Make("", "/nonexistent/bin/kubectl", c.home_kubeconfig);
  CHECK_THROWS_WITH(Preflight(*d.k), Contains("kubectl not found"));
  // A list stays in KUBECONFIG (kubectl's --kubeconfig takes one file).
  KubectlConfig list = c;
  list.kubeconfig = "/k/a:/k/b";
  CHECK(Kubectl(list, std::make_unique<ReplayRunner>()).Argv({"get", "nodes"}) ==
        std::vector<std::string>{"kubectl", "get", "nodes"});
  if (saved.empty()) {
    unsetenv("HOME");
  } else {
    setenv("HOME", saved.c_str(), 1);
  }
}

TEST_CASE("KubectlConfig reads the environment; a dry run needs no cluster and no kubectl") {
  setenv("KUBECONFIG", "/k/a:/k/b", 1);
  setenv("KMESH_E2E_KUBECTL", "/opt/k8s/kubectl", 1);
  setenv("KMESH_E2E_KUBE_CONTEXT", "kind-kmesh-testing", 1);
  setenv("KMESH_E2E_KUBE_DRY_RUN", "1", 1);
  const auto c = KubectlConfig::FromEnvironment();
  CHECK(c.kubeconfig == "/k/a:/k/b");
  CHECK(c.binary == "/opt/k8s/kubectl");
  CHECK(c.context == "kind-kmesh-testing");
  CHECK(c.dry_run);
  auto k = Kubectl::FromEnvironment();
  k->EchoTo(nullptr);
  const ClusterFacts f = Preflight(*k);  // answered by the dry run's placeholders
  CHECK(f.nodes.size() == 2);
  CHECK(f.server_version == "v1.30.0-dry-run");
  for (const char* v :
       {"KUBECONFIG", "KMESH_E2E_KUBECTL", "KMESH_E2E_KUBE_CONTEXT", "KMESH_E2E_KUBE_DRY_RUN"})
    unsetenv(v);
}
