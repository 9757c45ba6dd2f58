// NodeDaemon: the state kmesh-lab-daemon holds for one lab node, the lab's stand-in for that node's Kmesh
// daemon (whose Go code cannot be built here). It writes the node's maps exactly as Kmesh's daemon does:
//
//   km_authz_policy + kmesh_map64/192/296/1600  Kmesh's own C deserializer, called as
//       pkg/cache/v2/maps/authz.go does (unpack the proto3 bytes with protobuf-c, deserial_update_elem
//       with the policy id, deserial_delete_elem to remove), the map ids given to it through the
//       environment as pkg/bpf/workload/loader.go:201-223 ApiEnvCfg sets them, then deserial_init
//       (loader.go:103-109);
//   km_wlpolicy, km_frontend                     as pkg/controller/workload/workload_processor.go does;
//   ids                                          KmeshHashName (pkg/utils/hash_name.go), one per node.
//
// Why one process per node: the deserializer keeps process-global state (deserialization_to_bpf_map.c):
// the map ids are read from the environment at every call (get_map_id, lines 205-217), and the inner
// maps' fds and infos and the index-allocation bitmaps with their next-free positions live in the
// global g_map_mng (lines 77-84), filled by deserial_init from that node's maps and its entries
// (maps_restore, lines 1427-1460). Two nodes in one process would share one allocator and one set of
// inner-map fds, writing node B's blobs into node A's kmesh_map*; switching g_map_mng and the
// environment back and forth would also need every call serialized, and setenv is not thread-safe. One
// process per node is what a Kmesh node has: its own daemon with its own deserializer state.
//
// Only one NodeDaemon may exist per process (the constructor refuses a second).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bpf_probe/maps.h"
#include "e2e/lab/kmesh_hash_name.h"
#include "e2e/lab/kmesh_sockops.h"
#include "e2e/lab/rbac.h"
#include "net/tuple.h"

namespace kmesh::lab {

struct NodeDaemonConfig {
  std::string node_name;  // workloads on this node get km_wlpolicy entries (workload_processor.go:567-569)
  std::string state_dir;  // holds hash_name.yaml (Kmesh: /mnt/hash_name.yaml)
  // Kernel map name -> map id for km_authz_policy, kmesh_map64, kmesh_map192, kmesh_map296,
  // kmesh_map1600, km_frontend, km_wlpolicy (all required).
  std::map<std::string, uint32_t> map_ids;
  // The node's pin folder (<bpffs>/bpf_kmesh_workload/map). When set, the daemon also does what Kmesh's
  // Rbac.Run does (pkg/auth/rbac.go:114-172, started by workload_controller.go): it is the one consumer of
  // km_auth_req and writes km_auth_res = 1 for what its Rbac denies. "" = the writer only.
  std::string pin_dir;
};

// The environment variable Kmesh's deserializer reads for each map (ApiEnvCfg, loader.go:201-223), in
// that order: {"Authorization", "km_authz_policy"}, {"KmeshMap64", "kmesh_map64"}, ...
const std::vector<std::pair<std::string, std::string>>& DeserializerMapEnv();

class NodeDaemon {
 public:
  // Opens every map by id (checking its name), sets the environment, runs deserial_init. Throws
  // kmesh::Error naming what is wrong.
  explicit NodeDaemon(const NodeDaemonConfig& config);
  ~NodeDaemon();
  NodeDaemon(const NodeDaemon&) = delete;
  NodeDaemon& operator=(const NodeDaemon&) = delete;

  // One request of kmesh_daemon_protocol.h; never throws (errors become {"ok": false, "error": ...}).
  nlohmann::json Handle(const nlohmann::json& request);

 private:
  struct Workload {
    std::string node;
    std::vector<net::IpAddr> addresses;
    bool host_network = false;
  };

  nlohmann::json ApplyAuthorization(const nlohmann::json& req);
  nlohmann::json RemoveAuthorization(const nlohmann::json& req);
  nlohmann::json LookupAuthorization(const nlohmann::json& req);
  nlohmann::json StoreWorkload(const nlohmann::json& req);
  nlohmann::json RemoveWorkload(const nlohmann::json& req);
  nlohmann::json Ids(const nlohmann::json& req);
  nlohmann::json Decisions(const nlohmann::json& req);
  void Record(const AuthDecision& d);

  // The blob an outer key names (map type in the top byte, index in the low 24 bits,
  // bpf/include/inner_map_defs.h:7-14), first `len` bytes.
  std::vector<uint8_t> ReadOuterKey(uint64_t outer_key, size_t len) const;
  const bpf_probe::Map& MapNamed(const std::string& name) const;

  NodeDaemonConfig config_;
  std::map<std::string, bpf_probe::Map> maps_;
  KmeshHashName hash_;
  std::map<std::string, Workload> workloads_;  // Kmesh's WorkloadCache, by UID
  // Kmesh's userspace authorizer, fed by the same pushes as the maps (handleAuthorizationTypeResponse
  // updates the Rbac before the map, workload_processor.go:1044-1051; handleWorkload the workload cache).
  Rbac rbac_;
  std::unique_ptr<AuthorizerThread> authorizer_;
  std::mutex decisions_mu_;
  std::vector<nlohmann::json> decisions_;  // since the last "decisions" request (evidence)
};

}  // namespace kmesh::lab
