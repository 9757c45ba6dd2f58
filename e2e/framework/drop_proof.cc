#include "e2e/framework/drop_proof.h"

#include <arpa/inet.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/prog.h"
#include "bpf_probe/xdp.h"
#include "capture/capture.h"
#include "net/tuple.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kFin = 0x01, kRst = 0x04;

std::string Plural(size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// Run statistics on for as long as this process lives (BPF_ENABLE_STATS: released with the process, also
// after a crash). Started once: turning the kernel's static key on and off per probe would cost more than
// the counting. nullptr when the kernel refuses (no CAP_SYS_ADMIN).
const bpf_probe::BpfStatsSession* RunStats() {
  static const bpf_probe::BpfStatsSession* session = []() -> const bpf_probe::BpfStatsSession* {
    try {
      return new bpf_probe::BpfStatsSession(bpf_probe::BpfStatsSession::Start());
    } catch (const std::exception&) {
      return nullptr;
    }
  }();
  return session;
}

void Ethtool(int fd, const std::string& ifname, void* cmd, const char* what) {
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname.c_str());
  ifr.ifr_data = static_cast<char*>(cmd);
  if (ioctl(fd, SIOCETHTOOL, &ifr) != 0) ThrowErrno(std::string("ethtool ") + what + " of " + ifname);
}

}  // namespace

const char* ToString(DropStage s) { return s == DropStage::kSyn ? "syn" : "request"; }

// ---- XdpDropCounter ----

XdpDropCounter XdpDropCounter::Open(const netns::NetnsRef& ns, const std::string& ifname) {
  const std::string where = ifname + " in " + (ns.name().empty() ? ns.path() : ns.name());
  XdpDropCounter c;
  c.ifname_ = ifname;
  bool exists = true;
  c.fd_ = netns::RunIn(ns, [&] {
    exists = if_nametoindex(ifname.c_str()) != 0;
    return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  });
  if (c.fd_ < 0) ThrowErrno("XDP drop counter of " + where + ": socket");
  if (!exists) throw Error("XDP drop counter: no interface " + where);
  // How many statistics the driver has.
  std::vector<uint8_t> info_buf(sizeof(ethtool_sset_info) + sizeof(uint32_t));
  auto* info = reinterpret_cast<ethtool_sset_info*>(info_buf.data());
  info->cmd = ETHTOOL_GSSET_INFO;
  info->sset_mask = 1ULL << ETH_SS_STATS;
  Ethtool(c.fd_, ifname, info, "statistics count");
  if (!(info->sset_mask & (1ULL << ETH_SS_STATS))) {
    throw Error("XDP drop counter: the driver of " + where + " reports no statistics (ethtool -S)");
  }
  c.n_stats_ = info->data[0];
  // Their names.
  std::vector<uint8_t> strings_buf(sizeof(ethtool_gstrings) + size_t{c.n_stats_} * ETH_GSTRING_LEN);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(strings_buf.data());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_STATS;
  strings->len = c.n_stats_;
  Ethtool(c.fd_, ifname, strings, "statistics names");
  std::string names;
  for (uint32_t i = 0; i < c.n_stats_; ++i) {
    const std::string name(
        reinterpret_cast<const char*>(strings->data) + size_t{i} * ETH_GSTRING_LEN,
        strnlen(reinterpret_cast<const char*>(strings->data) + size_t{i} * ETH_GSTRING_LEN, ETH_GSTRING_LEN));
    unsigned q = 0;
    char rest[ETH_GSTRING_LEN] = {};
    // veth: "rx_queue_%u_xdp_drops" (drivers/net/veth.c veth_rq_stats_desc).
    if (std::sscanf(name.c_str(), "rx_queue_%u_%31s", &q, rest) == 2 && std::strcmp(rest, "xdp_drops") == 0) {
      c.indexes_.push_back(i);
    }
    if (i < 12) names += (names.empty() ? "" : ", ") + name;
  }
  if (c.indexes_.empty()) {
    throw Error("XDP drop counter: " + where + " has no rx_queue_N_xdp_drops statistic (a veth has; this " +
                "driver lists: " + names + (c.n_stats_ > 12 ? ", ..." : "") + ")");
  }
  return c;
}

XdpDropCounter::~XdpDropCounter() {
  if (fd_ >= 0) close(fd_);
}

XdpDropCounter::XdpDropCounter(XdpDropCounter&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      ifname_(std::move(o.ifname_)),
      n_stats_(o.n_stats_),
      indexes_(std::move(o.indexes_)) {}

uint64_t XdpDropCounter::Read() const {
  std::vector<uint8_t> buf(sizeof(ethtool_stats) + size_t{n_stats_} * sizeof(uint64_t));
  auto* stats = reinterpret_cast<ethtool_stats*>(buf.data());
  stats->cmd = ETHTOOL_GSTATS;
  stats->n_stats = n_stats_;
  Ethtool(fd_, ifname_, stats, "statistics");
  uint64_t sum = 0;
  for (uint32_t i : indexes_) {
    if (i < stats->n_stats) sum += stats->data[i];
  }
  return sum;
}

// ---- DropProof ----

std::string DropProof::Describe() const {
  const std::string what = stage == DropStage::kSyn ? "SYN" : "request";
  const std::string unit = stage == DropStage::kSyn ? "SYN" : "request packet";
  std::string facts;
  if (stage == DropStage::kRequest) {
    facts += handshake ? "handshake passed (the SYN reached " + pod_side + " and the pod answered), "
                       : "no handshake seen at the pod, ";
  }
  facts += Plural(sent, unit, unit + "s") + " left " + node_side + " toward the pod, " + pod_side +
           " (after XDP) received " + (arrived == 0 ? std::string("none") : std::to_string(arrived)) +
           (sent > 0 && marker_covers >= sent ? " though a later packet (the marker sent behind) reached it"
                                              : "") +
           ", " +
           (answered == 0 ? std::string("nothing came back")
                          : Plural(answered, "packet", "packets") + " came back from the pod") +
           ", its XDP drop count +" + std::to_string(xdp_drops);
  if (!xdp_program.empty()) {
    facts +=
        ", " + xdp_program + (xdp_runs ? " ran +" + std::to_string(*xdp_runs) : " (run count not collected)");
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "; %.1f ms", elapsed_ms);
  if (proven) return what + " dropped by XDP, proven by the kernel: " + facts + ms;
  std::string why;
  for (const auto& m : missing) why += (why.empty() ? "" : "; ") + m;
  return what + " drop by XDP not proven: " + why + " (" + facts + ms + ")";
}

nlohmann::json DropProof::ToJson() const {
  return {{"watched", true},
          {"stage", ToString(stage)},
          {"proven", proven},
          {"missing", missing},
          {"sent_toward_pod", sent},
          {"arrived_at_pod", arrived},
          {"answered_by_pod", answered},
          {"handshake", handshake},
          {"xdp_drops", xdp_drops},
          {"xdp_runs", xdp_runs ? nlohmann::json(*xdp_runs) : nlohmann::json(nullptr)},
          {"marker_covers", marker_covers},
          {"markers_sent", markers_sent},
          {"markers_arrived", markers_arrived},
          {"xdp_program", xdp_program},
          {"elapsed_ms", elapsed_ms},
          {"node_side", node_side},
          {"pod_side", pod_side},
          {"node_pcap", node_pcap},
          {"pod_pcap", pod_pcap},
          {"describe", Describe()}};
}

size_t StagePacketsSent(DropStage stage, const capture::CaptureSummary& node) {
  size_t n = 0;
  for (const auto& h : node.plaintext) {
    if (!h.toward_dst) continue;
    if (stage == DropStage::kSyn ? (h.tcp_flags & kSyn) && !(h.tcp_flags & kAck) : h.payload > 0) ++n;
  }
  return n;
}

void JudgeDrop(DropProof& p, const capture::CaptureSummary& node, const capture::CaptureSummary& pod) {
  const DropStage stage = p.stage;
  p.missing.clear();
  p.sent = p.arrived = p.answered = 0;
  p.waiting = false;
  auto is_syn = [](const capture::PlaintextHit& h) { return (h.tcp_flags & kSyn) && !(h.tcp_flags & kAck); };
  auto carries = [](const capture::PlaintextHit& h) { return h.payload > 0; };
  bool syn_arrived = false, syn_answered = false;
  for (const auto& h : pod.plaintext) {
    if (!h.toward_dst) continue;
    if (is_syn(h)) syn_arrived = true;
    if (stage == DropStage::kSyn ? is_syn(h) : carries(h)) ++p.arrived;
  }
  for (const auto& h : node.plaintext) {
    if (h.toward_dst) {
      if (stage == DropStage::kSyn ? is_syn(h) : carries(h)) ++p.sent;
    } else if ((h.tcp_flags & kSyn) && (h.tcp_flags & kAck)) {
      syn_answered = true;
      if (stage == DropStage::kSyn) ++p.answered;
    } else if (stage == DropStage::kSyn || carries(h) || (h.tcp_flags & (kFin | kRst))) {
      ++p.answered;
    }
  }
  p.handshake = syn_arrived && syn_answered;

  const std::string unit = stage == DropStage::kSyn ? "SYN" : "request packet";
  if (stage == DropStage::kRequest && !p.handshake) {
    p.missing.push_back("no handshake at the pod (SYN " + std::string(syn_arrived ? "" : "not ") +
                        "seen by " + p.pod_side + ", SYN-ACK " + (syn_answered ? "" : "not ") + "seen on " +
                        p.node_side + ")");
  }
  if (p.sent == 0) {
    p.missing.push_back("no " + unit + " of the tuple left " + p.node_side + " toward the pod");
  }
  if (p.arrived > 0) {
    p.missing.push_back(p.pod_side + " received " + Plural(p.arrived, unit, unit + "s") + ": XDP passed " +
                        (p.arrived == 1 ? "it" : "them"));
  }
  if (p.answered > 0) {
    p.missing.push_back("the pod answered (" + Plural(p.answered, "packet", "packets") + " back on " +
                        p.node_side + ")");
  }
  if (p.sent > 0 && p.arrived == 0 && p.xdp_drops < p.sent) {
    p.missing.push_back("the XDP drop count of " + p.pod_side + " moved by " + std::to_string(p.xdp_drops) +
                        ", fewer than the " + Plural(p.sent, unit, unit + "s") + " sent");
  }
  if (p.missing.empty() && p.marker_covers < p.sent) {
    // The ring between the veth's ends is first in, first out: until a packet sent after the last one of
    // the stage has reached the pod's taps, that one may still be on its way.
    p.waiting = true;
    p.missing.push_back(
        "no later packet has reached " + p.pod_side + " yet (the marker sent after " +
        (p.sent == 1 ? "the " + unit : "the last of the " + std::to_string(p.sent) + " " + unit + "s") +
        " toward the pod): " + (p.sent == 1 ? "it" : "they") + " may still be on the way");
  }
  p.proven = p.missing.empty();
}

// ---- PacketTap ----

namespace {

// Closing a packet socket waits for a network RCU grace period (packet_release: synchronize_net), 10-40 ms
// on a loaded machine, and nothing depends on when it happens: one thread closes them off the verdict's
// path. It lives as long as the process and closes what is queued before the process ends.
class SocketCloser {
 public:
  static SocketCloser& Get() {
    static SocketCloser closer;
    return closer;
  }
  void Close(int fd) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back(fd);
    }
    cv_.notify_one();
  }
  ~SocketCloser() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  SocketCloser() : thread_([this] { Run(); }) {}
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      const int fd = queue_.front();
      queue_.pop_front();
      l.unlock();
      close(fd);
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

// A packet socket on one interface that sees the packets of one tuple, read on demand on the caller's
// thread (so a caller that reads a counter and then drains knows every packet the kernel had delivered by
// then). Plain AF_PACKET rather than libpcap: libpcap's activation and its ring cost a network RCU grace
// period each (tens of ms on a loaded machine); a socket made with protocol 0, given its filter and then
// bound registers without one. The filter is compiled by libpcap; matches are saved as a .pcap.
class PacketTap {
 public:
  // kIn: only what the interface received; kBoth: also what it sent.
  // `marker`: also watch for the watch's UDP markers to the tuple's server (see XdpDropWatch) and note
  // which arrived ("" = not).
  PacketTap(const netns::NetnsRef& ns, const std::string& ifname, const net::Tuple& tuple, bool received_only,
            const std::string& pcap_path, const std::string& marker)
      : tuple_(tuple), received_only_(received_only), marker_(marker) {
    summary_.netns = ns.path();
    summary_.interface = ifname;
    summary_.direction = received_only ? "in" : "both";
    summary_.link_type = "EN10MB";
    summary_.filter = capture::PlaintextFilter(tuple) + " and port " + std::to_string(tuple.src.port);
    if (!marker.empty()) {
      summary_.filter = "(" + summary_.filter + ") or (udp and dst host " + tuple.dst.ip.ToString() + " and dst port " +
                        std::to_string(kMarkerPort) + ")";
    }
    const std::string what = "packet tap on " + ifname + " in " + (ns.name().empty() ? ns.path() : ns.name());
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, kSnaplen);
    bpf_program prog{};
    if (pcap_compile(dead, &prog, summary_.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
      const std::string msg = pcap_geterr(dead);
      pcap_close(dead);
      throw Error(what + ": filter '" + summary_.filter + "' does not compile: " + msg);
    }
    int err = 0;
    fd_ = netns::RunIn(ns, [&] {
      const unsigned index = if_nametoindex(ifname.c_str());
      if (index == 0) {
        err = ENODEV;
        return -1;
      }
      const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        err = errno;
        return -1;
      }
      sock_fprog fprog{static_cast<unsigned short>(prog.bf_len),
                       reinterpret_cast<sock_filter*>(prog.bf_insns)};
      const int on = 1;
      sockaddr_ll sll{};
      sll.sll_family = AF_PACKET;
      sll.sll_protocol = htons(ETH_P_ALL);
      sll.sll_ifindex = static_cast<int>(index);
      if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) != 0 ||
          setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0 ||
          bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
        err = errno;
        close(fd);
        return -1;
      }
      return fd;
    });
    pcap_freecode(&prog);
    if (fd_ < 0) {
      pcap_close(dead);
      if (err == ENODEV) throw Error(what + ": no such interface");
      ThrowErrno(what + (err == EPERM ? " (needs CAP_NET_RAW: run as root)" : ""), err);
    }
    if (!pcap_path.empty()) {
      dumper_ = pcap_dump_open(dead, pcap_path.c_str());
      if (dumper_ == nullptr) {
        const std::string msg = pcap_geterr(dead);
        pcap_close(dead);
        throw Error(what + ": cannot write " + pcap_path + ": " + msg);
      }
      summary_.pcap_path = pcap_path;
    }
    dead_ = dead;
  }
  ~PacketTap() { Close(); }
  PacketTap(const PacketTap&) = delete;
  PacketTap& operator=(const PacketTap&) = delete;

  // The UDP port markers go to (discard: nothing listens, the pod's kernel may answer port unreachable).
  static constexpr uint16_t kMarkerPort = 9;

  // The markers that arrived, by number.
  const std::vector<unsigned>& markers() const { return markers_; }

  // Reads every packet delivered so far, then returns the summary.
  const capture::CaptureSummary& Drain() {
    if (fd_ < 0) return summary_;
    uint8_t buf[kSnaplen];
    char control[CMSG_SPACE(sizeof(timespec))];
    while (summary_.packets < kMaxPackets) {
      sockaddr_ll from{};
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof from;
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      const ssize_t n = recvmsg(fd_, &msg, MSG_TRUNC | MSG_DONTWAIT);
      if (n < 0) break;  // EAGAIN: nothing more now
      if (received_only_ && from.sll_pkttype == PACKET_OUTGOING) continue;
      timespec ts{};
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS)
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      }
      const size_t caplen = std::min<size_t>(static_cast<size_t>(n), sizeof buf);
      OnPacket(ts, buf, caplen, static_cast<size_t>(n));
    }
    return summary_;
  }

  // Drains, closes the pcap file, hands the socket to the closer; the summary stays.
  const capture::CaptureSummary& Close() {
    Drain();
    if (dumper_ != nullptr) {
      pcap_dump_close(dumper_);
      dumper_ = nullptr;
    }
    if (dead_ != nullptr) {
      pcap_close(dead_);
      dead_ = nullptr;
    }
    if (fd_ >= 0) {
      SocketCloser::Get().Close(fd_);
      fd_ = -1;
    }
    return summary_;
  }

 private:
  static constexpr size_t kSnaplen = 128;  // headers only
  static constexpr size_t kMaxPackets = 1000;

  void OnPacket(const timespec& ts, const uint8_t* p, size_t caplen, size_t len) {
    const double t = ts.tv_sec + ts.tv_nsec / 1e9;
    if (dumper_ != nullptr) {
      pcap_pkthdr h{};
      h.ts.tv_sec = ts.tv_sec;
      h.ts.tv_usec = ts.tv_nsec / 1000;
      h.caplen = static_cast<bpf_u_int32>(caplen);
      h.len = static_cast<bpf_u_int32>(len);
      pcap_dump(reinterpret_cast<u_char*>(dumper_), &h, p);
    }
    if (summary_.packets == 0) summary_.first_time = t;
    summary_.last_time = t;
    ++summary_.packets;
    // Ethernet, IPv4 or IPv6 (no extension headers), TCP.
    if (caplen < 14) return;
    const uint16_t proto = static_cast<uint16_t>(p[12] << 8 | p[13]);
    size_t l4 = 0, ip_end = 0;
    int family = 0;
    if (!marker_.empty() && caplen > marker_.size()) {
      const auto* at = static_cast<const uint8_t*>(memmem(p, caplen, marker_.data(), marker_.size()));
      if (at != nullptr) {
        const size_t off = static_cast<size_t>(at - p) + marker_.size();
        markers_.push_back(static_cast<unsigned>(std::strtoul(
            std::string(reinterpret_cast<const char*>(p) + off, caplen - off).c_str(), nullptr, 10)));
        return;
      }
    }
    if (proto == ETH_P_IP && caplen >= 14 + 20 && p[14 + 9] == IPPROTO_TCP) {
      family = AF_INET;
      l4 = 14 + (p[14] & 0x0f) * 4u;
      ip_end = 14 + (static_cast<size_t>(p[16]) << 8 | p[17]);
    } else if (proto == ETH_P_IPV6 && caplen >= 14 + 40 && p[14 + 6] == IPPROTO_TCP) {
      family = AF_INET6;
      l4 = 14 + 40;
      ip_end = l4 + (static_cast<size_t>(p[18]) << 8 | p[19]);
    } else {
      return;
    }
    if (caplen < l4 + 14) return;
    const net::Endpoint src{family == AF_INET ? net::IpAddr::V4(p + 14 + 12) : net::IpAddr::V6(p + 14 + 8),
                            static_cast<uint16_t>(p[l4] << 8 | p[l4 + 1])};
    const net::Endpoint dst{family == AF_INET ? net::IpAddr::V4(p + 14 + 16) : net::IpAddr::V6(p + 14 + 24),
                            static_cast<uint16_t>(p[l4 + 2] << 8 | p[l4 + 3])};
    const bool forward = src == tuple_.src && dst == tuple_.dst;
    const bool reverse = src == tuple_.dst && dst == tuple_.src;
    if (!forward && !reverse) return;
    const size_t doff = static_cast<size_t>(p[l4 + 12] >> 4) * 4;
    const uint32_t payload = static_cast<uint32_t>(ip_end > l4 + doff ? ip_end - l4 - doff : 0);
    const uint8_t flags = p[l4 + 13];
    std::string f;
    for (const auto& [bit, c] :
         {std::pair<uint8_t, char>{kSyn, 'S'}, {kAck, '.'}, {0x08, 'P'}, {kFin, 'F'}, {kRst, 'R'}}) {
      if (flags & bit) f += c;
    }
    summary_.plaintext.push_back({t,
                                  src.ip.ToString() + ":" + std::to_string(src.port) + " -> " +
                                      dst.ip.ToString() + ":" + std::to_string(dst.port) + " TCP [" + f + "] len " +
                                      std::to_string(payload),
                                  forward, flags, payload});
  }

  net::Tuple tuple_;
  bool received_only_;
  std::string marker_;
  std::vector<unsigned> markers_;
  int fd_ = -1;
  pcap_t* dead_ = nullptr;
  pcap_dumper_t* dumper_ = nullptr;
  capture::CaptureSummary summary_;
};

// ---- XdpDropWatch ----

struct XdpDropWatch::State {
  PodLink link;
  net::Tuple tuple;
  Clock::time_point started;
  std::unique_ptr<PacketTap> node_side;  // both directions on the node end of the veth
  std::unique_ptr<PacketTap> pod_side;   // what eth0 received
  std::optional<XdpDropCounter> counter;
  uint64_t drops_at_start = 0;
  uint32_t prog_id = 0;
  std::string prog_name;
  std::optional<uint64_t> runs_at_start;
  // FIFO markers: UDP datagrams sent from the node's namespace to the pod down the same veth after the
  // stage's packets (xdp_authz passes what is not TCP, xdp.c:97-110 via parser_tuple); the newest one seen
  // at the pod proves every packet sent before it was through XDP by then.
  int marker_fd = -1;
  std::string marker;                 // "kmesh-e2e drop-proof <pid>-<n> ": prefix of every marker's payload
  std::vector<size_t> marker_covers;  // marker i was sent after this many packets of the stage
  bool finished = false;
  std::optional<DropProof> final_proof;
};

XdpDropWatch::XdpDropWatch(std::unique_ptr<State> s) : state_(std::move(s)) {}
XdpDropWatch::~XdpDropWatch() {
  if (state_ && state_->marker_fd >= 0) close(state_->marker_fd);
}
XdpDropWatch::XdpDropWatch(XdpDropWatch&&) noexcept = default;
XdpDropWatch& XdpDropWatch::operator=(XdpDropWatch&&) noexcept = default;

XdpDropWatch XdpDropWatch::Start(const PodLink& link, const net::Tuple& tuple, const std::string& save_dir,
                                 const std::string& label) {
  if (tuple.src.ip.unspecified() || tuple.src.port == 0 || tuple.dst.ip.unspecified() || tuple.dst.port == 0) {
    throw Error("XDP drop watch needs the whole tuple before the SYN leaves; got " + tuple.ToString());
  }
  auto st = std::make_unique<State>();
  st->link = link;
  st->tuple = tuple;
  RunStats();
  // The program on eth0 now, and its run count (stats on from here).
  const auto xdp = bpf_probe::QueryXdp(link.pod_ns, link.pod_ifname);
  if (xdp.attached()) {
    st->prog_id = xdp.programs.front().prog.id;
    st->prog_name = xdp.programs.front().prog.name;
    if (bpf_probe::BpfStatsEnabled()) st->runs_at_start = xdp.programs.front().prog.stats.run_cnt;
  }
  auto pcap = [&](const char* side) {
    return save_dir.empty() ? "" : save_dir + "/" + label + "-" + side + ".pcap";
  };
  static std::atomic<unsigned> watches{0};
  st->marker = "kmesh-e2e drop-proof " + std::to_string(getpid()) + "-" + std::to_string(watches++) + " ";
  st->node_side = std::make_unique<PacketTap>(link.node_ns, link.node_ifname, tuple, false, pcap("node"), "");
  st->pod_side =
      std::make_unique<PacketTap>(link.pod_ns, link.pod_ifname, tuple, true, pcap("pod"), st->marker);
  // The markers travel in the probe's family (a dual-stack pod is watched over IPv6 too).
  const int family = tuple.dst.ip.is_v4() ? AF_INET : AF_INET6;
  st->marker_fd = netns::RunIn(
      link.node_ns, [family] { return socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); });
  if (st->marker_fd < 0) ThrowErrno("XDP drop watch: marker socket in " + link.node_name);
  st->counter.emplace(XdpDropCounter::Open(link.pod_ns, link.pod_ifname));
  st->drops_at_start = st->counter->Read();
  st->started = Clock::now();
  return XdpDropWatch(std::move(st));
}

DropProof XdpDropWatch::Check(DropStage stage) {
  if (!state_) throw Error("XdpDropWatch::Check on a moved-from watch");
  if (state_->finished) return *state_->final_proof;
  return Evaluate(stage, false);
}

DropProof XdpDropWatch::Finish(DropStage stage) {
  if (!state_) throw Error("XdpDropWatch::Finish on a moved-from watch");
  if (!state_->finished) {
    // A marker on its way gets its time (bounded), also when the probe ended by its own bound.
    const auto bound = Clock::now() + defaults::DropProofMarker();
    for (DropProof p = Evaluate(stage, false); Clock::now() < bound; p = Evaluate(stage, false)) {
      if (p.proven || !p.waiting) break;
      std::this_thread::sleep_for(defaults::DropProofPoll());
    }
    state_->final_proof = Evaluate(stage, true);
    state_->finished = true;
  }
  return *state_->final_proof;
}

DropProof XdpDropWatch::Evaluate(DropStage stage, bool final) {
  State& st = *state_;
  DropProof p;
  p.stage = stage;
  p.node_side = st.link.node_ifname + " in " + st.link.node_name;
  p.pod_side = st.link.pod_ifname + " of " + st.link.pod_name;
  // The counter first, the captures after: a packet XDP passed is at the pod's taps by the time its
  // drop-or-pass was counted.
  const uint64_t drops = st.counter->Read();
  p.xdp_drops = drops >= st.drops_at_start ? drops - st.drops_at_start : 0;
  const capture::CaptureSummary& node = final ? st.node_side->Close() : st.node_side->Drain();
  // A new marker behind every packet of the stage seen so far (the node side saw it leave, so it is in
  // the ring already); then the pod side.
  const size_t sent = StagePacketsSent(stage, node);
  if (!final && sent > 0 && (st.marker_covers.empty() || st.marker_covers.back() < sent)) {
    const std::string payload = st.marker + std::to_string(st.marker_covers.size());
    sockaddr_storage to;
    const socklen_t to_len = net::Endpoint{st.tuple.dst.ip, PacketTap::kMarkerPort}.ToSockaddr(to);
    if (sendto(st.marker_fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&to), to_len) ==
            static_cast<ssize_t>(payload.size())) {
      st.marker_covers.push_back(sent);
    }
  }
  const capture::CaptureSummary& pod = final ? st.pod_side->Close() : st.pod_side->Drain();
  for (unsigned m : st.pod_side->markers()) {
    if (m < st.marker_covers.size()) p.marker_covers = std::max(p.marker_covers, st.marker_covers[m]);
  }
  p.markers_sent = st.marker_covers.size();
  p.markers_arrived = st.pod_side->markers().size();
  p.node_pcap = node.pcap_path;
  p.pod_pcap = pod.pcap_path;
  p.elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - st.started).count();
  if (st.prog_id != 0) {
    p.xdp_program = st.prog_name + " (prog " + std::to_string(st.prog_id) + ")";
    if (final && st.runs_at_start) {
      try {
        const auto now = bpf_probe::ReadProgramById(st.prog_id).stats.run_cnt;
        p.xdp_runs = now >= *st.runs_at_start ? now - *st.runs_at_start : 0;
      } catch (const std::exception&) {
        // The program went away meanwhile: no run count, the rest stands.
      }
    }
  }

  JudgeDrop(p, node, pod);
  return p;
}

}  // namespace kmesh::e2e
