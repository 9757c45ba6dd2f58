// Errors of bpf(2) calls that tell the reader what to do: EPERM names the capability the call needs.
#pragma once

#include <string>

namespace kmesh::bpf_probe {

// What a bpf(2) command needs, for the EPERM message.
enum class BpfNeeds {
  kSysAdmin,  // BPF_*_GET_NEXT_ID, BPF_*_GET_FD_BY_ID: CAP_SYS_ADMIN
  kBpf,       // map create, lookups on fds we own: CAP_BPF (or CAP_SYS_ADMIN)
  kNetAdmin,  // loading or attaching XDP: CAP_BPF + CAP_NET_ADMIN
  kFile,      // BPF_OBJ_GET on a pin: read permission on the pin and a mounted bpffs
};

// Throws kmesh::Error "<what>: <strerror(err)>", plus which capability is missing for EPERM/EACCES.
[[noreturn]] void ThrowBpf(const std::string& what, int err, BpfNeeds needs);

// The capability sentence alone (used by the tool's top-level error handler too).
std::string CapabilityHint(BpfNeeds needs);

}  // namespace kmesh::bpf_probe
