#include "base/runfiles.h"

#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "base/error.h"

namespace kmesh {
namespace {

bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

}  // namespace

std::string Runfile(const std::string& rel) {
  std::vector<std::string> roots;
  for (const char* var : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* v = std::getenv(var); v && *v) roots.push_back(v);
  }
  if (std::string exe = SelfExe(); !exe.empty()) roots.push_back(exe + ".runfiles");
  std::string tried;
  for (const auto& root : roots) {
    const std::string p = root + "/kmesh_e2e/" + rel;
    if (Exists(p)) return p;
    tried += "\n  " + p;
  }
  // Started from the workspace (e.g. `bazel-bin/tools/foo` in the source tree): fall back to bazel-bin.
  for (const std::string& p : {"bazel-bin/" + rel, rel}) {
    if (Exists(p)) {
      char real[4096];
      if (realpath(p.c_str(), real)) return real;
    }
    tried += "\n  " + p;
  }
  throw Error("runfile " + rel + " not found; looked in:" + tried +
              "\n  (is it in the target's data = [...]?)");
}

}  // namespace kmesh
