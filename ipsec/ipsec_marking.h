// Kmesh's IPsec marking on one node, as evidence: which tc programs the node's Kmesh loaded (from which
// Kmesh tree and commit), what the kernel holds where Kmesh attaches them, and what km_nodeinfo holds.
// Kmesh attaches (kmesh-facts.md §3.6, pkg/utils/tc.go): tc_mark_encrypt on ingress of every managed pod's
// host-side veth, tc_mark_decrypt on ingress of every node interface carrying a KmeshNodeInfo address,
// both with clsact, priority 1, handle 1, direct-action, named "tc_ingress-<ifname>"; km_nodeinfo holds the
// pod CIDRs of every *other* node (ipsec_controller.go:320-341).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/tc.h"

namespace kmesh::ipsec {

// A program the node's Kmesh says it loaded, with the build it came from.
struct LoadedProgram {
  std::string name;  // "tc_mark_encrypt"
  uint32_t id = 0;
  std::string tag;
  std::string kmesh_commit;  // git commit of the tree, or "snapshot"
  std::string pinned_commit;
  std::string object_sha256;
  std::string clang;
};

// One place Kmesh attaches a marking program, and what the kernel holds there (pref 1, handle 1, ingress).
struct MarkingAttachment {
  std::string ifname;
  std::string role;  // "host veth of pod sleep", "node interface carrying 172.18.0.2"
  std::string want;  // "tc_mark_encrypt" / "tc_mark_decrypt"
  std::optional<bpf_probe::TcFilter> filter;
};

struct NodeMarking {
  std::string node;
  std::vector<LoadedProgram> loaded;
  std::vector<MarkingAttachment> attachments;
  std::string nodeinfo_pin;                 // where km_nodeinfo is pinned
  std::vector<std::string> nodeinfo_cidrs;  // its entries, as CIDRs

  const LoadedProgram* Loaded(const std::string& name) const;
  nlohmann::json ToJson() const;
  // "node1: tc_mark_encrypt id 51 (Kmesh ec501a98 ...) on lxc1 [pod sleep]; tc_mark_decrypt id 52 on eth0;
  // km_nodeinfo {10.244.2.0/24}"
  std::string Describe() const;
};

// Every way the node's marking differs from Kmesh's: a program not loaded from Kmesh's build, an
// attachment missing or holding another program, not direct-action, not named as Kmesh names it, and
// km_nodeinfo not exactly `expected_nodeinfo` (the peers' pod CIDRs). Empty when all is as Kmesh does it.
struct MarkingProblem {
  std::string code;  // disagreement.h: tc_not_attached, tc_filter_wrong, nodeinfo_entry_missing, ...
  std::string text;
};
std::vector<MarkingProblem> JudgeMarking(const NodeMarking& m,
                                         const std::vector<std::string>& expected_nodeinfo);
// What a tc marking program the kernel holds does to one packet: Kmesh's tc_mark_encrypt (by its program
// id) run with BPF_PROG_TEST_RUN on an Ethernet + IPv4 + TCP SYN from `src_ip` to `dst_ip`, and the skb mark
// it leaves (Kmesh sets 0xe0 when km_nodeinfo holds the destination, bpf/kmesh/general/tc_mark_encrypt.c:
// 21-25). `error` names what kept it from running (no such program, not IPv4, the kernel refused).
struct MarkRun {
  uint32_t prog_id = 0;
  std::string src_ip, dst_ip;
  bool ran = false;
  uint32_t mark = 0;
  uint32_t verdict = 0;  // the program's return (TC_ACT_OK = 0)
  std::string error;
  nlohmann::json ToJson() const;
  std::string Describe() const;  // "tc_mark_encrypt id 25 on 10.244.1.2 -> 10.244.2.2: mark 0xe0"
};
MarkRun RunMarkProgram(uint32_t prog_id, const std::string& src_ip, const std::string& dst_ip);

}  // namespace kmesh::ipsec
