// KmeshPolicyWriter: writes a lab node's Kmesh maps exactly as that node's Kmesh daemon would, through
// the node's own kmesh-lab-daemon process (kmesh_daemon.h says why one process per node):
//   ApplyAuthorization / RemoveAuthorization  km_authz_policy + kmesh_map64/192/296/1600, with Kmesh's C
//                                             deserializer (pkg/cache/v2/maps/authz.go)
//   StoreWorkload / RemoveWorkload            km_wlpolicy (local workloads, at most 4 policies, an empty
//                                             list leaves the old entry) and km_frontend
//                                             (pkg/controller/workload/workload_processor.go)
// Ids are Kmesh's (FNV-32a, linear probing, persisted per node in <state_dir>/hash_name.yaml).
//
// Also here: counting the entries of every map in a pin folder, for "each map back to its baseline"
// checks.
//
// The daemon is a child process (own process group, SIGKILL if the thread that started it dies, which
// is how PR_SET_PDEATHSIG works): start the writer from a thread that outlives its use. It needs no
// bpffs of its own: it gets the maps by id. Every request waits at most defaults::LabDaemonReply().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/residue.h"
#include "e2e/lab/workload_authz.h"

namespace kmesh::lab {

struct PolicyWriterOptions {
  std::string node_name;  // the node this daemon serves (km_wlpolicy only for its workloads)
  std::string pin_dir;    // the node's Kmesh pin folder: <bpffs>/bpf_kmesh_workload/map
  std::string state_dir;  // created if missing: hash_name.yaml and kmesh-lab-daemon.log
  std::string
      daemon_binary;  // "" = the kmesh-lab-daemon runfile (needs data = ["//e2e/lab:kmesh-lab-daemon"])
  // The daemon also runs Kmesh's userspace authorizer on pin_dir's km_auth_req (the node's only consumer).
  bool run_authorizer = false;
};

struct PolicyWrite {
  std::string resource;    // "<namespace>/<name>"
  uint32_t policy_id = 0;  // Kmesh's id (what km_wlpolicy lists and XDP looks up)
  // The key Kmesh's deserializer really wrote under: it copies the id with strncpy, so the id's bytes stop
  // at the first zero byte (DeserializerStoredKey). Differs from policy_id for ~1.2% of names.
  uint32_t stored_key = 0;
  int ret = 0;  // deserial_update_elem / deserial_delete_elem return value
};

struct WorkloadSpec {
  std::string uid;                     // Workload.uid, e.g. "Kubernetes//Pod/test-ns1/httpbin-0"
  std::string node;                    // Workload.node
  std::vector<std::string> addresses;  // "10.244.2.7"
  std::vector<std::string> policies;   // Workload.authorization_policies, "ns/name", in istiod's order
  bool host_network = false;
  // For the authorizer's workload cache (the source identity it derives from an IP, rbac.go:538-552).
  std::string name;
  std::string ns;
  std::string service_account;
  std::string trust_domain;  // as istiod sends it: "" for cluster.local (IstiodTrustDomain)
  std::string network;
};

struct WorkloadWrite {
  uint32_t workload_id = 0;
  bool wlpolicy_written = false;       // false: not this node's, or an empty list (old entry left)
  std::vector<uint32_t> policy_ids;    // what km_wlpolicy got, in order
  std::vector<std::string> dropped;    // policies beyond Kmesh's 4
  std::vector<std::string> frontends;  // addresses written to km_frontend
  std::vector<std::string> removed_frontends;
};

class KmeshPolicyWriter {
 public:
  // Opens the node's maps from `pin_dir`, starts its kmesh-lab-daemon and waits for it to be ready.
  // Throws kmesh::Error (with the daemon's own words and its log's path) when it cannot.
  explicit KmeshPolicyWriter(const PolicyWriterOptions& options);
  // Closes the daemon's input and waits for it to exit (bounded), then kills what is left.
  ~KmeshPolicyWriter();
  KmeshPolicyWriter(const KmeshPolicyWriter&) = delete;
  KmeshPolicyWriter& operator=(const KmeshPolicyWriter&) = delete;

  // What istiod's Authorization push makes Kmesh write. Throws when Kmesh's deserializer fails.
  PolicyWrite ApplyAuthorization(const workloadapi::Authorization& a);
  // What a removed Authorization resource makes Kmesh do; a deserializer failure is reported in `ret`
  // (Kmesh only logs it).
  PolicyWrite RemoveAuthorization(const std::string& resource_name);
  // The same for several, in order, with every request sent before the first reply is read (one round
  // trip instead of one per policy; the conformance run writes and removes tens of thousands).
  std::vector<PolicyWrite> ApplyAuthorizations(const std::vector<workloadapi::Authorization>& all);
  std::vector<PolicyWrite> RemoveAuthorizations(const std::vector<std::string>& resource_names);
  // The policy as Kmesh's deserial_lookup_elem reads it back; nullopt when the id is unknown or absent.
  std::optional<workloadapi::Authorization> LookupAuthorization(const std::string& resource_name);
  std::optional<workloadapi::Authorization> LookupAuthorizationById(uint32_t policy_id);
  // What a Workload push makes Kmesh write (add or update).
  WorkloadWrite StoreWorkload(const WorkloadSpec& w);
  // What a removed Workload makes Kmesh do; false when the daemon never saw the UID.
  bool RemoveWorkload(const std::string& uid);
  // The id Kmesh gave `name` on this node (no allocation).
  std::optional<uint32_t> IdOf(const std::string& name);
  // What the node's authorizer decided since the last call, oldest first (kmesh_daemon_protocol.h);
  // empty unless run_authorizer.
  std::vector<nlohmann::json> Decisions();

  pid_t daemon_pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  const PolicyWriterOptions& options() const { return options_; }

 private:
  nlohmann::json Request(const nlohmann::json& req);
  std::vector<nlohmann::json> Requests(const std::vector<nlohmann::json>& reqs);
  nlohmann::json ReadReply(const std::string& what);
  std::string DaemonTrouble() const;  // the log's last lines, for errors
  void Stop();

  PolicyWriterOptions options_;
  std::string log_path_;
  pid_t pid_ = -1;
  int to_daemon_ = -1;    // its stdin
  int from_daemon_ = -1;  // its fd 3
  std::string pending_;   // bytes read past the last reply line
  std::mutex mu_;
};

// --- residue -------------------------------------------------------------------------------------------
// The counting and the comparison are bpf_probe's (bpf_probe/residue.h), the code `kmesh-mapdump residue
// --baseline` runs too, so a suite's residue check and the tool report the same lines.

using MapEntryCount = bpf_probe::MapEntryCount;

// Every map pinned in `pin_dir`, by name, with its entry count now.
std::map<std::string, MapEntryCount> CountMapEntries(const std::string& pin_dir);

// "km_wlpolicy: 0 -> 1 entries" for each map whose count differs from `baseline` (or appeared/vanished);
// empty when every map is back to its baseline.
std::vector<std::string> ResidueAgainst(const std::map<std::string, MapEntryCount>& baseline,
                                        const std::map<std::string, MapEntryCount>& now);

}  // namespace kmesh::lab
