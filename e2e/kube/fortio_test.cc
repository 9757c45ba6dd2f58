// Unit tier: fortio's argv and its `-json -` result (recorded, fortio 1.63 shape) mapped to a LoadReport.
#include "e2e/kube/fortio.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/kube/replay_testing.h"

using namespace kmesh::kube;
using Catch::Matchers::Contains;
using kmesh::e2e::LoadSpec;
using kmesh::e2e::OutcomeKind;
using kmesh::kube::testing::Recorded;

TEST_CASE("fortio argv: rate, duration, connections, a new connection per request, JSON to stdout") {
  LoadSpec spec;
  spec.requests_per_second = 20;
  spec.duration = std::chrono::milliseconds(30000);
  spec.workers = 4;
  spec.probe.headers = {{"x-kmesh-e2e", "yes"}};
  const auto argv = FortioArgv(spec, "http://10.244.1.7:8080/");
  char timeout[32];  // one request's bound: the probe's connect plus response timeouts (base/defaults.h)
  std::snprintf(timeout, sizeof timeout, "%.3fs",
                (spec.probe.connect_timeout + spec.probe.response_timeout).count() / 1000.0);
  const std::vector<std::string> expected = {"fortio",
                                             "load",
                                             "-qps",
                                             "20",
                                             "-t",
                                             "30.000s",
                                             "-c",
                                             "4",
                                             "-keepalive=false",
                                             "-timeout",
                                             timeout,
                                             "-allow-initial-errors",
                                             "-H",
                                             "x-kmesh-e2e: yes",
                                             "-json",
                                             "-",
                                             "http://10.244.1.7:8080/"};
  CHECK(argv == expected);

  spec.probe.src_port = 40000;
  CHECK_THROWS_WITH(FortioArgv(spec, "http://x/"), Contains("src_port must be 0"));
  spec.probe.src_port = 0;
  spec.requests_per_second = 0;
  CHECK_THROWS_WITH(FortioArgv(spec, "http://x/"), Contains("requests_per_second must be in (0, 10000]"));
}

TEST_CASE("fortio's result: every call counted, codes mapped, continuity judged honestly") {
  const FortioResult ok = ParseFortioJson(Recorded("fortio_ok.handwritten.json"), "fortio");
  CHECK(ok.count == 100);
  CHECK(ok.Calls() == 100);
  CHECK(ok.ret_codes.at(200) == 100);
  CHECK(ok.sockets == 100);  // -keepalive=false: a connection per request
  CHECK(ok.version == "1.63.9");
  CHECK(ok.actual_duration.count() == 10031);
  CHECK(ok.percentiles.at("p99") == Approx(0.0049));
  const auto rep = ToLoadReport(ok, 10);
  CHECK(rep.records.size() == 100);
  CHECK(rep.Failures() == 0);
  CHECK(rep.LongestFailureStreak() == 0);
  CHECK(rep.records.back().scheduled.count() == 9900);

  const FortioResult rot = ParseFortioJson(Recorded("fortio_rotation_errors.handwritten.json"), "fortio");
  CHECK(rot.error_count == 3);
  const auto r2 = ToLoadReport(rot, 10);
  CHECK(r2.records.size() == 100);
  CHECK(r2.Count(OutcomeKind::kOk) == 97);
  CHECK(r2.Count(OutcomeKind::kError) == 3);
  // Order unknown: the streak is the upper bound, never an understatement.
  CHECK(r2.LongestFailureStreak() == 3);
  CHECK_THAT(r2.records.back().outcome.detail, Contains("fortio reported a transport error (code -1"));
  CHECK_THAT(r2.records.back().outcome.detail, Contains("order and timing of this request unknown"));
  CHECK(r2.records.front().outcome.http_status == 200);
}

TEST_CASE("output that is not fortio's result is an error naming the source") {
  CHECK_THROWS_WITH(ParseFortioJson("Fortio 1.63.9 running at 10 queries per second", "fortio load from x"),
                    Contains("fortio load from x: output is not fortio's JSON result"));
  CHECK_THROWS_WITH(ParseFortioJson("{\"DurationHistogram\":{\"Count\":1}}", "f"),
                    Contains("f: fortio's result lacks RetCodes"));
  CHECK_THROWS_WITH(ParseFortioJson(Recorded("fortio_inconsistent.handwritten.json"), "f"),
                    Contains("RetCodes count 100 calls but DurationHistogram.Count is 90"));
  CHECK_THROWS_WITH(ParseFortioJson("{\"RetCodes\":{\"ok\":1},\"DurationHistogram\":{\"Count\":1}}", "f"),
                    Contains("expected \"<status>\": <count>, found \"ok\""));
}
