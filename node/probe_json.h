// kmesh-probe's JSON: what the static probe (tools/probe) prints on a node and what the kube env reads
// back. Both sides live here, so the format has one definition. Every report carries "probe": "kmesh-probe",
// "version" and "command"; a failure is {"error": "..."} with exit status 1. The parse side is pure (no
// kernel, no kubectl) and says, for anything malformed, which report, which field and what it found.
//
// Formats reuse the framework's own JSON where it has one (XfrmSnapshot::ToJson, CaptureSummary::ToJson),
// so evidence looks the same whichever transport collected it. Two additions:
//   - xfrm states may carry "aead_key_hex" when kmesh-probe runs with --include-raw-keys: the layout
//     checker compares raw keys, and the kube env asks for them over the kubectl exec pipe only, never
//     printing them (KubectlCall::sensitive_output). Without it the key is a fingerprint only.
//   - families are not in ToJson; they are inferred from the addresses (':' means IPv6);
//   - xfrm_stat comes back in name order (a JSON object), not the kernel's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/verdict.h"
#include "bpf_probe/xdp.h"
#include "capture/capture.h"
#include "net/tuple.h"
#include "xfrm/xfrm.h"

namespace kmesh::node {

inline constexpr int kProbeJsonVersion = 1;

// The envelope of every report: {"probe":"kmesh-probe","version":1,"command":...} plus `body`'s fields.
nlohmann::json Envelope(const std::string& command, nlohmann::json body);
nlohmann::json ErrorReport(const std::string& command, const std::string& message);

// Parses kmesh-probe's stdout; checks the envelope and the command; throws kmesh::Error naming `where`
// ("kmesh-probe xfrm on node kmesh-testing-worker") and, for an error report, kmesh-probe's message.
nlohmann::json ParseReport(const std::string& text, const std::string& expected_command,
                           const std::string& where);

// ---- xfrm ----

// XfrmSnapshot::ToJson plus "aead_key_hex" per state when `include_raw_keys`.
nlohmann::json XfrmReportBody(const xfrm::XfrmSnapshot& s, bool include_raw_keys);
// The inverse of XfrmSnapshot::ToJson (the report's "snapshot"). States without "aead_key_hex" get an
// empty key (their fingerprint is kept in the evidence JSON only).
xfrm::XfrmSnapshot XfrmSnapshotFromJson(const nlohmann::json& j, const std::string& where);

// ---- auth (km_auth_res) ----

struct AuthReport {
  std::string map;  // "km_auth_res (id 12, hash, ...)"
  net::Tuple tuple;
  net::PortOrder port_order = net::PortOrder::kHost;
  std::optional<bpf_probe::Verdict> verdict;  // nullopt: no entry
};
nlohmann::json ToJson(const AuthReport& r);
AuthReport AuthReportFromJson(const nlohmann::json& j, const std::string& where);

// ---- maps: what the policy-realized barrier needs ----

struct MapSummary {
  std::string name;
  uint32_t id = 0;
  std::string type;
  uint32_t key_size = 0, value_size = 0, max_entries = 0;
  uint64_t entries = 0;
};

struct MapsReport {
  std::string source;            // "pin folder /sys/fs/bpf/bpf_kmesh_workload/map", "program 42 (xdp_authz)"
  std::vector<MapSummary> maps;  // the km_* maps found
  std::vector<uint32_t> policy_ids;  // keys of km_authz_policy, sorted
  // When a workload IP was asked about: km_frontend[ip] (the workload id XDP uses) and km_wlpolicy of it.
  std::string workload_ip;
  std::optional<uint32_t> workload_id;
  std::optional<std::vector<uint32_t>> workload_policy_ids;  // nullopt: no km_wlpolicy entry
  // A layout problem of km_authz_policy's values (another datapath's format), "" when Kmesh's.
  std::string authz_value_problem;

  bool HasPolicy(uint32_t id) const;
  bool WorkloadLists(uint32_t policy_id) const;
};
nlohmann::json ToJson(const MapsReport& r);
MapsReport MapsReportFromJson(const nlohmann::json& j, const std::string& where);

// ---- xdp ----

nlohmann::json ToJson(const bpf_probe::XdpAttachment& a);
bpf_probe::XdpAttachment XdpAttachmentFromJson(const nlohmann::json& j, const std::string& where);

// ---- netns lookup ----

struct NetnsOwner {
  std::string ip;
  std::string netns;  // "/host/proc/1234/ns/net"
  int pid = 0;
  unsigned long inode = 0;
  std::string ifname;  // the interface holding the address
};
nlohmann::json ToJson(const NetnsOwner& o);
NetnsOwner NetnsOwnerFromJson(const nlohmann::json& j, const std::string& where);

// Every namespace holding an address (find-netns --all): one on a node, several where labs or tests
// share a machine.
struct NetnsHolders {
  std::string ip;
  std::vector<NetnsOwner> holders;
  uint64_t scanned = 0;  // namespaces looked at
  std::string searched;  // "/proc and /run/netns"

  // "/run/netns/a (eth0, inode 4026532101), /proc/77/ns/net (pid 77, eth0, inode 4026532188)"
  std::string Describe() const;
  const NetnsOwner* WithInode(unsigned long inode) const;
};
nlohmann::json ToJson(const NetnsHolders& h);
NetnsHolders NetnsHoldersFromJson(const nlohmann::json& j, const std::string& where);

// ---- capture ----

// CaptureSummary::ToJson plus "marker_checked".
nlohmann::json CaptureReportBody(const capture::CaptureSummary& s);
capture::CaptureSummary CaptureSummaryFromJson(const nlohmann::json& j, const std::string& where);

}  // namespace kmesh::node
