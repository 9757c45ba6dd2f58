#include "e2e/lab/waypoint/http.h"

#include <catch2/catch.hpp>

#include "base/error.h"
#include "e2e/lab/waypoint/waypoint.h"

using Catch::Contains;
using namespace kmesh::waypoint;

TEST_CASE("a request head parses into method, target, headers, host and path") {
  const std::string raw =
      "GET /headers?show_env=1 HTTP/1.1\r\n"
      "Host: httpbin.test-ns1:8000\r\n"
      "X-Kmesh:  deny-me \r\n"
      "x-kmesh: again\r\n"
      "\r\n"
      "body";
  const auto end = HeadEnd(raw);
  REQUIRE(end.has_value());
  CHECK(raw.substr(*end) == "body");
  const auto h = ParseRequestHead(raw.substr(0, *end));
  CHECK(h.method == "GET");
  CHECK(h.target == "/headers?show_env=1");
  CHECK(h.version == "HTTP/1.1");
  CHECK(h.Host() == "httpbin.test-ns1:8000");
  CHECK(h.Path() == "/headers?show_env=1");
  CHECK(h.Header("X-KMESH") == std::optional<std::string>("deny-me,again"));
  CHECK_FALSE(h.Header("missing").has_value());
  CHECK(RequestBodyLength(h) == std::optional<size_t>(0));
}

TEST_CASE("absolute-form targets, bare LF heads and incomplete heads") {
  const auto h = ParseRequestHead("GET http://httpbin:8000/status/418 HTTP/1.0\n\n");
  CHECK(h.Host() == "httpbin:8000");
  CHECK(h.Path() == "/status/418");
  CHECK(HeadEnd("GET / HTTP/1.1\r\nHost: a\r\n") == std::nullopt);
  CHECK(HeadEnd("GET / HTTP/1.1\nHost: a\n\nrest") == std::optional<size_t>(24));
}

TEST_CASE("malformed requests are refused with what is wrong") {
  const std::vector<std::pair<std::string, std::string>> rows = {
      {"GET /\r\n\r\n", "is not METHOD TARGET VERSION"},
      {"GET / HTTP/1.1 extra\r\n\r\n", "is not METHOD TARGET VERSION"},
      {"GET / HTTP/2\r\nHost: a\r\n\r\n", "version \"HTTP/2\""},
      {"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", "neither a path nor an absolute URI"},
      {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", "method \"G(T\" is not a token"},
      {"GET / HTTP/1.1\r\n\r\n", "without a Host header"},
      {"GET / HTTP/1.1\r\nHost: a\r\nbroken\r\n\r\n", "header line 3 has no ':'"},
      {"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", "header name \"Bad Name\" is not a token"},
      {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", "folding"},
  };
  for (const auto& [raw, expected] : rows) {
    INFO(raw);
    CHECK_THROWS_WITH(ParseRequestHead(raw), Contains(expected));
  }
  CHECK_THROWS_WITH(
      RequestBodyLength(ParseRequestHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n")),
      Contains("Content-Length \"1x\" is not a number"));
  CHECK(RequestBodyLength(ParseRequestHead(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")) == std::nullopt);
  CHECK(RequestBodyLength(ParseRequestHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n")) ==
        std::optional<size_t>(12));
}

TEST_CASE("the upstream head drops hop-by-hop headers and closes the connection") {
  const auto h = ParseRequestHead(
      "GET /get HTTP/1.1\r\nHost: httpbin\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\n"
      "Keep-Alive: 5\r\nExpect: 100-continue\r\nX-Forwarded-For: 1.1.1.1\r\nUser-Agent: curl\r\n\r\n");
  CHECK(UpstreamRequestHead(h, "10.244.1.5") ==
        "GET /get HTTP/1.1\r\nHost: httpbin\r\nUser-Agent: curl\r\n"
        "X-Forwarded-For: 1.1.1.1, 10.244.1.5\r\nConnection: close\r\n\r\n");
}

TEST_CASE("the response head is relayed with Connection: close") {
  const auto r = ParseResponseHead(
      "HTTP/1.1 200 OK\r\nServer: gunicorn\r\nConnection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\n\r\n");
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(ClientResponseHead(r) ==
        "HTTP/1.1 200 OK\r\nServer: gunicorn\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  CHECK_THROWS_WITH(ParseResponseHead("SMTP ready\r\n\r\n"), Contains("is not HTTP/x.y NNN reason"));
  CHECK_THROWS_WITH(ParseResponseHead("HTTP/1.1 2x0 OK\r\n\r\n"), Contains("status \"2x0\" is not a number"));
}

TEST_CASE("a deny is answered like Envoy's RBAC filter") {
  const std::string r = LocalResponse(403, "Forbidden", "RBAC: access denied");
  CHECK(r.rfind("HTTP/1.1 403 Forbidden\r\n", 0) == 0);
  CHECK_THAT(r, Contains("content-length: 19\r\n"));
  CHECK_THAT(r, Contains("connection: close\r\n"));
  CHECK(r.substr(r.size() - 19) == "RBAC: access denied");
}

TEST_CASE("flags: endpoints, namespaces and what is missing") {
  std::vector<std::string> args = {
      "waypoint", "--listen", "10.0.0.1:15008", "--upstream=[fd00::7]:8000", "--policies", "p.yaml",
      "--log",    "l.jsonl",  "--namespace-of", "10.244.1.0/24=test-ns2"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const Config c = ParseFlags(static_cast<int>(argv.size()), argv.data());
  CHECK(c.listen.ToString() == "10.0.0.1:15008");
  CHECK(c.upstream.ToString() == "[fd00::7]:8000");
  CHECK(c.policies_path == "p.yaml");
  REQUIRE(c.namespaces.size() == 1);
  CHECK(c.namespaces[0].second == "test-ns2");

  auto error_of = [](std::vector<std::string> a) {
    std::vector<char*> v;
    for (auto& s : a) v.push_back(s.data());
    try {
      ParseFlags(static_cast<int>(v.size()), v.data());
    } catch (const kmesh::Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK_THAT(error_of({"waypoint"}),
             Contains("missing --listen --upstream --policies --log") && Contains("usage:"));
  CHECK_THAT(error_of({"waypoint", "--listen", "10.0.0.1"}),
             Contains("--listen \"10.0.0.1\" is not IP:PORT"));
  CHECK_THAT(error_of({"waypoint", "--listen", "10.0.0.1:0"}), Contains("\"0\" is not a port"));
  CHECK_THAT(error_of({"waypoint", "--listen", "host:80"}), Contains("\"host\" is not an IP address"));
  CHECK_THAT(error_of({"waypoint", "--namespace-of", "test-ns2"}), Contains("is not CIDR=NAMESPACE"));
  CHECK_THAT(error_of({"waypoint", "--frobnicate", "1"}), Contains("unknown flag --frobnicate"));
  CHECK_THAT(error_of({"waypoint", "--log"}), Contains("flag --log needs a value"));
}
