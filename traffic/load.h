// Continuous load for key-rotation continuity: N requests per second for T seconds from a source
// namespace, a new connection (and a new kernel-chosen source port) for each, every request's outcome and
// timing recorded. Runs in the background, so a test can rotate keys while it runs and then ask whether
// any request failed, and when.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "traffic/traffic.h"
#include "netns/netns.h"

namespace kmesh::e2e {

struct LoadSpec {
  ProbeSpec probe;  // src_port must be 0: every request gets a fresh port
  double requests_per_second = 10;
  std::chrono::milliseconds duration{5000};
  int workers = 8;  // concurrent requests at most; a request that cannot start on time is recorded late
};

struct LoadRecord {
  int index = 0;
  std::chrono::milliseconds scheduled{0};  // offset from the start at which it was due
  std::chrono::milliseconds started{0};    // offset at which it actually started
  ProbeOutcome outcome;
};

struct LoadReport {
  std::vector<LoadRecord> records;  // in schedule order
  std::chrono::milliseconds elapsed{0};

  size_t Count(OutcomeKind k) const;
  size_t Failures() const;  // anything but kOk
  // Requests that did not succeed, as "#12 at +1200 ms: connect_timeout ..." lines.
  std::vector<std::string> FailureLines() const;
  // The longest run of consecutive failures (0 = continuity held).
  size_t LongestFailureStreak() const;
  // Largest delay between due time and start (a saturated generator shows here).
  std::chrono::milliseconds MaxLag() const;
  std::string Describe() const;  // "100 requests in 10.0 s: 100 ok(200); longest failure streak 0"
  nlohmann::json ToJson() const;
};

class LoadGenerator {
 public:
  // Starts at once in the background. Throws kmesh::Error for bad input (rate, duration, a fixed source
  // port, an unknown namespace).
  static LoadGenerator Start(const netns::NetnsRef& source, const LoadSpec& spec);
  ~LoadGenerator();  // stops and waits
  LoadGenerator(LoadGenerator&&) noexcept;
  LoadGenerator& operator=(LoadGenerator&&) noexcept;

  // Waits for the schedule to end (bounded by duration plus one probe's timeouts).
  LoadReport Wait();
  // Stops scheduling new requests, waits for the ones in flight, and reports.
  LoadReport Stop();

 private:
  struct State;
  explicit LoadGenerator(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

}  // namespace kmesh::e2e
