// bench_lab: what Kmesh's datapath and the lab cost, and how fast a deny verdict is known.
//   build    the compile of Kmesh's xdp.c as Bazel ran it (from a Bazel JSON profile of a build that ran it,
//            --bazel-profile) and the build record (clang, object sha256);
//   load     Kmesh's XDP object loaded into a fresh node bpffs (the verifier walks ~976K instructions of
//            policy_check), two nodes in parallel as the lab does: wall and the loading thread's CPU;
//   lab      up (two nodes with Kmesh loaded, httpbin and two sleep pods enrolled) and down, N runs;
//   verdict  time to a deny verdict, both methods in this one run: proven by the kernel (drop_proof.h: the
//            probe's wait ends once XDP's drop is proven) and the timeout method (the client's bound, then
//            the maps), for an uncached XDP drop (ALLOW policies, none matched), a cached one (DENY matched)
//            and a Kmesh userspace deny (request dropped by XDP after the handshake); each verdict is the
//            suite's own judgement (JudgeProbe) and must pass;
//   suite    the authz suite (its binary, a data dependency) run once: wall time, what dominates.
// Run as root: bazel run //e2e/lab:bench_lab -- [--runs N] [--probes M] [--bazel-profile FILE] [--no-suite]
// A profile with the compile in it: bazel clean; bazel build --disk_cache= --profile=/tmp/p.json
//   //third_party/kmesh:xdp (a cache hit compiles nothing, and the profile then says so).
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "e2e/framework/expect.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/lab_env.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/policy/template.h"
#include "netns/process.h"

namespace {

using Clock = std::chrono::steady_clock;
using kmesh::e2e::AuthzExpect;
using kmesh::e2e::Mechanism;
using kmesh::e2e::Want;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  std::vector<double> v;
  double median() const {
    auto s = v;
    std::sort(s.begin(), s.end());
    return s.empty() ? 0 : s[s.size() / 2];
  }
  double min() const { return v.empty() ? 0 : *std::min_element(v.begin(), v.end()); }
  double max() const { return v.empty() ? 0 : *std::max_element(v.begin(), v.end()); }
  std::string Row() const {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%8.1f ms (%.1f .. %.1f)", median(), min(), max());
    return buf;
  }
};

double ThreadCpuMs() {
  rusage r{};
  getrusage(RUSAGE_THREAD, &r);
  return r.ru_utime.tv_sec * 1e3 + r.ru_utime.tv_usec / 1e3 + r.ru_stime.tv_sec * 1e3 +
         r.ru_stime.tv_usec / 1e3;
}

// ---- build ----

void PrintBuild(const std::string& profile) {
  std::printf("build of Kmesh's datapath\n");
  std::ifstream rec(kmesh::Runfile("third_party/kmesh/xdp.build.json"));
  const auto record = nlohmann::json::parse(rec, nullptr, false);
  if (!record.is_discarded()) {
    std::printf("  xdp.o               %s, sha256 %.16s..., %s\n", record.value("clang", "?").c_str(),
                record.value("object_sha256", "?").c_str(),
                record["kmesh"].value("digest_vs_pinned", "?").c_str());
  }
  if (profile.empty()) {
    std::printf("  compile             (give --bazel-profile FILE of a build that compiled it)\n");
    return;
  }
  std::ifstream f(profile);
  const auto p = nlohmann::json::parse(f, nullptr, false);
  if (p.is_discarded() || !p.contains("traceEvents")) {
    throw kmesh::Error("bench_lab: " + profile + " is not a Bazel JSON profile (bazel build --profile=FILE)");
  }
  bool found = false;
  for (const auto& e : p["traceEvents"]) {
    const std::string name = e.value("name", "");
    if (!e.contains("dur") || e.value("cat", "") != "action processing" ||
        name.find("Compiling Kmesh's") == std::string::npos) {
      continue;
    }
    std::printf("  compile             %8.0f ms wall  %s\n", e["dur"].get<double>() / 1000.0, name.c_str());
    found = true;
  }
  if (!found) {
    std::printf(
        "  compile             not in %s: the build took Kmesh's objects from a cache (bazel clean; "
        "bazel build --disk_cache= --profile=FILE //third_party/kmesh:xdp)\n",
        profile.c_str());
  }
}

// ---- load ----

void PrintLoad() {
  const std::string dir = "/tmp/" + kmesh::UniqueName("bench");
  if (mkdir(dir.c_str(), 0700) != 0) kmesh::ThrowErrno("bench_lab: mkdir " + dir);
  struct Cost {
    double wall = 0, cpu = 0;
    std::string error;
  };
  std::vector<Cost> costs(2);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < costs.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        auto bpffs = kmesh::lab::NodeBpffs::Mount(dir, "node" + std::to_string(i + 1));
        const double c0 = ThreadCpuMs();
        const auto w0 = Clock::now();
        auto dp = kmesh::lab::KmeshAuthzDatapath::Load(bpffs);
        costs[i].wall = Ms(Clock::now() - w0);
        costs[i].cpu = ThreadCpuMs() - c0;
      } catch (const std::exception& e) {
        costs[i].error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  const double both = Ms(Clock::now() - t0);
  std::filesystem::remove_all(dir);
  std::printf("load of Kmesh's XDP object (4 programs, verifier), two nodes in parallel\n");
  for (size_t i = 0; i < costs.size(); ++i) {
    if (!costs[i].error.empty())
      throw kmesh::Error("bench_lab: load on node" + std::to_string(i + 1) + ": " + costs[i].error);
    std::printf("  node%zu               %8.0f ms wall %8.0f ms CPU\n", i + 1, costs[i].wall, costs[i].cpu);
  }
  std::printf("  both nodes          %8.0f ms wall\n", both);
}

// ---- verdicts ----

struct Kind {
  const char* name;
  const char* policy;       // template
  const char* var;          // the template's variable for the selected client
  bool select_a_namespace;  // the variable is a namespace, not an address
  bool probe_a;             // the probe's client: a (selected) or b
  AuthzExpect want;
  int probes;
};

void PrintVerdicts(int probes) {
  auto env = std::make_unique<kmesh::lab::LabEnv>();
  auto server = env->Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, false});
  auto a = env->Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
  auto b = env->Deploy({"sleep-b", kmesh::e2e::AppKind::kClient, 0, "test-ns3", {}, false});
  using W = AuthzExpect::WhileOpen;
  const std::vector<Kind> kinds = {
      {"XDP, no ALLOW matched (uncached)", "ip-allow", "Ip", false, false,
       AuthzExpect{Want::kDenied, Mechanism::kXdp, false, 200, W::kNotChecked}, probes},
      {"XDP, DENY matched (km_auth_res)", "ip-deny", "Ip", false, true,
       AuthzExpect{Want::kDenied, Mechanism::kXdp, true, 200, W::kNotChecked}, probes},
      {"Kmesh userspace (request dropped)", "namespace-allow", "SourceNamespace", true, false,
       AuthzExpect{Want::kDenied, Mechanism::kUserspace, true, 200, W::kNotChecked}, std::max(2, probes / 2)},
  };
  std::printf(
      "time to a deny verdict: the suite's judgement (JudgeProbe), both methods alternating in this run\n");
  std::printf("  %-34s %-28s %-28s %s\n", "denied by", "proven by the kernel", "timeout method", "ratio");
  for (const Kind& k : kinds) {
    auto vars = kmesh::policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin");
    vars.Set(k.var, k.select_a_namespace ? a.k8s_namespace : a.ip.ToString());
    auto policies = env->Apply(kmesh::policy::RenderPolicyTemplate(k.policy, vars));
    env->WaitRealized(policies.at(0), server);
    Stats proven, timeout;
    for (int i = 0; i < 2 * k.probes; ++i) {
      kmesh::e2e::JudgeOptions o;
      o.prove_drops = i % 2 == 0;
      kmesh::e2e::ProbeSpec spec;
      spec.path = "/get";
      spec.request_delay = kmesh::defaults::UserspaceVerdict();
      const auto j = kmesh::e2e::JudgeProbe(*env, k.probe_a ? a : b, server, spec, k.want, k.name, o);
      if (!j.ok) throw kmesh::Error("bench_lab: a verdict disagreed:\n" + j.explanation);
      (o.prove_drops ? proven : timeout).v.push_back(j.verdict_time.count() / 1000.0);
    }
    env->Remove(policies);
    std::printf("  %-34s %-28s %-28s %5.0fx\n", k.name, proven.Row().c_str(), timeout.Row().c_str(),
                timeout.median() / std::max(0.001, proven.median()));
    if (proven.median() >= 50) std::printf("  ^ median over 50 ms\n");
  }
  std::printf(
      "  (%d probes per method, %d for userspace; upstream Kmesh e2e allows 120000 ms per denied call)\n",
      probes, std::max(2, probes / 2));
}

// ---- suite ----

void PrintSuite() {
  const std::string bin = kmesh::Runfile("e2e/authz/authz_test");
  const std::string root = bin.substr(0, bin.size() - std::strlen("/kmesh_e2e/e2e/authz/authz_test"));
  const std::string dir = "/tmp/" + kmesh::UniqueName("bench-suite");
  std::filesystem::create_directories(dir + "/outputs");
  kmesh::netns::ProcessOptions opts;
  opts.env = {"RUNFILES_DIR=" + root, "KMESH_E2E_TIER=e2e", "XML_OUTPUT_FILE=" + dir + "/junit.xml",
              "TEST_UNDECLARED_OUTPUTS_DIR=" + dir + "/outputs"};
  opts.output = kmesh::netns::ProcessOptions::Output::kFile;
  opts.output_file = dir + "/log";
  const auto t0 = Clock::now();
  const auto r = kmesh::netns::Run({bin}, opts, kmesh::defaults::SuiteRun());
  const double wall = Ms(Clock::now() - t0);
  std::ifstream f(dir + "/junit.xml");
  const std::string xml((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::pair<double, std::string>> cases;
  const std::regex tc("<testcase (?:[^>]*\\s)?name=\"([^\"]*)\"[^>]*time=\"([0-9.]+)\"");
  for (std::sregex_iterator it(xml.begin(), xml.end(), tc), end; it != end; ++it) {
    cases.push_back({std::stod((*it)[2]) * 1000.0, (*it)[1]});
  }
  std::printf("authz suite (%s), one run\n", bin.c_str());
  std::printf("  wall                %8.0f ms, %zu cases, exit %d%s\n", wall, cases.size(), r.exit_code,
              r.ok() ? "" : (" (log: " + opts.output_file + ")").c_str());
  if (!cases.empty()) {
    double sum = 0;
    for (const auto& [ms, name] : cases) sum += ms;
    std::printf("  first case          %8.0f ms (lab up with Kmesh loaded, then the case)\n",
                cases.front().first);
    std::printf("  other cases         %8.0f ms, %.0f ms each on average\n", sum - cases.front().first,
                (sum - cases.front().first) / std::max<size_t>(1, cases.size() - 1));
    std::printf("  outside the cases   %8.0f ms (process start, teardown)\n", wall - sum);
    auto slow = cases;
    std::sort(slow.rbegin(), slow.rend());
    for (size_t i = 1; i < std::min<size_t>(slow.size(), 6); ++i) {
      std::printf("  slow: %6.0f ms  %s\n", slow[i].first, slow[i].second.c_str());
    }
  }
  if (r.ok()) std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 3, probes = 10;
  bool suite = true;
  std::string profile;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw kmesh::Error("bench_lab: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--runs") {
      runs = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--probes") {
      probes = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--bazel-profile") {
      profile = value();
    } else if (a == "--no-suite") {
      suite = false;
    } else {
      std::fprintf(stderr,
                   "bench_lab: unknown argument %s\nusage: bench_lab [--runs N] [--probes M] "
                   "[--bazel-profile FILE] [--no-suite]\n",
                   a.c_str());
      return 2;
    }
  }
  try {
    PrintBuild(profile);
    PrintLoad();
    Stats up, down;
    for (int i = 0; i < runs; ++i) {
      const auto t0 = Clock::now();
      auto env = std::make_unique<kmesh::lab::LabEnv>();
      env->Deploy({"httpbin", kmesh::e2e::AppKind::kServer, 1, "test-ns1", {}, false});
      env->Deploy({"sleep-a", kmesh::e2e::AppKind::kClient, 0, "test-ns2", {}, false});
      env->Deploy({"sleep-b", kmesh::e2e::AppKind::kClient, 0, "test-ns3", {}, false});
      up.v.push_back(Ms(Clock::now() - t0));
      const auto d0 = Clock::now();
      env.reset();
      down.v.push_back(Ms(Clock::now() - d0));
    }
    std::printf("lab (%d runs; median (min .. max))\n", runs);
    std::printf("  up                  %s\n  down                %s\n", up.Row().c_str(), down.Row().c_str());
    PrintVerdicts(probes);
    if (suite) PrintSuite();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
