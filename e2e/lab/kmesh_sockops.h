// The userspace half of Kmesh's authorization offload, run on a lab node with Kmesh's own sockops program:
//
//   KmeshSockops   loads Kmesh's `sockops_prog` (bpf/kmesh/workload/sockops.c) the way Kmesh's daemon does
//                  (pkg/bpf/workload/sock_ops.go:63-132): every named map pinned by name in the node's
//                  `<bpffs>/bpf_kmesh_workload/map/` (loaded *before* the XDP object, which then shares
//                  km_auth_res, km_frontend, km_wlpolicy, ... through the same pins; loader.go:126-151),
//                  the daemon's globals set (node IP and pod gateway, pkg/bpf/bpf.go:280-353), and a
//                  BPF_CGROUP_SOCK_OPS bpf_link on the node's cgroup pinned at
//                  `<bpffs>/bpf_kmesh_workload/sockops/cgroup_sockops_prog`.
//   EnrollPod      km_manage written as Kmesh writes it: Kmesh's CNI / manage controller enters the pod's
//                  netns and makes a non-blocking connect to 0.0.0.2:929 (pkg/utils/enroll.go:84-98,
//                  pkg/nets/nets.go:159-218); sockops_prog sees it at BPF_SOCK_OPS_TCP_CONNECT_CB and
//                  records the pod's IP (bpf/include/bpf_common.h:236-249, 292-312, sockops.c:159-161).
//   Authorizer     the single consumer of the ring buffer km_auth_req, doing what Kmesh's Rbac.Run does
//                  (pkg/auth/rbac.go:114-172): decode each 40-byte record, ask Rbac, and on deny write
//                  km_auth_res[key] = 1 (pkg/auth/xdp_auth_handler.go:29-45), which Kmesh's xdp_authz
//                  (authz_offload = 1: drop) or xdp_shutdown_in_userspace (0: reset) then acts on.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "bpf_probe/maps.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/lab/node_cgroup.h"
#include "e2e/lab/rbac.h"
#include "net/tuple.h"
#include "netns/netns.h"

struct bpf_link;
struct bpf_object;
struct ring_buffer;

namespace kmesh::lab {

// Where Kmesh pins its sockops link under a bpffs (pkg/bpf/workload/sock_ops.go:45):
// "<bpffs>/bpf_kmesh_workload/sockops". Maps go to KmeshMapDir (node_bpffs.h), like the XDP object's.
std::string KmeshSockopsDir(const std::string& bpffs);

// What Kmesh's daemon writes into sockops_prog's globals at a normal start (pkg/bpf/bpf.go:299-311):
// connections from these two addresses are kubelet probes and are not reported (sockops.c:33-56).
struct SockopsGlobals {
  net::IpAddr node_ip;  // the node's InternalIP (getNodeIPAddress, bpf.go:320-336)
  // The node's podCIDR network address; Kmesh stores address + 1 as pod_gateway (getNodePodSubGateway,
  // bpf.go:338-353), whatever gateway the CNI really uses.
  net::IpAddr pod_cidr_base;
};

class KmeshSockops {
 public:
  // Loads `object` (Kmesh's sockops.c built like bpf2go's KmeshSockopsWorkload), pins its maps in
  // bpffs.KmeshMapDir() (an existing compatible pin is reused, as cilium/ebpf's PinByName does; an
  // incompatible one fails naming the map), sets the globals and attaches sockops_prog to `cgroup`.
  // Throws kmesh::Error naming the step, the object and the verifier's last words.
  // The bpffs must outlive the KmeshSockops; load the XDP datapath after it (it then reuses these pins).
  static KmeshSockops Load(const std::string& object, const NodeBpffs& bpffs, const NodeCgroup& cgroup,
                           const SockopsGlobals& globals);
  // Undoes it like Kmesh's Detach (sock_ops.go:141-164): unpins the object's maps, removes the sockops
  // folder (the link pin with it) and destroys the link. Load XDP after sockops and unload it before.
  ~KmeshSockops();
  KmeshSockops(KmeshSockops&& other) noexcept;
  KmeshSockops& operator=(KmeshSockops&& other) noexcept;
  KmeshSockops(const KmeshSockops&) = delete;
  KmeshSockops& operator=(const KmeshSockops&) = delete;

  const std::string& map_dir() const { return map_dir_; }
  const std::string& link_pin() const { return link_pin_; }
  uint32_t prog_id() const { return prog_id_; }
  const std::string& prog_tag() const { return prog_tag_; }  // 16 hex digits, as bpftool prints it
  // Names of the maps pinned in map_dir(), each with whether this load created it or reused a pin.
  struct PinnedMap {
    std::string name;
    bool reused = false;
  };
  const std::vector<PinnedMap>& pinned_maps() const { return pinned_; }
  // One of the object's maps (an independent fd).
  bpf_probe::Map map(const std::string& name) const;

  // Program ids attached to `cgroup` for BPF_CGROUP_SOCK_OPS (bpf_prog_query): the attachment as the
  // kernel holds it.
  static std::vector<uint32_t> AttachedPrograms(const NodeCgroup& cgroup);

 private:
  KmeshSockops() = default;
  void Release() noexcept;

  bpf_object* obj_ = nullptr;
  bpf_link* link_ = nullptr;
  std::string map_dir_;
  std::string sockops_dir_;
  std::string link_pin_;
  uint32_t prog_id_ = 0;
  std::string prog_tag_;
  std::vector<PinnedMap> pinned_;
};

// km_manage's key for a pod IP (struct manager_key, bpf/include/bpf_common.h:26-31): the ip_addr union,
// IPv4 in bytes 0..3 (network order), the rest zero.
bpf_probe::Bytes ManagerKey(const net::IpAddr& ip);

// Kmesh's enrolment of a pod (HandleKmeshManage(netns, true)): from a short-lived process inside `pod`
// and in `cgroup` (Kmesh's sockops sits on the cgroup2 root and sees every process; the lab's sits on the
// node's cgroup), a non-blocking connect to 0.0.0.2:929 (:930 to unenroll). Returns the source address the
// kernel chose, i.e. the IP sockops_prog recorded in km_manage (value 0 = managed). Like a Kubernetes pod,
// the pod needs a route that covers 0.0.0.2 (a default route); without one the connect fails before
// sockops sees it, and this throws saying so. IPv4 only (TriggerControlCommand prefers IPv4).
net::IpAddr EnrollPod(const NodeCgroup& cgroup, const netns::NetnsRef& pod);
net::IpAddr UnenrollPod(const NodeCgroup& cgroup, const netns::NetnsRef& pod);

// km_manage[ip] (nullopt when absent). `km_manage` is the map pinned in the node's map folder.
std::optional<uint32_t> ManagedValue(const bpf_probe::Map& km_manage, const net::IpAddr& ip);

// What the authorizer did with one km_auth_req record.
struct AuthDecision {
  using Clock = std::chrono::steady_clock;
  RbacVerdict verdict;                       // doRbac's answer, or why the record was skipped
  std::optional<net::Tuple> tuple;           // decoded (client -> server pod); absent for a malformed record
  bpf_probe::Bytes key;                      // what was written to km_auth_res (denies only)
  Clock::time_point received;                // the record was read from the ring
  std::optional<Clock::time_point> written;  // km_auth_res updated (denies only)
  std::string write_error;                   // bpf_map_update_elem's failure, if any
  // "deny 10.244.1.5:40001 -> 10.244.2.7:8080: DENY policy ns/x matched; km_auth_res written".
  std::string Describe() const;
};

// Kmesh's Rbac.Run for one node: the only reader of the node's km_auth_req (a ring buffer has one
// consumer; a second reader would steal records). Bounded: Run() checks `stop` at least every
// defaults::PollInterval().
class Authorizer {
 public:
  using Observer = std::function<void(const AuthDecision&)>;
  // Opens <pin_dir>/km_auth_req and <pin_dir>/km_auth_res. `rbac` must outlive the Authorizer; it is
  // consulted under its own lock, so policies and workloads may change while Run() runs. `observer` (may
  // be empty) is called on the Run() thread after each record.
  Authorizer(const std::string& pin_dir, const Rbac& rbac, Observer observer = {});
  ~Authorizer();
  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  // Handles records until `stop` is true.
  void Run(const std::atomic<bool>& stop);
  // Handles what arrives within `timeout` (0: only what is there now); returns the number of records.
  int Poll(std::chrono::milliseconds timeout);
  uint64_t records() const { return records_; }

 private:
  static int OnSample(void* ctx, void* data, size_t size);
  void Handle(const uint8_t* data, size_t size);

  const Rbac& rbac_;
  Observer observer_;
  kmesh::UniqueFd req_fd_;
  kmesh::UniqueFd res_fd_;
  ring_buffer* ring_ = nullptr;
  std::string pin_dir_;
  uint64_t records_ = 0;
};

// An Authorizer on its own thread, for a node daemon: starts at construction (the maps are opened on
// the caller's thread, so errors surface there), stops and joins on destruction.
class AuthorizerThread {
 public:
  AuthorizerThread(const std::string& pin_dir, const Rbac& rbac, Authorizer::Observer observer = {});
  ~AuthorizerThread();
  AuthorizerThread(const AuthorizerThread&) = delete;
  AuthorizerThread& operator=(const AuthorizerThread&) = delete;
  // The error that ended the loop early, if any ("" while running or after a clean stop).
  std::string error() const;

 private:
  Authorizer authorizer_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string error_;
  std::thread thread_;
};

}  // namespace kmesh::lab
