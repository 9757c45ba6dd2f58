// What kmesh-mapdump prints, as pure functions of the data it read: the same data always gives the same
// text (golden-file tested), and the kernel-facing code in commands.cc only gathers the data.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf_probe/json_writer.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/kmesh_policy.h"
#include "bpf_probe/map_watch.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/residue.h"
#include "bpf_probe/verdict.h"
#include "bpf_probe/xdp.h"
#include "bpf_probe/xdp_explain.h"
#include "net/tuple.h"

namespace kmesh::mapdump {

// --- maps ---
struct MapRow {
  bpf_probe::MapInfo info;
  std::optional<uint64_t> entries;  // nullopt: the map has no entries to count (ring buffer)
  std::string layout_problem;       // "" when the map is laid out like Kmesh's
};

// `missing`: Kmesh map names the source does not have.
std::string FormatMaps(const std::string& source, const std::vector<MapRow>& rows,
                       const std::vector<std::string>& missing, bool json);

// --- auth ---
struct AuthFilter {
  std::optional<net::IpAddr> ip;    // src or dst
  std::optional<net::IpAddr> src;
  std::optional<net::IpAddr> dst;
  std::optional<uint16_t> port;           // sport or dport
  std::optional<uint16_t> dport;
  std::optional<bpf_probe::Verdict> verdict;

  bool Matches(const bpf_probe::AuthEntry& e) const;
};

// One line per tuple: "10.244.1.5:40001 -> 10.244.2.7:8080  DENY". JSON: an array of objects.
std::string FormatAuth(const std::vector<bpf_probe::AuthEntry>& entries, const AuthFilter& filter,
                       net::PortOrder order, bool json);
// "3 of 5 entries shown: 2 DENY, 1 ALLOW; ports read in host order (current Kmesh)" (for stderr).
std::string AuthSummary(const std::vector<bpf_probe::AuthEntry>& entries, const AuthFilter& filter,
                        net::PortOrder order);

// --- policies ---
// `names`: policy id -> "namespace/name" for the names the user gave (--name).
// `details`: the policies decoded in full (kmesh_map* found), shown after the summary (text) or inside each
// policy's object (JSON); nullptr when the maps hold no blobs to decode (a datapath of another layout).
std::string FormatPolicies(const std::vector<bpf_probe::WorkloadPolicies>& workloads,
                           const std::vector<bpf_probe::AuthzPolicy>& policies,
                           const std::map<uint32_t, std::string>& names, bool json,
                           const std::vector<bpf_probe::DecodedPolicy>* details = nullptr);

// --- policies in full (format_policies.cc) ---
struct PolicyWorkloadRef {
  uint32_t workload_id = 0;
  size_t slot = 0;
};
// The workloads whose km_wlpolicy lists `key`, with the slot.
std::vector<PolicyWorkloadRef> WorkloadsListing(const std::vector<bpf_probe::WorkloadPolicies>& workloads,
                                                uint32_t key);
// Each policy as it is applied, like an AuthorizationPolicy in the workload API's terms: key, scope,
// action, the workloads listing it, rules -> clauses -> matches, and what could not be read.
std::string FormatPolicyDetails(const std::vector<bpf_probe::DecodedPolicy>& decoded,
                                const std::vector<bpf_probe::WorkloadPolicies>& workloads);
// The same as members of the JSON object of one policy (the caller has begun it).
void WritePolicyDetailsJson(bpf_probe::JsonWriter& w, const bpf_probe::DecodedPolicy& p,
                            const std::vector<bpf_probe::WorkloadPolicies>& workloads);

// --- explain (format_policies.cc) ---
// `cached_for_any_port`: without a source port, the km_auth_res entries of SRC -> DST:PORT from any port.
std::string FormatExplainText(const bpf_probe::XdpExplanation& e, bool sport_known,
                              const std::vector<std::pair<net::Tuple, uint32_t>>& cached_for_any_port);
std::string FormatExplainJson(const bpf_probe::XdpExplanation& e, bool sport_known,
                              const std::vector<std::pair<net::Tuple, uint32_t>>& cached_for_any_port);

// --- residue (format_residue.cc) ---
// `changes`: the entry counts against a baseline (`--baseline FILE`, named `baseline_origin`), or nullptr.
// At most `limit` examples per kind.
std::string FormatResidue(const bpf_probe::ResidueReport& r, const std::vector<bpf_probe::CountChange>* changes,
                          const std::string& baseline_origin, size_t limit, bool json);

// --- watch (format_residue.cc) ---
// "2026-11-30T09:31:02.123Z km_auth_res + 10.244.1.5:40001 -> 10.244.2.7:8080  DENY"; JSON: one object
// per line (time, map, change, key/before/after as bpftool's byte arrays, text).
std::string FormatWatchLine(std::chrono::system_clock::time_point when, const bpf_probe::MapChange& c,
                            net::PortOrder order, bool json);

// --- frontends ---
std::string FormatFrontends(const std::vector<bpf_probe::Frontend>& frontends, bool json);

// --- xdp ---
std::string FormatXdp(const std::string& netns, const std::vector<bpf_probe::XdpAttachment>& attachments,
                      bool json);

// --- usage ---
std::string Usage();

}  // namespace kmesh::mapdump
