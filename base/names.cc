#include "base/names.h"

#include "base/mounts.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace kmesh {

std::string UniqueName(const std::string& label) {
  static std::atomic<unsigned> counter{0};
  return std::string(kNamePrefix) + std::to_string(getpid()) + "-" + label + "-" +
         std::to_string(counter++);
}

pid_t OwnerPid(const std::string& name) {
  const std::string prefix = kNamePrefix;
  if (name.compare(0, prefix.size(), prefix) != 0) return -1;
  const char* start = name.c_str() + prefix.size();
  char* end = nullptr;
  long pid = std::strtol(start, &end, 10);
  if (end == start || *end != '-' || pid <= 0) return -1;
  return static_cast<pid_t>(pid);
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

std::vector<std::string> SweepStaleFolders(const std::string& parent, const std::string& label) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    const pid_t owner = OwnerPid(name);
    if (owner <= 0 || !ProcessGone(owner) || name.find("-" + label + "-") == std::string::npos) continue;
    if (!e.is_directory(ec) || HasMountUnder(e.path().string())) continue;
    std::error_code rm;
    std::filesystem::remove_all(e.path(), rm);
    if (!rm) removed.push_back(e.path().string());
  }
  return removed;
}

ScratchDir::ScratchDir(const std::string& label) : path("/tmp/" + UniqueName(label)) {
  std::filesystem::create_directories(path);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace kmesh
