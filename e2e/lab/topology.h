// The lab's two-node topology, made of network namespaces on one machine:
//
//   pod ns (eth0 10.244.1.x/32) ──veth── node1 ns (eth0 172.18.0.2/16) ══underlay veth══ node2 ns
//   (172.18.0.3/16) ──veth── pod ns (10.244.2.x)
//
// Dual stack, like a dual-stack kind cluster (kind's defaults: pods in fd00:10:244::/56, one /64 per
// node; nodes on the "kind" docker network fc00:f853:ccd:e793::/64): every node and pod has an IPv6
// address beside its IPv4 one (pod fd00:10:244:1::x/128, node fc00:f853:ccd:e793::2/64), with the same
// routes for both families. IPv6 addresses skip duplicate address detection (nodad, and accept_dad=0 in
// each lab namespace) so they are usable at once, never tentative.
//
// Nodes forward between their pods and the other node's pod CIDR; pods reach the pod network through
// their node (Calico-style gateways 169.254.1.1 and fe80::1, owned by the node side of each pod veth). Pods
// have a default route to their node, as in Kubernetes; nodes have none, and no namespace has a link to the
// machine's own namespace, so nothing leaves the lab, and the machine's own network state is never touched.
// Every namespace is RAII-owned and named uniquely per run (kme2e-<pid>-...).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "netns/netns.h"
#include "netns/process.h"

namespace kmesh::lab {

struct NodeSpec {
  std::string name;          // "node1": the lab's name, like a kind node's
  std::string underlay_ip;   // 172.18.0.2
  std::string pod_cidr;      // 10.244.1.0/24
  std::string underlay_ip6;  // fc00:f853:ccd:e793::2 ("" = IPv4 only)
  std::string pod_cidr6;     // fd00:10:244:1::/64 ("" = IPv4 only)
};

// kind's dual-stack defaults: two nodes on 172.18.0.0/16 and fc00:f853:ccd:e793::/64, pod CIDRs
// 10.244.1.0/24 + fd00:10:244:1::/64 and 10.244.2.0/24 + fd00:10:244:2::/64.
std::vector<NodeSpec> DefaultNodes();

struct Node {
  NodeSpec spec;
  netns::Netns ns;
  std::string boot_id;  // a fresh UUID per lab node, as Kubernetes reports node.status.nodeInfo.bootID
  int next_host = 2;    // next pod address in the pod CIDR
};

struct Pod {
  std::string name;           // unique within the lab
  std::string k8s_namespace;  // "test-ns1": a pod attribute, as in Kubernetes
  std::map<std::string, std::string> labels;
  std::string node;       // node name
  std::string ip;         // 10.244.1.2
  std::string ip6;        // fd00:10:244:1::2 ("" on an IPv4-only node)
  std::string host_veth;  // node-side interface name
  std::string uid;        // "Kubernetes//Pod/<k8s ns>/<name>", the workload UID istiod gives a pod
  netns::Netns ns;
};

class Topology {
 public:
  // Creates the nodes and the underlay. Removes stale lab namespaces of dead runs first.
  static std::unique_ptr<Topology> Up(const std::vector<NodeSpec>& nodes = DefaultNodes());
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // A pod on `node`, addressed from the node's pod CIDR, reachable from every other pod.
  Pod& AddPod(const std::string& node, const std::string& name, const std::string& k8s_namespace,
              const std::map<std::string, std::string>& labels = {});
  void RemovePod(const std::string& name);

  Node& node(const std::string& name);
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  Pod& pod(const std::string& name);
  const std::vector<std::unique_ptr<Pod>>& pods() const { return pods_; }
  // The node whose underlay address is `ip` (for the IPsec layout: peers by address).
  Node& node_by_underlay(const std::string& ip);

  // Starts a process inside a pod or node namespace; the topology stops it on teardown. `opts` may add
  // a cgroup to join (the node's, for servers Kmesh's sockops must see); netns and output are set here.
  netns::Process& Spawn(const netns::NetnsRef& ns, const std::vector<std::string>& argv,
                        const std::string& log_file, netns::ProcessOptions opts = {});

 private:
  Topology() = default;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Pod>> pods_;
  std::vector<std::unique_ptr<netns::Process>> processes_;
};

// Runs iproute2 inside `ns` with every line of `lines` as one command of a batch (`ip -batch`):
// one process for a whole step of the topology. Throws with the failing line on error.
void IpBatch(const netns::NetnsRef& ns, const std::vector<std::string>& lines);

// Writes a sysctl of the namespace (net.* sysctls are per namespace).
void SetSysctl(const netns::NetnsRef& ns, const std::string& dotted_name, const std::string& value);

}  // namespace kmesh::lab
