// Hex as the project prints it: Hex32 for a 32-bit value as the kernel's tools print it, HexBytes for bytes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace kmesh {

// "0x00000002" (padded, as iproute2 prints an SPI) or "0xd0" (unpadded, as it prints a mark or flags).

inline std::string Hex32(uint32_t v, bool padded = true) {
  char buf[16];
  std::snprintf(buf, sizeof buf, padded ? "0x%08x" : "0x%x", v);
  return buf;
}

// Bytes as lowercase hex digits: "0af401", or with a separator between bytes, "0a f4 01".
inline std::string HexBytes(const uint8_t* data, size_t n, const char* separator = "") {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * (2 + std::strlen(separator)));
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) s += separator;
    s += kDigits[data[i] >> 4];
    s += kDigits[data[i] & 15];
  }
  return s;
}

}  // namespace kmesh
