// An application the suites deploy (an httpbin server or a curl client in a pod): one type for every Env
// and for the lab underneath the lab Env, with no dependency beyond net/ so both can use it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "net/ip.h"

namespace kmesh::e2e {

enum class AppKind { kServer, kClient };  // httpbin / sleep (curl)

struct AppSpec {
  std::string name;
  AppKind kind = AppKind::kServer;
  int node = 0;  // index into the Env's nodes: server and client on different nodes
  std::string k8s_namespace = "test-ns1";
  std::map<std::string, std::string> labels;  // "app" = name is always added
  bool waypoint = false;                      // a waypoint in front of this service (L7 policies)
};

struct App {
  std::string name;
  AppKind kind = AppKind::kServer;
  std::string node;  // node name
  std::string k8s_namespace;
  net::IpAddr ip;            // pod IP; the address a suite reaches the app at (see OverFamily)
  uint16_t port = 0;         // server: the pod port
  uint16_t alt_port = 0;     // server: a second pod port (for port policies), 0 if none
  uint32_t workload_id = 0;  // FNV-32a of the workload UID (km_frontend / km_wlpolicy key)
  // The pod's service account (principal cluster.local/ns/<ns>/sa/<sa>); no app of the suites has its own.
  std::string service_account = "default";
  std::optional<net::IpAddr> ip6;  // the pod's IPv6 address on a dual-stack Env
};

// The app as reached over `family`: its `ip` is the pod's address in that family (on a dual-stack Env,
// `ip6`), so a probe to it, the tuple Kmesh keys and every address a policy names are that family's. An
// Env tells a server's family by its `ip`. Throws when the app has no address in `family`.
App OverFamily(const App& app, net::Family family);
// "IPv4" / "IPv6".
const char* FamilyName(net::Family family);

}  // namespace kmesh::e2e
