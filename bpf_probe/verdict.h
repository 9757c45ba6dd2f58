// The verdict Kmesh caches in km_auth_res under a connection's tuple (net/tuple.h has the tuple and its
// 36-byte key).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bpf_probe/kmesh_abi.h"

namespace kmesh::bpf_probe {

// km_auth_res value. XDP drops on any non-zero value; Kmesh itself only writes 0 and 1, so other values
// are kept as they are and shown as UNKNOWN(n).
enum class Verdict : uint32_t { kAllow = KM_AUTH_ALLOW, kDeny = KM_AUTH_DENY };

// "ALLOW", "DENY", "UNKNOWN(7)".
std::string ToString(Verdict v);
// "allow" / "deny" (any case). Throws kmesh::Error naming the accepted values.
Verdict ParseVerdict(std::string_view text);
// True when xdp_authz drops a packet cached with this verdict (value != 0).
inline bool Drops(Verdict v) { return static_cast<uint32_t>(v) != 0; }

}  // namespace kmesh::bpf_probe
