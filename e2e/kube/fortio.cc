#include "e2e/kube/fortio.h"

#include <cmath>
#include <cstdio>

#include "base/error.h"

namespace kmesh::kube {
namespace {

using nlohmann::json;

std::string Seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3fs", ms.count() / 1000.0);
  return buf;
}

}  // namespace

std::vector<std::string> FortioArgv(const e2e::LoadSpec& spec, const std::string& url) {
  if (!(spec.requests_per_second > 0) || spec.requests_per_second > 10000) {
    throw Error("fortio load: requests_per_second must be in (0, 10000], found " +
                std::to_string(spec.requests_per_second));
  }
  if (spec.duration.count() <= 0) throw Error("fortio load: duration must be positive");
  if (spec.workers < 1 || spec.workers > 256)
    throw Error("fortio load: workers must be 1..256, found " + std::to_string(spec.workers));
  if (spec.probe.src_port != 0) {
    throw Error(
        "fortio load: probe.src_port must be 0 (fortio opens a new connection, and port, per request)");
  }
  char qps[32];
  std::snprintf(qps, sizeof qps, "%g", spec.requests_per_second);
  std::vector<std::string> argv = {"fortio",
                                   "load",
                                   "-qps",
                                   qps,
                                   "-t",
                                   Seconds(spec.duration),
                                   "-c",
                                   std::to_string(spec.workers),
                                   "-keepalive=false",
                                   "-timeout",
                                   Seconds(spec.probe.connect_timeout + spec.probe.response_timeout),
                                   "-allow-initial-errors"};
  if (!spec.probe.host.empty()) argv.insert(argv.end(), {"-H", "Host: " + spec.probe.host});
  for (const auto& [k, v] : spec.probe.headers) argv.insert(argv.end(), {"-H", k + ": " + v});
  argv.insert(argv.end(), {"-json", "-", url});
  return argv;
}

uint64_t FortioResult::Calls() const {
  uint64_t n = 0;
  for (const auto& [code, count] : ret_codes) n += count;
  return n;
}

json FortioResult::ToJson() const {
  json codes = json::object();
  for (const auto& [code, n] : ret_codes) codes[std::to_string(code)] = n;
  return {{"url", url},
          {"version", version},
          {"start_time", start_time},
          {"requested_qps", requested_qps},
          {"requested_duration", requested_duration},
          {"actual_qps", actual_qps},
          {"actual_duration_ms", actual_duration.count()},
          {"threads", threads},
          {"calls", count},
          {"errors", error_count},
          {"sockets", sockets},
          {"avg_seconds", avg_seconds},
          {"percentiles", percentiles},
          {"ret_codes", codes}};
}

FortioResult ParseFortioJson(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(source + ": output is not fortio's JSON result: found \"" + text.substr(0, 120) +
                "\" (fortio load ... -json - prints it)");
  }
  auto require = [&](const char* key) -> const json& {
    if (!j.contains(key)) throw Error(source + ": fortio's result lacks " + key);
    return j[key];
  };
  FortioResult r;
  const json& codes = require("RetCodes");
  if (!codes.is_object())
    throw Error(source + ": RetCodes: expected an object of status -> count, found " + codes.dump());
  for (auto& [k, v] : codes.items()) {
    char* end = nullptr;
    const long code = std::strtol(k.c_str(), &end, 10);
    if (k.empty() || *end != '\0' || !v.is_number_unsigned()) {
      throw Error(source + ": RetCodes: expected \"<status>\": <count>, found \"" + k + "\": " + v.dump());
    }
    r.ret_codes[static_cast<int>(code)] = v.get<uint64_t>();
  }
  const json& hist = require("DurationHistogram");
  if (!hist.is_object() || !hist.contains("Count") || !hist["Count"].is_number_unsigned()) {
    throw Error(source + ": DurationHistogram.Count: expected a count, found " + hist.dump().substr(0, 120));
  }
  r.count = hist["Count"].get<uint64_t>();
  r.avg_seconds = hist.value("Avg", 0.0);
  if (hist.contains("Percentiles") && hist["Percentiles"].is_array()) {
    for (const auto& p : hist["Percentiles"]) {
      char name[32];
      std::snprintf(name, sizeof name, "p%g", p.value("Percentile", 0.0));
      r.percentiles[name] = p.value("Value", 0.0);
    }
  }
  if (j.contains("ErrorsDurationHistogram") && j["ErrorsDurationHistogram"].is_object()) {
    r.error_count = j["ErrorsDurationHistogram"].value("Count", uint64_t{0});
  }
  r.url = j.value("URL", "");
  r.version = j.value("Version", "");
  r.start_time = j.value("StartTime", "");
  r.requested_qps = j.value("RequestedQPS", "");
  r.requested_duration = j.value("RequestedDuration", "");
  r.actual_qps = j.value("ActualQPS", 0.0);
  r.actual_duration = std::chrono::milliseconds(j.value("ActualDuration", int64_t{0}) / 1000000);
  r.threads = j.value("NumThreads", 0);
  r.sockets = j.value("SocketCount", uint64_t{0});
  if (r.Calls() != r.count) {
    throw Error(source + ": RetCodes count " + std::to_string(r.Calls()) +
                " calls but DurationHistogram.Count is " + std::to_string(r.count) +
                " (the result contradicts itself)");
  }
  return r;
}

e2e::LoadReport ToLoadReport(const FortioResult& r, double requests_per_second) {
  e2e::LoadReport rep;
  rep.elapsed = r.actual_duration;
  auto outcome = [&](int code) {
    e2e::ProbeOutcome o;
    o.via = "fortio";
    if (code >= 200 && code < 400) {
      o.kind = e2e::OutcomeKind::kOk;
      o.http_status = code;
    } else if (code >= 400) {
      o.kind = e2e::OutcomeKind::kHttpError;
      o.http_status = code;
    } else {
      o.kind = e2e::OutcomeKind::kError;
      o.detail = "fortio reported a transport error (code " + std::to_string(code) +
                 ": connect refused or timed out, reset, or read timeout; fortio's JSON does not say which)";
    }
    o.detail += std::string(o.detail.empty() ? "" : "; ") +
                "aggregated by fortio: order and timing of this request unknown";
    return o;
  };
  // Successes first, then failures: the order is unknown, so the failure streak is an upper bound.
  std::vector<int> order;
  for (const auto& [code, n] : r.ret_codes) {
    if (code >= 200 && code < 400) order.push_back(code);
  }
  for (const auto& [code, n] : r.ret_codes) {
    if (!(code >= 200 && code < 400)) order.push_back(code);
  }
  int index = 0;
  for (int code : order) {
    const e2e::ProbeOutcome o = outcome(code);
    for (uint64_t k = 0; k < r.ret_codes.at(code); ++k, ++index) {
      e2e::LoadRecord rec;
      rec.index = index;
      rec.scheduled = std::chrono::milliseconds(
          static_cast<long long>(std::llround(1000.0 * index / requests_per_second)));
      rec.started = rec.scheduled;
      rec.outcome = o;
      rep.records.push_back(rec);
    }
  }
  return rep;
}

}  // namespace kmesh::kube
