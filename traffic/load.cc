#include "traffic/load.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/error.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

}  // namespace

struct LoadGenerator::State {
  LoadSpec spec;
  netns::NetnsRef source = netns::NetnsRef::Self();
  Clock::time_point start;
  size_t total = 0;
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<LoadRecord> records;
  std::vector<std::thread> workers;
  std::string error;  // a worker that could not enter the namespace
  bool joined = false;

  milliseconds Due(size_t i) const {
    return milliseconds(static_cast<long long>(std::llround(1000.0 * i / spec.requests_per_second)));
  }

  // Each worker enters the namespace once (its own thread, which ends with the run) and takes the next
  // due request.
  void Work() {
    try {
      netns::EnterOnThisThread(source);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> l(mu);
      error = e.what();
      return;
    }
    while (!stop) {
      const size_t i = next.fetch_add(1);
      if (i >= total) return;
      const auto due = start + Due(i);
      while (!stop && Clock::now() < due) std::this_thread::sleep_for(std::min<Clock::duration>(due - Clock::now(), milliseconds(20)));
      if (stop) return;
      LoadRecord r;
      r.index = static_cast<int>(i);
      r.scheduled = Due(i);
      r.started = duration_cast<milliseconds>(Clock::now() - start);
      r.outcome = ProbeOnThisThread(spec.probe);
      std::lock_guard<std::mutex> l(mu);
      records.push_back(std::move(r));
    }
  }

  LoadReport Join() {
    if (!joined) {
      for (auto& t : workers) t.join();
      joined = true;
    }
    if (!error.empty()) throw Error("load generator: " + error);
    LoadReport rep;
    {
      std::lock_guard<std::mutex> l(mu);
      rep.records = records;
    }
    std::sort(rep.records.begin(), rep.records.end(), [](const LoadRecord& a, const LoadRecord& b) { return a.index < b.index; });
    rep.elapsed = duration_cast<milliseconds>(Clock::now() - start);
    return rep;
  }
};

LoadGenerator::LoadGenerator(std::unique_ptr<State> s) : state_(std::move(s)) {}
LoadGenerator::LoadGenerator(LoadGenerator&&) noexcept = default;
LoadGenerator& LoadGenerator::operator=(LoadGenerator&&) noexcept = default;

LoadGenerator::~LoadGenerator() {
  if (state_ && !state_->joined) {
    state_->stop = true;
    for (auto& t : state_->workers) t.join();
    state_->joined = true;
  }
}

LoadGenerator LoadGenerator::Start(const netns::NetnsRef& source, const LoadSpec& spec) {
  if (!(spec.requests_per_second > 0) || spec.requests_per_second > 10000) {
    throw Error("load generator: requests_per_second must be in (0, 10000], found " + std::to_string(spec.requests_per_second));
  }
  if (spec.duration.count() <= 0) throw Error("load generator: duration must be positive");
  if (spec.workers < 1 || spec.workers > 256) throw Error("load generator: workers must be 1..256, found " + std::to_string(spec.workers));
  if (spec.probe.src_port != 0) {
    // Kmesh caches verdicts per tuple (km_auth_res); a reused source port would test the cache, not the policy.
    throw Error("load generator: probe.src_port must be 0 (a new connection and port per request), found " +
                std::to_string(spec.probe.src_port));
  }
  netns::NetnsRef::Resolve(source.path());  // an unknown namespace fails here, not in every worker
  auto st = std::make_unique<State>();
  st->spec = spec;
  st->source = source;
  st->total = static_cast<size_t>(std::floor(spec.requests_per_second * spec.duration.count() / 1000.0));
  if (st->total == 0) st->total = 1;
  st->start = Clock::now();
  for (int i = 0; i < spec.workers; ++i) st->workers.emplace_back([s = st.get()] { s->Work(); });
  return LoadGenerator(std::move(st));
}

LoadReport LoadGenerator::Wait() {
  if (!state_) throw Error("LoadGenerator::Wait on a moved-from generator");
  return state_->Join();  // each probe is bounded by its own timeouts, the schedule by duration
}

LoadReport LoadGenerator::Stop() {
  if (!state_) throw Error("LoadGenerator::Stop on a moved-from generator");
  state_->stop = true;
  return state_->Join();
}

size_t LoadReport::Count(OutcomeKind k) const {
  size_t n = 0;
  for (const auto& r : records) n += r.outcome.kind == k ? 1 : 0;
  return n;
}

size_t LoadReport::Failures() const { return records.size() - Count(OutcomeKind::kOk); }

std::vector<std::string> LoadReport::FailureLines() const {
  std::vector<std::string> out;
  for (const auto& r : records) {
    if (r.outcome.kind == OutcomeKind::kOk) continue;
    out.push_back("#" + std::to_string(r.index) + " at +" + std::to_string(r.started.count()) + " ms: " + r.outcome.ToString());
  }
  return out;
}

size_t LoadReport::LongestFailureStreak() const {
  size_t best = 0, cur = 0;
  for (const auto& r : records) {
    cur = r.outcome.kind == OutcomeKind::kOk ? 0 : cur + 1;
    best = std::max(best, cur);
  }
  return best;
}

milliseconds LoadReport::MaxLag() const {
  milliseconds m{0};
  for (const auto& r : records) m = std::max(m, r.started - r.scheduled);
  return m;
}

std::string LoadReport::Describe() const {
  std::map<std::string, size_t> by;
  for (const auto& r : records) by[r.outcome.Summary()]++;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", elapsed.count() / 1000.0);
  std::string s = std::to_string(records.size()) + " requests in " + secs + " s:";
  for (const auto& [k, n] : by) s += " " + std::to_string(n) + " " + k + ",";
  if (!by.empty()) s.pop_back();
  s += "; longest failure streak " + std::to_string(LongestFailureStreak()) + "; max lag " + std::to_string(MaxLag().count()) + " ms";
  for (const auto& l : FailureLines()) s += "\n  " + l;
  return s;
}

nlohmann::json LoadReport::ToJson() const {
  nlohmann::json rs = nlohmann::json::array();
  for (const auto& r : records) {
    nlohmann::json j = r.outcome.ToJson();
    j["index"] = r.index;
    j["scheduled_ms"] = r.scheduled.count();
    j["started_ms"] = r.started.count();
    rs.push_back(j);
  }
  return {{"elapsed_ms", elapsed.count()},
          {"requests", records.size()},
          {"failures", Failures()},
          {"longest_failure_streak", LongestFailureStreak()},
          {"max_lag_ms", MaxLag().count()},
          {"records", rs}};
}

}  // namespace kmesh::e2e
