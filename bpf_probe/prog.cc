#include "bpf_probe/prog.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <atomic>
#include <cerrno>
#include <fstream>

#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::bpf_probe {

std::string ProgStats::Describe() const {
  if (!collected && run_cnt == 0) {
    return "no run statistics: kernel.bpf_stats_enabled is 0 and no statistics session is open (turn it on "
           "with `sysctl -w kernel.bpf_stats_enabled=1`, or hold a BpfStatsSession while traffic flows)";
  }
  std::string s = "ran " + std::to_string(run_cnt) + " times, " + std::to_string(run_time_ns) + " ns total";
  if (run_cnt) s += " (avg " + std::to_string(run_time_ns / run_cnt) + " ns)";
  if (!collected) s += "; collection is not known to be on now, so these counts may be stale";
  return s;
}

std::string ProgramInfo::TypeName() const {
  const char* n = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(type));
  return n ? n : "type " + std::to_string(type);
}

ProgramInfo ReadProgramInfo(int fd) {
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) ThrowBpf("read BPF program info", errno, BpfNeeds::kBpf);
  ProgramInfo p;
  // Second call for the map ids, now that we know how many there are.
  std::vector<uint32_t> ids(info.nr_map_ids);
  if (!ids.empty()) {
    bpf_prog_info again{};
    again.nr_map_ids = static_cast<__u32>(ids.size());
    again.map_ids = reinterpret_cast<__u64>(ids.data());
    len = sizeof again;
    if (bpf_obj_get_info_by_fd(fd, &again, &len) != 0) {
      ThrowBpf("read map ids of BPF program " + std::to_string(info.id), errno, BpfNeeds::kBpf);
    }
    ids.resize(std::min<size_t>(ids.size(), again.nr_map_ids));
    info = again;
  }
  p.id = info.id;
  p.name = info.name;
  p.type = info.type;
  p.tag = HexBytes(info.tag, BPF_TAG_SIZE);
  p.map_ids = std::move(ids);
  p.btf_id = info.btf_id;
  p.jited = info.jited_prog_len > 0;
  p.stats.collected = BpfStatsEnabled();
  p.stats.run_cnt = info.run_cnt;
  p.stats.run_time_ns = info.run_time_ns;
  p.stats.recursion_misses = info.recursion_misses;
  return p;
}

UniqueFd OpenProgramById(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      throw Error("BPF program id " + std::to_string(id) + " does not exist (`bpftool prog list` shows the "
                  "programs loaded now)");
    }
    ThrowBpf("open BPF program id " + std::to_string(id), err, BpfNeeds::kSysAdmin);
  }
  return UniqueFd(fd);
}

ProgramInfo ReadProgramById(uint32_t id) {
  UniqueFd fd = OpenProgramById(id);
  return ReadProgramInfo(fd.get());
}

namespace {
std::atomic<int> g_live_sessions{0};
}  // namespace

bool BpfStatsEnabled() {
  if (g_live_sessions > 0) return true;
  std::ifstream f("/proc/sys/kernel/bpf_stats_enabled");
  int v = 0;
  return (f >> v) && v != 0;
}

BpfStatsSession BpfStatsSession::Start() {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) ThrowBpf("turn on BPF run statistics (BPF_ENABLE_STATS)", errno, BpfNeeds::kSysAdmin);
  return BpfStatsSession(UniqueFd(fd));
}

BpfStatsSession::BpfStatsSession(UniqueFd fd) : fd_(std::move(fd)) { ++g_live_sessions; }

BpfStatsSession::~BpfStatsSession() {
  if (fd_.valid()) --g_live_sessions;
}

}  // namespace kmesh::bpf_probe
