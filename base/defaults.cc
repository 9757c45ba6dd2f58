#include "base/defaults.h"

#include <cstdlib>
#include <string>

namespace kmesh::defaults {

Millis Tunable(const char* name, Millis fallback) {
  const std::string var = std::string("KMESH_E2E_") + name + "_MS";
  const char* v = std::getenv(var.c_str());
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long long ms = std::strtoll(v, &end, 10);
  if (end == v || *end != '\0' || ms <= 0) return fallback;  // garbage: keep the safe default
  return Millis(ms);
}

int TunableCount(const char* name, int fallback) {
  const std::string var = std::string("KMESH_E2E_") + name;
  const char* v = std::getenv(var.c_str());
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (end == v || *end != '\0' || n <= 0 || n > 64) return fallback;  // garbage: keep the default
  return static_cast<int>(n);
}

}  // namespace kmesh::defaults
