#include "bpf_probe/test_run.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::bpf_probe {
namespace {

constexpr size_t kEthLen = 14, kIp4Len = 20, kIp6Len = 40, kTcpLen = 20;
constexpr uint8_t kProtoTcp = 6;

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}

// One's-complement sum of big-endian 16-bit words (RFC 1071), not yet folded.
uint32_t Sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

std::string ToString(XdpAction a) {
  switch (a) {
    case XdpAction::kAborted: return "ABORTED";
    case XdpAction::kDrop: return "DROP";
    case XdpAction::kPass: return "PASS";
    case XdpAction::kTx: return "TX";
    case XdpAction::kRedirect: return "REDIRECT";
  }
  return "ACTION(" + std::to_string(static_cast<uint32_t>(a)) + ")";
}

Bytes BuildTcpSyn(const net::Tuple& t) {
  if (t.src.ip.family() != t.dst.ip.family()) {
    throw Error("cannot build a SYN for " + t.ToString() + ": source and destination are of different IP families");
  }
  const bool v4 = t.src.ip.is_v4();
  const size_t ip_len = v4 ? kIp4Len : kIp6Len;
  Bytes f(kEthLen + ip_len + kTcpLen, 0);
  // Ethernet: locally administered MACs; the ethertype says IPv4/IPv6 (Kmesh reads the IP nibble anyway).
  const uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x02}, smac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::memcpy(&f[0], dmac, 6);
  std::memcpy(&f[6], smac, 6);
  Put16(&f[12], v4 ? 0x0800 : 0x86dd);
  uint8_t* ip = &f[kEthLen];
  uint8_t* tcp = ip + ip_len;
  uint32_t pseudo = 0;
  if (v4) {
    ip[0] = 0x45;  // version 4, IHL 5 (20 bytes)
    Put16(ip + 2, static_cast<uint16_t>(kIp4Len + kTcpLen));
    Put16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = kProtoTcp;
    std::memcpy(ip + 12, t.src.ip.data(), 4);
    std::memcpy(ip + 16, t.dst.ip.data(), 4);
    Put16(ip + 10, Fold(Sum16(ip, kIp4Len)));
    pseudo = Sum16(ip + 12, 8);
  } else {
    ip[0] = 0x60;
    Put16(ip + 4, static_cast<uint16_t>(kTcpLen));
    ip[6] = kProtoTcp;
    ip[7] = 64;
    std::memcpy(ip + 8, t.src.ip.data(), 16);
    std::memcpy(ip + 24, t.dst.ip.data(), 16);
    pseudo = Sum16(ip + 8, 32);
  }
  pseudo += kProtoTcp + static_cast<uint32_t>(kTcpLen);
  Put16(tcp + 0, t.src.port);
  Put16(tcp + 2, t.dst.port);
  Put32(tcp + 4, 0x4b4d4553);  // initial sequence number ("KMES")
  tcp[12] = 0x50;              // data offset 5 words
  tcp[13] = 0x02;              // SYN
  Put16(tcp + 14, 64240);      // window
  Put16(tcp + 16, Fold(Sum16(tcp, kTcpLen, pseudo)));
  return f;
}

XdpTestRun TestRunXdpFrame(int prog_fd, ByteView frame) {
  Bytes out(frame.size + 256);
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data, .data_out = out.data(),
              .data_size_in = static_cast<__u32>(frame.size), .data_size_out = static_cast<__u32>(out.size()),
              .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    ThrowBpf("BPF_PROG_TEST_RUN of XDP program fd " + std::to_string(prog_fd), errno, BpfNeeds::kBpf);
  }
  return XdpTestRun{static_cast<XdpAction>(opts.retval), opts.duration};
}

XdpTestRun TestRunXdp(int prog_fd, const net::Tuple& t) {
  const Bytes frame = BuildTcpSyn(t);
  return TestRunXdpFrame(prog_fd, ByteView(frame));
}

}  // namespace kmesh::bpf_probe
