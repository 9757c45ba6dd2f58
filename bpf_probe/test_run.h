// Running an XDP program on a crafted packet with BPF_PROG_TEST_RUN: no interface, no traffic, no
// namespace. The packet is what a client's first segment looks like on the server pod's interface: an
// Ethernet frame with an IPv4 (20-byte header, as Kmesh's parser assumes) or IPv6 header and a TCP SYN,
// checksums valid, ports in network order on the wire as always.
#pragma once

#include <cstdint>
#include <string>

#include "bpf_probe/bytes.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {

enum class XdpAction : uint32_t { kAborted = 0, kDrop = 1, kPass = 2, kTx = 3, kRedirect = 4 };

// "ABORTED", "DROP", "PASS", "TX", "REDIRECT", or "ACTION(n)".
std::string ToString(XdpAction a);

// Ethernet + IPv4/IPv6 + TCP SYN from `t` (src = client). Throws kmesh::Error when the families differ.
Bytes BuildTcpSyn(const net::Tuple& t);

struct XdpTestRun {
  XdpAction action = XdpAction::kAborted;
  uint32_t duration_ns = 0;  // average per run, as the kernel measured it
};

// Runs the XDP program `prog_fd` once on BuildTcpSyn(t). Throws kmesh::Error (with the capability on
// EPERM) when the kernel refuses the run.
XdpTestRun TestRunXdp(int prog_fd, const net::Tuple& t);
// Same, on any frame.
XdpTestRun TestRunXdpFrame(int prog_fd, ByteView frame);

}  // namespace kmesh::bpf_probe
