// The lab's IPsec agent for one node: what Kmesh's IPsec controller does, in the node's namespace.
//
//  - Reads the secret in kmeshctl's JSON form from <state>/secret.json (the Kubernetes Secret
//    kmesh-ipsec, data key ipSec) and keeps every key it has seen by SPI, as Kmesh keeps
//    historyIpSecKey.
//  - Publishes its KmeshNodeInfo (spi, addresses, bootID, podCIDRS) as <state>/kni/<node>.json and reads
//    its peers' the same way (the lab's stand-in for the CRD).
//  - Programs xfrm exactly in Kmesh's layout (kmesh-facts.md §3.4): for each peer an ingress state with
//    the local SPI and output-mark 0xd0, in and fwd policies (mark 0xd0) and, once the peer's SPI is not
//    newer than ours, the egress state with the peer's SPI and the out policy (mark 0xe0). Keys are
//    derived per direction as §3.3. Old states are kept on rotation, as Kmesh keeps them.
//  - Marks pod egress for encryption with a tc program (tc_mark_encrypt, km_nodeinfo = the peers' pod
//    CIDRs) on the node side of every pod veth.
//  - On a normal stop, flushes the node's xfrm and withdraws its KmeshNodeInfo, as Kmesh's Stop does;
//    a peer whose KmeshNodeInfo disappears gets its states and policies cleaned.
//  - Faults (lab.h) are read from <state>/faults/<node>, one name per line.
//
// It runs as its own process (kmesh-lab-agent) inside the node namespace, so "restart the node's
// dataplane" is a real stop and start.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace kmesh::lab {

struct AgentConfig {
  std::string node;        // node name
  std::string address;     // the node's InternalIP (underlay)
  std::string pod_cidr;    // the node's pod CIDR
  std::string boot_id;
  std::string state_dir;   // shared by the agents of the lab
};

// Paths inside the state dir.
std::string SecretPath(const std::string& state_dir);
std::string KniPath(const std::string& state_dir, const std::string& node);
std::string FaultsPath(const std::string& state_dir, const std::string& node);

// Runs until SIGTERM/SIGINT; returns the process exit code.
int RunAgent(const AgentConfig& cfg);

}  // namespace kmesh::lab
