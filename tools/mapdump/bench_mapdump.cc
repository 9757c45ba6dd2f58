// bench_mapdump: kmesh-mapdump's JSON dump against `bpftool -j map dump`, the tool a person would use
// instead, on the same 100,000-entry hash map (36-byte tuple keys, u32 values, no BTF), in one run.
// Prints the wall and CPU time of each (medians of interleaved runs), the ratios, and each one's peak
// memory (VmHWM of the exec'd program, read at its exit through ptrace, so the launcher's own memory is
// not counted), and checks both outputs hold the same records. Not a test: `bazel run` it as root.
//
//   bazel run //tools/mapdump:bench_mapdump [-- --entries N --runs N]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/runfiles.h"
#include "base/unique_fd.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"

namespace {

using kmesh::Error;
using kmesh::UniqueFd;

struct RunResult {
  double seconds = 0;
  double cpu_seconds = 0;  // user + system, from wait4(): steadier than wall time on a busy machine
  long peak_kib = 0;  // VmHWM at exit
  int exit_code = -1;
};

long VmHwmKib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Runs argv with stdout to `out_path`, timing it and reading its peak RSS when it exits.
RunResult Measure(const std::vector<std::string>& argv, const std::string& out_path) {
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid < 0) kmesh::ThrowErrno("fork");
  if (pid == 0) {
    int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) _exit(126);
    close(fd);
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  RunResult r;
  int status = 0;
  bool options_set = false;
  // The child stops at its exec (SIGTRAP), where we ask to be told about its exit; there we read VmHWM.
  struct rusage ru {};
  while (wait4(pid, &status, 0, &ru) == pid) {
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      r.cpu_seconds = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
      break;
    }
    if (!WIFSTOPPED(status)) continue;
    int deliver = 0;
    if (!options_set && WSTOPSIG(status) == SIGTRAP) {
      ptrace(PTRACE_SETOPTIONS, pid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL));
      options_set = true;
    } else if (status >> 8 == (SIGTRAP | (PTRACE_EVENT_EXIT << 8))) {
      r.peak_kib = VmHwmKib(pid);
    } else {
      deliver = WSTOPSIG(status);
    }
    ptrace(PTRACE_CONT, pid, nullptr, reinterpret_cast<void*>(static_cast<long>(deliver)));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

// The records of a compact `[{...},{...}]` document, as strings, sorted: equal sets mean equal dumps.
std::vector<std::string> Records(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ']')) s.pop_back();
  if (!s.empty() && s.front() == '[') s.erase(0, 1);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find("},{", start);
    if (end == std::string::npos) end = s.size();
    else end += 1;
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

long FileSize(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t entries = 100000;
  int runs = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--entries") == 0) entries = static_cast<uint32_t>(std::atoi(argv[i + 1]));
    else if (std::strcmp(argv[i], "--runs") == 0) runs = std::max(1, std::atoi(argv[i + 1]));
  }
  try {
    // The map: Kmesh's km_auth_res shape (36-byte tuple key, u32 verdict, NO_PREALLOC), no BTF.
    LIBBPF_OPTS(bpf_map_create_opts, mopts, .map_flags = BPF_F_NO_PREALLOC);
    int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "kme2e_bench", KM_TUPLE_SIZE, 4, entries, &mopts);
    if (fd < 0) kmesh::ThrowErrno("create the benchmark map (run as root)");
    UniqueFd map_fd(fd);
    {
      std::vector<km_tuple> keys(entries);
      std::vector<uint32_t> values(entries);
      for (uint32_t i = 0; i < entries; ++i) {
        km_tuple& k = keys[i];
        std::memset(&k, 0, sizeof k);
        const uint32_t src = htonl(0x0a000000u | (i + 1));  // 10.0.0.1, 10.0.0.2, ...
        k.ipv4.saddr = src;
        k.ipv4.daddr = htonl(0x0af40207u);  // 10.244.2.7
        k.ipv4.sport = static_cast<uint16_t>(1024 + i % 60000);
        k.ipv4.dport = 8080;
        values[i] = i % 2;
      }
      __u32 count = entries;
      if (bpf_map_update_batch(fd, keys.data(), values.data(), &count, nullptr) != 0 || count != entries) {
        kmesh::ThrowErrno("fill the benchmark map");
      }
    }  // the launcher's buffers are gone before anything is measured
    const kmesh::bpf_probe::MapInfo info = kmesh::bpf_probe::ReadMapInfo(fd);
    const std::string id = std::to_string(info.id);

    char dir_tmpl[] = "/tmp/kme2e-bench-XXXXXX";
    if (mkdtemp(dir_tmpl) == nullptr) kmesh::ThrowErrno("mkdtemp");
    const std::string dir = dir_tmpl;
    const std::string ours_out = dir + "/kmesh-mapdump.json", theirs_out = dir + "/bpftool.json";
    const std::vector<std::string> ours = {kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "dump", id};
    const std::vector<std::string> theirs = {"bpftool", "-j", "map", "dump", "id", id};

    std::vector<double> ours_s, theirs_s, ours_cpu, theirs_cpu;
    long ours_peak = 0, theirs_peak = 0;
    for (int i = 0; i < runs; ++i) {  // interleaved, so drift hurts both alike
      const RunResult a = Measure(ours, ours_out);
      const RunResult b = Measure(theirs, theirs_out);
      if (a.exit_code != 0) throw Error("kmesh-mapdump exited " + std::to_string(a.exit_code));
      if (b.exit_code != 0) throw Error("bpftool exited " + std::to_string(b.exit_code));
      ours_s.push_back(a.seconds);
      theirs_s.push_back(b.seconds);
      ours_cpu.push_back(a.cpu_seconds);
      theirs_cpu.push_back(b.cpu_seconds);
      ours_peak = std::max(ours_peak, a.peak_kib);
      theirs_peak = std::max(theirs_peak, b.peak_kib);
    }
    const std::vector<std::string> ours_recs = Records(ours_out), theirs_recs = Records(theirs_out);
    const bool same = ours_recs == theirs_recs && ours_recs.size() == entries;
    const long ours_size = FileSize(ours_out), theirs_size = FileSize(theirs_out);
    unlink(ours_out.c_str());
    unlink(theirs_out.c_str());
    rmdir(dir.c_str());

    const double o = Median(ours_s), t = Median(theirs_s);
    const double oc = Median(ours_cpu), tc = Median(theirs_cpu);
    std::printf("map: id %u, %s, %u entries, key %u B, value %u B, no BTF; %d interleaved runs each, medians\n",
                info.id, info.TypeName().c_str(), entries, info.key_size, info.value_size, runs);
    std::printf("%-26s %10s %10s %10s %10s\n", "", "wall", "cpu", "peak RSS", "output");
    std::printf("%-26s %8.3f s %8.3f s %6.1f MiB %6.1f MiB\n", "kmesh-mapdump dump ID", o, oc, ours_peak / 1024.0,
                ours_size / 1048576.0);
    std::printf("%-26s %8.3f s %8.3f s %6.1f MiB %6.1f MiB\n", "bpftool -j map dump id ID", t, tc,
                theirs_peak / 1024.0, theirs_size / 1048576.0);
    std::printf("ratio (bpftool / kmesh-mapdump): wall %.1fx, cpu %.1fx\n", t / o, tc / oc);
    std::printf("target (>= 5x faster in wall time, < 32 MiB peak): %s\n",
                (t / o >= 5 && ours_peak < 32 * 1024) ? "met" : "NOT met");
    std::printf("check: both outputs hold the same %zu records (raw key and value bytes): %s\n", ours_recs.size(),
                same ? "yes" : "NO");
    return same ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_mapdump: %s\n", e.what());
    return 1;
  }
}
