// kernel_probe: what the running kernel has and lacks for the kmesh-e2e lab, one line each, probed for
// real (a program loaded, a veth made, XDP attached natively, an ESP state added) inside a throwaway
// network namespace of its own (unshare), so nothing it creates reaches the machine's own namespace: the
// veth and the xfrm state die with it when the probe exits. tools/vm/run calls it to choose host or VM.
//
//   has   NAME: what proved it
//   lacks NAME: what failed, the kernel's own words
//   kernel RELEASE: has everything the lab needs | lacks NAME, NAME...
//
// Exit 0: nothing lacks; 1: something lacks; 2: the probe itself could not run (bad usage).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/xfrm.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "netns/netlink.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "xfrm/xfrm.h"

namespace {

using kmesh::netns::NetlinkError;
using kmesh::netns::NetlinkMessage;
using kmesh::netns::NetlinkSocket;
using kmesh::netns::NetnsRef;

struct Capability {
  std::string name;
  bool has = false;
  std::string detail;
};

std::vector<Capability> g_found;

void Has(const std::string& name, const std::string& detail) { g_found.push_back({name, true, detail}); }
void Lacks(const std::string& name, const std::string& detail) { g_found.push_back({name, false, detail}); }

std::string Errno(int err) { return std::string(strerror(err)) + " (" + kmesh::netns::ErrnoName(err) + ")"; }

std::string Why(const NetlinkError& e) {
  return (e.extack().empty() ? "" : e.extack() + ": ") + Errno(e.err());
}

// Filesystems the kernel can mount (bpffs, cgroup2), from /proc/filesystems: nothing is mounted.
bool KernelHasFilesystem(const std::string& fs) {
  std::ifstream f("/proc/filesystems");
  for (std::string line; std::getline(f, line);) {
    std::istringstream words(line);
    std::string last;
    for (std::string w; words >> w;) last = w;
    if (last == fs) return true;
  }
  return false;
}

void ProbeBtf() {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) {
    Lacks("BTF", "/sys/kernel/btf/vmlinux: " + Errno(errno));
    return;
  }
  Has("BTF", "/sys/kernel/btf/vmlinux (" + std::to_string(btf__type_cnt(vmlinux)) + " types)");
  btf__free(vmlinux);
}

// `r0 = XDP_PASS; exit`: returns the program's fd, or -1 with the kernel's reason recorded.
int ProbeBpf() {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "kmesh_probe", "GPL", insns, 2, nullptr);
  if (fd < 0) {
    Lacks("BPF", "loading an XDP program: " + Errno(-fd));
    return -1;
  }
  Has("BPF", "an XDP program loaded");
  return fd;
}

// A veth pair in this (throwaway) namespace, both ends up, made as the lab makes its veths (iproute2);
// returns the first end's ifindex or 0.
int ProbeVeth() {
  const char* kName = "kmprobe0";
  const char* kPeer = "kmprobe1";
  for (const auto& argv : std::vector<std::vector<std::string>>{
           {"ip", "link", "add", kName, "type", "veth", "peer", "name", kPeer},
           {"ip", "link", "set", kName, "up"},
           {"ip", "link", "set", kPeer, "up"}}) {
    const kmesh::netns::ProcessResult r = kmesh::netns::Run(argv);
    if (!r.ok()) {
      Lacks("veth", "creating a veth pair: " + r.Describe());
      return 0;
    }
  }
  Has("veth", "a veth pair created and up");
  return static_cast<int>(if_nametoindex(kName));
}

void ProbeXdpNative(int ifindex, int prog_fd) {
  if (ifindex == 0 || prog_fd < 0) {
    Lacks("XDP native on veth", std::string("not probed: needs ") + (prog_fd < 0 ? "BPF" : "veth"));
    return;
  }
  const int err = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_DRV_MODE, nullptr);
  if (err != 0) {
    Lacks("XDP native on veth", "attaching in driver mode: " + Errno(-err));
    return;
  }
  Has("XDP native on veth", "attached in driver mode (XDP_FLAGS_DRV_MODE), as the lab attaches xdp_authz");
}

// An xfrm SA dump: the xfrm netlink interface answers (xfrm_user).
bool ProbeXfrm(NetlinkSocket& xf) {
  try {
    NetlinkMessage m(XFRM_MSG_GETSA, NLM_F_DUMP);
    m.Put(xfrm_usersa_id{});
    xf.Request(m, "xfrm state dump");
  } catch (const NetlinkError& e) {
    Lacks("xfrm", "dumping xfrm states: " + Why(e));
    return false;
  }
  Has("xfrm", "xfrm netlink answers (xfrm_user)");
  return true;
}

// An ESP tunnel-mode state between two documentation addresses, built as the lab builds Kmesh's
// (xfrm::NewStateMessage), with `alg` as the AEAD (`key_bytes` random key, never printed; 128-bit ICV) or,
// for "", the null cipher and no authentication. Throws NetlinkError as the kernel answers.
void AddEspState(NetlinkSocket& xf, uint32_t spi, const std::string& alg, size_t key_bytes) {
  std::vector<uint8_t> key(key_bytes);
  std::random_device rd;
  for (auto& b : key) b = static_cast<uint8_t>(rd());
  kmesh::xfrm::EspTunnelState sa;
  sa.src = "192.0.2.1";
  sa.dst = "192.0.2.2";
  sa.spi = kmesh::net::Spi{spi};
  sa.aead_name = alg;
  sa.key = kmesh::ipsec::KeyMaterial(std::move(key));
  sa.icv_bits = 128;
  NetlinkMessage m = kmesh::xfrm::NewStateMessage(sa);
  if (alg.empty()) {
    xfrm_algo null_cipher{};
    std::strncpy(null_cipher.alg_name, "ecb(cipher_null)", sizeof null_cipher.alg_name - 1);
    m.AddAttr(XFRMA_ALG_CRYPT, &null_cipher, sizeof null_cipher);
  }
  xf.Request(m, "xfrm state add (esp, " + (alg.empty() ? "null cipher" : alg) + ")");
}

// ESP and GCM apart: rfc4106(gcm(aes)) as Kmesh uses it; when the kernel has no such AEAD, ESP itself is
// told by the type lookup that follows the algorithm's (EPROTONOSUPPORT: no esp4).
void ProbeEspGcm(NetlinkSocket& xf) {
  try {
    AddEspState(xf, 0x100, "rfc4106(gcm(aes))", 20);
    Has("ESP", "an ESP tunnel-mode state added");
    Has("GCM", "rfc4106(gcm(aes)) with a 160-bit key and 128-bit ICV, as Kmesh's states");
    return;
  } catch (const NetlinkError& e) {
    if (e.err() == EPROTONOSUPPORT) {
      Lacks("ESP", "adding an ESP state: " + Why(e));
      Has("GCM", "rfc4106(gcm(aes)) accepted as an AEAD (the state then failed for want of ESP)");
      return;
    }
    Lacks("GCM", "rfc4106(gcm(aes)) as an ESP AEAD: " + Why(e));
  }
  // No GCM: is there ESP at all? A state with the null cipher tells (the type lookup follows the cipher's).
  try {
    AddEspState(xf, 0x101, "", 0);
    Has("ESP", "an ESP tunnel-mode state added (with the null cipher)");
  } catch (const NetlinkError& e) {
    Lacks("ESP", (e.err() == EPROTONOSUPPORT ? "adding an ESP state: "
                                             : "not known: no cipher to add an ESP "
                                               "state with: ") +
                     Why(e));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    std::cerr << "usage: " << argv[0]
              << "\n  says what this kernel has and lacks for the kmesh-e2e lab (exit 0: nothing lacks, 1: "
                 "something does); run as root\n";
    return 2;
  }
  libbpf_set_print(nullptr);  // the probe says what failed itself
  utsname u{};
  uname(&u);

  // Everything below lives in a namespace of its own, so nothing reaches the machine's.
  const bool netns = unshare(CLONE_NEWNET) == 0;
  if (netns) {
    Has("netns", "a network namespace of its own (unshare CLONE_NEWNET)");
  } else {
    Lacks("netns", "unshare(CLONE_NEWNET): " + Errno(errno) + (geteuid() != 0 ? "; run as root" : ""));
  }
  ProbeBtf();
  kmesh::UniqueFd prog(ProbeBpf());
  (KernelHasFilesystem("bpf") ? Has : Lacks)("bpffs", "bpf in /proc/filesystems");
  (KernelHasFilesystem("cgroup2") ? Has : Lacks)("cgroup v2", "cgroup2 in /proc/filesystems");
  if (netns) {
    ProbeXdpNative(ProbeVeth(), prog.get());
    try {
      auto xf = NetlinkSocket::Open(NetnsRef::Self(), NETLINK_XFRM);
      if (ProbeXfrm(xf)) {
        ProbeEspGcm(xf);
      } else {
        Lacks("ESP", "not probed: needs xfrm");
        Lacks("GCM", "not probed: needs xfrm");
      }
    } catch (const kmesh::Error& e) {
      Lacks("xfrm", e.what());
    }
  } else {
    for (const char* name : {"veth", "XDP native on veth", "xfrm", "ESP", "GCM"})
      Lacks(name, "not probed: only ever probed in a namespace of its own");
  }

  std::string lacking;
  for (const auto& c : g_found) {
    std::cout << (c.has ? "has   " : "lacks ") << c.name << ": " << c.detail << "\n";
    if (!c.has) lacking += (lacking.empty() ? "" : ", ") + c.name;
  }
  std::cout << "kernel " << u.release << ": "
            << (lacking.empty() ? "has everything the lab needs" : "lacks " + lacking) << "\n";
  return lacking.empty() ? 0 : 1;
}
