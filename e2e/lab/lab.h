// The embedded lab: a two-node topology (topology.h) with real applications in pods (httpbin under
// gunicorn, curl clients), the reference datapath (XDP authorization per node, an IPsec agent per node,
// a waypoint for L7 policies) and fault injection. This is the world the lab Env drives; people reach it
// through `kmesh-lab up`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "e2e/framework/ipsec_secret.h"
#include "e2e/lab/authz_datapath.h"
#include "e2e/lab/policy_compiler.h"
#include "e2e/lab/topology.h"
#include "e2e/policy/policy.h"
#include "e2e/policy/template.h"

namespace kmesh::lab {

// What the lab can break on purpose, so the suites can be shown to catch it.
enum class Fault {
  kXdpDetached,         // xdp_authz detached from the server pods' interfaces
  kPolicyIgnored,       // policies are in the maps, but XDP passes everything
  kDenyNotCached,       // a DENY match drops the SYN but writes no km_auth_res entry
  kXfrmStateMissing,    // one node's ingress xfrm state is deleted (and not re-created)
  kWrongKey,            // one node derives its egress key from a wrong secret
  kEgressNotMarked,     // pod egress is not marked 0xe0: traffic leaves in plaintext
  kRotationNotApplied,  // one node ignores a new secret
  kWaypointBypassed,    // traffic to a service with a waypoint goes straight to the pod
};
const char* FaultName(Fault f);
Fault ParseFault(const std::string& name);  // throws, listing the names
const std::vector<Fault>& AllFaults();

enum class AppKind { kHttpbin, kSleep };

struct AppSpec {
  std::string name;
  AppKind kind = AppKind::kHttpbin;
  std::string node = "node1";
  std::string k8s_namespace = "test-ns1";
  std::map<std::string, std::string> labels;  // "app" defaults to the name
  bool waypoint = false;  // a waypoint in front of this server (service-with-waypoint)
};

struct App {
  std::string name;
  AppKind kind;
  std::string pod;         // the pod's name in the topology
  std::string ip;
  uint16_t port = 0;       // server: the pod port httpbin listens on
  uint32_t workload_id = 0;
  std::string waypoint_pod;    // when it has a waypoint
  std::string waypoint_ip;
  uint16_t waypoint_port = 0;
};

class Lab {
 public:
  static constexpr uint16_t kHttpbinPort = 8000;
  static constexpr uint16_t kHttpbinAltPort = 9090;  // a second port, for port policies
  static constexpr uint16_t kWaypointPort = 80;

  static std::unique_ptr<Lab> Up();
  ~Lab();

  Topology& topology() { return *topo_; }
  const std::string& workdir() const { return workdir_; }

  // Starts the app in a new pod and waits (bounded) until it answers. Servers are enrolled: xdp_authz
  // attached to their eth0 and their IP in km_frontend, as Kmesh's CNI does.
  const App& Deploy(const AppSpec& spec);
  const App& app(const std::string& name) const;
  const Pod& pod_of(const App& a) { return topo_->pod(a.pod); }

  // Applies every policy of the manifest, or none: all are parsed and compiled before anything is
  // written. Returns the policies applied.
  std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m);
  void Remove(const std::vector<policy::AuthorizationPolicy>& policies);
  // Which workloads a policy applies to, and how the lab enforces it.
  std::vector<const App*> Selected(const policy::AuthorizationPolicy& p) const;
  Enforcer EnforcerOf(const policy::AuthorizationPolicy& p) const;

  // The node's datapath (created with the node's first enrolled server).
  AuthzDatapath& datapath(const std::string& node);
  bool has_datapath(const std::string& node) const { return datapaths_.count(node) != 0; }

  // IPsec: one agent process per node (ipsec_agent.h), started by the first secret.
  void ApplySecret(const ipsec::IpsecSecret& secret);
  bool ipsec_enabled() const { return !agents_.empty(); }
  // Stops the node's agent (Kmesh's normal stop: flush, withdraw KmeshNodeInfo) and starts a new one.
  void RestartDataplane(const std::string& node);
  const std::string& ipsec_state_dir() const { return ipsec_dir_; }
  // The agent's log of a node (evidence).
  std::string AgentLog(const std::string& node) const;
  // The waypoint's request log of a server (JSON lines; evidence).
  std::string WaypointLog(const std::string& server) const;

  // Faults. IPsec faults act on one node (`node`, default the second: where the servers usually run).
  void Inject(Fault f, const std::string& node = "node2");
  void Clear(Fault f);
  bool Active(Fault f) const { return faults_.count(f) != 0; }

  // The address a client uses for a server: the waypoint's when it has one (unless bypassed).
  std::pair<std::string, uint16_t> ServiceAddress(const App& server) const;

 private:
  Lab() = default;
  void RewriteWaypointPolicies(const App& server);
  void SyncXdpFaults();

  std::unique_ptr<Topology> topo_;
  std::string workdir_;  // private state (policy files, the secret): removed at teardown
  std::string logdir_;   // logs: the test's outputs under Bazel, else workdir
  std::vector<std::unique_ptr<App>> apps_;
  std::map<std::string, std::unique_ptr<AuthzDatapath>> datapaths_;
  struct Applied {
    policy::AuthorizationPolicy policy;
    CompiledPolicy compiled;
    std::string manifest_text;  // the rendered document, for the waypoint's file
  };
  std::vector<Applied> applied_;
  void StartAgent(const std::string& node);
  void WriteAgentFaults();

  std::set<Fault> faults_;
  std::map<Fault, std::string> fault_node_;
  std::string ipsec_dir_;
  std::map<std::string, netns::Process*> agents_;
};

}  // namespace kmesh::lab
