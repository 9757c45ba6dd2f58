#include "base/privileges.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace kmesh {
namespace {

constexpr int kCapNetAdmin = 12;
constexpr int kCapSysAdmin = 21;
constexpr int kCapBpf = 39;

uint64_t EffectiveCaps() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

}  // namespace

std::string MissingKernelPrivileges() {
  const uint64_t caps = EffectiveCaps();
  std::vector<std::string> missing;
  if (!(caps & (1ULL << kCapNetAdmin))) missing.push_back("CAP_NET_ADMIN");
  if (!(caps & (1ULL << kCapSysAdmin))) missing.push_back("CAP_SYS_ADMIN");
  if (!(caps & (1ULL << kCapBpf)) && !(caps & (1ULL << kCapSysAdmin))) missing.push_back("CAP_BPF");
  if (missing.empty()) return "";
  std::string list;
  for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
  return "this test needs root (CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN) to make network namespaces, load "
         "BPF and program xfrm; the process lacks " + list + ". Run it as root (sudo bazel test ...).";
}

}  // namespace kmesh
