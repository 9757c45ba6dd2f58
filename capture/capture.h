// Packet captures with libpcap on a named interface inside a namespace: bounded by time and count, with
// a BPF filter compiled and checked before anything starts, every packet classified (ESP + SPI,
// plaintext of the probe's inner 5-tuple, a payload marker), and the packets saved as a .pcap that
// tcpdump and Wireshark open. Two verdicts over the same summary (after Cilium's encryption checks):
//   Assert: ESP was seen and not one plaintext packet of the probe (tuple or marker) leaked.
//   Sanity: the same plaintext filter does see the traffic when it is not encrypted, so an Assert pass
//           means something.
// The interface should be the one the route to the peer uses (netns::RouteTo), never `any`: with IPsec,
// decrypted packets recirculate and look like plaintext there.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/defaults.h"
#include "ipsec/ipsec_secret.h"
#include "net/tuple.h"
#include "netns/netns.h"

namespace kmesh::capture {

// The key of one ESP SA (rfc4106(gcm(aes)): 32-byte AES key, then the 4-byte salt; ICV 16 bytes), so a
// capture can open the SA's packets and tell the probe's own from any other traffic in the tunnel.
struct EspKey {
  std::string src, dst;  // the SA's tunnel endpoints
  uint32_t spi = 0;
  ipsec::KeyMaterial key;
};

struct CaptureSpec {
  std::string interface;  // e.g. "eth0"; must exist in the namespace
  std::string filter;     // pcap filter, e.g. "esp or tcp port 8080"; "" = everything
  std::chrono::milliseconds max_duration = defaults::Capture();
  size_t max_packets = 10000;
  std::string save_dir;  // where the .pcap goes ("" = not saved); usually the case's folder, Case::dir()
  std::string label = "capture";  // file name: <label>.pcap
  int snaplen = 512;
  // Which packets: an underlay interface shows inbound ESP *and*, after decryption, the inner packet
  // again (tunnel mode re-injects it on the same device), so a leak check on a node looks at what it
  // sends (kOut), on both nodes. kBoth for plaintext captures.
  enum class Direction { kBoth, kOut, kIn } direction = Direction::kBoth;
  // What counts as a plaintext leak:
  net::Tuple inner;    // the probe's 5-tuple (TCP); an unspecified address or port 0 matches any
  std::string marker;  // bytes that must never be seen in clear ("" = not checked)
  // ESP keys: each ESP packet of one of these SAs is authenticated and decrypted, and the ones carrying the
  // probe's own connection (`inner`, either direction) are listed with their SPI, sequence number and
  // whether the marker is inside. The snap length grows to whole packets (the ICV is at the end).
  std::vector<EspKey> esp_keys;
};

// An ESP packet that decrypted to the probe's own connection.
struct EspProbePacket {
  double time = 0;
  uint32_t spi = 0;
  uint32_t seq = 0;     // ESP sequence number
  std::string inner;    // "10.244.1.5:40000 -> 10.244.2.7:8080 TCP [S] len 0"
  bool marker = false;  // the marker is in its decrypted payload
};

// A leaked packet, for the report.
struct PlaintextHit {
  double time = 0;          // seconds since the epoch
  std::string description;  // "10.244.1.5:40000 -> 10.244.2.7:8080 TCP [S] len 0" / "marker at offset 66"
  // For a packet of the inner tuple: its direction, TCP flags and payload length.
  bool toward_dst = true;  // client -> server (the tuple's direction); false for the server's answers
  uint8_t tcp_flags = 0;   // TH_SYN 0x02, TH_ACK 0x10, TH_FIN 0x01, TH_RST 0x04, TH_PUSH 0x08
  uint32_t payload = 0;    // TCP payload bytes
};

struct CaptureSummary {
  std::string netns;
  std::string interface;
  std::string filter;
  std::string link_type;  // "EN10MB", ...
  std::string direction;  // "both", "out", "in"
  size_t packets = 0;
  size_t esp_packets = 0;
  std::map<uint32_t, size_t> esp_spis;  // SPI -> packets
  std::vector<PlaintextHit> plaintext;  // packets of the inner tuple, in either direction, not in ESP
  std::vector<PlaintextHit> marker_hits;
  bool marker_checked = false;           // a marker was given
  // ESP opened with CaptureSpec::esp_keys (all zero when no key was given).
  size_t esp_keys_given = 0;
  size_t esp_decrypted = 0;     // authenticated and decrypted
  size_t esp_auth_failed = 0;   // a key for the SA was given, but the ICV did not verify with it
  size_t esp_no_key = 0;        // no key given for the SA
  size_t esp_truncated = 0;     // not captured whole
  std::vector<EspProbePacket> esp_probe;  // the probe's own connection, in the tunnel
  double first_time = 0, last_time = 0;  // seconds since the epoch (0 = no packet)
  bool hit_count_bound = false;          // stopped at max_packets
  size_t kernel_dropped = 0;             // pcap_stats ps_drop
  std::string pcap_path;                 // "" when not saved

  nlohmann::json ToJson() const;
  std::string Describe() const;  // "eth0 in ns X, filter '...': 12 packets, 10 ESP (spi 0x00000002 x10), ..."
  // "ESP of the probe's connection: 9 packets (spi 0x00000002 seq 41..49), marker inside 1; ESP opened: ..."
  std::string DescribeProbeEsp() const;
  nlohmann::json EspJson() const;
};

// The result of judging a summary: pass or the reasons it did not.
struct Verdict {
  bool pass = false;
  std::vector<std::string> reasons;
  std::vector<std::string> codes;  // disagreement.h codes of the reasons, each once
  std::string Describe() const;
};

// Assert mode: at least one ESP packet (and, when `expected_spi` is non-zero, that SPI among them), no
// plaintext packet of the inner tuple, no marker. When ESP keys were given: the probe's own connection was
// among the decrypted ESP packets (with `expected_spi`, and the marker inside one of them when a marker was
// given), and no ESP packet of a keyed SA failed authentication.
Verdict JudgeEncrypted(const CaptureSummary& s, uint32_t expected_spi = 0);

// Opens one ESP packet (`esp` = the ESP header onwards, whole) with an rfc4106(gcm(aes)) key of 36 bytes:
// AAD = SPI and sequence number, nonce = salt and the packet's 8-byte IV, 16-byte ICV. Returns the inner
// packet (padding and trailer removed), or nullopt when it is too short or does not authenticate.
std::optional<std::vector<uint8_t>> OpenEsp(const uint8_t* esp, size_t len, const ipsec::KeyMaterial& key);
// Sanity mode: the plaintext filter saw the inner tuple (and the marker, when one was given).
Verdict JudgePlaintextVisible(const CaptureSummary& s);

// Checks that `filter` compiles (for Ethernet framing) without opening anything. Throws kmesh::Error
// naming the filter and pcap's message.
void ValidateFilter(const std::string& filter);

// "ip X and ip Y and tcp port P" style filter that matches the inner tuple in clear, both directions.
std::string PlaintextFilter(const net::Tuple& t);
// ESP between two underlay addresses, plus the plaintext of the inner tuple.
std::string AssertFilter(const std::string& underlay_a, const std::string& underlay_b,
                         const net::Tuple& inner);

// A capture running on a worker thread. Start() returns once the handle is active, so traffic sent after
// it is seen. Finish() stops it (after defaults::CaptureSettle() for trailing packets), or it stops by
// itself at max_duration or max_packets. The destructor stops it too.
class Capture {
 public:
  // Throws kmesh::Error for a bad filter, a missing interface (naming the namespace and what exists),
  // or missing privileges (CAP_NET_RAW).
  static Capture Start(const netns::NetnsRef& ns, const CaptureSpec& spec);
  ~Capture();
  Capture(Capture&&) noexcept;
  Capture& operator=(Capture&&) noexcept;

  // Stops (if still running) and returns the summary; the .pcap is closed and complete on return.
  CaptureSummary Finish(std::chrono::milliseconds settle = defaults::CaptureSettle());
  // Waits until the capture ends by itself (duration or count bound).
  CaptureSummary Wait();

 private:
  struct State;
  explicit Capture(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

}  // namespace kmesh::capture
