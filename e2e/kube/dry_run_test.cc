// Unit tier: the dry run, and the reviewed lists of what the suites do to a cluster. Two walks, each on
// both node transports (probe: kmesh-probe in the Kmesh pod; kind: the host reads the node containers):
//   - the authz suite's ip-deny case: the world of four apps, the policy applied and realized, the
//     selected and the other client probed, the policy removed, the cleanup (the framework's own
//     ProbeAndJudge);
//   - the IPsec suite's three cases (e2e/ipsec/ipsec_test.cc), their Env calls in their order: the first
//     SPI from the cluster, the secret, the layout reads, the captures around each probe, the rotation
//     under fortio load, the Kmesh restart and the deleted state.
// Every command (and, on the kind transport, every in-process node read as its kmesh-probe equivalent) is
// compared line by line with testdata/kubectl/dry_run_*.txt. A change to what a suite does to a cluster
// therefore shows in review as a change of those files. To accept one, rerun with
// --test_env=KMESH_E2E_KUBE_GOLDEN_DIR=$PWD/testdata/kubectl (the lists are written there, and the test
// says so) and review the diff. A dry run never passes: every probe says it was not sent.
#include "e2e/kube/dry_run.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "base/runfiles.h"
#include "e2e/framework/case.h"
#include "e2e/framework/case_output.h"
#include "e2e/framework/expect.h"
#include "e2e/framework/ipsec_expect.h"
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

struct DryRun {
  kube::KubeOptions options;
  std::unique_ptr<kube::KubeEnv> env;
  std::set<uint16_t> ports;  // source ports the walk took (NextSourcePort), normalized in the list
};

// A dry-run KubeEnv whose nodes are read through `transport` ("probe" or "kind").
DryRun MakeDryRun(const std::string& transport) {
  setenv("KMESH_E2E_KUBE_POLL_MS", "5", 1);
  setenv("KMESH_E2E_KUBE_NODE_ACCESS", transport.c_str(), 1);
  kube::KubectlConfig config;
  config.dry_run = true;
  DryRun d;
  d.options.run_id = "rdry";
  d.options.workdir = TmpDir() + "/kube-dry-run-" + transport;
  d.options.node_access.run_id = "rdry";
  d.options.node_access.local_probe = Runfile("tools/probe/kmesh-probe");
  d.env = std::make_unique<kube::KubeEnv>(
      std::make_unique<kube::Kubectl>(config, std::make_unique<kube::DryRunRunner>()), d.options);
  return d;
}

uint16_t TakePort(DryRun& d) {
  const uint16_t p = d.env->NextSourcePort();
  d.ports.insert(p);
  return p;
}

// Paths, source ports and the tunable timeouts differ between runs; the commands do not.
std::vector<std::string> NormalizedCommands(const DryRun& d) {
  std::vector<std::string> out;
  for (std::string line : d.env->kubectl().Commands()) {
    for (const auto& [from, to] : {std::pair{d.options.workdir, std::string("<workdir>")},
                                   std::pair{d.options.node_access.local_probe, std::string("<kmesh-probe>")},
                                   std::pair{RunOutputDir(), std::string("<outputs>")}}) {
      for (size_t at; (at = line.find(from)) != std::string::npos;) line.replace(at, from.size(), to);
    }
    int n = 0;
    for (uint16_t p : d.ports) {
      line = std::regex_replace(line, std::regex("\\b" + std::to_string(p) + "\\b"),
                                "<port" + std::to_string(++n) + ">");
    }
    line = std::regex_replace(line, std::regex("--local-port [0-9]+"), "--local-port <port>");
    line = std::regex_replace(line, std::regex("kmesh-e2e-marker-[0-9]+"), "kmesh-e2e-marker-<port>");
    line = std::regex_replace(line, std::regex(":[0-9]+ -> "), ":<port> -> ");
    line = std::regex_replace(line, std::regex("--(connect-timeout|max-time) [0-9.]+"), "--$1 <seconds>");
    line = std::regex_replace(line, std::regex("--request-timeout=[0-9]+s"), "--request-timeout=<seconds>");
    out.push_back(line);
  }
  return out;
}

// The list against testdata/kubectl/<golden>, line by line; with KMESH_E2E_KUBE_GOLDEN_DIR set, the list
// is written there instead (to be reviewed as a diff).
void CheckGolden(const std::vector<std::string>& actual, const std::string& golden,
                 const std::string& title) {
  std::string text;
  for (const auto& l : actual) text += l + "\n";
  std::ofstream(CaseOutputDir() + "/" + golden) << text;
  std::cout << title << " (" << actual.size() << " commands):\n";
  for (const auto& l : actual) std::cout << "  " << l << "\n";

  std::istringstream in(kube::testing::Recorded(golden));
  std::string header;
  std::vector<std::string> expected;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '#') {
      header += line + "\n";
    } else if (!line.empty()) {
      expected.push_back(line);
    }
  }
  if (const char* dir = std::getenv("KMESH_E2E_KUBE_GOLDEN_DIR"); dir && *dir) {
    std::ofstream(std::string(dir) + "/" + golden) << header << text;
    WARN("wrote " << dir << "/" << golden << ": review its diff");
    return;
  }
  for (size_t i = 0; i < std::max(actual.size(), expected.size()); ++i) {
    INFO(golden << " line " << i + 1
                << " (accept a change with --test_env=KMESH_E2E_KUBE_GOLDEN_DIR=$PWD/testdata/kubectl)");
    CHECK((i < actual.size() ? actual[i] : "(none)") == (i < expected.size() ? expected[i] : "(none)"));
  }
}

// ---- the authz suite's ip-deny case (e2e/authz/authz_test.cc: its world, then the row) ----

void WalkAuthzIpDeny(DryRun& d) {
  kube::KubeEnv& env = *d.env;
  const App server = env.Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const App wp_server = env.Deploy({"httpbin-wp", AppKind::kServer, 1, "test-ns1", {}, true});
  const App a = env.Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const App b = env.Deploy({"sleep-b", AppKind::kClient, 0, "test-ns3", {}, false});
  CHECK(server.node == "kmesh-testing-worker");
  CHECK(a.node == "kmesh-testing-control-plane");
  CHECK(env.ServiceAddress(wp_server).ip.ToString().rfind("10.96.0.", 0) ==
        0);  // through the waypoint's service

  Case c("authz", "ip-deny (dry run)", env.name());
  const auto vars =
      policy::Vars().Set("Namespace", "test-ns1").Set("App", server.name).Set("Ip", a.ip.ToString());
  const auto policies = env.Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  const Realized r = env.WaitRealized(policies.at(0), server);
  CHECK_THAT(r.evidence, Contains("dry run, not checked"));
  const Mechanism mech = env.MechanismOf(policies.at(0));
  CHECK(mech == Mechanism::kXdp);
  ProbeSpec sa, sb;
  sa.src_port = TakePort(d);
  sb.src_port = TakePort(d);
  const Judgement selected =
      ProbeAndJudge(env, c, a, server, sa, {Want::kDenied, mech, true}, "selected client");
  const Judgement other = ProbeAndJudge(env, c, b, server, sb, {Want::kAllowed, mech}, "other client");
  env.Remove(policies);

  // Nothing in a dry run can pass: every probe reports that it was not sent.
  CHECK_FALSE(selected.ok);
  CHECK_FALSE(other.ok);
  CHECK_THAT(selected.explanation, Contains(kube::DryRunRunner::kCurlError));
  CHECK_THAT(other.explanation, Contains(kube::DryRunRunner::kCurlError));
  CHECK(env.CleanupNow().empty());
}

// ---- the IPsec suite (e2e/ipsec/ipsec_test.cc), its Env calls in order ----

ipsec::IpsecSecret NewSecret(uint32_t spi) {
  ipsec::IpsecSecret s;
  s.spi = spi;
  s.aead_key = ipsec::KeyMaterial(std::vector<uint8_t>(ipsec::IpsecSecret::kKeyBytes, 0x5a));
  return s;
}

// The suite's own checks (e2e/framework/ipsec_expect.h) on the kube env. A layout is read once (a dry run's
// never converges, and WaitLayout would only repeat the reads until XFRM_CONVERGED). The encrypted probe
// captures on each node's underlay and in the server pod through the node's evidence (kind: in this
// process; probe: kmesh-probe capture in the Kmesh pod, its .pcap fetched), probes, and judges (it fails:
// a dry run captured nothing).
void ReadLayout(Env& env, const ipsec::SecretHistory& secrets) { e2e::ReadLayout(env, secrets, {}); }

void ProbeAndExpectEncrypted(Env& env, Case& c, const App& client, const App& server,
                             const ipsec::SecretHistory& secrets, const std::string& label) {
  const EncryptedProbe p = e2e::ProbeEncrypted(env, c, client, server, secrets, label);
  CHECK_FALSE(e2e::ExpectEncrypted(env, c, p, client, server, label));
}

void WalkIpsec(DryRun& d) {
  kube::KubeEnv& env = *d.env;
  Case c("dry-run", "ipsec", env.name());
  ipsec::SecretHistory secrets;
  auto apply = [&](uint32_t spi) {
    secrets.Add(NewSecret(spi));
    env.ApplySecret(NewSecret(spi));
  };
  // TheWorld()
  const App server = env.Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const App client = env.Deploy({"sleep", AppKind::kClient, 0, "test-ns1", {}, false});
  // connectivity
  const uint32_t first = env.FirstSpi();
  CHECK(first == 3);  // the dry run's cluster is at SPI 2, as Kmesh's Go e2e leaves it
  apply(first);
  ReadLayout(env, secrets);
  ProbeAndExpectEncrypted(env, c, client, server, secrets, "request");
  ReadLayout(env, secrets);
  // key rotation under continuous traffic
  ReadLayout(env, secrets);
  LoadSpec load;
  load.probe.dst = env.ServiceAddress(server);
  load.probe.http = false;
  load.requests_per_second = 20;
  load.duration = std::chrono::milliseconds(8000);
  std::unique_ptr<LoadRun> gen = env.StartLoad(client, server, load);
  apply(first + 1);
  ReadLayout(env, secrets);
  ProbeAndExpectEncrypted(env, c, client, server, secrets, "new-spi");
  CHECK_THROWS(gen->Wait());  // fortio's result is not there in a dry run
  ReadLayout(env, secrets);
  // fault recovery: dataplane restart
  ReadLayout(env, secrets);
  env.RestartDataplane(server.node);
  ReadLayout(env, secrets);
  ProbeAndExpectEncrypted(env, c, client, server, secrets, "after-restart");
  // fault recovery: ingress state deleted by hand (the one the suite picks: SPI, output-mark 0xd0, on the
  // server's node; a dry run's xfrm is empty, so it is named here as the suite would find it)
  ReadLayout(env, secrets);
  xfrm::XfrmState victim;
  victim.src = "172.18.0.2";
  victim.dst = "172.18.0.3";
  victim.proto = 50;
  victim.spi = xfrm::Spi{first + 1};
  env.DeleteXfrmState(server.node, victim);
  ReadLayout(env, secrets);
  ProbeAndExpectEncrypted(env, c, client, server, secrets, "after-delete");
  CHECK(env.CleanupNow().empty());
}

}  // namespace

TEST_CASE("dry run: the authz suite's ip-deny case, command by command, on both transports, and no pass") {
  for (const std::string transport : {"probe", "kind"}) {
    INFO("transport " << transport);
    DryRun d = MakeDryRun(transport);
    WalkAuthzIpDeny(d);
    const auto actual = NormalizedCommands(d);
    CheckGolden(actual, transport == "probe" ? "dry_run_authz_ip_deny.txt" : "dry_run_authz_ip_deny_kind.txt",
                "authz ip-deny, " + transport + " transport");
    // The run owns only what it made: three namespaces (and, on the probe transport, the probe copy).
    CHECK(std::count_if(actual.begin(), actual.end(), [](const std::string& s) {
            return s.find("delete namespace") != std::string::npos;
          }) == 3);
    // Before any probe, each of the four pods was checked for Kmesh's XDP (Kmesh's e2e: 5 s per pod).
    const auto first_curl = std::find_if(actual.begin(), actual.end(), [](const std::string& s) {
      return s.find("-- curl") != std::string::npos;
    });
    CHECK(std::count_if(actual.begin(), first_curl, [](const std::string& s) {
            return s.find(" xdp --pod-ip ") != std::string::npos;
          }) == 4);
    const bool docker = std::any_of(actual.begin(), actual.end(),
                                    [](const std::string& s) { return s.rfind("docker ", 0) == 0; });
    CHECK(docker == (transport == "kind"));
    unsetenv("KMESH_E2E_KUBE_NODE_ACCESS");
  }
}

TEST_CASE("dry run: the IPsec suite, command by command, on both transports") {
  for (const std::string transport : {"probe", "kind"}) {
    INFO("transport " << transport);
    DryRun d = MakeDryRun(transport);
    WalkIpsec(d);
    const auto actual = NormalizedCommands(d);
    CheckGolden(actual, transport == "probe" ? "dry_run_ipsec.txt" : "dry_run_ipsec_kind.txt",
                "IPsec suite, " + transport + " transport");
    // The secret is written as kmeshctl writes it, from the cluster's SPI up, and never applied.
    const std::string all = [&] {
      std::string s;
      for (const auto& l : actual) s += l + "\n";
      return s;
    }();
    CHECK_THAT(all, Contains("kubectl replace -f <workdir>/") && Contains("-ipsec-secret.yaml"));
    for (const auto& l : actual) {
      if (l.find("ipsec-secret") != std::string::npos) CHECK(l.rfind("kubectl replace -f ", 0) == 0);
    }
    // The same captures on both transports, through the node's evidence: each probe's two underlays and
    // its sanity capture in the server pod.
    const auto captures = std::count_if(actual.begin(), actual.end(), [](const std::string& s) {
      return s.find("kmesh-probe capture") != std::string::npos || s.find(" capture --") != std::string::npos;
    });
    CHECK(captures == 4 * 3);
    if (transport == "probe") {
      CHECK_THAT(all, Contains("capture --peer 172.18.0.3"));
    } else {
      CHECK_THAT(all,
                 Contains("(in process) kmesh-probe capture --netns /proc/10001/ns/net --peer 172.18.0.3"));
    }
    unsetenv("KMESH_E2E_KUBE_NODE_ACCESS");
  }
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
