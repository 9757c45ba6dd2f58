// Unit tier: curl's `-w '%{json}'` output and exit code map to the same outcomes as the socket probe.
// The main table reads real curl runs (testdata/curl, recorded by its capture.py); a few outcomes that
// cannot be produced with this machine's curl are built in code below and say so. The kube env feeds
// kubectl exec output here.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/runfiles.h"
#include "traffic/traffic.h"

using kmesh::e2e::OutcomeKind;
using kmesh::e2e::ParseCurlResult;

namespace {

std::string ReadCaptured(const std::string& name) {
  std::ifstream in(kmesh::Runfile("testdata/curl/" + name));
  REQUIRE(in.good());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

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

TEST_CASE("real curl runs map to probe outcomes, and were made with the harness's argv") {
  struct Want {
    OutcomeKind kind;
    int status;
    const char* detail;  // a part of the outcome's detail ("" = any)
  };
  // Every recorded case must be here, and every row recorded: a new capture gets classified on purpose.
  const std::map<std::string, Want> want = {
      {"ok", {OutcomeKind::kOk, 200, ""}},
      {"status_302", {OutcomeKind::kOk, 302, ""}},
      {"status_403", {OutcomeKind::kHttpError, 403, ""}},
      {"status_503", {OutcomeKind::kHttpError, 503, ""}},
      {"connect_timeout", {OutcomeKind::kConnectTimeout, 0, "Timeout was reached"}},
      {"reset", {OutcomeKind::kReset, 0, "Connection reset by peer"}},
      {"empty_reply", {OutcomeKind::kError, 0, "empty reply"}},
      {"read_timeout", {OutcomeKind::kReadTimeout, 0, "0 bytes received"}},
      {"refused", {OutcomeKind::kRefused, 0, "connection refused"}},
      {"unreachable", {OutcomeKind::kError, 0, "(Network is unreachable)"}},
  };
  const auto captures = nlohmann::json::parse(ReadCaptured("captures.json"));
  CHECK_THAT(captures.at("curl_version").get<std::string>(), Catch::StartsWith("curl 7.88.1 "));
  std::set<std::string> recorded;
  for (const auto& [name, c] : captures.at("cases").items()) {
    INFO(name);
    recorded.insert(name);
    REQUIRE(want.count(name) == 1);
    const std::string out = ReadCaptured(c.at("stdout").get<std::string>());
    const std::string err = ReadCaptured(c.at("stderr").get<std::string>());
    const auto o = ParseCurlResult(c.at("exit_code").get<int>(), out, err);
    INFO(o.ToString());
    CHECK(o.kind == want.at(name).kind);
    CHECK(o.http_status == want.at(name).status);
    CHECK_THAT(o.detail, Catch::Contains(want.at(name).detail));
    // The tuple is curl's own when it connected; before that curl names no local port.
    const auto j = nlohmann::json::parse(out);
    CHECK(o.tuple.src.port == j.at("local_port").get<int>());
    if (o.tuple.src.port != 0) {
      CHECK(o.tuple.ToString() == "10.244.0.12:" + std::to_string(o.tuple.src.port) + " -> 10.244.1.7:8080");
    }
    // Recorded with the argv the harness would build for the recorded spec.
    const auto& sp = c.at("spec");
    kmesh::e2e::ProbeSpec spec;
    spec.dst.ip = *kmesh::net::IpAddr::Parse(sp.at("dst_ip").get<std::string>());
    spec.dst.port = sp.at("dst_port").get<uint16_t>();
    spec.src_port = sp.at("src_port").get<uint16_t>();
    spec.path = sp.at("path").get<std::string>();
    spec.connect_timeout = std::chrono::milliseconds(sp.at("connect_timeout_ms").get<int>());
    spec.response_timeout = std::chrono::milliseconds(sp.at("response_timeout_ms").get<int>());
    CHECK(kmesh::e2e::CurlArgv(spec) == c.at("argv").get<std::vector<std::string>>());
  }
  for (const auto& [name, _] : want) {
    INFO(name << " is expected but not recorded (testdata/curl/capture.py)");
    CHECK(recorded.count(name) == 1);
  }
  // Timings are curl's: a connect timeout reports how long it tried, as the socket path does.
  const auto timeout = ParseCurlResult(28, ReadCaptured("connect_timeout.json"), "");
  CHECK(timeout.timings.connect.count() >= 500000);
  CHECK(timeout.timings.connect.count() < 600000);
  const auto ok = ParseCurlResult(0, ReadCaptured("ok.json"), "");
  CHECK(ok.timings.connect.count() > 0);
  CHECK(ok.timings.total >= ok.timings.connect);
}

// Built in code, not recorded: outcomes this machine's curl does not produce on demand (another curl's
// wording, a reset while sending, a resolver failure), and exact timing arithmetic.
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
      {"older curl names the refusal in errormsg", 7, CurlJson(7, 0, 0, 0.0003, "Failed to connect to x port 80: Connection refused"), "",
       OutcomeKind::kRefused, 0},
      {"no route is not a refusal", 7,
       CurlJson(7, 0, 0, 3.1, "Failed to connect to 10.244.2.7 port 8080 after 3071 ms: Couldn't connect to server"),
       "* connect to 10.244.2.7 port 8080 failed: No route to host\n", OutcomeKind::kError, 0},
      {"reset while sending", 55, CurlJson(55, 0, 0.0005, 0.002, "Send failure: Connection reset by peer", 40005), "", OutcomeKind::kReset, 0},
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
  CHECK_THAT(ParseCurlResult(7, rows[1].json, rows[1].stderr_text).detail, Catch::EndsWith("(No route to host)"));
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
  spec.dst.ip = *kmesh::net::IpAddr::Parse("fd00::7");
  spec.dst.port = 8080;
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
