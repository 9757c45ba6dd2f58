// IPsec identifiers as the kernel's xfrm holds them and Kmesh sets them: the SPI and the mark, with
// Kmesh's two marks from the ABI header (bpf_probe/kmesh_abi.h; Kmesh pkg/constants).
#pragma once

#include <cstdint>
#include <string>

#include "base/hex.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::net {

// Security Parameter Index, host order. Printed the way iproute2 does: 0x00000002.
struct Spi {
  uint32_t value = 0;
  std::string ToString() const { return Hex32(value); }
  bool operator==(const Spi& o) const { return value == o.value; }
  bool operator!=(const Spi& o) const { return value != o.value; }
  bool operator<(const Spi& o) const { return value < o.value; }
};

// A mark and its mask (policy mark, state mark, state output-mark). Printed "0xd0/0xffffffff".
struct Mark {
  uint32_t value = 0;
  uint32_t mask = 0;
  std::string ToString() const { return Hex32(value, false) + "/" + Hex32(mask, false); }
  bool operator==(const Mark& o) const { return value == o.value && mask == o.mask; }
  bool operator!=(const Mark& o) const { return !(*this == o); }
};

// What Kmesh's tc_mark_encrypt sets on pod egress to a peer node (the out policy's mark).
inline constexpr Mark kEncryptMark{KM_XFRM_ENCRYPT_MARK, KM_XFRM_MARK_MASK};
// What Kmesh's ingress state sets as output-mark once decrypted (the in/fwd policies' mark).
inline constexpr Mark kDecryptedMark{KM_XFRM_DECRYPTED_MARK, KM_XFRM_MARK_MASK};

}  // namespace kmesh::net
