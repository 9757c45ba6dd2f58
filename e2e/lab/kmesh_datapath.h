// Kmesh's own XDP authorization datapath on one lab node: the object Kmesh
// builds from bpf/kmesh/workload/xdp.c (//third_party/kmesh:xdp), loaded and
// attached the way Kmesh's daemon and CNI do:
//   - all four programs load (libbpf 1.1 does not know SEC("xdp_auth"), so each
//   is typed XDP first, as
//     cilium/ebpf does for an "xdp" section prefix);
//   - every map except .data/.rodata/.bss is pinned by name in the node's pin
//   folder
//     <bpffs>/bpf_kmesh_workload/map/ (pkg/bpf/utils/pin.go:74-82,
//     pkg/bpf/workload/xdp.go:41,67,80), and a pin that already exists (e.g. a
//     sockops object loaded first) is reused, so both share the map;
//   - km_xdp_tailcall slots 0/1/2 =
//   policies_check/policy_check/xdp_shutdown_in_userspace
//     (pkg/bpf/workload/xdp.go:98-117, pkg/constants/constants.go:66-68);
//   - authz_offload = 1, as the daemon sets it at a normal start
//   (pkg/bpf/bpf.go:313);
//   - xdp_authz attached to a pod's interface inside the pod's namespace with
//   no mode flag
//     (netlink.LinkSetXdpFd, pkg/cni/plugin/plugin.go:126,
//     pkg/controller/manage/manage_controller.go:413), which a veth serves
//     natively.
// Loading costs about 2.7 s of CPU (the verifier walks ~970K instructions of
// policy_check): load once per node and reuse it across the cases of a test
// binary.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpf_probe/maps.h"
#include "bpf_probe/xdp.h"
#include "e2e/lab/node_bpffs.h"
#include "netns/netns.h"

struct bpf_object;

namespace kmesh::lab {

// One of the four programs as the kernel holds it.
struct KmeshProgram {
  std::string name;         // C name: "xdp_shutdown_in_userspace"
  std::string kernel_name;  // what bpftool/ip print: "xdp_shutdown_in" (15 characters)
  uint32_t id = 0;
  std::string tag;              // 16 hex digits
  uint32_t verified_insns = 0;  // instructions the verifier processed (limit 1,000,000)
};

// What the evidence and the report header print about the datapath under test.
struct DatapathIdentity {
  std::string kmesh_commit;      // git commit of the tree, or "snapshot"
  std::string pinned_commit;     // third_party/kmesh/COMMIT
  std::string tree_path;         // where the Kmesh tree was found
  std::string tree_found_by;     // "KMESH_SRC", "the machine's snapshot at the
                                 // pinned commit", ...
  std::string tree_digest;       // "sha256:..." over the Kmesh files used, at build time
  std::string digest_vs_pinned;  // "matches pinned snapshot" or "differs"
  std::string object;            // runfile of the object, "third_party/kmesh/xdp.o"
  std::string object_sha256;
  std::string clang_version;           // "Debian clang version 19.1.7 (3~deb12u1)"
  std::vector<std::string> patches;    // a source mutant's patches (file names), empty for Kmesh as is
  std::vector<KmeshProgram> programs;  // xdp_authz, policies_check,
                                       // policy_check, xdp_shutdown_in_userspace

  // "Kmesh ec501a98 (snapshot, matches pinned snapshot) xdp.o
  // sha256:40f5830c..., clang 19.1.7;
  //  xdp_authz id 41 tag ..., ..." (one paragraph for a report header).
  std::string Describe() const;
  const KmeshProgram &program(const std::string &name) const;
};

// The identity of any kmesh_bpf_object (//third_party/kmesh:<name>) from its build record: tree, commit,
// digest, clang, object sha256 (checked against the object file; throws when they differ). `programs`
// is left empty: the loader fills it.
DatapathIdentity ReadBuildIdentity(const std::string &object_runfile);

class KmeshAuthzDatapath {
 public:
  struct Options {
    // Runfile of the object; its build record is the same path with .build.json
    // (kmesh_bpf_object).
    std::string object = "third_party/kmesh/xdp.o";
    // Kmesh's daemon sets 1 at a normal start; `kmeshctl authz disable` sets 0
    // (the RST path).
    uint32_t authz_offload = 1;
  };

  // Loads the object into the node's bpffs (pins in bpffs.KmeshMapDir()) and
  // fills the tail calls. The bpffs must outlive the datapath. Throws
  // kmesh::Error with the verifier's last lines when a program does not load,
  // and when the object is not the one its build record describes.
  static std::unique_ptr<KmeshAuthzDatapath> Load(const NodeBpffs &bpffs, const Options &options);
  static std::unique_ptr<KmeshAuthzDatapath> Load(const NodeBpffs &bpffs) { return Load(bpffs, Options()); }
  // Detaches every attachment still held, closes the object and removes the
  // pins it created (pins it reused stay, for the object that made them), as
  // Kmesh's Close unpins its maps (xdp.go:122-140).
  ~KmeshAuthzDatapath();
  KmeshAuthzDatapath(const KmeshAuthzDatapath &) = delete;
  KmeshAuthzDatapath &operator=(const KmeshAuthzDatapath &) = delete;

  // Attaches xdp_authz to `ifname` in `ns` as kmesh-cni does (no mode flag;
  // native on a veth). Fails rather than replace a program already there.
  // Throws when the kernel picked generic mode.
  void Attach(const netns::NetnsRef &ns, const std::string &ifname);
  // Detaches what Attach put there (only if it is still ours). Throws when
  // nothing was attached by us.
  void Detach(const netns::NetnsRef &ns, const std::string &ifname);
  bool Attached(const netns::NetnsRef &ns, const std::string &ifname) const;

  // Sets the authz_offload global (.data), as the daemon's UpdateAuthzOffload
  // does (pkg/bpf/bpf.go:477).
  void SetAuthzOffload(uint32_t value);
  uint32_t AuthzOffload() const;

  // The pin folder: <bpffs>/bpf_kmesh_workload/map.
  const std::string &pin_dir() const { return pin_dir_; }
  std::string PinPath(const std::string &map_name) const { return pin_dir_ + "/" + map_name; }
  // Names of the maps pinned there (every map of the object but
  // .data/.rodata/.bss).
  std::vector<std::string> PinnedMapNames() const;

  // A map of the object by kernel name ("km_auth_res"). Throws listing the
  // names it has.
  int map_fd(const std::string &name) const;
  uint32_t map_id(const std::string &name) const;
  // The same map as an independent bpf_probe::Map (its own fd).
  bpf_probe::Map OpenMap(const std::string &name) const;
  // A program by C name ("xdp_authz", "policy_check", ...).
  int prog_fd(const std::string &name) const;

  const DatapathIdentity &identity() const { return identity_; }

 private:
  KmeshAuthzDatapath() = default;
  static std::string Key(const netns::NetnsRef &ns, const std::string &ifname);
  int DataMapFd() const;

  bpf_object *obj_ = nullptr;
  std::string pin_dir_;
  std::vector<std::string> created_pins_;  // pins this load made (removed at destruction)
  uint32_t authz_offload_offset_ = 0;      // of authz_offload in .data
  DatapathIdentity identity_;
  std::map<std::string, bpf_probe::XdpLink> links_;  // "<netns inode>/<ifname>" -> attachment
};

// The four programs of Kmesh's XDP object, in tail-call order after the entry
// point.
inline constexpr const char *kKmeshXdpPrograms[] = {"xdp_authz", "policies_check", "policy_check",
                                                    "xdp_shutdown_in_userspace"};

}  // namespace kmesh::lab
