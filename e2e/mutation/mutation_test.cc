// Mutation testing of Kmesh's own datapath: each fault of faults.cc (the running datapath broken, or a
// source mutant of Kmesh's XDP) is switched on for a run of the authz suite's cases that must catch it,
// and counts as killed only when one of those cases fails with the disagreement code the fault must
// produce. A control run of every selected case with no fault comes first, in the same test; when it does
// not pass, nothing is scored. Prints the score table and writes mutation.json (the report shows it).
//
// Kmesh-defect cases ([!shouldfail]) fail by design, so no fault may select them: a failure there would
// prove nothing about the fault, and the control could never pass. The test refuses such a selection.
// Each fault gets its own suite process and so its own lab (about 3 s to bring up): no fault's leftovers
// (a deleted map entry, a stale verdict) can decide another fault's cases. The control runs alone; the
// fault runs go defaults::MutationJobs() at a time.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/runfiles.h"
#include "e2e/framework/case.h"
#include "e2e/framework/case_output.h"
#include "e2e/mutation/faults.h"
#include "e2e/mutation/score.h"
#include "netns/process.h"

namespace kmesh::mutation {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Catch2 test specs: ',' separates names, '[' starts a tag, '\' escapes; a name is matched whole.
std::string Spec(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ',';
    for (char ch : n) {
      if (ch == ',' || ch == '[' || ch == ']' || ch == '\\' || ch == '"' || ch == '*') out += '\\';
      out += ch;
    }
  }
  return out;
}

// The environment of every child suite run: the lab, no JUnit of its own (it would overwrite this test's),
// no inherited filter or fault.
std::vector<std::string> BaseEnv(const std::string& run_id, const std::string& outputs) {
  return {
      "KMESH_E2E_ENV=lab",         "KMESH_E2E_FAULT_RUN=" + run_id, "TEST_UNDECLARED_OUTPUTS_DIR=" + outputs,
      "XML_OUTPUT_FILE=",          "TESTBRIDGE_TEST_ONLY=",         "KMESH_E2E_LAB_FAULTS=",
      "KMESH_E2E_LAB_XDP_OBJECT=", "KMESH_E2E_LAB_SOCKOPS_OBJECT=", "KMESH_E2E_LAB_TC_ENCRYPT_OBJECT="};
}

// The entry of `env` that sets the variable `assignment` ("NAME=value") sets; env.end() when none does.
std::vector<std::string>::iterator EnvEntry(std::vector<std::string>& env, const std::string& assignment) {
  const std::string var = assignment.substr(0, assignment.find('=') + 1);
  return std::find_if(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(var, 0) == 0; });
}

// The digest a kmesh_bpf_object's build record gives its object ("" for no object).
std::string ObjectSha256(const std::string& object_runfile) {
  if (object_runfile.empty()) return "";
  const std::string record = object_runfile.substr(0, object_runfile.size() - 2) + ".build.json";
  std::ifstream in(Runfile(record));
  const auto j = nlohmann::json::parse(in, nullptr, false);
  INFO("build record " << record);
  REQUIRE((!j.is_discarded() && j.contains("object_sha256")));
  return j["object_sha256"].get<std::string>();
}

// How many cases of `suite` the Catch2 test spec matches: Catch2 2.x exits with that count when it lists
// (its listing wraps long names, so the names themselves are not read back).
int CountCases(const std::string& suite, const std::string& spec) {
  netns::ProcessOptions opts;
  opts.env = {"TESTBRIDGE_TEST_ONLY=", "XML_OUTPUT_FILE="};
  auto r = netns::Run({suite, "--list-test-names-only", spec}, opts, defaults::Command());
  INFO(r.Describe());
  REQUIRE((r.exit_code >= 0 && !r.timed_out));
  return r.exit_code;
}

SuiteRun RunSuite(const std::string& suite, const std::string& id, const std::vector<std::string>& cases,
                  const std::string& inject, const std::string& root) {
  SuiteRun run;
  run.id = id;
  const std::string out = root + "/" + id;
  fs::create_directories(out);
  netns::ProcessOptions opts;
  opts.env = BaseEnv(id, out);
  if (!inject.empty()) *EnvEntry(opts.env, inject) = inject;
  opts.output = netns::ProcessOptions::Output::kFile;
  opts.output_file = out + "/suite.log";
  const auto start = Clock::now();
  auto r = netns::Run({suite, Spec(cases)}, opts, defaults::MutationRun());
  run.seconds = Seconds(Clock::now() - start);
  run.exit_code = r.exit_code;
  run.timed_out = r.timed_out;
  std::ifstream log(opts.output_file);
  std::stringstream s;
  s << log.rdbuf();
  run.log = s.str();
  run.cases = ReadBundles(out);
  return run;
}

}  // namespace

TEST_CASE("mutation: every fault of Kmesh's datapath is caught by a named case with its disagreement code",
          "[mutation]") {
  const auto start = Clock::now();
  CheckFaults(Faults());
  // //e2e/mutation:mutation_test scores the authz suite's faults on this kernel; :ipsec_mutation_test the
  // IPsec suite's, inside tools/vm's guest (KMESH_E2E_MUTATION_SUITE=ipsec, set by its BUILD rule).
  const char* which = std::getenv("KMESH_E2E_MUTATION_SUITE");
  const Suite suite_kind = ParseSuite(which ? which : "");
  const std::vector<FaultSpec> faults = FaultsOf(suite_kind);
  REQUIRE(!faults.empty());
  e2e::Case c("mutation",
              suite_kind == Suite::kAuthz ? "score" : std::string("score-") + ToString(suite_kind), "lab");

  const std::string suite = Runfile(SuiteBinary(suite_kind));
  std::vector<std::string> selected;
  for (const auto& f : faults) {
    if (f.kind == FaultKind::kSource) Runfile(f.object());  // built, or this throws naming it
    auto env = BaseEnv(f.id, "");
    INFO("fault " << f.id << " is injected with " << f.inject_env() << ", which BaseEnv does not reset");
    REQUIRE(EnvEntry(env, f.inject_env()) != env.end());
    for (const auto& name : f.cases) {
      if (std::find(selected.begin(), selected.end(), name) != selected.end()) continue;
      INFO("fault " << f.id << " selects \"" << name << "\" (e2e/mutation/faults.cc)");
      REQUIRE(CountCases(suite, Spec({name})) == 1);  // a case of the authz suite, by its exact name
      // Not a [!shouldfail] Kmesh-defect case: it fails by design.
      REQUIRE(CountCases(suite, Spec({name}) + "[!shouldfail]") == 0);
      selected.push_back(name);
    }
  }

  const std::string root = e2e::RunOutputDir() + "/mutation";
  const SuiteRun control = RunSuite(suite, "control", selected, "", root);
  const ControlVerdict cv = JudgeControl(control, selected);

  // The fault runs, defaults::MutationJobs() at a time (each its own lab). No control, no score: they are
  // skipped then (they could prove nothing).
  // Each mutant's digest and that of Kmesh's object it mutates (read here: Catch2 is single-threaded).
  std::vector<std::pair<std::string, std::string>> digests;
  for (const auto& f : faults) digests.push_back({ObjectSha256(f.object()), ObjectSha256(f.kmesh_object())});
  std::vector<SuiteRun> runs(faults.size());
  std::vector<FaultScore> scores(faults.size());
  std::atomic<size_t> next{0};
  std::mutex print;
  auto worker = [&] {
    for (size_t i = next++; i < faults.size(); i = next++) {
      const FaultSpec& f = faults[i];
      runs[i].id = f.id;
      if (cv.passed) runs[i] = RunSuite(suite, f.id, f.cases, f.inject_env(), root);
      scores[i] = ScoreFault(f, runs[i], cv.passed, digests[i].first, digests[i].second);
      std::lock_guard<std::mutex> lock(print);
      std::cerr << "mutation: " << f.id << ": " << ToString(scores[i].status) << " (" << runs[i].seconds
                << " s)\n";
    }
  };
  std::vector<std::thread> workers;
  for (int j = 0; j < defaults::MutationJobs(); ++j) workers.emplace_back(worker);
  for (auto& t : workers) t.join();
  const double total = Seconds(Clock::now() - start);

  const std::string table = FormatTable(scores);
  const std::string score = FormatScore(scores, cv.passed);
  std::ostringstream text;
  text << "\ncontrol run (no fault, " << selected.size() << " cases, " << control.seconds
       << " s): " << (cv.passed ? "passed" : "FAILED") << "\n";
  for (const auto& p : cv.problems) text << "  " << p << "\n";
  text << table << score << " in " << total << " s\n";
  std::cout << text.str();
  const nlohmann::json j = ToJson(control, cv, runs, scores, total);
  std::ofstream(e2e::RunOutputDir() + "/mutation.json") << j.dump(2) << "\n";
  std::ofstream(e2e::RunOutputDir() + "/mutation.txt") << text.str();
  c.Set("mutation", j);

  INFO("control run: " << root << "/control/suite.log");
  for (const auto& p : cv.problems) c.Fail("control run: " + p);
  REQUIRE(cv.passed);
  for (const auto& s : scores) {
    INFO("fault " << s.fault->id << " (" << ToString(s.fault->kind) << "): " << s.detail << "\n  suite log "
                  << root << "/" << s.fault->id << "/suite.log");
    if (!AsExpected(s.status)) c.Fail(s.fault->id + ": " + ToString(s.status) + ": " + s.detail);
    CHECK(AsExpected(s.status));
  }
}

}  // namespace kmesh::mutation
