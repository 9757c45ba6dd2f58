// The system under test: Kmesh's own XDP authorization object (KmeshAuthzDatapath: xdp_authz,
// policies_check, policy_check, xdp_shutdown_in_userspace and their tail calls) in a bpffs of its own,
// with a kmesh-lab-daemon writing the case's policies through Kmesh's C deserializer, as a Kmesh node's
// daemon does. A verdict is one BPF_PROG_TEST_RUN of xdp_authz on the connection's SYN, then km_auth_res
// and km_tcargs for its tuple are read (and removed, so the next run starts clean).
//
// Every case runs on a fresh node state (Reset): the daemon is restarted on emptied maps, so Kmesh's
// inner-map allocator hands out the same indexes for the same case whatever ran before. That makes a
// case replay exactly from its seed (Kmesh's byte-offset reads, D5 and D10, read whatever blob sits at an
// index derived from the first entry's) and bounds the deserializer's leak (D9) to one case.
//
// Loading costs ~2.5 s of CPU (the verifier): make one per test binary and reuse it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/maps.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/verdict.h"
#include "bpf_probe/xdp_explain.h"
#include "e2e/conformance/case.h"
#include "e2e/lab/kmesh_datapath.h"
#include "e2e/lab/kmesh_policy_writer.h"
#include "e2e/lab/node_bpffs.h"
#include "e2e/lab/workload_authz.h"

namespace kmesh::conformance {

// What Kmesh's XDP did with one SYN.
struct Observation {
  bpf_probe::XdpAction action = bpf_probe::XdpAction::kAborted;
  std::optional<bpf_probe::Verdict> auth_res;  // km_auth_res[tuple] after the run
  std::optional<bpf_probe::TcArgs> tcargs;     // km_tcargs[tuple] after the run (left for no match: D4)
  // "XDP_DROP, km_auth_res = DENY, km_tcargs: none".
  std::string ToString() const;
};

// What the node's daemon wrote for a case.
struct WrittenPolicy {
  std::string resource;  // "ns/name"
  uint32_t policy_id = 0;
  uint32_t stored_key = 0;                        // differs from policy_id when the id has a zero byte (D8)
  lab::workloadapi::Authorization authorization;  // as istiod sent it
};
struct Written {
  uint32_t workload_id = 0;
  std::vector<std::string> selected;              // Workload.authorization_policies (istiod's sorted list)
  std::vector<uint32_t> listed_ids;               // km_wlpolicy as written (at most 4)
  std::vector<std::string> dropped;               // beyond Kmesh's 4
  std::map<std::string, WrittenPolicy> policies;  // every policy of the case, by resource
};

class KmeshXdpUnderTest {
 public:
  // Mounts a bpffs under `work_parent` (a folder of the caller's), loads Kmesh's XDP object into it and
  // starts the node's kmesh-lab-daemon. Throws kmesh::Error when any of it fails.
  explicit KmeshXdpUnderTest(const std::string& work_parent);
  ~KmeshXdpUnderTest();
  KmeshXdpUnderTest(const KmeshXdpUnderTest&) = delete;
  KmeshXdpUnderTest& operator=(const KmeshXdpUnderTest&) = delete;

  // Sends every policy of the case (every node gets every policy) and the workload (its selector policies
  // listed as istiod lists them) to the node's daemon. The node must hold no case (constructed, Undo or
  // Reset). A workload that lists no policy gets no km_wlpolicy entry, as on a node that never saw one.
  Written Write(const Case& c);
  // Removes the case's policies as Kmesh does when istiod removes them (deserial_delete_elem). The
  // daemon's allocator moves on (so blob indexes differ from a fresh node's) and Kmesh leaks an
  // address blob per address (D9): Reset() now and then.
  void Undo(const Written& w);
  // One verdict: xdp_authz on the connection's SYN, km_auth_res and km_tcargs read, then removed.
  Observation Run(const Connection& conn);
  // Back to a fresh node: daemon stopped, every map the daemon and the programs write emptied, daemon
  // started again (its allocator restored from the empty maps). Throws when a map does not empty.
  void Reset();

  // The map entries a report shows for a case: km_wlpolicy, km_authz_policy ids, km_frontend.
  std::string DescribeMaps(const Written& w) const;
  const lab::DatapathIdentity& identity() const { return dp_->identity(); }
  const std::string& pin_dir() const { return dp_->pin_dir(); }
  uint64_t resets() const { return resets_; }
  uint64_t cases_since_reset() const { return cases_since_reset_; }
  // Entries in kmesh_map64 now (a walk of its 1M buckets: ~4 ms).
  uint64_t InnerEntries() const;

 private:
  void StartDaemon();

  // The node's own folder (bpffs mount point, the daemon's state), removed last, after the bpffs is
  // unmounted.
  struct Folder {
    std::string path;
    explicit Folder(const std::string& parent);  // parent/<UniqueName("conformance")>
    ~Folder();
  };
  Folder folder_;
  const std::string& work_ = folder_.path;
  lab::NodeBpffs bpffs_;
  std::unique_ptr<lab::KmeshAuthzDatapath> dp_;
  std::unique_ptr<lab::KmeshPolicyWriter> writer_;
  int xdp_authz_fd_ = -1;
  bpf_probe::Map auth_res_, tcargs_, wlpolicy_;
  std::vector<bpf_probe::Map> reset_maps_;  // emptied by Reset
  bool holds_case_ = false;
  uint64_t resets_ = 0;
  uint64_t cases_since_reset_ = 0;
};

}  // namespace kmesh::conformance
