#include "bpf_probe/bpf_error.h"

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/bytes.h"

namespace kmesh::bpf_probe {

std::string CapabilityHint(BpfNeeds needs) {
  switch (needs) {
    case BpfNeeds::kSysAdmin:
      return "listing BPF objects or opening them by id needs CAP_SYS_ADMIN; run as root";
    case BpfNeeds::kBpf:
      return "BPF map operations need CAP_BPF (or CAP_SYS_ADMIN on kernels before 5.8); run as root";
    case BpfNeeds::kNetAdmin:
      return "loading or attaching an XDP program needs CAP_BPF and CAP_NET_ADMIN; run as root";
    case BpfNeeds::kFile:
      return "opening a pinned BPF object needs read access to the pin on a mounted bpffs; run as root ("
             "note `ip netns exec` remounts /sys, hiding /sys/fs/bpf pins)";
  }
  return "";
}

void ThrowBpf(const std::string& what, int err, BpfNeeds needs) {
  std::string msg = what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES) msg += " (" + CapabilityHint(needs) + ")";
  throw Error(msg);
}

std::string HexSpaced(ByteView b) { return HexBytes(b.data, b.size, " "); }

}  // namespace kmesh::bpf_probe
