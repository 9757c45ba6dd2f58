// Env: where the suites run. The suites are written once against this interface; the lab (e2e/lab,
// embedded, the default) and a real cluster (e2e/kube) implement it. Every method that waits is bounded
// (base/defaults.h) and every failure says what was expected and what was found.
//
// An Env answers three kinds of questions:
//   - deploy and configure: apps, AuthorizationPolicies, the IPsec secret, dataplane restarts;
//   - traffic: probes from a client app, continuous load;
//   - evidence: what the kernel holds (km_auth_res, XDP attachments, xfrm, captures on the underlay),
//     through each node's NodeEvidence (node/node_evidence.h), the same for the lab and a cluster.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "bpf_probe/verdict.h"
#include "bpf_probe/xdp.h"
#include "capture/capture.h"
#include "e2e/framework/app.h"
#include "e2e/framework/drop_proof.h"
#include "e2e/policy/policy.h"
#include "e2e/policy/support.h"
#include "e2e/policy/template.h"
#include "ipsec/ipsec_layout.h"
#include "ipsec/ipsec_marking.h"
#include "ipsec/ipsec_secret.h"
#include "net/tuple.h"
#include "node/node_evidence.h"
#include "traffic/load.h"
#include "traffic/traffic.h"
#include "xfrm/xfrm.h"

namespace kmesh::e2e {

// Which part of Kmesh's datapath decides a policy kind (e2e/policy/support.h).
using policy::Mechanism;

struct Node {
  std::string name;
  net::IpAddr address;  // InternalIP (underlay)
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

// The suites' one interface to where they run. What is the same on every Env is written here once (the
// non-virtual methods, env.cc): the policy-realized barrier over the node's maps, verdict lookups, captures,
// source ports and address defaults all go through the node's evidence (node/node_evidence.h), which the
// Env hands per node. What differs between the lab and a cluster is virtual.
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
  // Waits, bounded, until the datapath holds the policy for `server` (its id in km_authz_policy and in
  // km_wlpolicy of the server's workload, on the server's node), or the waypoint enforces it; throws with
  // what it found.
  Realized WaitRealized(const policy::AuthorizationPolicy& p, const App& server);

  // Where clients reach a server: the waypoint when the service has one, else the pod.
  virtual net::Endpoint ServiceAddress(const App& server) = 0;
  // One request from `client`; spec.dst defaults to ServiceAddress(server) when unspecified, spec.src_port to
  // NextSourcePort(). A new connection with a fresh source port each time (the harness never reuses a
  // tuple).
  ProbeOutcome Probe(const App& client, const App& server, ProbeSpec spec);
  // A source port no earlier probe of this run used (set it in ProbeSpec to know the tuple up front): never
  // reused within a run, so no cached verdict of an earlier probe can decide a later one (km_auth_res
  // entries of dropped SYNs are never deleted). 42000..61999, from a per-process offset so concurrent runs
  // differ too.
  uint16_t NextSourcePort();
  // spec.probe.dst defaults to ServiceAddress(server).
  std::unique_ptr<LoadRun> StartLoad(const App& client, const App& server, LoadSpec spec);

  // Evidence: what a node's kernel holds, read the same way on every Env.
  virtual node::NodeEvidence& Evidence(const std::string& node) = 0;
  std::optional<bpf_probe::Verdict> AuthVerdict(const App& server, const net::Tuple& t);
  bpf_probe::XdpAttachment XdpOf(const App& server);
  // What Kmesh's userspace authorizer on the server's node decided for this connection (its records of
  // km_auth_req), oldest first: [{allow, reason, policy, tuple, ...}]; an empty array when it saw none,
  // null where the Env cannot see it (a cluster: Kmesh only logs its decisions).
  virtual nlohmann::json UserspaceDecisions(const App& server, const net::Tuple& t) = 0;
  // Entry counts of Kmesh's maps on the server's node (residue checks: a removal brings them back).
  std::map<std::string, uint64_t> DatapathMapCounts(const App& server);
  // km_wlpolicy[workload of server]: the policy ids, or nullopt when there is no entry.
  std::optional<std::vector<uint32_t>> WorkloadPolicies(const App& server);
  // What runs: the Kmesh commit, the object's sha256, the clang version, program ids and tags (the
  // evidence and the report header name the datapath every case ran on).
  virtual nlohmann::json DatapathIdentity() = 0;

  // IPsec.
  virtual void ApplySecret(const ipsec::IpsecSecret& secret) = 0;
  // The address family of the nodes' KmeshNodeInfo (what Kmesh's tunnels run over) and of Nodes()'
  // addresses; before the first secret. Where the Env cannot choose (a cluster is what it is), it checks
  // that its nodes' addresses are of that family and throws otherwise.
  virtual void UseIpsecFamily(net::Family family);
  // The SPI a run's first secret must carry. Kmesh ignores EEXIST when it adds an xfrm state
  // (pkg/controller/encryption/ipsec/ipsec_handler.go:286-287), so a secret that reuses an SPI the nodes
  // still hold keeps the old key there: a suite starts above it. 1 where every run starts without IPsec
  // state (the lab); on a cluster, one more than the cluster's current SPI.
  virtual uint32_t FirstSpi() { return 1; }
  virtual std::vector<ipsec::NodeInfo> IpsecNodes() = 0;  // KmeshNodeInfo of every node
  xfrm::XfrmSnapshot Xfrm(const std::string& node);
  // Deletes one xfrm state on a node by hand (fault recovery).
  void DeleteXfrmState(const std::string& node, const xfrm::XfrmState& s);
  virtual void RestartDataplane(const std::string& node) = 0;
  // The node crashes and reboots: Kmesh gets no stop, the node's kernel state goes, its boot id changes.
  // Throws where the Env cannot do that to a node.
  virtual void CrashRebootNode(const std::string& node) {
    throw Error(name() + ": cannot crash and reboot node " + node + " (no such operation on this Env)");
  }
  // A capture on the node's interface toward `peer_address` (the routed underlay interface), wherever the
  // node is (in this process, or kmesh-probe in the node's Kmesh pod).
  std::unique_ptr<node::CaptureRun> StartCapture(const std::string& node, const net::IpAddr& peer_address,
                                                 capture::CaptureSpec spec);
  // A capture on the app's own interface (eth0 in the pod): where traffic is always in clear, so the
  // sanity capture proves the plaintext filter matches the probe.
  std::unique_ptr<node::CaptureRun> StartPodCapture(const App& app, capture::CaptureSpec spec);
  // Both ends of the server pod's veth, where the harness can prove an XDP drop from the kernel
  // (drop_proof.h); nullopt where it cannot watch them (a cluster's node namespace is not the harness's
  // to enter), and the denial then rests on the client's timeout and the maps.
  virtual std::optional<PodLink> PodLinkOf(const App& server) { return std::nullopt; }
  // Kmesh's IPsec marking on a node: the tc programs its Kmesh loaded (with their Kmesh build), what the
  // kernel holds where Kmesh attaches them, km_nodeinfo. nullopt where the Env cannot read it yet.
  virtual std::optional<ipsec::NodeMarking> IpsecMarking(const std::string& node) { return std::nullopt; }
  // `kmeshctl authz enable|disable` on every node: Kmesh's authz_offload (pkg/bpf/bpf.go:313, xdp.c:83-86).
  // false when this Env cannot switch it (the case then says so instead of judging).
  virtual bool SetAuthzOffload(bool on) { return false; }

 protected:
  // One request with every field of `spec` set (Probe filled the defaults).
  virtual ProbeOutcome ProbeFrom(const App& client, const ProbeSpec& spec) = 0;
  // A load with spec.probe's destination set (StartLoad filled it).
  virtual std::unique_ptr<LoadRun> LoadFrom(const App& client, const App& server, const LoadSpec& spec) = 0;

  // The policy-realized barrier, per Env. The ids that realize `p` on the server's node: the first is
  // Kmesh's id for it (km_wlpolicy lists that one); the others are keys Kmesh may really store it under in
  // km_authz_policy (the lab names the deserializer's cut key, D8).
  virtual std::vector<uint32_t> PolicyKeys(const policy::AuthorizationPolicy& p, const App& server) = 0;
  // How long the maps may take to hold a policy after Apply returned, and how often to look meanwhile.
  struct RealizeTiming {
    std::chrono::milliseconds bound{0};
    std::chrono::milliseconds poll{0};
    std::string bound_name;  // "KMESH_E2E_POLICY_REALIZED_MS", or why there is no wait
  };
  virtual RealizeTiming MapsTiming() const = 0;
  // What server.workload_id is, for the message when km_frontend says otherwise.
  virtual std::string WorkloadIdSource(const App& server) { return "the app's workload id"; }
  // A dry run reads nothing: the barrier records what it would check and does not wait.
  virtual bool DryRun() const { return false; }
  // The waypoint's barrier (its own way of saying which policies it enforces).
  virtual Realized WaitInWaypoint(const policy::AuthorizationPolicy& p, const App& server) = 0;

 private:
  Realized WaitInMaps(const policy::AuthorizationPolicy& p, const App& server);

  std::atomic<uint32_t> next_port_{static_cast<uint32_t>(getpid() % 1000) * 20};
};

// Picks the Env from the environment: KMESH_E2E_ENV=lab (default) or kube. Defined by the binary's
// env provider (//e2e/lab:env for the lab).
std::unique_ptr<Env> MakeEnv();
// The address families the Env's pods have, known before any Env exists (the suites register their
// cases per family before main): KMESH_E2E_FAMILIES ("ipv4", "ipv6" or "ipv4,ipv6") when set; else the lab
// is dual stack, and a cluster is what its nodes' podCIDRs are (e.g. a dual-stack or IPv6 kind cluster).
// Defined by the binary's env provider.
std::vector<net::Family> EnvFamilies();
// Parses KMESH_E2E_FAMILIES's form; throws naming the bad entry.
std::vector<net::Family> ParseFamilies(const std::string& text);

}  // namespace kmesh::e2e
