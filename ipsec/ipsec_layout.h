// Kmesh's IPsec layout checker (kmesh-facts.md §3.3-3.4): given a node pair (addresses, pod CIDRs, SPIs,
// boot ids), the secret history and each node's xfrm snapshot, it lists every way the kernel state
// differs from what Kmesh programs, each finding named ("node B: ingress state ... : output-mark is
// 0x0/0x0, expected 0xd0/0xffffffff"), and per direction the derived key's fingerprint and whether both
// ends hold it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ipsec/ipsec_secret.h"
#include "xfrm/xfrm.h"

namespace kmesh::ipsec {

// Constants of pkg/constants/constants.go.
inline constexpr uint32_t kEncryptMark = 0xe0;
inline constexpr uint32_t kDecryptedMark = 0xd0;
inline constexpr uint32_t kMarkMask = 0xffffffff;
inline constexpr uint32_t kReqid = 1;

// What a KmeshNodeInfo says about a node.
struct NodeInfo {
  std::string name;                    // "kmesh-testing-worker", or the lab node's label
  std::string address;                 // InternalIP as text (the derivation hashes this text)
  std::vector<std::string> pod_cidrs;  // "10.244.1.0/24"
  uint32_t spi = 0;
  std::string boot_id;
};

// Every secret the daemons have seen, by SPI (Kmesh keeps old ones for its lifetime).
class SecretHistory {
 public:
  void Add(const IpsecSecret& s) { by_spi_[s.spi] = s; }
  const IpsecSecret* Find(uint32_t spi) const;
  std::vector<uint32_t> Spis() const;

 private:
  std::map<uint32_t, IpsecSecret> by_spi_;
};

// generateIPSecKey: SHA-512(key ‖ srcIP ‖ dstIP ‖ srcBootID[:36] ‖ dstBootID[:36]), first len(key) bytes.
KeyMaterial DeriveKey(const KeyMaterial& aead_key, const std::string& src_ip, const std::string& dst_ip,
                      const std::string& src_boot_id, const std::string& dst_boot_id);

struct Finding {
  std::string code;     // disagreement.h: xfrm_state_missing, key_fingerprint_mismatch, ...
  std::string node;     // whose kernel ("node B")
  std::string object;   // "ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000002"
  std::string problem;  // "output-mark is 0x0/0x0, expected 0xd0/0xffffffff"
  std::string ToString() const { return "node " + node + ": " + object + ": " + problem; }
};

// One direction of the tunnel (from → to): which key both ends should hold and what they hold.
struct DirectionKeys {
  std::string from, to;
  xfrm::Spi spi;                     // the receiver's SPI
  std::string expected_fingerprint;  // derived from the secret ("" when the secret is unknown)
  std::string sender_fingerprint;    // egress state on `from` ("" when missing)
  std::string receiver_fingerprint;  // ingress state on `to` ("" when missing)
  bool agree = false;                // both present, equal and equal to the derivation
  nlohmann::json ToJson() const;
};

struct LayoutReport {
  std::vector<Finding> findings;
  std::vector<DirectionKeys> directions;
  // Not findings: states whose SPI is older than every secret of this run (a cluster's earlier history),
  // which the checker cannot judge.
  std::vector<std::string> notes;
  bool ok() const { return findings.empty(); }
  std::vector<std::string> Codes() const;  // the findings' codes, each once, in order
  std::string Describe() const;            // one finding per line, then the key table
  nlohmann::json ToJson() const;
};

struct NodeEvidence {
  NodeInfo info;
  xfrm::XfrmSnapshot snapshot;
};

// Earlier SPIs whose states Kmesh keeps on a node, by node name. Kmesh removes no state on a rotation: every
// earlier SPI's ingress and egress states stay until a flush (the stop of a daemon that started Normal) or a
// Clean (a peer's KmeshNodeInfo deleted) takes them (docs/kmesh-ipsec-controller.md rows 24-26). The suite
// keeps this set as it rotates keys and restarts dataplanes.
using RetainedSpis = std::map<std::string, std::set<uint32_t>>;

// Checks both nodes' layouts against each other and against exactly Kmesh's layout: every object Kmesh
// programs for the current SPIs, the states it keeps for `retained` SPIs (present, with their SPI's derived
// key), and nothing else: a state between other endpoints, for an SPI that is neither current nor kept, or
// newer than any KmeshNodeInfo reports, and a policy that is not one of Kmesh's or a second one with Kmesh's
// selector, are findings (extra, stale, duplicate). States of SPIs older than every secret in `secrets`
// predate the run and are only noted.
LayoutReport CheckLayout(const NodeEvidence& a, const NodeEvidence& b, const SecretHistory& secrets,
                         const RetainedSpis& retained = {});

}  // namespace kmesh::ipsec
