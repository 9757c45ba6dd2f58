// Scoring a mutation run: what the suite's evidence bundles of one run say, and whether a fault was
// caught for the right reason (a selected case failed with the disagreement codes the fault must
// produce), after a control run with no fault passed. Pure functions over bundles, so the rules are
// unit-tested (score_test.cc) apart from the lab.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "e2e/mutation/faults.h"

namespace kmesh::mutation {

// One case of a suite run, from its evidence bundle.
struct CaseResult {
  std::string name;  // "authz/ip-deny: selected client" (bundle suite + "/" + title)
  bool passed = false;
  std::vector<std::string> codes;    // the bundle's "disagreements"
  std::string first_failure;         // the first explanation or Catch2 failure, for the table
  std::string datapath_object;       // the XDP object the lab loaded ("third_party/kmesh/xdp.o")
  std::string object_sha256;         // its digest (from its build record, checked at load)
  std::string sockops_object;        // the sockops object the lab loaded ("third_party/kmesh/sockops.o")
  uint32_t policy_check_insns = 0;   // instructions the verifier walked for policy_check
  std::vector<std::string> patches;  // that object's patches
  std::string fault_run;             // KMESH_E2E_FAULT_RUN the bundle was written under
  // The digest of the tc_mark_encrypt object the nodes' IPsec agents loaded (the bundle's "marking").
  std::string tc_encrypt_sha256;
  std::string folder;  // the Catch2 case's evidence folder (e2e::CaseFolderName of its name)
};

// One run of the suite (the control, or one fault).
struct SuiteRun {
  std::string id;      // "control" or the fault's id
  int exit_code = -1;  // -1: killed or timed out
  bool timed_out = false;
  double seconds = 0;
  std::string log;  // its combined output
  std::vector<CaseResult> cases;

  // The bundle of Catch2 case `name`: the bundle titled like it ("authz/x: y"), or the case whose name
  // starts with the bundle's "suite/title: " (a TEST_CASE's bundle title is its short name), or the one
  // bundle in the case's evidence folder (e2e/ipsec: "ipsec: connectivity across ..." wrote "connectivity").
  const CaseResult* Find(const std::string& name) const;
};

// Reads every evidence.json under `dir` (a run's TEST_UNDECLARED_OUTPUTS_DIR).
std::vector<CaseResult> ReadBundles(const std::string& dir);
CaseResult ParseBundle(const nlohmann::json& bundle);

struct ControlVerdict {
  bool passed = false;
  std::vector<std::string> problems;  // each selected case that did not pass, or the run's own failure
};
// The control passes when the run exited 0 and every selected case has a bundle that passed.
ControlVerdict JudgeControl(const SuiteRun& control, const std::vector<std::string>& selected);

enum class FaultStatus {
  kKilled,         // a selected case failed with every code the fault must produce
  kSurvived,       // no selected case did (the cases that failed, failed with other codes)
  kNotLoaded,      // source mutant: the lab never ran it (the verifier refused it, or it was not built)
  kSameObject,     // source mutant: the patch compiled to Kmesh's own object, so there is nothing to catch
  kNoResult,       // the run broke before judging anything: timed out, or no bundle of a selected case
  kNotScored,      // the control run did not pass
  kEquivalent,     // an equivalent mutant (FaultSpec::equivalent) that survived, as claimed: out of the score
  kNotEquivalent,  // an "equivalent" mutant a case killed: the claim is wrong
  kKnownSurvivor,  // a known survivor (FaultSpec::survivor) that survived: counted, not killed
  kSurvivorKilled,  // a known survivor a case now kills: update its row (it is an ordinary fault now)
};
const char* ToString(FaultStatus s);

struct CatchingCase {
  std::string case_name;
  std::vector<std::string> codes;
};

struct FaultScore {
  const FaultSpec* fault = nullptr;
  FaultStatus status = FaultStatus::kNotScored;
  std::vector<CatchingCase> caught_by;       // failed selected cases showing an expected code
  std::vector<CatchingCase> other_failures;  // failed selected cases without any expected code
  std::vector<std::string> missing_codes;
  std::string detail;         // why, in a sentence (for survivors, not-loaded, no-result)
  std::string object_sha256;  // source mutants: the mutant object's digest (its build record)
};

// Scores one fault's run. `control_passed` false: kNotScored whatever the run says. For a source mutant,
// the digests of its object and of Kmesh's own (their build records): equal digests are kSameObject.
FaultScore ScoreFault(const FaultSpec& fault, const SuiteRun& run, bool control_passed,
                      const std::string& mutant_sha256 = "", const std::string& kmesh_sha256 = "");

// The printed table: fault, kind, status, caught by which case with which code.
std::string FormatTable(const std::vector<FaultScore>& scores);
// Whether the status is what the fault's row promises: killed, an equivalent mutant or a known survivor
// that survived.
bool AsExpected(FaultStatus s);
// "mutation score: killed 33 / 33 (1 equivalent mutant run, not counted)" (or "not scored: ...").
std::string FormatScore(const std::vector<FaultScore>& scores, bool control_passed);

// mutation.json: what the report shows (docs in e2e/mutation/README.md).
nlohmann::json ToJson(const SuiteRun& control, const ControlVerdict& cv, const std::vector<SuiteRun>& runs,
                      const std::vector<FaultScore>& scores, double total_seconds);

}  // namespace kmesh::mutation
