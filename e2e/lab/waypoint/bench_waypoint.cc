// bench_waypoint: what the lab's L7 hop costs. In a fresh namespace, httpbin (gunicorn) and the waypoint
// (with the header-deny seed policy); the same request timed three ways in one run, side by side:
//   direct      client -> httpbin                       (what a user gets without a waypoint)
//   waypoint    client -> waypoint -> httpbin, allowed  (the extra hop + policy evaluation)
//   403         client -> waypoint, denied              (answered by the waypoint alone)
// plus the in-process cost of policy::Evaluate over all ten seed policies.
// Run as root: bazel run //e2e/lab/waypoint:bench_waypoint -- [requests per series, default 300]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/error.h"
#include "base/runfiles.h"
#include "e2e/policy/evaluate.h"
#include "e2e/policy/template.h"
#include "netns/netns.h"
#include "netns/process.h"

namespace {

using Clock = std::chrono::steady_clock;
using kmesh::netns::Netns;
using kmesh::netns::Process;
using kmesh::netns::ProcessOptions;

constexpr const char* kIp = "10.78.0.1";
constexpr uint16_t kHttpbin = 8000;
constexpr uint16_t kWaypoint = 15008;

// One request on a fresh connection; returns the status code (0 on failure).
int Request(uint16_t port, const std::string& extra_header) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{};
  tv.tv_sec = kmesh::defaults::ResponseTimeout().count() / 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  inet_pton(AF_INET, kIp, &sin.sin_addr);
  int status = 0;
  if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0) {
    const std::string req =
        "GET /status/200 HTTP/1.1\r\nHost: httpbin\r\n" + extra_header + "Connection: close\r\n\r\n";
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string resp;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) resp.append(buf, static_cast<size_t>(n));
    if (resp.rfind("HTTP/1.1 ", 0) == 0 && resp.size() >= 12) status = std::atoi(resp.c_str() + 9);
  }
  close(fd);
  return status;
}

struct Series {
  std::string name;
  std::vector<double> ms;
  int expected_status;
  int wrong = 0;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

void WaitAccepts(const kmesh::netns::NetnsRef& ns, uint16_t port, const char* what) {
  const auto deadline = Clock::now() + kmesh::defaults::AppReady();
  while (kmesh::netns::RunIn(ns, [&] { return Request(port, "") == 0; })) {
    if (Clock::now() > deadline) throw kmesh::Error(std::string(what) + " did not answer within APP_READY");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int n = argc > 1 ? std::max(10, std::atoi(argv[1])) : 300;
    Netns ns = Netns::Create("bench");
    kmesh::netns::RunIn(ns.ref(), {"ip", "link", "set", "lo", "up"});
    kmesh::netns::RunIn(ns.ref(), {"ip", "addr", "add", std::string(kIp) + "/32", "dev", "lo"});
    const std::string dir = "/tmp/" + ns.name();
    kmesh::netns::RunChecked({"mkdir", "-p", dir});

    ProcessOptions o;
    o.netns = ns.ref();
    o.output = ProcessOptions::Output::kDiscard;
    Process httpbin = Process::Start({"gunicorn", "-b", std::string(kIp) + ":" + std::to_string(kHttpbin),
                                      "-w", "1", "--threads", "4", "httpbin:app"},
                                     o);
    WaitAccepts(ns.ref(), kHttpbin, "httpbin");

    const auto policy =
        kmesh::policy::RenderPolicyTemplate("header-deny", kmesh::policy::Vars()
                                                               .Set("Namespace", "bench")
                                                               .Set("Service", "httpbin")
                                                               .Set("HeaderName", "x-kmesh-test")
                                                               .Set("HeaderValue", "deny"));
    std::ofstream(dir + "/policies.yaml") << policy.text;
    const auto wp_start = Clock::now();
    Process waypoint = Process::Start({kmesh::Runfile("e2e/lab/waypoint/waypoint"), "--listen",
                                       std::string(kIp) + ":" + std::to_string(kWaypoint), "--upstream",
                                       std::string(kIp) + ":" + std::to_string(kHttpbin), "--policies",
                                       dir + "/policies.yaml", "--log", dir + "/requests.jsonl"},
                                      o);
    WaitAccepts(ns.ref(), kWaypoint, "waypoint");
    const double startup_ms = std::chrono::duration<double, std::milli>(Clock::now() - wp_start).count();

    std::vector<Series> series = {{"direct (no waypoint)", {}, 200},
                                  {"via waypoint, allowed", {}, 200},
                                  {"via waypoint, denied (403)", {}, 403}};
    kmesh::netns::RunIn(ns.ref(), [&] {
      for (int i = 0; i < 20; ++i) Request(kWaypoint, "");  // warm up gunicorn's imports and caches
      // Interleaved, so drift on a busy machine hits every series alike.
      for (int i = 0; i < n; ++i) {
        for (size_t s = 0; s < series.size(); ++s) {
          const uint16_t port = s == 0 ? kHttpbin : kWaypoint;
          const std::string header = s == 2 ? "x-kmesh-test: deny\r\n" : "";
          const auto t0 = Clock::now();
          const int status = Request(port, header);
          series[s].ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
          series[s].wrong += status != series[s].expected_status;
        }
      }
    });

    // policy::Evaluate alone: all ten seed templates, one request.
    std::vector<kmesh::policy::AuthorizationPolicy> all;
    for (const auto& name : kmesh::policy::PolicyTemplateNames()) {
      kmesh::policy::Vars v;
      v.Set("Namespace", "bench");
      if (name.rfind("ip-", 0) == 0) v.Set("App", "httpbin").Set("Ip", "10.244.1.5/32");
      if (name.rfind("port-", 0) == 0) v.Set("App", "httpbin").SetList("Ports", {"9090"});
      if (name.rfind("namespace-", 0) == 0) v.Set("App", "httpbin").Set("SourceNamespace", "other");
      if (name.rfind("header-", 0) == 0)
        v.Set("Service", "httpbin").Set("HeaderName", "x-a").Set("HeaderValue", "b");
      if (name.rfind("host-", 0) == 0) v.Set("Service", "httpbin").Set("TargetHost", "h");
      const auto m = kmesh::policy::RenderPolicyTemplate(name, v);
      for (auto& p : kmesh::policy::ParseManifests(m.text, m.origin)) all.push_back(std::move(p));
    }
    kmesh::policy::Request req;
    req.source_ip = *kmesh::net::IpAddr::Parse("10.0.0.9");
    req.destination_port = 8000;
    req.host = "httpbin:8000";
    req.method = "GET";
    req.path = "/status/200";
    req.headers.Add("user-agent", "bench");
    const int evals = 100000;
    int denied = 0;
    const auto e0 = Clock::now();
    for (int i = 0; i < evals; ++i) denied += !kmesh::policy::Evaluate(all, req).allowed();
    const double eval_us = std::chrono::duration<double, std::micro>(Clock::now() - e0).count() / evals;

    std::printf("bench_waypoint: %d requests per series, one connection each, interleaved; loopback in %s\n",
                n, ns.name().c_str());
    std::printf("waypoint startup (exec to its first proxied 200): %.1f ms\n\n", startup_ms);
    std::printf("%-28s %9s %9s %9s %9s %10s %6s\n", "series", "p50 ms", "p90 ms", "p99 ms", "mean ms",
                "ratio p50", "wrong");
    const double direct_p50 = Percentile(series[0].ms, 0.5);
    for (const auto& s : series) {
      double mean = 0;
      for (double v : s.ms) mean += v;
      mean /= s.ms.size();
      const double p50 = Percentile(s.ms, 0.5);
      std::printf("%-28s %9.3f %9.3f %9.3f %9.3f %9.2fx %6d\n", s.name.c_str(), p50, Percentile(s.ms, 0.9),
                  Percentile(s.ms, 0.99), mean, p50 / direct_p50, s.wrong);
    }
    std::printf("\npolicy::Evaluate, %zu seed policies, one request: %.2f us per decision (%s)\n", all.size(),
                eval_us, denied == evals ? "deny" : "allow");
    waypoint.Stop();
    httpbin.Stop();
    kmesh::netns::RunChecked({"rm", "-rf", dir});
    int wrong = 0;
    for (const auto& s : series) wrong += s.wrong;
    return wrong == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_waypoint: %s\n", e.what());
    return 2;
  }
}
