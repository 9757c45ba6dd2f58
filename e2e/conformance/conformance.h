// A seeded conformance run: generate cases until the budget is spent, judge every connection (kmesh,
// istio, model; differential.h), group the disagreements by kind and cause, shrink the first of each
// group, and write the minimal cases as regression cases (manifest.h). Reproducible: the same seed gives
// the same cases, and each case replays alone from its case seed.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "e2e/conformance/differential.h"
#include "e2e/conformance/generator.h"
#include "e2e/conformance/manifest.h"

namespace kmesh::conformance {

struct RunOptions {
  uint64_t seed = 1;
  std::chrono::milliseconds budget{20000};  // generating and judging, then shrinking
  double shrink_share = 0.35;               // of the budget kept for shrinking
  uint64_t max_cases = 0;                   // 0: until the budget is spent
  std::vector<uint64_t> only_case_seeds;    // replay these cases (KMESH_E2E_CONFORMANCE_CASE)
  GeneratorOptions generator;
  // Reset the node (fresh daemon, emptied maps) after this many cases: the deserializer leaks an address
  // blob per removed address (D9), and fresh indexes keep the run close to what a case replays alone.
  uint64_t reset_every = 200;
};

// One group of disagreements: same kind, same cause (Cause::Key()).
struct DisagreementClass {
  Kind kind = Kind::kAborted;
  std::string cause;  // Cause::Key() as found
  std::string cause_text;
  uint64_t count = 0;
  uint64_t first_case_seed = 0;
  size_t first_connection = 0;  // index in that case
  Case first_case;
  ConnVerdict first;
  std::string first_maps;
  bool shrunk = false;
  Shrunk minimal;
  // After shrinking, the cause may be simpler than when found ("D1+D10" down to "D1"); a class whose
  // minimal case lands on the kind and cause of one shrunk before it is a duplicate and keeps nothing.
  std::string minimal_cause;
  bool duplicate = false;
  // Kept as a regression case (RunConformance says which: one per defect and kind a client sees, a
  // single defect as the cause; interactions of several are reported, each defect is kept alone);
  // otherwise why not, for the report.
  bool keep = false;
  std::string represents;  // the defect code it is kept for
  std::string not_kept;
  RegressionCase regression;  // when keep
  bool kept() const { return keep; }
};

struct ModelMissRecord {
  uint64_t case_seed = 0;
  size_t connection = 0;
  Case c;
  ConnVerdict verdict;
  std::string maps;
};

struct RunReport {
  RunOptions options;
  std::string datapath;  // DatapathIdentity::Describe()
  uint64_t cases = 0, verdicts = 0, disagreements = 0, model_misses = 0;
  std::map<std::string, uint64_t> expected_counts;  // "drop"/"pass"/"defer" -> verdicts
  double judge_seconds = 0;  // generating, writing, running, judging (the throughput's denominator)
  double shrink_seconds = 0;
  Timings judge_timings;  // the judging phase's split
  uint64_t resets = 0;
  // kmesh_map64 entries leaked per case (measured before each periodic Reset), the deserializer's D9.
  double leaked_blobs_per_case = 0;
  std::vector<DisagreementClass> classes;  // in order of first appearance
  std::vector<ModelMissRecord> misses;     // the first few
  double VerdictsPerSecond() const { return judge_seconds > 0 ? verdicts / judge_seconds : 0; }
  // The whole report a person reads: summary, then every class with its minimal case.
  std::string ToString() const;
  std::string Summary() const;
};

RunReport RunConformance(Differential& diff, const RunOptions& options);

// "d5-passed-denied-ipv4": a file name for a class's regression case.
std::string RegressionName(const DisagreementClass& k);

// Everything a person needs about one judged connection: case YAML, tuple, Istio's answer, what Kmesh
// did, what the model says, the map entries, the cause.
std::string DescribeVerdict(const Case& c, const ConnVerdict& v, const std::string& maps);

}  // namespace kmesh::conformance
