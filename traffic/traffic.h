// Client-side traffic: an HTTP/TCP probe run from inside a source namespace, whose outcome is one of the
// few things a client can see (architecture: ok, http_error, connect_timeout, reset, refused,
// read_timeout), with the kernel tuple it used (so the evidence can be looked up: km_auth_res is keyed by
// it) and timings. Two paths lead to the same ProbeOutcome: an in-process socket, and curl (what the kube
// env runs through `kubectl exec`), whose `-w '%{json}'` output is mapped by a pure function.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "base/defaults.h"
#include "net/tuple.h"
#include "netns/netns.h"

namespace kmesh::e2e {

enum class OutcomeKind {
  kOk,              // HTTP status 1xx-3xx (or, for a TCP-only probe, connected)
  kHttpError,       // HTTP status >= 400 (a waypoint's 403)
  kConnectTimeout,  // no answer to the SYN within the bound (XDP drop)
  kReset,           // ECONNRESET after connecting (Kmesh's RST path)
  kRefused,         // RST to the SYN: nothing listens
  kReadTimeout,     // connected, but no complete response within the bound (userspace deny)
  kError,           // none of the above: the probe itself failed (no route, empty reply, bad HTTP)
};

std::string ToString(OutcomeKind k);  // "ok", "http_error", "connect_timeout", ...

struct ProbeTimings {
  std::chrono::microseconds connect{0};     // SYN sent -> connected (or until the failure)
  std::chrono::microseconds first_byte{0};  // request sent -> first response byte (0 if none)
  std::chrono::microseconds total{0};
};

struct ProbeOutcome {
  OutcomeKind kind = OutcomeKind::kError;
  int http_status = 0;  // for kOk / kHttpError of an HTTP probe
  std::string detail;   // errno text, curl's errormsg, what the response looked like
  // Non-empty when a wait ended before its bound because the kernel had proven the outcome (ProbeSpec::
  // proven): what the proof said. The kind is still what the client saw until then (no answer).
  std::string ended_early;
  // Client first, as km_auth_res keys it; the source port is known even when the connect failed. An
  // address the client could not tell is unspecified (0.0.0.0), and the JSON shows it as "".
  net::Tuple tuple;
  ProbeTimings timings;
  std::string via;  // "socket" or "curl"

  // "ok(200)", "http_error(403)", "connect_timeout", ...
  std::string Summary() const;
  // Summary plus tuple, detail and timings, for failure messages.
  std::string ToString() const;
  nlohmann::json ToJson() const;
};

struct ProbeSpec {
  net::Endpoint dst{{}, 80};          // on an Env, an unspecified address means the server's ServiceAddress
  std::optional<net::IpAddr> src_ip;  // bind to this address (none = the kernel's choice)
  uint16_t src_port = 0;  // bind to this port (0 = the kernel's choice, reported in the outcome)
  bool http = true;       // false: a TCP connect probe (ok once connected)
  std::string method = "GET";
  std::string path = "/";
  std::string host;  // Host header ("" = dst)
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds connect_timeout = defaults::ConnectTimeout();
  std::chrono::milliseconds response_timeout = defaults::ResponseTimeout();
  // Time between connected and sending the request (0 = at once, like curl). The authz suite waits
  // defaults::UserspaceVerdict() so that Kmesh's userspace verdict, not its race with the request, is what
  // a row judges; the race itself has its own case. The curl path (kube env) cannot wait: it ignores this.
  std::chrono::milliseconds request_delay{0};

  // Hooks of the in-process probe (the curl path cannot call back and ignores them).
  // While waiting for the handshake (kConnect) or the response (kResponse), asked every
  // defaults::DropProofPoll() whether the kernel has already proven that no answer will come (an XDP
  // drop, e2e/framework/drop_proof.h); a non-empty answer ends the wait there, as connect_timeout or
  // read_timeout, with the answer in ProbeOutcome::ended_early. The spec's timeouts stay the bound.
  enum class Phase { kConnect, kResponse };
  std::function<std::string(Phase)> proven;
  // Called once connected, before the request: evidence that exists only while the connection is open
  // (the verdict Kmesh's XDP cached for an allowed connection, deleted by sockops when it closes).
  std::function<void(const net::Tuple&)> while_open;
};

// In-process probe: the socket is created inside `source` (a RunIn thread), then connect and the HTTP
// exchange are bounded by the spec's timeouts. Never throws for network outcomes; throws kmesh::Error
// only for bad input (unknown namespace, malformed address).
ProbeOutcome Probe(const netns::NetnsRef& source, const ProbeSpec& spec);

// The same probe on the calling thread, which must already be in the source namespace (load generator).
ProbeOutcome ProbeOnThisThread(const ProbeSpec& spec);

// curl's argv for the spec: `curl -sS -o /dev/null -w '%{json}' --local-port P --connect-timeout ...
// --max-time ... [-H ...] http://dst:port/path`. The kube env prefixes `kubectl exec POD --`.
std::vector<std::string> CurlArgv(const ProbeSpec& spec);

// Pure mapping of curl's exit code and `-w '%{json}'` stdout to an outcome (exit 7 refused, 28 timeout
// split by time_connect, 56 recv failure = reset, 52 empty reply, ...). Throws kmesh::Error when the
// output is not curl's JSON (naming what was found), because then nothing can be concluded.
ProbeOutcome ParseCurlResult(int exit_code, const std::string& json_stdout, const std::string& stderr_text);

// Runs curl inside `source` (netns::Process) and maps its result.
ProbeOutcome ProbeWithCurl(const netns::NetnsRef& source, const ProbeSpec& spec);

}  // namespace kmesh::e2e
