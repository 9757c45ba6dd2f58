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

}  // namespace kmesh::defaults
