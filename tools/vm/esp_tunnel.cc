#include "tools/vm/esp_tunnel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "base/defaults.h"
#include "base/error.h"
#include "base/names.h"
#include "base/privileges.h"
#include "base/unique_fd.h"
#include "ipsec/ipsec_secret.h"
#include "netns/netns.h"
#include "netns/process.h"

namespace kmesh::vm {
namespace {

using netns::Netns;
using netns::NetnsRef;
using Clock = std::chrono::steady_clock;

// Addresses only inside the two namespaces this check creates. The "pod" addresses sit on lo; the
// underlay is the veth; ESP runs between the underlay addresses in tunnel mode, as Kmesh's does.
struct Side {
  const char* label;
  const char* underlay;  // on the veth, /24
  const char* inner;     // on lo, /32
  const char* veth;
};
constexpr Side kLeft{"left", "192.168.77.1", "10.77.1.1", "veth0"};
constexpr Side kRight{"right", "192.168.77.2", "10.77.2.1", "veth1"};
constexpr uint16_t kPort = 7777;
constexpr const char* kAead = ipsec::IpsecSecret::kAeadName;

// One direction of the tunnel: its SA and the key it was programmed with.
struct Direction {
  const Side& from;
  const Side& to;
  xfrm::Spi spi;
  uint32_t reqid;
  ipsec::KeyMaterial key;
};

ipsec::KeyMaterial RandomKey() {
  std::vector<uint8_t> bytes(ipsec::IpsecSecret::kKeyBytes);
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  urandom.read(reinterpret_cast<char*>(bytes.data()), bytes.size());
  if (!urandom) throw Error("cannot read " + std::to_string(bytes.size()) + " bytes from /dev/urandom");
  return ipsec::KeyMaterial(std::move(bytes));
}

std::string StateLine(const Direction& d) {
  return "xfrm state add src " + std::string(d.from.underlay) + " dst " + d.to.underlay + " proto esp spi " +
         d.spi.ToString() + " reqid " + std::to_string(d.reqid) + " mode tunnel aead " + kAead + " 0x" +
         d.key.RevealHex() + " " + std::to_string(ipsec::IpsecSecret::kIcvBits);
}

std::string PolicyLine(const Direction& d, const char* dir) {
  return "xfrm policy add src " + std::string(d.from.inner) + "/32 dst " + d.to.inner + "/32 dir " + dir +
         " tmpl src " + d.from.underlay + " dst " + d.to.underlay + " proto esp reqid " +
         std::to_string(d.reqid) + " mode tunnel";
}

// Runs `ip -batch` inside `ns` with commands from a private file, so the keys never appear on a command
// line or in an error message (ip names the failing line by number).
void IpBatch(const Netns& ns, const std::vector<std::string>& lines, const std::string& what) {
  char path[] = "/tmp/kme2e-esp-batch-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) ThrowErrno("mkstemp for the ip batch file");
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  netns::ProcessOptions opts;
  opts.netns = ns.ref();
  netns::ProcessResult r;
  if (written) r = netns::Run({"ip", "-batch", path}, opts);
  unlink(path);
  if (!written) throw Error("cannot write the ip batch file " + std::string(path));
  if (r.ok()) return;
  const std::string err = r.err.empty() ? r.out : r.err;
  if (err.find("AEAD algorithm not found") != std::string::npos ||
      err.find("Protocol not supported") != std::string::npos ||
      err.find("unable to initialize cryptographic") != std::string::npos) {
    throw Error("this kernel cannot build the ESP tunnel: adding the " + std::string(kAead) +
                " state in " + ns.name() + " failed: " + err +
                "This kernel lacks ESP or GCM. Run through tools/vm/run, which boots a kernel that has them: "
                "tools/vm/run -- <this command>");
  }
  throw Error(what + " in " + ns.name() + " failed: " + r.Describe());
}

void SetUpLinks(const Netns& left, const Netns& right) {
  netns::RunIn(left.ref(), {"ip", "link", "add", kLeft.veth, "type", "veth", "peer", "name", kRight.veth,
                            "netns", right.name()});
  for (auto [ns, side, peer] : {std::tuple{&left, &kLeft, &kRight}, std::tuple{&right, &kRight, &kLeft}}) {
    netns::RunIn(ns->ref(), {"ip", "link", "set", "lo", "up"});
    netns::RunIn(ns->ref(), {"ip", "addr", "add", std::string(side->inner) + "/32", "dev", "lo"});
    netns::RunIn(ns->ref(), {"ip", "addr", "add", std::string(side->underlay) + "/24", "dev", side->veth});
    netns::RunIn(ns->ref(), {"ip", "link", "set", side->veth, "up"});
    netns::RunIn(ns->ref(), {"ip", "route", "add", std::string(peer->inner) + "/32", "via", peer->underlay,
                             "src", side->inner});
  }
}

sockaddr_in Addr(const char* ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) throw Error(std::string("bad IPv4 address ") + ip);
  return a;
}

// Waits for `events` on fd until the deadline; throws naming `what` when it does not come.
void WaitFor(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw Error("timed out waiting for " + what);
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return;
    if (n < 0 && errno != EINTR) ThrowErrno("poll while waiting for " + what);
  }
}

void SendAll(int fd, const std::string& data, Clock::time_point deadline, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    WaitFor(fd, POLLOUT, deadline, what);
    ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n < 0) ThrowErrno(what);
    done += n;
  }
}

std::string RecvExactly(int fd, size_t size, Clock::time_point deadline, const std::string& what) {
  std::string got;
  char buf[4096];
  while (got.size() < size) {
    WaitFor(fd, POLLIN, deadline, what);
    ssize_t n = recv(fd, buf, std::min(sizeof(buf), size - got.size()), 0);
    if (n < 0) ThrowErrno(what);
    if (n == 0) throw Error(what + ": the peer closed the connection after " + std::to_string(got.size()) +
                            " of " + std::to_string(size) + " bytes");
    got.append(buf, n);
  }
  return got;
}

// TCP from left's inner address to right's, `round_trips` messages echoed back. Sockets are created
// inside their namespace (RunIn) and keep it, so the whole exchange runs on this thread.
uint64_t EchoTraffic(const Netns& left, const Netns& right, int round_trips) {
  const std::string flow = std::string(kLeft.inner) + " -> " + kRight.inner + ":" + std::to_string(kPort);
  UniqueFd listener(netns::RunIn(right.ref(), [] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) ThrowErrno("socket in the right namespace");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = Addr(kRight.inner, kPort);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 || listen(fd, 1) < 0) {
      int err = errno;
      close(fd);
      ThrowErrno(std::string("listen on ") + kRight.inner + ":" + std::to_string(kPort), err);
    }
    return fd;
  }));
  UniqueFd client(netns::RunIn(left.ref(), [] {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) ThrowErrno("socket in the left namespace");
    return fd;
  }));
  sockaddr_in dst = Addr(kRight.inner, kPort);
  if (connect(client.get(), reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) < 0 && errno != EINPROGRESS) {
    ThrowErrno("connect " + flow);
  }
  // A handshake that must succeed (not a deny probe): the response bound, as the SYN crosses ESP on an
  // emulated CPU.
  auto deadline = Clock::now() + defaults::ResponseTimeout();
  WaitFor(client.get(), POLLOUT, deadline, "TCP connect " + flow + " (SYN through the tunnel)");
  int soerr = 0;
  socklen_t len = sizeof(soerr);
  getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
  if (soerr != 0) ThrowErrno("TCP connect " + flow, soerr);
  WaitFor(listener.get(), POLLIN, deadline, "accept " + flow);
  UniqueFd server(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (server.get() < 0) ThrowErrno("accept " + flow);

  uint64_t echoed = 0;
  for (int i = 0; i < round_trips; ++i) {
    const std::string msg = "kmesh-e2e esp round trip " + std::to_string(i) + std::string(200, 'x');
    auto until = Clock::now() + defaults::ResponseTimeout();
    const std::string step = "round trip " + std::to_string(i) + " of " + flow;
    SendAll(client.get(), msg, until, step + " (client send)");
    std::string at_server = RecvExactly(server.get(), msg.size(), until, step + " (server receive)");
    SendAll(server.get(), at_server, until, step + " (server echo)");
    std::string back = RecvExactly(client.get(), msg.size(), until, step + " (client receive)");
    if (back != msg) throw Error(step + ": the echo differs from what was sent");
    echoed += back.size();
  }
  return echoed;
}

const xfrm::XfrmState* FindState(const std::vector<xfrm::XfrmState>& states, const Direction& d) {
  for (const auto& s : states) {
    if (s.proto == IPPROTO_ESP && s.spi == d.spi && s.dst == d.to.underlay) return &s;
  }
  return nullptr;
}

}  // namespace

std::string EspTunnelReport::ToText() const {
  std::ostringstream o;
  o << "ESP tunnel " << aead << ": " << round_trips << " TCP round trips, " << bytes_echoed
    << " bytes echoed intact\n";
  for (const auto& sa : sas) {
    o << "  " << sa.side << " (" << sa.netns << ") " << sa.direction << ": " << sa.state.Id() << " key "
      << sa.state.aead_key.ForDisplay() << ": " << sa.state.cur_packets << " packets, " << sa.state.cur_bytes
      << " bytes\n";
  }
  return o.str();
}

EspTunnelReport RunEspTunnelCheck(const EspTunnelOptions& options) {
  if (std::string missing = MissingKernelPrivileges(); !missing.empty()) {
    throw Error("the ESP tunnel check needs root: " + missing);
  }
  if (options.round_trips < 1) throw Error("round_trips must be at least 1");
  Netns left = Netns::Create("esp-left");
  Netns right = Netns::Create("esp-right");
  SetUpLinks(left, right);

  const Direction to_right{kLeft, kRight, xfrm::Spi{0x101}, 1, RandomKey()};
  const Direction to_left{kRight, kLeft, xfrm::Spi{0x102}, 2, RandomKey()};
  for (auto [ns, out, in] : {std::tuple{&left, &to_right, &to_left}, std::tuple{&right, &to_left, &to_right}}) {
    std::vector<std::string> lines = {StateLine(*out), StateLine(*in)};
    if (options.install_policies) {
      lines.push_back(PolicyLine(*out, "out"));
      lines.push_back(PolicyLine(*in, "in"));
    }
    IpBatch(*ns, lines, "adding the ESP states and policies");
  }

  EspTunnelReport report;
  report.aead = kAead;
  report.round_trips = options.round_trips;
  report.bytes_echoed = EchoTraffic(left, right, options.round_trips);

  const auto left_states = xfrm::DumpStates(left.ref());
  const auto right_states = xfrm::DumpStates(right.ref());
  struct Expect {
    const Netns* ns;
    const char* side;
    const std::vector<xfrm::XfrmState>* states;
    const Direction* d;
    const char* direction;
  };
  const Expect expects[] = {{&left, "left", &left_states, &to_right, "out"},
                            {&left, "left", &left_states, &to_left, "in"},
                            {&right, "right", &right_states, &to_left, "out"},
                            {&right, "right", &right_states, &to_right, "in"}};
  std::string problems;
  for (const auto& e : expects) {
    const xfrm::XfrmState* s = FindState(*e.states, *e.d);
    if (s == nullptr) {
      problems += "\n  " + std::string(e.side) + " (" + e.ns->name() + "): no ESP state with spi " +
                  e.d->spi.ToString() + " dst " + e.d->to.underlay + " (the kernel dropped it?)";
      continue;
    }
    if (s->aead_name != kAead || s->aead_key != e.d->key) {
      problems += "\n  " + std::string(e.side) + " (" + e.ns->name() + "): " + s->Id() + " holds " +
                  s->aead_name + " key " + s->aead_key.ForDisplay() + "; expected " + kAead + " key " +
                  e.d->key.ForDisplay();
    }
    if (s->cur_packets < static_cast<uint64_t>(options.round_trips)) {
      problems += "\n  " + std::string(e.side) + " (" + e.ns->name() + ") " + e.direction + ": " + s->Id() +
                  " counted " + std::to_string(s->cur_packets) + " packets after " +
                  std::to_string(options.round_trips) + " TCP round trips " + e.d->from.inner + " -> " +
                  e.d->to.inner + "; expected at least " + std::to_string(options.round_trips);
    }
    report.sas.push_back(SaCount{e.side, e.ns->name(), e.direction, *s});
  }
  if (!problems.empty()) {
    throw Error("the TCP traffic (" + std::to_string(report.bytes_echoed) +
                " bytes echoed) bypassed ESP or was not counted:" + problems +
                "\n  Look at the policies (ip -n <netns> xfrm policy): without a matching dir out/in policy the "
                "kernel sends plaintext and the states count nothing.");
  }
  return report;
}

}  // namespace kmesh::vm
