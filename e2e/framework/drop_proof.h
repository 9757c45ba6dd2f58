// Kernel proof that XDP dropped a connection's packets at a server pod, so that a denial rests on what the
// kernel did, not on a client's timeout. Three observations of the pod's veth, each scoped to the pod:
//   1. the node side (a capture on the pod's host-side veth, in the node's namespace) shows the packets
//      left toward the pod, and whether anything of the connection came back;
//   2. the pod side (a capture on the pod's eth0: AF_PACKET sees a packet only once native XDP has passed
//      it) shows they never arrived;
//   3. eth0's own count of packets its XDP program dropped (the veth driver's rx_queue_N_xdp_drops, what
//      `ethtool -S eth0` prints) moved by at least as many.
// Where run statistics are on (BPF_ENABLE_STATS, held by this process for its lifetime; the sysctl
// kernel.bpf_stats_enabled is never written), the run count of the XDP program on eth0 is shown too.
//
// Two stages: kSyn (Kmesh's XDP dropped the SYN: a DENY matched, or ALLOW policies exist and none matched)
// and kRequest (the handshake passed; Kmesh's userspace then cached a deny and XDP dropped the request).
// The counter is per interface, not per connection (other connections' retransmissions add to it); the
// captures are per connection. Absence at the pod side means something only once the packet has gone
// through XDP: the ring between a veth's ends is first in, first out, so after the node side saw the
// stage's packets leave, the watch sends a marker (a UDP datagram from the node's namespace to the pod,
// which xdp_authz passes) down the same veth, and a drop is proven only once that marker reached the pod
// side.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "traffic/traffic.h"
#include "netns/netns.h"

namespace kmesh::e2e {

// Both ends of a server pod's veth, where an Env lets the harness watch (Env::PodLinkOf).
struct PodLink {
  netns::NetnsRef node_ns = netns::NetnsRef::Self();
  std::string node_ifname;  // the node side of the pod's veth ("lxc2")
  netns::NetnsRef pod_ns = netns::NetnsRef::Self();
  std::string pod_ifname = "eth0";  // where Kmesh's xdp_authz runs
  std::string node_name;            // for people: "node2"
  std::string pod_name;             // "httpbin"
};

enum class DropStage {
  kSyn,      // the SYN was dropped: the connection never opened
  kRequest,  // the handshake passed, then the request was dropped
};
const char* ToString(DropStage s);  // "syn", "request"

struct DropProof {
  DropStage stage = DropStage::kSyn;
  bool proven = false;
  bool waiting = false;              // only the marker is missing: check again shortly
  std::vector<std::string> missing;  // what the proof lacks, one sentence each (empty when proven)
  size_t sent = 0;                   // packets of the stage that left the node side toward the pod
  size_t arrived = 0;                // packets of the stage eth0 received (after XDP)
  size_t answered = 0;     // packets of the connection the pod sent back (kRequest: after the handshake)
  bool handshake = false;  // kRequest: the SYN reached eth0 and the pod answered it
  uint64_t xdp_drops = 0;  // eth0's XDP drop count moved by this much during the watch
  std::optional<uint64_t> xdp_runs;  // the run count of eth0's XDP program moved by this much (stats on)
  size_t marker_covers = 0;          // packets of the stage sent before the newest marker that arrived
  size_t markers_sent = 0, markers_arrived = 0;
  std::string xdp_program;          // "xdp_authz (prog 41)", "" when none was attached at the start
  double elapsed_ms = 0;            // watch start to this check
  std::string node_side;            // "lxc2 in node2"
  std::string pod_side;             // "eth0 of httpbin"
  std::string node_pcap, pod_pcap;  // saved captures ("" when not saved)

  // "SYN dropped by XDP, proven by the kernel: 1 SYN left lxc2 in node2 toward the pod, eth0 of httpbin
  // (after XDP) received none, nothing came back, eth0's XDP drop count +1, xdp_authz (prog 41) ran +1"
  std::string Describe() const;
  nlohmann::json ToJson() const;
};

// The judgement over what was observed, on its own (tested on hand-made summaries): fills `p`'s counts,
// handshake, missing, waiting and proven from the node side's capture (both directions, packets of the
// tuple), the pod side's (what eth0 received), and p.stage, p.xdp_drops and p.marker_covers (already set).
void JudgeDrop(DropProof& p, const capture::CaptureSummary& node_side,
               const capture::CaptureSummary& pod_side);
// How many packets of the stage the node side saw leave toward the pod.
size_t StagePacketsSent(DropStage stage, const capture::CaptureSummary& node_side);

// Sum of the veth driver's rx_queue_N_xdp_drops of an interface, read with SIOCETHTOOL through a socket
// made in the interface's namespace (so reads need no namespace switch).
class XdpDropCounter {
 public:
  // Throws kmesh::Error when the interface does not exist or its driver counts no XDP drops (not a veth).
  static XdpDropCounter Open(const netns::NetnsRef& ns, const std::string& ifname);
  ~XdpDropCounter();
  XdpDropCounter(XdpDropCounter&& o) noexcept;
  XdpDropCounter& operator=(XdpDropCounter&&) = delete;
  XdpDropCounter(const XdpDropCounter&) = delete;
  XdpDropCounter& operator=(const XdpDropCounter&) = delete;

  uint64_t Read() const;

 private:
  XdpDropCounter() = default;
  int fd_ = -1;
  std::string ifname_;
  uint32_t n_stats_ = 0;
  std::vector<uint32_t> indexes_;  // of rx_queue_*_xdp_drops among the driver's statistics
};

// Watches one connection (`tuple`, client first) at a pod. Start it before the SYN leaves.
class XdpDropWatch {
 public:
  // `save_dir` non-empty: both captures are saved there as <label>-node.pcap and <label>-pod.pcap.
  // Throws kmesh::Error when an end of the link cannot be watched (naming it).
  static XdpDropWatch Start(const PodLink& link, const net::Tuple& tuple, const std::string& save_dir,
                            const std::string& label);
  ~XdpDropWatch();
  XdpDropWatch(XdpDropWatch&&) noexcept;
  XdpDropWatch& operator=(XdpDropWatch&&) noexcept;

  // The proof of `stage` as far as it goes now; non-blocking (reads the counter, then drains both
  // captures; sends a marker behind new packets of the stage). Proven once complete.
  DropProof Check(DropStage stage);
  // Stops watching and returns the final proof.
  DropProof Finish(DropStage stage);

 private:
  struct State;
  explicit XdpDropWatch(std::unique_ptr<State> s);
  DropProof Evaluate(DropStage stage, bool final);
  std::unique_ptr<State> state_;
};

}  // namespace kmesh::e2e
