// bench_lab: what the lab costs and how fast a deny verdict is known.
//   - lab up (two nodes, httpbin + two sleep pods, XDP enrolled) and down, median of N;
//   - time to a deny verdict: a DENY ipBlocks policy applied, N probes from the selected client; the
//     verdict is known when the probe returns connect_timeout *and* km_auth_res holds DENY for its tuple.
//     Printed beside upstream Kmesh e2e's per-request allowance for a denied call (2 minutes).
// Run on this kernel: bazel run //e2e/lab:bench_lab -- [N]; through the VM: tools/vm/run -- <binary> [N].
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "e2e/lab/lab_env.h"
#include "e2e/policy/template.h"

using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::max(1, atoi(argv[1])) : 3;
  std::vector<double> up, down, verdict;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    auto env = std::make_unique<kmesh::lab::LabEnv>();
    auto server = env->Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, false});
    auto a = env->Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
    env->Deploy({"sleep-b", kmesh::e2e::AppKind::kClient, 0, "test-ns3", {}, false});
    up.push_back(Ms(Clock::now() - t0));
    if (i == 0) {
      auto policies = env->Apply(kmesh::policy::RenderPolicyTemplate(
          "ip-deny", kmesh::policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip)));
      env->WaitRealized(policies.at(0), server);
      for (int k = 0; k < 10; ++k) {
        auto p0 = Clock::now();
        auto out = env->Probe(a, server, {});
        auto t = kmesh::bpf_probe::Tuple::Parse(out.tuple.ToString());
        auto v = env->AuthVerdict(server, t);
        const bool denied = out.kind == kmesh::e2e::OutcomeKind::kConnectTimeout && v && kmesh::bpf_probe::Drops(*v);
        if (!denied) {
          fprintf(stderr, "bench_lab: probe %d was not denied: %s\n", k, out.ToString().c_str());
          return 1;
        }
        verdict.push_back(Ms(Clock::now() - p0));
      }
    }
    auto d0 = Clock::now();
    env.reset();
    down.push_back(Ms(Clock::now() - d0));
  }
  printf("lab (%d runs)            median        min        max\n", n);
  printf("  up                  %8.0f ms %8.0f ms %8.0f ms\n", Median(up), *std::min_element(up.begin(), up.end()),
         *std::max_element(up.begin(), up.end()));
  printf("  down                %8.0f ms %8.0f ms %8.0f ms\n", Median(down), *std::min_element(down.begin(), down.end()),
         *std::max_element(down.begin(), down.end()));
  const double m = Median(verdict);
  printf("time to a deny verdict (10 probes; connect_timeout + km_auth_res = DENY)\n");
  printf("  kmesh-e2e           %8.0f ms (median)\n", m);
  printf("  upstream Kmesh e2e  %8.0f ms (CallOptions.Timeout per denied call)\n", 120000.0);
  printf("  ratio               %8.0fx faster\n", 120000.0 / m);
  return 0;
}
