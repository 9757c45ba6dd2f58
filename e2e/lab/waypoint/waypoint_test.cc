// The waypoint in a fresh namespace: httpbin (gunicorn) upstream, the waypoint in front, curl as the
// client from two source addresses. Each case pairs what curl saw with the waypoint's JSON evidence and
// with policy::Evaluate's answer for the same request.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/runfiles.h"
#include "e2e/framework/case_output.h"
#include "e2e/policy/evaluate.h"
#include "e2e/policy/template.h"
#include "netns/netns.h"
#include "netns/process.h"

using Catch::Contains;
using kmesh::netns::Netns;
using kmesh::netns::NetnsRef;
using kmesh::netns::Process;
using kmesh::netns::ProcessOptions;
using kmesh::policy::Vars;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kServerIp = "10.77.0.1";
constexpr const char* kClientA = "10.77.0.2";
constexpr const char* kClientB = "10.77.0.3";
constexpr uint16_t kUpstreamPort = 8000;
constexpr uint16_t kWaypointPort = 15008;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces `path` atomically, as the lab does, so the waypoint never reads half a file.
void WriteAtomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".new";
  std::ofstream(tmp) << text;
  std::filesystem::rename(tmp, path);
}

bool Accepts(const NetnsRef& ns, const std::string& ip, uint16_t port) {
  return kmesh::netns::RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &sin.sin_addr);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
    close(fd);
    return ok;
  });
}

// Waits (bounded) until ip:port accepts; returns how long it took. Fails with the process's log.
std::chrono::milliseconds WaitAccepts(const NetnsRef& ns, const std::string& what, const std::string& ip,
                                      uint16_t port, Process& proc, const std::string& log,
                                      std::chrono::milliseconds bound) {
  const auto start = Clock::now();
  while (!Accepts(ns, ip, port)) {
    if (!proc.Running()) {
      throw kmesh::Error(what + " exited before accepting on " + ip + ":" + std::to_string(port) +
                         "; its output (" + log + "):\n" + ReadFile(log));
    }
    if (Clock::now() - start > bound) {
      throw kmesh::Error(what + " did not accept on " + ip + ":" + std::to_string(port) + " within " +
                         std::to_string(bound.count()) + " ms; its output (" + log + "):\n" + ReadFile(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

// Sends `bytes` to ip:port from inside `ns`, half-closes, and returns everything answered until the
// peer closes (bounded by WaypointIo).
std::string Exchange(const NetnsRef& ns, const std::string& ip, uint16_t port, const std::string& bytes) {
  return kmesh::netns::RunIn(ns, [&] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) kmesh::ThrowErrno("socket");
    timeval tv{};
    tv.tv_sec = kmesh::defaults::WaypointIo().count() / 1000;
    tv.tv_usec = (kmesh::defaults::WaypointIo().count() % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &sin.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
      const int err = errno;
      close(fd);
      kmesh::ThrowErrno("connect to " + ip + ":" + std::to_string(port), err);
    }
    if (!bytes.empty()) send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    close(fd);
    return out;
  });
}

struct CurlResult {
  int status = 0;  // 0: no HTTP answer (see error)
  std::string body;
  std::string error;
};

// A namespace with httpbin behind the waypoint. Declaration order is teardown order in reverse:
// processes stop before their namespace goes.
class WaypointLab {
 public:
  WaypointLab() : ns_(Netns::Create("wp")), dir_(kmesh::e2e::CaseOutputDir()) {
    using kmesh::netns::RunIn;
    RunIn(ns_.ref(), {"ip", "link", "set", "lo", "up"});
    for (const char* ip : {kServerIp, kClientA, kClientB}) {
      RunIn(ns_.ref(), {"ip", "addr", "add", std::string(ip) + "/32", "dev", "lo"});
    }
    policies_path_ = dir_ + "/waypoint-policies.yaml";
    log_path_ = dir_ + "/waypoint-requests.jsonl";
    std::filesystem::remove(log_path_);
    std::ofstream(policies_path_) << "";

    const std::string upstream_log = dir_ + "/httpbin.log";
    upstream_.emplace(
        Process::Start({"gunicorn", "-b", std::string(kServerIp) + ":" + std::to_string(kUpstreamPort), "-w",
                        "1", "--threads", "4", "httpbin:app"},
                       Options(upstream_log)));
    WaitAccepts(ns_.ref(), "httpbin (gunicorn)", kServerIp, kUpstreamPort, *upstream_, upstream_log,
                kmesh::defaults::AppReady());
    waypoint_startup_ = StartWaypoint(kWaypointPort, kUpstreamPort, policies_path_, log_path_);
  }

  // Starts a waypoint in the namespace and returns how long it took to accept connections.
  std::chrono::milliseconds StartWaypoint(uint16_t listen, uint16_t upstream, const std::string& policies,
                                          const std::string& log) {
    const std::string out = dir_ + "/waypoint-" + std::to_string(listen) + ".out";
    auto& p = extra_.emplace_back(Process::Start(
        {kmesh::Runfile("e2e/lab/waypoint/waypoint"), "--listen",
         std::string(kServerIp) + ":" + std::to_string(listen), "--upstream",
         std::string(kServerIp) + ":" + std::to_string(upstream), "--policies", policies, "--log", log},
        Options(out)));
    return WaitAccepts(ns_.ref(), "waypoint", kServerIp, listen, p, out, kmesh::defaults::AppReady());
  }

  void SetPolicies(const std::string& yaml) { WriteAtomically(policies_path_, yaml); }
  void SetPolicies(const kmesh::policy::Manifest& m) { SetPolicies(m.text); }

  CurlResult Curl(const std::string& source_ip, const std::string& path,
                  const std::vector<std::string>& extra = {}, uint16_t port = kWaypointPort) {
    const double connect_s = kmesh::defaults::ConnectTimeout().count() / 1000.0;
    const double max_s =
        (kmesh::defaults::ConnectTimeout() + kmesh::defaults::ResponseTimeout()).count() / 1000.0;
    std::vector<std::string> argv = {"curl",
                                     "-sS",
                                     "--interface",
                                     source_ip,
                                     "--connect-timeout",
                                     std::to_string(connect_s),
                                     "--max-time",
                                     std::to_string(max_s),
                                     "-w",
                                     "\n%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("http://" + std::string(kServerIp) + ":" + std::to_string(port) + path);
    ProcessOptions o;
    o.netns = ns_.ref();
    auto r = kmesh::netns::Run(argv, o);
    CurlResult c;
    const size_t nl = r.out.rfind('\n');
    c.body = nl == std::string::npos ? "" : r.out.substr(0, nl);
    c.status = nl == std::string::npos ? 0 : std::atoi(r.out.c_str() + nl + 1);
    if (!r.ok()) c.error = r.Describe();
    return c;
  }

  // The log's lines with event == `event`, waiting (bounded) until there are at least `at_least`.
  std::vector<json> LogEvents(const std::string& event, size_t at_least = 0) const {
    const auto deadline = Clock::now() + kmesh::defaults::WaypointIo();
    for (;;) {
      std::vector<json> out;
      std::istringstream in(ReadFile(log_path_));
      for (std::string line; std::getline(in, line);) {
        json j = json::parse(line);  // every line must be JSON: a parse error fails the case
        if (j.at("event") == event) out.push_back(j);
      }
      if (out.size() >= at_least || Clock::now() > deadline) return out;
      std::this_thread::sleep_for(kmesh::defaults::PollInterval());
    }
  }

  pid_t waypoint_pid() const { return extra_.front().pid(); }
  NetnsRef ns() const { return ns_.ref(); }
  std::chrono::milliseconds waypoint_startup() const { return waypoint_startup_; }
  const std::string& dir() const { return dir_; }

 private:
  ProcessOptions Options(const std::string& output_file) {
    ProcessOptions o;
    o.netns = ns_.ref();
    o.output = ProcessOptions::Output::kFile;
    o.output_file = output_file;
    return o;
  }

  Netns ns_;
  std::string dir_;
  std::string policies_path_, log_path_;
  std::optional<Process> upstream_;
  std::vector<Process> extra_;
  std::chrono::milliseconds waypoint_startup_{0};
};

kmesh::policy::Manifest Template(const std::string& name, const Vars& vars) {
  return kmesh::policy::RenderPolicyTemplate(name, vars);
}

Vars HeaderVars(const std::string& value) {
  return Vars()
      .Set("Namespace", "test-ns1")
      .Set("Service", "httpbin")
      .Set("HeaderName", "x-kmesh-test")
      .Set("HeaderValue", value);
}

// What Istio says for the same request, so the table and the reference cannot drift apart.
kmesh::policy::Verdict Expected(const kmesh::policy::Manifest& m, const std::string& source_ip,
                                const std::string& host,
                                const std::vector<std::pair<std::string, std::string>>& headers) {
  kmesh::policy::Request r;
  r.source_ip = kmesh::net::IpAddr::Parse(source_ip)->Unmapped();
  r.destination_port = kWaypointPort;
  r.host = host;
  r.method = "GET";
  r.path = "/headers";
  for (const auto& [k, v] : headers) r.headers.Add(k, v);
  return kmesh::policy::Evaluate(kmesh::policy::ParseManifests(m.text, m.origin), r).verdict;
}

}  // namespace

TEST_CASE("waypoint enforces L7 policies with 403 and forwards the rest; its log records each decision") {
  WaypointLab lab;
  const std::string default_host = std::string(kServerIp) + ":" + std::to_string(kWaypointPort);

  struct Row {
    const char* what;
    kmesh::policy::Manifest policy;
    const char* source;
    std::vector<std::pair<std::string, std::string>> headers;  // "Host" overrides curl's
    int status;
    const char* deciding_policy;  // "" for a default decision
  };
  const std::vector<Row> rows = {
      {"header-deny, header present",
       Template("header-deny", HeaderVars("deny")),
       kClientA,
       {{"x-kmesh-test", "deny"}},
       403,
       "test-ns1/header-deny-policy"},
      {"header-deny, other value",
       Template("header-deny", HeaderVars("deny")),
       kClientA,
       {{"x-kmesh-test", "allow"}},
       200,
       ""},
      {"header-deny, no header", Template("header-deny", HeaderVars("deny")), kClientA, {}, 200, ""},
      {"header-allow, header present",
       Template("header-allow", HeaderVars("let-me-in")),
       kClientA,
       {{"X-Kmesh-Test", "let-me-in"}},
       200,
       "test-ns1/header-allow-policy"},
      {"header-allow, no header", Template("header-allow", HeaderVars("let-me-in")), kClientA, {}, 403, ""},
      {"host-deny, the host in other case with a port",
       Template("host-deny", Vars()
                                 .Set("Namespace", "test-ns1")
                                 .Set("Service", "httpbin")
                                 .Set("TargetHost", "httpbin.test-ns1")),
       kClientA,
       {{"Host", "HTTPBIN.test-ns1:15008"}},
       403,
       "test-ns1/host-deny-policy"},
      {"host-deny, another host",
       Template("host-deny", Vars()
                                 .Set("Namespace", "test-ns1")
                                 .Set("Service", "httpbin")
                                 .Set("TargetHost", "httpbin.test-ns1")),
       kClientA,
       {{"Host", "sleep.test-ns1"}},
       200,
       ""},
      {"host-allow, the host",
       Template(
           "host-allow",
           Vars().Set("Namespace", "test-ns1").Set("Service", "httpbin").Set("TargetHost", "*.test-ns1")),
       kClientA,
       {{"Host", "httpbin.test-ns1"}},
       200,
       "test-ns1/host-allow-policy"},
      {"ip-allow by the client address, allowed client",
       Template("ip-allow", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", kClientA)),
       kClientA,
       {},
       200,
       "test-ns1/ip-allow-policy"},
      {"ip-allow by the client address, other client",
       Template("ip-allow", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", kClientA)),
       kClientB,
       {},
       403,
       ""},
  };

  // One lab for the whole table (gunicorn takes a while to start); the cases only swap the policy file.
  size_t requests = 0;
  for (const auto& row : rows) {
    {
      INFO("case: " << row.what);
      lab.SetPolicies(row.policy);
      std::vector<std::string> args;
      std::string host = default_host;
      for (const auto& [k, v] : row.headers) {
        args.push_back("-H");
        args.push_back(k + ": " + v);
        if (k == "Host") host = v;
      }
      // The table agrees with Istio's decision for the same request.
      REQUIRE((Expected(row.policy, row.source, host, row.headers) == kmesh::policy::Verdict::kAllow) ==
              (row.status == 200));

      // show_env: httpbin otherwise hides X-Forwarded-For.
      const CurlResult r = lab.Curl(row.source, "/headers?show_env=1", args);
      INFO("curl: " << r.error << "\nbody: " << r.body << "\nevidence: " << lab.dir());
      CHECK(r.status == row.status);
      if (row.status == 403) {
        CHECK(r.body == "RBAC: access denied");
      } else {
        // httpbin answered, and saw the request through the waypoint (headers kept, client appended).
        const json seen = json::parse(r.body).at("headers");
        CHECK(seen.at("X-Forwarded-For").get<std::string>().find(row.source) != std::string::npos);
        for (const auto& [k, v] : row.headers) {
          if (k != "Host") CHECK(seen.dump().find(v) != std::string::npos);
        }
      }
      const auto log = lab.LogEvents("request", ++requests);
      REQUIRE(log.size() == requests);
      const json& line = log.back();
      INFO(line.dump());
      CHECK(line.at("decision") == (row.status == 200 ? "allow" : "deny"));
      CHECK(line.at("status") == row.status);
      CHECK(line.at("client").get<std::string>().rfind(std::string(row.source) + ":", 0) == 0);
      CHECK(line.at("path") == "/headers?show_env=1");
      CHECK(line.at("host") == host);
      if (*row.deciding_policy) {
        CHECK(line.at("policy") == row.deciding_policy);
      } else {
        CHECK(line.at("policy").is_null());
      }
    }
  }
}

TEST_CASE("waypoint reloads on file change and on SIGHUP, and keeps its policies when a file is refused") {
  WaypointLab lab;
  INFO("evidence: " << lab.dir());
  const std::vector<std::string> with_header = {"-H", "x-kmesh-test: deny"};

  lab.SetPolicies(Template("header-deny", HeaderVars("deny")));
  CHECK(lab.Curl(kClientA, "/headers", with_header).status == 403);
  CHECK(lab.Curl(kClientA, "/headers").status == 200);

  // A file change takes effect at the next request: no waiting needed.
  lab.SetPolicies(Template("header-allow", HeaderVars("deny")));
  CHECK(lab.Curl(kClientA, "/headers", with_header).status == 200);
  CHECK(lab.Curl(kClientA, "/headers").status == 403);

  // A refused file: logged with the parser's message, and the previous policies stay in force.
  lab.SetPolicies(Template("header-allow", HeaderVars("deny")).text + "---\nkind: Gateway\n");
  CHECK(lab.Curl(kClientA, "/headers").status == 403);
  const auto failed = lab.LogEvents("reload_failed", 1);
  REQUIRE(failed.size() == 1);
  CHECK_THAT(failed[0].at("error").get<std::string>(),
             Contains("waypoint-policies.yaml:") && Contains("kind"));

  // A policy the lab cannot evaluate is refused the same way, never half-enforced.
  lab.SetPolicies(
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: "
      "test-ns1}\n"
      "spec:\n  action: DENY\n  rules:\n  - from:\n    - source: {principals: [\"*\"]}\n");
  CHECK(lab.Curl(kClientA, "/headers").status == 403);
  const auto failed2 = lab.LogEvents("reload_failed", 2);
  REQUIRE(failed2.size() == 2);
  CHECK_THAT(failed2[1].at("error").get<std::string>(),
             Contains("the lab does not support source.principals"));

  // SIGHUP forces a reload even when the file did not change.
  lab.SetPolicies("");
  CHECK(lab.Curl(kClientA, "/headers").status == 200);  // no policies: everything allowed
  const size_t reloads = lab.LogEvents("reload").size();
  REQUIRE(kill(lab.waypoint_pid(), SIGHUP) == 0);
  CHECK(lab.LogEvents("reload", reloads + 1).size() == reloads + 1);
}

TEST_CASE("waypoint relays bodies both ways, chunked responses, and reports a dead upstream as 503") {
  // One lab for all of it (gunicorn takes seconds to start on a busy machine); each step adds one
  // request line to the log, which `requests` counts.
  WaypointLab lab;
  INFO("evidence: " << lab.dir());
  std::printf("waypoint accepted connections %lld ms after it was started\n",
              static_cast<long long>(lab.waypoint_startup().count()));
  size_t requests = 0;
  auto last_logged = [&] {
    const auto log = lab.LogEvents("request", ++requests);
    REQUIRE(log.size() == requests);
    return log.back();
  };

  {
    INFO("a request body reaches the upstream");
    const auto r =
        lab.Curl(kClientA, "/post",
                 {"-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "kmesh-e2e-body"});
    REQUIRE(r.status == 200);
    CHECK(json::parse(r.body).at("data") == "kmesh-e2e-body");
    CHECK(last_logged().at("method") == "POST");
  }
  {
    INFO("a large Content-Length response arrives whole");
    const auto r = lab.Curl(kClientA, "/bytes/100000");  // httpbin's largest
    CHECK(r.status == 200);
    CHECK(r.body.size() == 100000);
    last_logged();
  }
  {
    INFO("a streamed (chunked) response arrives whole");
    const auto r = lab.Curl(kClientA, "/stream/5");
    CHECK(r.status == 200);
    size_t lines = 0;
    std::istringstream in(r.body);
    for (std::string line; std::getline(in, line);) lines += json::parse(line).contains("id");
    CHECK(lines == 5);
    last_logged();
  }
  {
    INFO("an upstream status is relayed and logged as allowed");
    CHECK(lab.Curl(kClientA, "/status/418").status == 418);
    const json line = last_logged();
    CHECK(line.at("decision") == "allow");
    CHECK(line.at("status") == 418);
  }
  {
    INFO("a malformed request is a 400 that says why, and is logged");
    // Bytes no HTTP client would send, so through a plain socket.
    const std::string answer = Exchange(lab.ns(), kServerIp, kWaypointPort,
                                        "GET /headers HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n");
    CHECK(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0) == 0);
    CHECK_THAT(answer, Contains("header name \"Bad Name\" is not a token"));
    const json line = last_logged();
    CHECK(line.at("status") == 400);
    CHECK(line.at("decision") == "none");
  }
  {
    INFO("a connection without a request (a readiness probe) is not evidence");
    CHECK(Exchange(lab.ns(), kServerIp, kWaypointPort, "").empty());
    CHECK(lab.Curl(kClientA, "/status/204").status == 204);
    CHECK(last_logged().at("status") == 204);  // the probe added no line before this one
  }
  {
    INFO("no upstream listening: 503 with Envoy's wording, logged");
    const std::string log = lab.dir() + "/dead-upstream.jsonl";
    const std::string policies = lab.dir() + "/dead-upstream-policies.yaml";
    std::ofstream(policies) << "";
    lab.StartWaypoint(kWaypointPort + 1, 9 /* discard: nothing listens */, policies, log);
    const auto r = lab.Curl(kClientA, "/headers", {}, kWaypointPort + 1);
    CHECK(r.status == 503);
    CHECK_THAT(r.body, Contains("upstream connect error"));
    CHECK_THAT(ReadFile(log), Contains("\"status\":503"));
  }
}
