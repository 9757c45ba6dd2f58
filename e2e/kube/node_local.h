// Node evidence read locally, in the kernel the caller runs on: by the kind transport (the harness on the
// machine that hosts the kind node containers) and by kmesh-probe (inside a Kmesh daemon pod, with the
// host's /proc at /host/proc). Maps are global to the kernel, so they are found by their pins (the node's
// bpffs) or through the XDP program on a pod's interface; namespaces are found through a /proc tree.
// No kubectl and no Catch2 here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/tuple.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/xfrm.h"
#include "e2e/kube/probe_json.h"
#include "netns/netns.h"

namespace kmesh::kube {

// Where Kmesh's maps are: a pin folder (Kmesh pins every workload map there), a program's maps (with its
// tail calls), or the maps of the XDP program attached to the interface that holds a pod's address.
struct MapSource {
  enum class Kind { kPinDir, kProgram, kXdpOfPod };
  Kind kind = Kind::kPinDir;
  std::string pin_dir = KM_PIN_DIR;
  uint32_t prog_id = 0;
  std::string pod_ip;
  std::string proc_root = "/proc";  // for kXdpOfPod
  std::string netns_dir;

  // "pin:/sys/fs/bpf/bpf_kmesh_workload/map", "prog:42", "xdp:10.244.1.7". Throws naming the forms.
  static MapSource Parse(const std::string& text, const std::string& proc_root = "/proc",
                         const std::string& netns_dir = "");
  std::string ToString() const;
};

bpf_probe::MapCatalog OpenCatalog(const MapSource& src);

// The network namespace in which `ip` is a local address: every <proc_root>/<pid>/ns/net is visited once
// (by inode), pid 1 first, then the namespaces bind-mounted in `netns_dir` ("" = none; /run/netns holds
// namespaces no process runs in, like the lab's and a test's). nullopt when none holds it. `scanned`
// (optional) gets the number of namespaces looked at.
std::optional<NetnsOwner> FindNetnsOwning(const std::string& proc_root, const std::string& ip,
                                          size_t* scanned = nullptr, const std::string& netns_dir = "");
// The same, throwing kmesh::Error that says where it looked when nothing holds the address.
NetnsOwner RequireNetnsOwning(const std::string& proc_root, const std::string& ip,
                              const std::string& netns_dir = "");
// The netns_dir that goes with a /proc tree: /run/netns for the local /proc, "" for another (a Kmesh
// pod's /host/proc: the host's /run/netns is not mounted there, and pods there always have a process).
std::string DefaultNetnsDir(const std::string& proc_root);

// The addresses of a namespace, over rtnetlink: the interface name holding `ip`, or "" when none does.
std::string InterfaceHolding(const netns::NetnsRef& ns, const std::string& ip);

// km_auth_res[tuple] from the catalog's km_auth_res.
AuthReport LookupAuth(const bpf_probe::MapCatalog& catalog, const bpf_probe::Tuple& t,
                      bpf_probe::PortOrder order);

// The policy-realized barrier's view: ids in km_authz_policy and, when `workload_ip` is given,
// km_frontend[ip] -> workload id -> km_wlpolicy entry.
MapsReport SummarizeMaps(const bpf_probe::MapCatalog& catalog, const std::string& workload_ip);

// The XDP attachment of the pod that holds `pod_ip`: on `dev`, or ("" ) on the interface holding the address.
bpf_probe::XdpAttachment XdpOfPod(const std::string& proc_root, const std::string& pod_ip,
                                  const std::string& dev = "", const std::string& netns_dir = "");

// Deletes one xfrm state (XFRM_MSG_DELSA) in `ns`: the fault-recovery tests remove an SA by hand.
// Throws kmesh::Error naming the state and the namespace (ESRCH: no such state).
void DeleteXfrmState(const netns::NetnsRef& ns, const xfrm::XfrmState& s);

}  // namespace kmesh::kube
