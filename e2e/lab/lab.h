// The embedded lab: a two-node topology (topology.h) with real applications in pods (httpbin under
// gunicorn, curl clients) and, on every node, Kmesh's own authorization datapath built from a Kmesh tree
// (//third_party/kmesh): its sockops program on the node's cgroup, its four XDP programs with every map
// pinned in the node's bpffs like a Kmesh node, xdp_authz on each enrolled pod's eth0, and one
// kmesh-lab-daemon per node (the lab's stand-in for the node's Kmesh daemon: Kmesh's C deserializer
// writes the policies, a port of pkg/auth/rbac.go decides what XDP defers). Also an IPsec agent per node,
// a waypoint stand-in for L7 policies, and fault injection. This is the world the lab Env drives; people
// reach it through `kmesh-lab up`.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "e2e/framework/app.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/kmesh_policy_writer.h"
#include "e2e/lab/kmesh_sockops.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/lab/node_cgroup.h"
#include "e2e/lab/topology.h"
#include "e2e/lab/workload_authz.h"
#include "e2e/policy/policy.h"
#include "e2e/policy/support.h"
#include "e2e/policy/template.h"
#include "ipsec/ipsec_secret.h"
#include "net/tuple.h"

namespace kmesh::lab {

// What the lab can break on purpose, so the suites can be shown to catch it.
enum class Fault {
  kXdpDetached,           // Kmesh's xdp_authz detached from the server pods' interfaces
  kXfrmStateMissing,      // one node's ingress xfrm state is deleted (and not re-created)
  kWrongKey,              // one node derives its egress key from a wrong secret
  kEgressNotMarked,       // pod egress is not marked 0xe0: traffic leaves in plaintext
  kRotationNotApplied,    // one node ignores a new secret
  kNodeinfoEntryMissing,  // one node's km_nodeinfo lacks its peers' pod CIDRs (its pods' egress unmarked)
  kWaypointBypassed,      // traffic to a service with a waypoint goes straight to the pod
  // Kmesh's running datapath broken on every node (e2e/mutation). Map faults hold for the servers'
  // entries (httpbin apps) and are re-applied after every write of Kmesh's daemons.
  kTailCallPoliciesCheckEmptied,  // km_xdp_tailcall[0] (policies_check) deleted
  kTailCallPolicyCheckEmptied,    // km_xdp_tailcall[1] (policy_check) deleted
  kAuthzOffloadOff,               // authz_offload = 0 (`kmeshctl authz disable`)
  kFrontendMissing,               // the servers' km_frontend entries deleted
  kFrontendWrong,                 // the servers' km_frontend entries name another workload
  kWlPolicyMissing,               // the servers' km_wlpolicy entries deleted
  kWlPolicyHole,                  // the servers' km_wlpolicy entries start with an empty slot
  kAuthzPolicyMissing,            // every km_authz_policy entry deleted
  kAuthzPolicyActionFlipped,      // every km_authz_policy entry's action flipped (ALLOW <-> DENY)
  kManageMissing,                 // the servers' km_manage entries deleted: sockops skips them
};
const char* FaultName(Fault f);
Fault ParseFault(const std::string& name);  // throws, listing the names
const std::vector<Fault>& AllFaults();

// One lab node's Kmesh, in the order a Kmesh daemon sets it up (and the reverse order it goes away).
struct KmeshNode {
  NodeBpffs bpffs;                            // the node's /sys/fs/bpf
  NodeCgroup cgroup;                          // holds the node's servers (Kmesh's sockops sees them)
  KmeshSockops sockops;                       // loaded first: its pins are shared with the XDP object
  std::unique_ptr<KmeshAuthzDatapath> xdp;    // the four XDP programs
  std::unique_ptr<KmeshPolicyWriter> daemon;  // kmesh-lab-daemon: deserializer + Rbac + km_auth_req
  std::string pin_dir() const { return bpffs.KmeshMapDir(); }
};

class Lab {
 public:
  static constexpr uint16_t kHttpbinPort = 8000;
  static constexpr uint16_t kHttpbinAltPort = 9090;  // a second port, for port policies
  static constexpr uint16_t kWaypointPort = 80;

  static std::unique_ptr<Lab> Up();
  // Removes what runs that are gone (killed, crashed) left: their namespaces, node bpffs mounts, node
  // cgroups with the processes still inside, and lab work folders (which hold the IPsec secret). Never
  // touches a live run's. Up() calls it first; returns one line per thing removed ("netns NAME", ...).
  static std::vector<std::string> SweepStale();
  ~Lab();

  Topology& topology() { return *topo_; }
  const std::string& workdir() const { return workdir_; }

  // Starts the app in a new pod (named as the app) on node number spec.node and waits (bounded) until it
  // answers. Every app is a workload Kmesh's daemons know (km_frontend, the authorizer's workload cache);
  // servers are enrolled as kmesh-cni does: xdp_authz on their eth0, km_manage written by Kmesh's own
  // enrolment trigger.
  const e2e::App& Deploy(const e2e::AppSpec& spec);
  const e2e::App& app(const std::string& name) const;
  const Pod& pod_of(const e2e::App& a) { return topo_->pod(a.name); }

  // Applies every policy of the manifest, or none: all are parsed and translated (what istiod sends)
  // before anything is written. Each node's daemon gets every policy (istiod sends every node all of
  // them) and every workload's sorted policy list. Returns the policies applied.
  std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m);
  void Remove(const std::vector<policy::AuthorizationPolicy>& policies);
  // Which workloads a policy applies to, and how the lab enforces it.
  std::vector<const e2e::App*> Selected(const policy::AuthorizationPolicy& p) const;
  policy::Mechanism MechanismOf(const policy::AuthorizationPolicy& p) const;

  // The node's Kmesh (loaded when the lab comes up).
  KmeshNode& kmesh(const std::string& node);
  // Kmesh's id for "ns/name" on `node` (hash_name.go, linear probing); nullopt when never applied there.
  std::optional<uint32_t> PolicyId(const std::string& node, const std::string& id_key);
  // What the node's Kmesh was built from and loaded as (report header, evidence).
  nlohmann::json DatapathIdentity();

  // IPsec: one agent process per node (ipsec_agent.h), started by the first secret.
  void ApplySecret(const ipsec::IpsecSecret& secret);
  // The family of the node addresses and pod CIDRs each node's KmeshNodeInfo carries, i.e. what Kmesh's
  // tunnels run over: IPv4 (the default, like an IPv4 kind cluster) or IPv6 (like Kmesh's IPv6 e2e
  // cluster, where a node's InternalIP and podCIDRs are IPv6). Set before the first secret; throws after.
  void SetIpsecFamily(net::Family family);
  net::Family ipsec_family() const { return ipsec_family_; }
  // A node's underlay address and pod CIDR in `family` (throws for IPv6 on an IPv4-only node).
  static const std::string& UnderlayIp(const NodeSpec& n, net::Family family);
  static const std::string& PodCidr(const NodeSpec& n, net::Family family);
  bool ipsec_enabled() const { return !agents_.empty(); }
  // Restarts the node's agent as a Kmesh pod restart does (exit type Restart: BPF stays pinned; the IPsec
  // controller's Stop cleans xfrm and withdraws the KmeshNodeInfo only if that daemon had started Normal).
  void RestartDataplane(const std::string& node);
  // A node that crashes and reboots: its agent is killed (no Stop: its KmeshNodeInfo stays), its kernel's
  // IPsec state goes as a reboot takes it (every xfrm policy and state, the km_nodeinfo pin, so the new
  // daemon starts Normal), the node gets a new boot id, and a new agent starts. The node's pods and the lab's
  // authz datapath stay (the lab does not reboot them).
  void CrashRebootNode(const std::string& node);
  const std::string& ipsec_state_dir() const { return ipsec_dir_; }
  // The agent's log of a node (evidence).
  std::string AgentLog(const std::string& node) const;
  // The waypoint's request log of a server (JSON lines; evidence): one waypoint process per family.
  std::string WaypointLog(const std::string& server,
                          net::Family family = net::Family::kIPv4) const;

  // Faults. IPsec faults act on one node (`node`, default the second: where the servers usually run);
  // datapath faults on every node. KMESH_E2E_LAB_XDP_OBJECT and KMESH_E2E_LAB_SOCKOPS_OBJECT (runfiles,
  // e.g. a source mutant's "e2e/mutation/xdp_<name>.o") replace Kmesh's objects when the lab comes up.
  void Inject(Fault f, const std::string& node = "node2");
  // `kmeshctl authz enable|disable`: authz_offload on every node (the kAuthzOffloadOff fault, while active,
  // keeps it off).
  void SetAuthzOffload(bool on);
  void Clear(Fault f);
  bool Active(Fault f) const { return faults_.count(f) != 0; }

  // The address a client uses for a server, in the family of server.ip (e2e::OverFamily): the waypoint's
  // when it has one (unless bypassed).
  net::Endpoint ServiceAddress(const e2e::App& server) const;

 private:
  Lab() = default;
  void RewriteWaypointPolicies(const e2e::App& server);
  void LoadKmesh();
  void StoreWorkloads();  // every app, with its current policy list, to every node's daemon
  WorkloadSpec WorkloadOf(const e2e::App& app) const;

  std::unique_ptr<Topology> topo_;
  std::string workdir_;  // private state (policy files, the secret): removed at teardown
  std::string logdir_;   // logs: the test's outputs under Bazel, else workdir
  std::vector<std::unique_ptr<e2e::App>> apps_;
  std::map<std::string, std::string> waypoint_pod_;  // app name -> its waypoint's pod
  std::map<std::string, std::unique_ptr<KmeshNode>> kmesh_;
  struct Applied {
    policy::AuthorizationPolicy policy;
    policy::Mechanism mechanism = policy::Mechanism::kXdp;
    std::optional<workloadapi::Authorization> authorization;  // what istiod sends (not for targetRefs)
    std::string manifest_text;  // the rendered document, for the waypoint's file
  };
  std::vector<Applied> applied_;
  void StartAgent(const std::string& node);
  void WriteAgentFaults();
  void WriteManagedPods();  // <ipsec state>/pods/<node>: what each node's agent attaches tc_mark_encrypt to
  void ApplyDatapathFaults();  // the active map/program faults, again (after every daemon write)

  std::set<Fault> faults_;
  std::map<Fault, std::string> fault_node_;
  std::string ipsec_dir_;
  net::Family ipsec_family_ = net::Family::kIPv4;
  std::map<std::string, netns::Process*> agents_;
};

}  // namespace kmesh::lab
