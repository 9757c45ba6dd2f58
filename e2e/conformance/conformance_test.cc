// The seeded differential run of Kmesh's XDP authorization against Istio's semantics and the offload
// contract (conformance.h). It passes when every verdict is explained:
//   - the model of Kmesh's XDP (every known defect present) predicts what Kmesh did, verdict by verdict
//     (action, km_auth_res, km_tcargs): anything else is behaviour nobody has explained;
//   - every disagreement with Istio has a cause among the known defects (fixing them in the model makes
//     it conform);
//   - every defect a cause names has a minimal case kept in testdata/conformance (run by regression_test).
// What the run found is printed (and written to the test's outputs: report.txt, and each class's minimal
// case as regression/<name>.yaml, ready to be kept).
//
//   KMESH_E2E_CONFORMANCE_BUDGET_MS  the run's time (base/defaults.h; --config=fuzz raises it)
//   KMESH_E2E_CONFORMANCE_SEED       the run's seed (default 1; "time" takes one from the clock, printed)
//   KMESH_E2E_CONFORMANCE_CASE       replay only these case seeds (comma-separated, from a report)
//   KMESH_E2E_CONFORMANCE_SHRINK     the share of the budget kept for shrinking (default 0.35)
#include "e2e/conformance/conformance.h"

#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "base/defaults.h"
#include "base/runfiles.h"

namespace kc = kmesh::conformance;

namespace {

kc::RunOptions OptionsFromEnvironment() {
  kc::RunOptions o;
  o.budget = kmesh::defaults::ConformanceBudget();
  if (const char* s = std::getenv("KMESH_E2E_CONFORMANCE_SEED"); s != nullptr && *s != '\0') {
    o.seed = std::string(s) == "time"
                 ? static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count())
                 : std::strtoull(s, nullptr, 10);
  }
  if (const char* s = std::getenv("KMESH_E2E_CONFORMANCE_SHRINK"); s != nullptr && *s != '\0') {
    o.shrink_share = std::stod(s);
  }
  if (const char* s = std::getenv("KMESH_E2E_CONFORMANCE_CASE"); s != nullptr && *s != '\0') {
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) o.only_case_seeds.push_back(std::stoull(item));
  }
  return o;
}

// Every code in a cause or defect field: "D8 | D35" (either fix conforms), "D1+D10" (both needed).
std::set<std::string> Codes(const std::string& text) {
  std::set<std::string> out;
  std::string code;
  for (char ch : text + " ") {
    if (ch == 'D' || (!code.empty() && std::isdigit(static_cast<unsigned char>(ch)))) {
      code += ch;
    } else {
      if (code.size() > 1) out.insert(code);
      code.clear();
    }
  }
  return out;
}

// The defect codes kept regression cases cover (testdata/conformance/*.yaml, their `defect` field).
std::set<std::string> KeptDefects() {
  std::set<std::string> out;
  const std::string dir =
      std::filesystem::path(kmesh::Runfile("testdata/conformance/README.md")).parent_path();
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    for (const auto& code : Codes(kc::ReadRegressionCase(e.path()).defect)) out.insert(code);
  }
  return out;
}

void WriteOutputs(const kc::RunReport& r) {
  const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (dir == nullptr || *dir == '\0') return;
  const std::filesystem::path out = std::filesystem::path(dir) / "conformance";
  std::filesystem::create_directories(out / "regression");
  std::ofstream(out / "report.txt") << r.ToString();
  for (const auto& k : r.classes) {
    if (k.kept())
      std::ofstream(out / "regression" / (k.regression.name + ".yaml")) << kc::ToYaml(k.regression);
  }
}

}  // namespace

TEST_CASE("conformance: every verdict of Kmesh's XDP is predicted, every disagreement with Istio explained") {
  const kc::RunOptions o = OptionsFromEnvironment();
  kc::KmeshXdpUnderTest node("/tmp");
  kc::Differential diff(node);
  const kc::RunReport r = kc::RunConformance(diff, o);
  WriteOutputs(r);
  std::cout << r.ToString() << std::endl;
  INFO(r.Summary());
  REQUIRE(r.verdicts > 0);

  // Behaviour nobody has explained: the model of Kmesh's XDP missed what it did.
  for (const auto& m : r.misses) {
    INFO("case seed " << m.case_seed << ", connection " << m.connection << ": " << kc::ModelMiss(m.verdict)
                      << "\n"
                      << kc::DescribeVerdict(m.c, m.verdict, m.maps));
    CHECK(m.verdict.model_matches);
  }
  CHECK(r.model_misses == 0);

  // Disagreements no known defect accounts for, and defects without a kept minimal case.
  const std::set<std::string> kept = KeptDefects();
  for (const auto& k : r.classes) {
    INFO(kc::ToString(k.kind) << " caused by " << k.cause << " (" << k.count << " verdicts, first in case "
                              << k.first_case_seed << ")\n"
                              << (k.shrunk
                                      ? kc::DescribeVerdict(k.minimal.c, k.minimal.verdict, k.minimal.maps)
                                      : kc::DescribeVerdict(k.first_case, k.first, k.first_maps)));
    CHECK(k.cause != "unexplained");
    for (const std::string& code : Codes(k.cause)) {
      INFO("defect " << code
                     << " has no minimal case in testdata/conformance: keep the one this run wrote to "
                     << "its outputs (conformance/regression/)");
      CHECK(kept.count(code) == 1);
    }
  }
}
