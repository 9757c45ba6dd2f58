// Unit tier: curl's `-w '%{json}'` output and exit code map to the same outcomes as the socket probe.
// The JSON shape is curl 7.88's (recorded from a real run); the kube env feeds kubectl exec output here.
#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/framework/traffic.h"

using kmesh::e2e::OutcomeKind;
using kmesh::e2e::ParseCurlResult;

namespace {

std::string CurlJson(int exitcode, int http_code, double time_connect, double time_total, const std::string& errormsg,
                     int local_port = 0) {
  nlohmann::json j = {{"certs", ""},
                      {"errormsg", errormsg.empty() ? nlohmann::json(nullptr) : nlohmann::json(errormsg)},
                      {"exitcode", exitcode},
                      {"http_code", http_code},
                      {"local_ip", local_port ? "10.244.1.5" : ""},
                      {"local_port", local_port},
                      {"remote_ip", local_port ? "10.244.2.7" : ""},
                      {"remote_port", local_port ? 8080 : 0},
                      {"response_code", http_code},
                      {"time_connect", time_connect},
                      {"time_pretransfer", time_connect},
                      {"time_starttransfer", http_code ? time_connect + 0.002 : 0.0},
                      {"time_total", time_total},
                      {"url", "http://10.244.2.7:8080/"}};
  return j.dump();
}

}  // namespace

TEST_CASE("curl results map to probe outcomes") {
  struct Row {
    const char* what;
    int exit_code;
    std::string json;
    std::string stderr_text;
    OutcomeKind kind;
    int status;
  };
  const std::vector<Row> rows = {
      {"200", 0, CurlJson(0, 200, 0.0004, 0.003, "", 40001), "", OutcomeKind::kOk, 200},
      {"302 is not an error", 0, CurlJson(0, 302, 0.0004, 0.003, "", 40001), "", OutcomeKind::kOk, 302},
      {"waypoint 403", 0, CurlJson(0, 403, 0.0004, 0.003, "", 40002), "", OutcomeKind::kHttpError, 403},
      {"503", 0, CurlJson(0, 503, 0.0004, 0.003, "", 40002), "", OutcomeKind::kHttpError, 503},
      {"refused (verbose stderr says so)", 7,
       CurlJson(7, 0, 0, 0.0003, "Failed to connect to 10.244.2.7 port 8080 after 0 ms: Couldn't connect to server"),
       "*   Trying 10.244.2.7:8080...\n* connect to 10.244.2.7 port 8080 failed: Connection refused\n"
       "curl: (7) Failed to connect to 10.244.2.7 port 8080 after 0 ms: Couldn't connect to server\n",
       OutcomeKind::kRefused, 0},
      {"older curl names the refusal in errormsg", 7, CurlJson(7, 0, 0, 0.0003, "Failed to connect to x port 80: Connection refused"), "",
       OutcomeKind::kRefused, 0},
      {"no route is not a refusal", 7,
       CurlJson(7, 0, 0, 3.1, "Failed to connect to 10.244.2.7 port 8080 after 3071 ms: Couldn't connect to server"),
       "* connect to 10.244.2.7 port 8080 failed: No route to host\n", OutcomeKind::kError, 0},
      {"SYN dropped", 28, CurlJson(28, 0, 0, 1.001, "Failed to connect to 10.244.2.7 port 8080 after 1001 ms: Timeout was reached"), "",
       OutcomeKind::kConnectTimeout, 0},
      {"connected, then silence", 28, CurlJson(28, 0, 0.0005, 4.0, "Operation timed out after 4000 milliseconds with 0 bytes received", 40003),
       "", OutcomeKind::kReadTimeout, 0},
      {"reset", 56, CurlJson(56, 0, 0.0005, 0.002, "Recv failure: Connection reset by peer", 40004), "", OutcomeKind::kReset, 0},
      {"reset while sending", 55, CurlJson(55, 0, 0.0005, 0.002, "Send failure: Connection reset by peer", 40005), "", OutcomeKind::kReset, 0},
      {"empty reply", 52, CurlJson(52, 0, 0.0005, 0.002, "Empty reply from server", 40006), "", OutcomeKind::kError, 0},
      {"unknown exit", 6, CurlJson(6, 0, 0, 0.01, "Could not resolve host: nowhere"), "", OutcomeKind::kError, 0},
  };
  for (const auto& row : rows) {
    INFO(row.what);
    const auto o = ParseCurlResult(row.exit_code, row.json, row.stderr_text);
    INFO(o.ToString());
    CHECK(o.kind == row.kind);
    CHECK(o.http_status == row.status);
    CHECK(o.via == "curl");
  }
  // Tuple and timings come from curl's own fields.
  const auto o = ParseCurlResult(0, CurlJson(0, 200, 0.0004, 0.003, "", 40001), "");
  CHECK(o.tuple.ToString() == "10.244.1.5:40001 -> 10.244.2.7:8080");
  CHECK(o.timings.connect.count() == 400);
  CHECK(o.timings.total.count() == 3000);
  CHECK(o.timings.first_byte.count() == 2000);
  // A connect timeout reports how long it tried, as the socket path does.
  CHECK(ParseCurlResult(28, CurlJson(28, 0, 0, 1.001, "Timeout was reached"), "").timings.connect.count() == 1001000);
  CHECK_THAT(ParseCurlResult(52, CurlJson(52, 0, 0.0005, 0.002, "Empty reply from server", 1), "").detail,
             Catch::Contains("empty reply"));
}

TEST_CASE("output that is not curl's JSON is an error saying what was found") {
  CHECK_THROWS_WITH(ParseCurlResult(0, "<html>hello</html>", ""),
                    Catch::Contains("not the JSON of -w '%{json}'") && Catch::Contains("<html>hello"));
  CHECK_THROWS_WITH(ParseCurlResult(0, "{\"a\":1}", ""), Catch::Contains("lacks http_code"));
  CHECK_THROWS_WITH(ParseCurlResult(127, "", "sh: curl: not found"), Catch::Contains("sh: curl: not found"));
}

TEST_CASE("curl's argv carries the chosen source port, bounds, headers and Host") {
  kmesh::e2e::ProbeSpec spec;
  spec.dst_ip = "fd00::7";
  spec.dst_port = 8080;
  spec.src_port = 40100;
  spec.host = "httpbin.default";
  spec.headers = {{"X-User", "alice"}};
  spec.connect_timeout = std::chrono::milliseconds(1000);
  spec.response_timeout = std::chrono::milliseconds(2500);
  const auto argv = kmesh::e2e::CurlArgv(spec);
  std::string line;
  for (const auto& a : argv) line += a + " ";
  CHECK_THAT(line, Catch::Contains("-w %{json}") && Catch::Contains("--local-port 40100") &&
                       Catch::Contains("--connect-timeout 1.000") && Catch::Contains("--max-time 3.500") &&
                       Catch::Contains("-H Host: httpbin.default") && Catch::Contains("-H X-User: alice") &&
                       Catch::EndsWith("http://[fd00::7]:8080/ "));
}
