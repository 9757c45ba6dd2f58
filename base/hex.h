// Hex as the project prints it: Hex32 for a 32-bit value as the kernel's tools print it, HexBytes for bytes;
// and the one way back, BytesFromHex.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// Hex digits (either case) to bytes. nullopt for an odd number of digits (`bad` then = hex.size()) or a
// digit that is not hex (`bad` = its index): the caller names the field, never echoing key material.
inline std::optional<std::vector<uint8_t>> BytesFromHex(std::string_view hex, size_t* bad = nullptr) {
  size_t unused = 0;
  size_t& at = bad != nullptr ? *bad : unused;
  if (hex.size() % 2 != 0) {
    at = hex.size();
    return std::nullopt;
  }
  std::vector<uint8_t> out(hex.size() / 2);
  for (at = 0; at < hex.size(); ++at) {
    const char c = hex[at];
    const int v = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (v < 0) return std::nullopt;
    out[at / 2] = static_cast<uint8_t>(out[at / 2] << 4 | v);
  }
  return out;
}

}  // namespace kmesh
