// Kmesh's IPsec marking programs on one lab node, built from the Kmesh tree (//third_party/kmesh:
// tc_mark_encrypt and :tc_mark_decrypt, bpf/kmesh/general/) and loaded the way Kmesh's daemon loads them
// when --enable-ipsec is set (pkg/bpf/general/tc.go:78-136, from pkg/bpf/workload/loader.go:69-75,147):
//   - both objects, every map pinned by name in <bpffs>/bpf_kmesh_workload/map/ (tc.go:52,88-89,106-107),
//     so km_nodeinfo (C map_of_nodeinfo, bpf/include/map_config.h:12) is one map for both programs, and a
//     pin that exists (km_log_event, km_tmpbuf of the sockops object) is reused;
//   - programs typed sched_cls (SEC("tc_ingress"): cilium/ebpf types it by its "tc" prefix; libbpf 1.1
//     does not know the section name).
// km_nodeinfo is written as ipsec_controller.go updateKNIMapCIDR / deleteKNIMapCIDR write it (lines
// 343-382): key {prefixlen of the CIDR, its masked address in the first bytes of a 16-byte array}, value 1.
// Attaching is bpf_probe::KmeshTcAttach (pkg/utils/tc.go).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/lab/kmesh_datapath.h"

struct bpf_object;

namespace kmesh::lab {

class KmeshIpsecTc {
 public:
  // Loads both objects into the pin folder `pin_dir` (<bpffs>/bpf_kmesh_workload/map, which must exist).
  // Throws kmesh::Error with libbpf's and the verifier's last lines, or when an object differs from its
  // build record.
  static std::unique_ptr<KmeshIpsecTc> Load(const std::string& pin_dir);
  // Closes both objects; the pins stay, as when Kmesh's daemon exits for a restart (pkg/bpf/bpf.go:143-145
  // returns before closing anything). Filters that still hold a program keep it and its km_nodeinfo alive.
  ~KmeshIpsecTc();
  // What Kmesh's Close does on a normal exit (tc.go:138-169): km_nodeinfo unpinned (UnpinMaps), and the
  // other pins this load created. Pins it reused from the sockops object (km_log_event, km_tmpbuf) stay
  // with the lab's authz datapath, which outlives the IPsec agent.
  void Unpin();
  KmeshIpsecTc(const KmeshIpsecTc&) = delete;
  KmeshIpsecTc& operator=(const KmeshIpsecTc&) = delete;

  int encrypt_fd() const { return encrypt_fd_; }
  int decrypt_fd() const { return decrypt_fd_; }
  int nodeinfo_fd() const { return nodeinfo_fd_; }
  // km_nodeinfo was pinned already when this load started (left by a daemon that exited for a restart).
  bool reused_nodeinfo() const { return reused_nodeinfo_; }
  const std::string& pin_dir() const { return pin_dir_; }

  // updateKNIMapCIDR / deleteKNIMapCIDR. Update throws on a malformed CIDR or a map error (Kmesh returns
  // the error); Delete ignores both, as Kmesh does.
  void UpdateNodeinfoCidr(const std::string& cidr);
  void DeleteNodeinfoCidr(const std::string& cidr);

  // Identity of each object (Kmesh commit, tree, object sha256, clang) with its program's id and tag.
  const DatapathIdentity& encrypt_identity() const { return encrypt_id_; }
  const DatapathIdentity& decrypt_identity() const { return decrypt_id_; }
  // {"tc_mark_encrypt": {...identity, "id", "tag"}, "tc_mark_decrypt": {...}, "km_nodeinfo": {"pin", "id"}}
  nlohmann::json ToJson() const;

 private:
  KmeshIpsecTc() = default;
  bpf_object* LoadOne(const std::string& runfile, const char* program, DatapathIdentity& id, int& prog_fd);

  std::string pin_dir_;
  bpf_object* encrypt_ = nullptr;
  bpf_object* decrypt_ = nullptr;
  int encrypt_fd_ = -1;
  int decrypt_fd_ = -1;
  int nodeinfo_fd_ = -1;
  uint32_t nodeinfo_id_ = 0;
  DatapathIdentity encrypt_id_;
  DatapathIdentity decrypt_id_;
  std::vector<std::string> created_pins_;
  bool reused_nodeinfo_ = false;
};

// The 20-byte km_nodeinfo key generalKNIMapKey makes for a CIDR (ipsec_controller.go:343-363): the prefix
// length (host order), then the masked address's bytes in network order in a 16-byte array. Throws
// kmesh::Error naming the CIDR when it does not parse.
std::vector<uint8_t> NodeinfoKey(const std::string& cidr);

// Every entry of the km_nodeinfo pinned at `pin` as CIDR text ("10.244.2.0/24"; an entry whose prefix is
// at most 32 and whose bytes past the fourth are zero reads as IPv4). Throws kmesh::Error naming the pin
// when it cannot be opened.
std::vector<std::string> ReadNodeinfoCidrs(const std::string& pin);

}  // namespace kmesh::lab
