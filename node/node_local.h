// Node evidence read locally, in the kernel the caller runs on: by the kind transport (the harness on the
// machine that hosts the kind node containers) and by kmesh-probe (inside a Kmesh daemon pod, with the
// host's /proc at /host/proc). Maps are global to the kernel, so they are found by their pins (the node's
// bpffs), by program id, or through the XDP program in a pod's namespace; namespaces are named by path, or
// found by address through a /proc tree, which must then hold the address exactly once.
// No kubectl and no Catch2 here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"
#include "net/tuple.h"
#include "bpf_probe/xdp.h"
#include "xfrm/xfrm.h"
#include "netns/netns.h"
#include "node/probe_json.h"

namespace kmesh::node {

// Where Kmesh's maps are: a pin folder (Kmesh pins every workload map there), a program's maps (with its
// tail calls), or the maps of the XDP program attached in a pod's namespace, named by its path or found
// by the pod's address. Only the address form searches the machine: it refuses when more than one
// namespace holds the address (RequireNetnsOwning), so it never reads another lab's or test's maps.
struct MapSource {
  enum class Kind { kPinDir, kProgram, kXdpOfPod, kXdpInNetns };
  Kind kind = Kind::kPinDir;
  std::string pin_dir = KM_PIN_DIR;
  uint32_t prog_id = 0;
  std::string pod_ip;  // kXdpOfPod
  std::string netns;   // kXdpInNetns: "/run/netns/NAME", "/proc/PID/ns/net", ...
  // kXdpOfPod / kXdpInNetns: the interface ("@IFNAME"); "" = the one holding the address (kXdpOfPod),
  // the interfaces carrying an XDP program (kXdpInNetns; Kmesh attaches the same one to each).
  std::string ifname;
  std::string proc_root = "/proc";  // for kXdpOfPod
  std::string netns_dir;

  // "pin:/sys/fs/bpf/bpf_kmesh_workload/map", "prog:42", "xdp:/run/netns/pod-a", "xdp:/proc/77/ns/net@eth0",
  // "xdp:10.244.1.7" (a path starts with '/'; "@IFNAME" is optional). Throws naming the forms.
  static MapSource Parse(const std::string& text, const std::string& proc_root = "/proc",
                         const std::string& netns_dir = "");
  std::string ToString() const;
};

bpf_probe::MapCatalog OpenCatalog(const MapSource& src);

// The XDP program Kmesh attached in the namespace `ns`: on `ifname`, or ("") on whichever interfaces carry
// one. Throws kmesh::Error when none does, or when interfaces carry different programs (naming them, so
// the caller can pick one with an interface name).
bpf_probe::XdpAttachment XdpInNetns(const netns::NetnsRef& ns, const std::string& ifname = "");

// Every network namespace in which `ip` is a local address: each <proc_root>/<pid>/ns/net is visited once
// (by inode), pid 1 first, then the namespaces bind-mounted in `netns_dir` ("" = none; /run/netns holds
// namespaces no process runs in, like the lab's and a test's; a holder found there is named by that path),
// then the other processes. On a node a pod's address is unique; on a machine running several labs or
// tests it is not, so a caller that needs one namespace uses RequireNetnsOwning.
NetnsHolders FindNetnsHolding(const std::string& proc_root, const std::string& ip,
                              const std::string& netns_dir = "");
// The one namespace holding `ip`. Throws kmesh::Error saying where it looked when none does, and listing
// the holders and how to name the namespace instead when several do: never a guess.
NetnsOwner RequireNetnsOwning(const std::string& proc_root, const std::string& ip,
                              const std::string& netns_dir = "");
// The netns_dir that goes with a /proc tree: /run/netns for the local /proc, "" for another (a Kmesh
// pod's /host/proc, a kind node's /proc: the host's /run/netns is not theirs, and their pods always have
// a process).
std::string DefaultNetnsDir(const std::string& proc_root);

// The addresses of a namespace, over rtnetlink: the interface name holding `ip`, or "" when none does.
std::string InterfaceHolding(const netns::NetnsRef& ns, const std::string& ip);

// km_auth_res[tuple] from the catalog's km_auth_res.
AuthReport LookupAuth(const bpf_probe::MapCatalog& catalog, const net::Tuple& t,
                      net::PortOrder order);

// The policy-realized barrier's view: ids in km_authz_policy and, when `workload_ip` is given,
// km_frontend[ip] -> workload id -> km_wlpolicy entry.
MapsReport SummarizeMaps(const bpf_probe::MapCatalog& catalog, const std::string& workload_ip);

// The XDP attachment of the pod that holds `pod_ip` (RequireNetnsOwning: exactly one namespace may hold
// it): on `dev`, or ("") on the interface holding the address.
bpf_probe::XdpAttachment XdpOfPod(const std::string& proc_root, const std::string& pod_ip,
                                  const std::string& dev = "", const std::string& netns_dir = "");

// Deletes one xfrm state (XFRM_MSG_DELSA) in `ns`: the fault-recovery tests remove an SA by hand.
// Throws kmesh::Error naming the state and the namespace (ESRCH: no such state).
void DeleteXfrmState(const netns::NetnsRef& ns, const xfrm::XfrmState& s);

}  // namespace kmesh::node
