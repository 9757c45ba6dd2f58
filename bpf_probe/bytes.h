// Raw bytes of BPF keys and values: an owning buffer and a non-owning view (C++17 has no std::span).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace kmesh::bpf_probe {

using Bytes = std::vector<uint8_t>;

struct ByteView {
  const uint8_t* data = nullptr;
  size_t size = 0;

  ByteView() = default;
  ByteView(const uint8_t* d, size_t n) : data(d), size(n) {}
  ByteView(const Bytes& b) : data(b.data()), size(b.size()) {}  // NOLINT: implicit on purpose
  const uint8_t& operator[](size_t i) const { return data[i]; }
  ByteView sub(size_t offset, size_t n) const { return ByteView(data + offset, n); }
  Bytes ToBytes() const { return Bytes(data, data + size); }
};

// The host-order integer of type T at `off`, or 0 where `b` is too short to hold one (callers that must
// tell a short value apart check the size first).
template <typename T>
T ReadHost(ByteView b, size_t off) {
  T v = 0;
  if (off + sizeof(T) <= b.size) std::memcpy(&v, b.data + off, sizeof(T));
  return v;
}

// "0a f4 01 05": for error messages and text output.
std::string HexSpaced(ByteView b);

}  // namespace kmesh::bpf_probe
