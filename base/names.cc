#include "base/names.h"

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

ScratchDir::ScratchDir(const std::string& label) : path("/tmp/" + UniqueName(label)) {
  std::filesystem::create_directories(path);
}

ScratchDir::~ScratchDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

}  // namespace kmesh
