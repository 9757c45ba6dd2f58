// tc BPF filters of an interface inside a network namespace, read and written over NETLINK_ROUTE the way
// Kmesh's pkg/utils/tc.go does it (vishvananda/netlink): the clsact qdisc replaced, then one `bpf` filter
// on the ingress hook with priority 1, handle 1, protocol all, direct-action, named "tc_ingress-<ifname>"
// (tc.go:32-85). Kmesh attaches its IPsec marking programs this way: tc_mark_encrypt on the host side of
// every managed pod's veth, tc_mark_decrypt on the node interfaces that carry its InternalIPs
// (kmesh-facts.md §3.6). `tc filter show dev X ingress` prints the same filters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/prog.h"
#include "netns/netns.h"

namespace kmesh::bpf_probe {

enum class TcHook { kIngress, kEgress };
const char* ToString(TcHook hook);  // "ingress" / "egress"

// One bpf filter on a clsact hook, as the kernel reports it.
struct TcFilter {
  std::string ifname;
  int ifindex = 0;
  TcHook hook = TcHook::kIngress;
  uint32_t priority = 0;  // `pref`
  uint32_t handle = 0;
  uint16_t protocol = 0;  // ETH_P_*, host order (ETH_P_ALL = 3)
  std::string name;       // TCA_BPF_NAME: Kmesh's "tc_ingress-<ifname>"
  bool direct_action = false;
  ProgramInfo prog;  // the attached program (id, kernel name, tag)

  // "pref 1 handle 0x1 protocol all tc_ingress-lxc1 direct-action id 51 name tc_mark_encrypt tag 1a2b..."
  std::string ToString() const;
};

// Every bpf filter on `hook` of `ifname` in `ns` (empty when there is no clsact qdisc or no filter).
// Throws kmesh::Error when the interface does not exist (naming the namespace).
std::vector<TcFilter> QueryTcFilters(const netns::NetnsRef& ns, const std::string& ifname,
                                     TcHook hook = TcHook::kIngress);

// What Kmesh's ManageTCProgramByFd(link, fd, TC_ATTACH) does on `ifname` in `ns`: QdiscReplace of a
// clsact qdisc, then FilterReplace of the bpf filter (priority 1, handle 1, protocol all, direct-action,
// "tc_ingress-<ifname>") on the ingress hook. Replaces a filter already at that priority and handle,
// as Kmesh's does. Throws kmesh::Error with the kernel's answer.
void KmeshTcAttach(const netns::NetnsRef& ns, const std::string& ifname, int prog_fd);
// ManageTCProgramByFd(link, fd, TC_DETACH): FilterDel of that filter (the qdisc stays, as in Kmesh).
// Throws kmesh::Error with the kernel's answer (ENOENT when nothing is there).
void KmeshTcDetach(const netns::NetnsRef& ns, const std::string& ifname);

// The filter Kmesh would have put on `ifname` (priority 1, handle 1 on ingress), if any.
std::optional<TcFilter> KmeshTcFilter(const netns::NetnsRef& ns, const std::string& ifname);

}  // namespace kmesh::bpf_probe
