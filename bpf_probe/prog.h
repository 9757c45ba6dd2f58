// BPF programs as the kernel reports them (struct bpf_prog_info): name, tag, type, the maps they use, and
// run statistics. Statistics are counted only while the kernel collects them (kernel.bpf_stats_enabled,
// or while someone holds a BPF_ENABLE_STATS descriptor, see BpfStatsSession); ProgStats says which.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"

namespace kmesh::bpf_probe {

struct ProgStats {
  bool collected = false;     // the kernel was collecting when read (BpfStatsEnabled()); else counts may be stale
  uint64_t run_cnt = 0;       // times the program ran
  uint64_t run_time_ns = 0;   // total time spent in it
  uint64_t recursion_misses = 0;
  // "ran 12 times, 3450 ns total (avg 287 ns)" or, when not collected, how to turn collection on.
  std::string Describe() const;
};

struct ProgramInfo {
  uint32_t id = 0;
  std::string name;           // kernel name (15 characters at most: "xdp_shutdown_in")
  uint32_t type = 0;          // enum bpf_prog_type
  std::string tag;            // 16 hex digits, as `bpftool prog` and `ip link` print it
  std::vector<uint32_t> map_ids;
  uint32_t btf_id = 0;
  bool jited = false;
  ProgStats stats;

  // bpftool's type name: "xdp", "sched_cls", ...
  std::string TypeName() const;
};

// Info of the program behind `fd`.
ProgramInfo ReadProgramInfo(int fd);
// Info of program `id` (needs CAP_SYS_ADMIN). Throws kmesh::Error naming the id when it does not exist.
ProgramInfo ReadProgramById(uint32_t id);
// Opens program `id` (needs CAP_SYS_ADMIN).
UniqueFd OpenProgramById(uint32_t id);

// Whether the kernel collects run statistics right now, as far as this process can tell: the sysctl
// kernel.bpf_stats_enabled is 1, or a BpfStatsSession of this process is alive. (The sysctl reads back
// only what was written to it, not descriptors held by other processes, which also turn collection on.)
bool BpfStatsEnabled();

// Turns statistics collection on for as long as this object lives (BPF_ENABLE_STATS), without touching
// the sysctl: collection stops by itself when the harness exits, even after a crash.
class BpfStatsSession {
 public:
  // Throws kmesh::Error when the kernel refuses (EPERM: needs CAP_SYS_ADMIN).
  static BpfStatsSession Start();
  ~BpfStatsSession();
  BpfStatsSession(BpfStatsSession&& other) noexcept : fd_(std::move(other.fd_)) {}
  BpfStatsSession& operator=(BpfStatsSession&&) = delete;
  BpfStatsSession(const BpfStatsSession&) = delete;
  BpfStatsSession& operator=(const BpfStatsSession&) = delete;

 private:
  explicit BpfStatsSession(UniqueFd fd);
  UniqueFd fd_;
};

}  // namespace kmesh::bpf_probe
