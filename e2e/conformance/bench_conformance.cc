// bench_conformance: how many verdicts per second the conformance run judges on this machine, beside what
// one would otherwise use to get a verdict from Kmesh's XDP:
//   - the conformance run (seeded, no shrinking): Kmesh's object loaded once, policies written by Kmesh's
//     deserializer, one BPF_PROG_TEST_RUN per connection, Istio's answer and the model's per verdict;
//   - the same with a fresh node per case (daemon restarted on emptied maps: what the run does only to
//     confirm a minimal case);
//   - a fresh datapath per case (the verifier's ~2.5 s of CPU for every policy set);
//   - a lab probe per verdict (two-node lab, httpbin, a real connection through xdp_authz on the pod's
//     veth; a deny costs the connect timeout).
// Run as root: bazel run //e2e/conformance:bench_conformance -- [seconds] [--no-lab]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/defaults.h"
#include "e2e/conformance/conformance.h"
#include "e2e/lab/lab_env.h"
#include "e2e/policy/template.h"

namespace kc = kmesh::conformance;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Lab probes: one client denied by an ipBlocks DENY (connect timeout), one allowed (HTTP 200).
void LabProbes(int n, double* deny_s, double* allow_s) {
  auto env = std::make_unique<kmesh::lab::LabEnv>();
  auto server = env->Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, false});
  auto a = env->Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
  auto b = env->Deploy({"sleep-b", kmesh::e2e::AppKind::kClient, 0, "test-ns3", {}, false});
  auto policies = env->Apply(kmesh::policy::RenderPolicyTemplate(
      "ip-deny",
      kmesh::policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip.ToString())));
  env->WaitRealized(policies.at(0), server);
  std::vector<double> deny, allow;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    const auto out = env->Probe(a, server, {});
    if (out.kind != kmesh::e2e::OutcomeKind::kConnectTimeout) {
      std::fprintf(stderr, "bench_conformance: the denied client's probe was %s\n", out.ToString().c_str());
    }
    deny.push_back(Seconds(Clock::now() - t0));
    t0 = Clock::now();
    env->Probe(b, server, {});
    allow.push_back(Seconds(Clock::now() - t0));
  }
  *deny_s = Median(deny);
  *allow_s = Median(allow);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  bool lab = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-lab") == 0) {
      lab = false;
    } else {
      seconds = std::max(1.0, std::atof(argv[i]));
    }
  }

  const auto load0 = Clock::now();
  kc::KmeshXdpUnderTest node("/tmp");
  const double load_s = Seconds(Clock::now() - load0);
  kc::Differential diff(node);

  kc::RunOptions o;
  o.seed = 1;
  o.budget = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
  o.shrink_share = 0;
  const kc::RunReport r = kc::RunConformance(diff, o);
  const double per_case_verdicts = r.cases ? static_cast<double>(r.verdicts) / r.cases : 0;

  // A fresh node per case: what a Reset (daemon restarted, maps emptied and restored) adds to each case.
  const int resets = 10;
  const auto reset0 = Clock::now();
  for (int i = 0; i < resets; ++i) node.Reset();
  const double reset_s = Seconds(Clock::now() - reset0) / resets;
  const double case_s = r.cases ? r.judge_seconds / r.cases : 0;

  std::printf("Kmesh's XDP verdicts per second (%s)\n", node.identity().Describe().c_str());
  std::printf(
      "  conformance run (seed 1, %.0f s)      %8.0f verdicts/s  (%llu cases x %.0f connections; %s)\n",
      seconds, r.VerdictsPerSecond(), static_cast<unsigned long long>(r.cases), per_case_verdicts,
      r.judge_timings.ToString().c_str());
  std::printf(
      "  the same, a fresh node per case      %8.0f verdicts/s  (+%.1f ms per case to restart the daemon)\n",
      per_case_verdicts / (case_s + reset_s), reset_s * 1e3);
  std::printf(
      "  a fresh datapath per case            %8.1f verdicts/s  (load and verify Kmesh's object: %.2f s)\n",
      per_case_verdicts / (case_s + load_s), load_s);
  if (lab) {
    double deny_s = 0, allow_s = 0;
    LabProbes(10, &deny_s, &allow_s);
    std::printf(
        "  a lab probe per verdict, deny        %8.1f verdicts/s  (connect timeout %lld ms, median %.0f "
        "ms)\n",
        1 / deny_s, static_cast<long long>(kmesh::defaults::ConnectTimeout().count()), deny_s * 1e3);
    std::printf("  a lab probe per verdict, allow       %8.1f verdicts/s  (median %.1f ms)\n", 1 / allow_s,
                allow_s * 1e3);
    std::printf("  ratio (conformance / lab probe)      %8.0fx allow, %.0fx deny\n", r.VerdictsPerSecond() * allow_s,
                r.VerdictsPerSecond() * deny_s);
  }
  return r.VerdictsPerSecond() >= 2000 ? 0 : 3;
}
