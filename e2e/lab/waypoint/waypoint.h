// The lab's L7 waypoint: an HTTP/1.1 reverse proxy that enforces the AuthorizationPolicies in a YAML
// file the way a waypoint's Envoy RBAC filter does, answering `403 Forbidden` / `RBAC: access denied`
// on deny and forwarding everything else to one upstream. One request per connection (the waypoint
// answers with `Connection: close`), one thread per connection, every wait bounded (defaults.h).
//
// Policies: the file is reloaded when it changes (checked before every request and every poll interval
// of the accept loop; the lab replaces it atomically by rename) and on SIGHUP. A file that fails to parse
// or uses what the lab cannot evaluate is refused: the previous policies stay, and the log says why.
// At start an unreadable or invalid file is fatal. An empty file is no policies (everything allowed).
//
// Evidence: one JSON line per request in the log file:
//   {"time":"2025-05-12T10:00:00.123Z","event":"request","client":"10.244.1.5:41234","method":"GET",
//    "host":"httpbin:8000","path":"/headers","decision":"deny","policy":"test-ns1/header-deny-policy",
//    "rule":0,"reason":"DENY policy ... matched (rule 0)","status":403,"duration_ms":0.4}
// "decision" is "none" when no decision was made (a malformed request: 400), with "error" saying why.
// Other lines have "event" start / reload / reload_failed. A connection that closes before sending a
// request (a readiness probe) is not logged.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "e2e/policy/policy.h"
#include "net/ip.h"
#include "net/tuple.h"

namespace kmesh::waypoint {

// "10.0.0.1:80" or "[fd00::1]:80", port 1-65535. Throws kmesh::Error naming `what` (the flag) when malformed.
net::Endpoint ParseEndpoint(const std::string& text, const std::string& what);

struct Config {
  net::Endpoint listen;
  net::Endpoint upstream;
  std::string policies_path;
  std::string log_path;
  // Source CIDR -> Kubernetes namespace, for source.namespaces (the waypoint has no identities).
  std::vector<std::pair<net::Cidr, std::string>> namespaces;
};

// Parses argv (--listen, --upstream, --policies, --log, repeated --namespace-of CIDR=NS). Throws
// kmesh::Error with usage on anything missing or malformed.
Config ParseFlags(int argc, char** argv);

class Waypoint {
 public:
  // Binds the listening socket and loads the policies; throws kmesh::Error on failure.
  explicit Waypoint(Config config);
  ~Waypoint();
  Waypoint(const Waypoint&) = delete;
  Waypoint& operator=(const Waypoint&) = delete;

  // Serves until Stop() (or SIGTERM/SIGINT when InstallSignalHandlers was called), then waits (bounded)
  // for requests in flight. Returns false when some were still running at the bound.
  bool Run();
  void Stop() { stop_ = true; }
  // Reload the policy file at the next poll (what SIGHUP does).
  void RequestReload() { reload_ = true; }

  // SIGHUP -> RequestReload, SIGTERM/SIGINT -> Stop, SIGPIPE ignored. For the one waypoint of a process.
  void InstallSignalHandlers();

 private:
  // What the policy file looked like when last read: any change means reload.
  struct FileStamp {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  using PolicySet = std::vector<policy::AuthorizationPolicy>;

  void Serve(int client_fd, const net::Endpoint& client);
  std::shared_ptr<const PolicySet> Policies();  // reloads first when the file changed
  void MaybeReload(bool forced);
  std::string NamespaceOf(const net::IpAddr& ip) const;
  void Log(const std::string& json_line);

  Config config_;
  int listen_fd_ = -1;
  int log_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> reload_{false};
  std::atomic<int> active_{0};
  std::mutex policies_mu_;                     // guards the three below
  std::shared_ptr<const PolicySet> policies_;  // null only before the first successful load
  FileStamp seen_;                             // the file version last read, loaded or refused
  bool seen_any_ = false;
};

}  // namespace kmesh::waypoint
