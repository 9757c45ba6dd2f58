// xfrm evidence of one network namespace: states (SAs), policies (SPs) and /proc/net/xfrm_stat, read
// over NETLINK_XFRM from a socket opened inside the namespace, as typed records and JSON; and the diff of
// two snapshots. No Catch2 here: the lab, the kube env's node probe and the tools use it too.
//
// The dump is decoded directly from the kernel's UAPI structs (linux/xfrm.h) rather than through
// libnl-xfrm's caches: libnl-xfrm 3.7 has no accessor for XFRMA_SET_MARK (the state's output-mark, the
// very field Kmesh's ingress state hinges on), and its caches cost more than iproute2 on 10,000 policies
// (bench_xfrm prints all three). The kernel tests cross-check this decoder against libnl-xfrm and `ip`.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ipsec/ipsec_secret.h"
#include "net/ipsec.h"
#include "netns/netlink.h"
#include "netns/netns.h"

namespace kmesh::xfrm {

// The SPI and the mark (policy mark, state mark, state output-mark), as iproute2 prints them: net/ipsec.h.
using net::Mark;
using net::Spi;

enum class Mode { kTransport = 0, kTunnel = 1, kRouteOptimization = 2, kInTrigger = 3, kBeet = 4 };
enum class Dir { kIn = 0, kOut = 1, kFwd = 2 };
enum class Action { kAllow = 0, kBlock = 1 };

std::string ToString(Mode m);  // "tunnel", as iproute2 prints it
std::string ToString(Dir d);   // "in" / "out" / "fwd"
std::string ToString(Action a);
std::string ProtoName(uint8_t proto);  // "esp", "ah", "comp", "route2", ... else the number

// Traffic selector: addresses as CIDR text ("0.0.0.0/0", "10.244.1.0/24").
struct Selector {
  int family = 0;  // AF_INET / AF_INET6
  std::string src;
  std::string dst;
  uint8_t proto = 0;  // 0 = any
  uint16_t sport = 0, sport_mask = 0, dport = 0, dport_mask = 0;  // host order
  int ifindex = 0;
  bool operator==(const Selector& o) const;
  std::string ToString() const;  // "src 0.0.0.0/0 dst 10.244.1.0/24[ proto tcp ...]"
};

struct XfrmState {
  int family = 0;
  std::string src;  // outer tunnel endpoints (addresses, no prefix)
  std::string dst;
  uint8_t proto = 0;  // IPPROTO_ESP = 50
  Spi spi;
  uint32_t reqid = 0;
  Mode mode = Mode::kTransport;
  uint8_t replay_window = 0;
  uint8_t flags = 0;
  Selector selector;
  // Algorithms: AEAD (Kmesh: rfc4106(gcm(aes)), ICV 128) or the auth/crypt pair.
  std::string aead_name;
  uint32_t icv_bits = 0;
  ipsec::KeyMaterial aead_key;  // private; shown as fingerprint
  std::string auth_name;
  std::string enc_name;
  Mark mark;                         // XFRMA_MARK (lookup mark); {0,0} when absent
  std::optional<Mark> output_mark;   // XFRMA_SET_MARK(+_MASK); absent when not set
  uint32_t if_id = 0;
  // Lifetime: current use and the replay state (oseq = last sequence number sent).
  uint64_t cur_bytes = 0, cur_packets = 0, add_time = 0, use_time = 0;
  uint32_t oseq = 0, seq = 0, replay_bitmap = 0;
  // Kernel per-state error counters.
  uint32_t stats_replay_window = 0, stats_replay = 0, stats_integrity_failed = 0;

  // Identity of the SA as the kernel keys it: "esp spi 0x00000002 src 172.18.0.2 dst 172.18.0.3".
  std::string Id() const;
  nlohmann::json ToJson() const;
};

struct XfrmTemplate {
  int family = 0;
  std::string src;  // may be "" for a wildcard (transport templates)
  std::string dst;
  uint8_t proto = 0;
  Spi spi;  // 0 = any
  uint32_t reqid = 0;
  Mode mode = Mode::kTransport;
  bool optional = false;
  bool operator==(const XfrmTemplate& o) const;
  std::string ToString() const;  // "tmpl src A dst B proto esp spi 0x.. reqid 1 mode tunnel"
  nlohmann::json ToJson() const;
};

struct XfrmPolicy {
  Selector selector;
  Dir dir = Dir::kOut;
  uint32_t priority = 0;
  uint32_t index = 0;
  Action action = Action::kAllow;
  bool sub = false;  // ptype sub (else main)
  Mark mark;         // {0,0} when absent
  uint32_t if_id = 0;
  std::vector<XfrmTemplate> templates;
  uint64_t cur_bytes = 0, cur_packets = 0;

  // Identity: "dir out src 0.0.0.0/0 dst 10.244.1.0/24 mark 0xe0/0xffffffff".
  std::string Id() const;
  nlohmann::json ToJson() const;
};

// /proc/net/xfrm_stat of the namespace, in the kernel's order (XfrmInError, XfrmInBufferError, ...).
struct XfrmStats {
  std::vector<std::pair<std::string, uint64_t>> counters;
  // The counter's value; throws kmesh::Error naming it when the kernel has no such counter.
  uint64_t Get(const std::string& name) const;
  bool Has(const std::string& name) const;
  nlohmann::json ToJson() const;
};

struct XfrmSnapshot {
  std::string netns;  // where it was taken (path)
  std::vector<XfrmState> states;
  std::vector<XfrmPolicy> policies;
  XfrmStats stats;
  std::chrono::system_clock::time_point taken_at;

  // First state/policy with that identity, or nullptr.
  const XfrmState* FindState(uint8_t proto, Spi spi, const std::string& dst) const;
  nlohmann::json ToJson() const;
};

// Dumps of the namespace `ns`. Errors name the namespace and, for EPERM, the missing CAP_NET_ADMIN.
std::vector<XfrmState> DumpStates(const netns::NetnsRef& ns);
std::vector<XfrmPolicy> DumpPolicies(const netns::NetnsRef& ns);
XfrmStats ReadXfrmStat(const netns::NetnsRef& ns);
XfrmSnapshot Snapshot(const netns::NetnsRef& ns);

// An ESP tunnel-mode state as Kmesh's createStateRule asks for it (pkg/controller/encryption/ipsec/
// ipsec_handler.go:264-291): reqid 1, no lifetime limit, an AEAD with its key, and on an ingress state the
// output-mark. The key goes to the kernel only.
struct EspTunnelState {
  std::string src, dst;  // tunnel endpoints, one family
  Spi spi;
  std::string aead_name = ipsec::IpsecSecret::kAeadName;  // "": the caller adds the algorithm itself
  ipsec::KeyMaterial key;
  uint32_t icv_bits = ipsec::IpsecSecret::kIcvBits;
  std::optional<Mark> output_mark;
};
// Its XFRM_MSG_NEWSA with NLM_F_EXCL (the kernel answers EEXIST when the SA exists). Throws kmesh::Error
// naming the field when an endpoint is not an address.
netns::NetlinkMessage NewStateMessage(const EspTunnelState& s);

// "" when the kernel accepts an ESP state with rfc4106(gcm(aes)) (tried in a throwaway namespace),
// else why not, e.g. "kernel lacks ESP with rfc4106(gcm(aes)): xfrm state add returned ENOENT
// (Requested AEAD algorithm not found)". Cached for the process.
std::string EspUnsupportedReason();

// What differs between two snapshots of one namespace.
struct Change {
  std::string id;    // the state's or policy's Id()
  std::string what;  // "key sha256:1a2b.. -> sha256:3c4d..", "tmpl spi 0x00000001 -> 0x00000002", ...
};
struct CounterChange {
  std::string name;
  uint64_t before = 0, after = 0;
};
struct SnapshotDiff {
  std::vector<std::string> appeared_states, disappeared_states;
  std::vector<std::string> appeared_policies, disappeared_policies;
  std::vector<Change> changed_states, changed_policies;
  std::vector<CounterChange> counters;  // xfrm_stat counters whose value moved

  bool empty() const;
  // Only the error counters of xfrm_stat that rose (every counter there counts an error).
  std::vector<CounterChange> ErrorsRaised() const;
  nlohmann::json ToJson() const;
  std::string Describe() const;  // one line per item, for a failure message
};

SnapshotDiff Diff(const XfrmSnapshot& before, const XfrmSnapshot& after);

}  // namespace kmesh::xfrm
