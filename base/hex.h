// Hex32: a 32-bit value as the kernel's tools print it: "0x00000002" (padded, as iproute2 prints an SPI)
// or "0xd0" (unpadded, as it prints a mark or flags).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace kmesh {

inline std::string Hex32(uint32_t v, bool padded = true) {
  char buf[16];
  std::snprintf(buf, sizeof buf, padded ? "0x%08x" : "0x%x", v);
  return buf;
}

}  // namespace kmesh
