// kmesh-lab-agent: the IPsec half of a lab node's Kmesh daemon (started with --enable-ipsec), one process
// per node, in the node's namespace. It follows Kmesh's Go code at the pinned commit point by point; the
// table in docs/kmesh-ipsec-controller.md gives the Kmesh file:line of every behaviour:
//
//  - At start, as the daemon's BPF loader does, it loads Kmesh's own tc_mark_encrypt and tc_mark_decrypt
//    (built from the Kmesh tree) with km_nodeinfo pinned in the node's bpf_kmesh_workload/map.
//  - The IPsec controller (pkg/controller/encryption/ipsec/ipsec_controller.go): reads the secret file if
//    it exists; attaches tc_mark_decrypt to the node's interfaces that carry its addresses; programs xfrm
//    for every peer KmeshNodeInfo it lists; creates or updates its own KmeshNodeInfo; then acts only on
//    events: a change of the secret file (100 ms debounce) and KmeshNodeInfo add/update/delete (a work
//    queue with Kmesh's retry rule). There is no periodic resync: xfrm changed behind its back stays so.
//  - The handler (ipsec_handler.go): xfrm over netlink exactly as Kmesh asks for it (a state that exists
//    is left alone, a policy that exists is updated, old SPIs' states are never removed), keys derived as
//    generateIPSecKey derives them.
//  - The manage controller's part (manage_controller.go linkTc): tc_mark_encrypt on the host side of
//    every managed pod's veth, at start and when a pod is added.
//  - A normal stop: its KmeshNodeInfo deleted, tc_mark_decrypt detached, every xfrm policy and ESP state
//    flushed, the tc objects closed and km_nodeinfo unpinned. tc_mark_encrypt stays on the pods' veths.
//
// The lab's stand-ins for Kubernetes objects live in a state folder shared by the agents of a lab:
// secret.json (the kmesh-ipsec Secret as mounted), kni/<node>.json (KmeshNodeInfo objects, written
// atomically: an informer sees whole objects), pods/<node> (the node's managed pods: "<pod> <host veth>"
// per line), faults/<node> (lab faults, one name per line). The agent writes datapath/<node>.json: what it
// loaded (Kmesh commit, object sha256, program ids) and where it attached it.
#pragma once

#include <string>

namespace kmesh::lab {

struct AgentConfig {
  std::string node;       // node name (the KmeshNodeInfo's name)
  std::string address;    // the node's InternalIP (underlay)
  std::string pod_cidr;   // the node's pod CIDR
  std::string boot_id;    // node.status.nodeInfo.bootID
  std::string state_dir;  // shared by the agents of the lab
  std::string pin_dir;    // the node's <bpffs>/bpf_kmesh_workload/map
};

// Paths inside the state dir.
std::string SecretPath(const std::string& state_dir);
std::string KniPath(const std::string& state_dir, const std::string& node);
std::string FaultsPath(const std::string& state_dir, const std::string& node);
std::string PodsPath(const std::string& state_dir, const std::string& node);
std::string DatapathRecordPath(const std::string& state_dir, const std::string& node);

// Runs until SIGTERM/SIGINT, then stops as Kmesh's normal stop does; returns the process exit code.
int RunAgent(const AgentConfig& cfg);

}  // namespace kmesh::lab
