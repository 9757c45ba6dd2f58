// Env: where the suites run. The suites are written once against this interface; the lab (e2e/lab,
// embedded, the default) and a real cluster (e2e/kube) implement it. Every method that waits is bounded
// (base/defaults.h) and every failure says what was expected and what was found.
//
// An Env answers three kinds of questions:
//   - deploy and configure: apps, AuthorizationPolicies, the IPsec secret, dataplane restarts;
//   - traffic: probes from a client app, continuous load;
//   - evidence: what the kernel holds (km_auth_res, XDP attachments, xfrm, captures on the underlay).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "bpf_probe/tuple.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/capture.h"
#include "e2e/framework/drop_proof.h"
#include "e2e/framework/ipsec_layout.h"
#include "e2e/framework/ipsec_marking.h"
#include "e2e/framework/ipsec_secret.h"
#include "e2e/framework/load.h"
#include "e2e/framework/traffic.h"
#include "e2e/framework/xfrm.h"
#include "e2e/policy/policy.h"
#include "e2e/policy/template.h"

namespace kmesh::e2e {

// Which part of Kmesh's datapath decides a policy kind, and so what a denied client sees
// (ARCHITECTURE.md, "Mechanisms the suites must expect").
enum class Mechanism {
  kXdp,        // ipBlocks, ports (and namespaces in the lab): SYN dropped -> connect_timeout, km_auth_res = 1
  kUserspace,  // namespaces on a real Kmesh: handshake ok, verdict written after -> read_timeout
  kWaypoint,   // request.headers, hosts: HTTP 403 from the waypoint, nothing in the XDP maps
};
const char* ToString(Mechanism m);

enum class AppKind { kServer, kClient };  // httpbin / sleep (curl)

struct AppSpec {
  std::string name;
  AppKind kind = AppKind::kServer;
  int node = 0;  // index into Nodes(): server and client on different nodes
  std::string k8s_namespace = "test-ns1";
  std::map<std::string, std::string> labels;  // "app" = name is always added
  bool waypoint = false;                      // a waypoint in front of this service (L7 policies)
};

struct App {
  std::string name;
  AppKind kind = AppKind::kServer;
  std::string node;  // node name
  std::string k8s_namespace;
  std::string ip;            // pod IP
  uint16_t port = 0;         // server: the pod port
  uint16_t alt_port = 0;     // server: a second pod port (for port policies), 0 if none
  uint32_t workload_id = 0;  // FNV-32a of the workload UID (km_frontend / km_wlpolicy key)
  // The pod's service account (principal cluster.local/ns/<ns>/sa/<sa>); no app of the suites has its own.
  std::string service_account = "default";
};

struct Node {
  std::string name;
  std::string address;  // InternalIP (underlay)
  std::vector<std::string> pod_cidrs;
};

// What WaitRealized saw: the policy id in km_authz_policy and in km_wlpolicy of the workload (XDP), or
// the waypoint's acknowledgement.
struct Realized {
  uint32_t policy_id = 0;
  Mechanism mechanism = Mechanism::kXdp;
  std::string evidence;  // "km_authz_policy (map 12) holds 0x9f3c...; km_wlpolicy[0x...] = {...}"
  std::chrono::milliseconds waited{0};
};

// A continuous load running in the background (a LoadGenerator in the lab, fortio in a pod on a
// cluster); Wait() returns every request's record.
class LoadRun {
 public:
  virtual ~LoadRun() = default;
  virtual LoadReport Wait() = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  virtual std::string name() const = 0;  // "lab", "kube"

  virtual std::vector<Node> Nodes() = 0;
  virtual App Deploy(const AppSpec& spec) = 0;

  // Applies a rendered manifest: every policy in it, or none (bad input leaves nothing applied).
  virtual std::vector<policy::AuthorizationPolicy> Apply(const policy::Manifest& m) = 0;
  virtual void Remove(const std::vector<policy::AuthorizationPolicy>& policies) = 0;
  // How this Env enforces the policy (so the suites expect the right outcome per environment).
  virtual Mechanism MechanismOf(const policy::AuthorizationPolicy& p) const = 0;
  // Waits, bounded, until the datapath holds the policy for `server`; throws with what it found.
  virtual Realized WaitRealized(const policy::AuthorizationPolicy& p, const App& server) = 0;

  // Where clients reach a server: the waypoint when the service has one, else the pod.
  virtual std::pair<std::string, uint16_t> ServiceAddress(const App& server) = 0;
  // One request from `client`; spec.dst_* default to ServiceAddress(server) when empty. A new
  // connection with a fresh source port each time (the harness never reuses a tuple).
  virtual ProbeOutcome Probe(const App& client, const App& server, ProbeSpec spec) = 0;
  // A source port no earlier probe of this run used (set it in ProbeSpec to know the tuple up front).
  virtual uint16_t NextSourcePort() = 0;
  virtual std::unique_ptr<LoadRun> StartLoad(const App& client, const App& server, LoadSpec spec) = 0;

  // Evidence.
  virtual std::optional<bpf_probe::Verdict> AuthVerdict(const App& server, const bpf_probe::Tuple& t) = 0;
  virtual bpf_probe::XdpAttachment XdpOf(const App& server) = 0;
  // What Kmesh's userspace authorizer on the server's node decided for this connection (its records of
  // km_auth_req), oldest first: [{allow, reason, policy, tuple, ...}]; an empty array when it saw none,
  // null where the Env cannot see it (a cluster: Kmesh only logs its decisions).
  virtual nlohmann::json UserspaceDecisions(const App& server, const bpf_probe::Tuple& t) = 0;
  // Entry counts of every Kmesh map on the server's node (residue checks: a removal brings them back).
  virtual std::map<std::string, uint64_t> DatapathMapCounts(const App& server) = 0;
  // km_wlpolicy[workload of server]: the policy ids, or nullopt when there is no entry.
  virtual std::optional<std::vector<uint32_t>> WorkloadPolicies(const App& server) = 0;
  // What runs: the Kmesh commit, the object's sha256, the clang version, program ids and tags (the
  // evidence and the report header name the datapath every case ran on).
  virtual nlohmann::json DatapathIdentity() = 0;

  // IPsec.
  virtual void ApplySecret(const ipsec::IpsecSecret& secret) = 0;
  // The SPI a run's first secret must carry. Kmesh ignores EEXIST when it adds an xfrm state
  // (pkg/controller/encryption/ipsec/ipsec_handler.go:286-287), so a secret that reuses an SPI the nodes
  // still hold keeps the old key there: a suite starts above it. 1 where every run starts without IPsec
  // state (the lab); on a cluster, one more than the cluster's current SPI.
  virtual uint32_t FirstSpi() { return 1; }
  virtual std::vector<ipsec::NodeInfo> IpsecNodes() = 0;  // KmeshNodeInfo of every node
  virtual xfrm::XfrmSnapshot Xfrm(const std::string& node) = 0;
  // Deletes one xfrm state on a node by hand (fault recovery).
  virtual void DeleteXfrmState(const std::string& node, const xfrm::XfrmState& s) = 0;
  virtual void RestartDataplane(const std::string& node) = 0;
  // The node crashes and reboots: Kmesh gets no stop, the node's kernel state goes, its boot id changes.
  // Throws where the Env cannot do that to a node.
  virtual void CrashRebootNode(const std::string& node) {
    throw Error(name() + ": cannot crash and reboot node " + node + " (no such operation on this Env)");
  }
  // A capture on the node's interface toward `peer_address` (the routed underlay interface).
  virtual capture::Capture StartCapture(const std::string& node, const std::string& peer_address,
                                        capture::CaptureSpec spec) = 0;
  // A capture on the app's own interface (eth0 in the pod): where traffic is always in clear, so the
  // sanity capture proves the plaintext filter matches the probe.
  virtual capture::Capture StartPodCapture(const App& app, capture::CaptureSpec spec) = 0;
  // Both ends of the server pod's veth, where the harness can prove an XDP drop from the kernel
  // (drop_proof.h); nullopt where it cannot watch them (a cluster's node namespace is not the harness's
  // to enter), and the denial then rests on the client's timeout and the maps.
  virtual std::optional<PodLink> PodLinkOf(const App& server) { return std::nullopt; }
  // Kmesh's IPsec marking on a node: the tc programs its Kmesh loaded (with their Kmesh build), what the
  // kernel holds where Kmesh attaches them, km_nodeinfo. nullopt where the Env cannot read it yet.
  virtual std::optional<ipsec::NodeMarking> IpsecMarking(const std::string& node) { return std::nullopt; }
};

// Picks the Env from the environment: KMESH_E2E_ENV=lab (default) or kube. Defined by the binary's
// env provider (//e2e/lab:env for the lab).
std::unique_ptr<Env> MakeEnv();

}  // namespace kmesh::e2e
