#include "e2e/framework/drop_proof.h"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "bpf_probe/prog.h"
#include "bpf_probe/xdp.h"
#include "e2e/framework/capture.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kFin = 0x01, kRst = 0x04;

double NowEpochSeconds() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return tv.tv_sec + tv.tv_usec / 1e6;
}

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
  c.fd_ = netns::RunIn(ns, [] { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); });
  if (c.fd_ < 0) ThrowErrno("XDP drop counter of " + where + ": socket");
  if (netns::RunIn(ns, [&] { return if_nametoindex(ifname.c_str()); }) == 0) {
    throw Error("XDP drop counter: no interface " + where);
  }
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
           " (after XDP) received " + (arrived == 0 ? std::string("none") : std::to_string(arrived)) + ", " +
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
          {"xdp_program", xdp_program},
          {"elapsed_ms", elapsed_ms},
          {"node_side", node_side},
          {"pod_side", pod_side},
          {"node_pcap", node_pcap},
          {"pod_pcap", pod_pcap},
          {"describe", Describe()}};
}

void JudgeDrop(DropProof& p, const capture::CaptureSummary& node, const capture::CaptureSummary& pod,
               double now_epoch, std::chrono::milliseconds settle) {
  const DropStage stage = p.stage;
  p.missing.clear();
  p.sent = p.arrived = p.answered = 0;
  p.settling = false;
  auto is_syn = [](const capture::PlaintextHit& h) { return (h.tcp_flags & kSyn) && !(h.tcp_flags & kAck); };
  auto carries = [](const capture::PlaintextHit& h) { return h.payload > 0; };
  double last_sent = 0;
  bool syn_arrived = false, syn_answered = false;
  for (const auto& h : pod.plaintext) {
    if (!h.toward_dst) continue;
    if (is_syn(h)) syn_arrived = true;
    if (stage == DropStage::kSyn ? is_syn(h) : carries(h)) ++p.arrived;
  }
  for (const auto& h : node.plaintext) {
    if (h.toward_dst) {
      if (stage == DropStage::kSyn ? is_syn(h) : carries(h)) {
        ++p.sent;
        last_sent = std::max(last_sent, h.time);
      }
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
  if (p.missing.empty()) {
    // Not before the pod side had time to show a packet XDP passed.
    const double quiet_ms = (now_epoch - last_sent) * 1000.0;
    if (quiet_ms < static_cast<double>(settle.count())) {
      p.settling = true;
      p.missing.push_back("the pod side has been watched only " + std::to_string(quiet_ms).substr(0, 4) +
                          " ms since the last " + unit + " (settle " + std::to_string(settle.count()) +
                          " ms)");
    }
  }
  p.proven = p.missing.empty();
}

// ---- XdpDropWatch ----

struct XdpDropWatch::State {
  PodLink link;
  Tuple tuple;
  Clock::time_point started;
  std::optional<capture::Capture> node_side;  // both directions on the node end of the veth
  std::optional<capture::Capture> pod_side;   // what eth0 received
  std::optional<XdpDropCounter> counter;
  uint64_t drops_at_start = 0;
  uint32_t prog_id = 0;
  std::string prog_name;
  std::optional<uint64_t> runs_at_start;
  bool settling = false;  // the last evaluation lacked only the settle time
  bool finished = false;
  std::optional<DropProof> final_proof;
};

XdpDropWatch::XdpDropWatch(std::unique_ptr<State> s) : state_(std::move(s)) {}
XdpDropWatch::~XdpDropWatch() = default;
XdpDropWatch::XdpDropWatch(XdpDropWatch&&) noexcept = default;
XdpDropWatch& XdpDropWatch::operator=(XdpDropWatch&&) noexcept = default;

XdpDropWatch XdpDropWatch::Start(const PodLink& link, const Tuple& tuple, const std::string& save_dir,
                                 const std::string& label) {
  if (tuple.src_ip.empty() || tuple.src_port == 0 || tuple.dst_ip.empty() || tuple.dst_port == 0) {
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
  capture::CaptureSpec spec;
  spec.filter = capture::PlaintextFilter(tuple) + " and port " + std::to_string(tuple.src_port);
  spec.inner = tuple;
  spec.snaplen = 128;  // headers only
  spec.buffer_bytes = 256 << 10;
  spec.on_demand = true;
  spec.max_packets = 1000;
  spec.max_duration = defaults::ConnectTimeout() + defaults::ResponseTimeout() + defaults::Command();
  spec.save_dir = save_dir;
  spec.interface = link.node_ifname;
  spec.label = label + "-node";
  st->node_side = capture::Capture::Start(link.node_ns, spec);
  spec.interface = link.pod_ifname;
  spec.label = label + "-pod";
  spec.direction = capture::CaptureSpec::Direction::kIn;
  st->pod_side = capture::Capture::Start(link.pod_ns, spec);
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
    // The pod side gets its settle time after the last packet sent, also when the probe ended early.
    const auto bound = Clock::now() + 4 * defaults::DropProofSettle();
    for (DropProof p = Evaluate(stage, false); Clock::now() < bound; p = Evaluate(stage, false)) {
      if (p.proven || !p.settling) break;
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
  const capture::CaptureSummary node =
      final ? st.node_side->Finish(std::chrono::milliseconds(0)) : st.node_side->Drain();
  const capture::CaptureSummary pod =
      final ? st.pod_side->Finish(std::chrono::milliseconds(0)) : st.pod_side->Drain();
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

  JudgeDrop(p, node, pod, NowEpochSeconds(), defaults::DropProofSettle());
  st.settling = p.settling;
  return p;
}

}  // namespace kmesh::e2e
