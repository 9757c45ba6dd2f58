// Continuity load on a cluster: `kubectl exec <fortio pod> -- fortio load ... -json -` and fortio's JSON
// result mapped to the framework's LoadReport. Fortio reports aggregates, not a per-request log, so the
// mapping is honest about what it cannot know:
//   - one LoadRecord per request fortio counted (RetCodes), successes first, failures after them;
//   - scheduled/started are the nominal schedule (i / qps), not when each request really ran;
//   - LongestFailureStreak() is therefore an upper bound (= Failures()); "no failure" is exact;
//   - RetCodes "-1" (fortio's transport error: connect refused/timeout, reset, read timeout) becomes
//     OutcomeKind::kError with that explanation: fortio's JSON does not say which one it was.
// Requests open a new connection each (-keepalive=false), as the framework's generator does.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "traffic/load.h"

namespace kmesh::kube {

// fortio's argv for `spec` against `url`: fortio load -qps N -t Ts -c C -keepalive=false -timeout X
// -allow-initial-errors [-H ...] -json - URL. Throws kmesh::Error for a spec fortio cannot run.
std::vector<std::string> FortioArgv(const e2e::LoadSpec& spec, const std::string& url);

struct FortioResult {
  std::string url;
  std::string version;
  std::string start_time;
  std::string requested_qps;       // "10", or "max"
  std::string requested_duration;  // "30s", or "exactly 100 calls"
  double actual_qps = 0;
  std::chrono::milliseconds actual_duration{0};
  int threads = 0;
  uint64_t count = 0;        // DurationHistogram.Count: every call
  uint64_t error_count = 0;  // ErrorsDurationHistogram.Count
  uint64_t sockets = 0;      // SocketCount: connections opened
  double avg_seconds = 0;
  std::map<std::string, double> percentiles;  // "p50" -> seconds
  std::map<int, uint64_t> ret_codes;          // HTTP status (or -1) -> calls

  uint64_t Calls() const;  // sum of ret_codes
  nlohmann::json ToJson() const;
};

// Parses fortio's `-json -` output. Throws kmesh::Error naming `source` and the field when it is not
// fortio's result (or RetCodes is missing: without it nothing can be concluded).
FortioResult ParseFortioJson(const std::string& text, const std::string& source);

// The LoadReport the suites judge (see the limits above).
e2e::LoadReport ToLoadReport(const FortioResult& r, double requests_per_second);

}  // namespace kmesh::kube
