// How the kube env writes durations in its messages, and reads its environment variables.
#pragma once

#include <chrono>
#include <cstdlib>
#include <string>

#include "base/hex.h"

namespace kmesh::kube {

// "5000 ms": a bound as the messages name it (next to its KMESH_E2E_<NAME>_MS).
inline std::string Ms(std::chrono::milliseconds m) { return std::to_string(m.count()) + " ms"; }

// "10s": a bound as kubectl's --request-timeout takes it (rounded up).
inline std::string Seconds(std::chrono::milliseconds m) {
  return std::to_string((m.count() + 999) / 1000) + "s";
}

// The variable's value, or `fallback` when it is unset or empty.
inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace kmesh::kube
