// Rbac: a port of Kmesh's userspace authorizer at the pinned commit (ec501a98), rule for rule:
// pkg/auth/rbac.go (doRbac, aggregate, matches, the match* functions, record decoding),
// pkg/auth/policy_store.go (policies by key and by namespace scope), pkg/auth/xdp_auth_handler.go (the key
// it writes) and the workload cache it reads (pkg/controller/workload/cache/workload_cache.go).
//
// Kmesh decides here what its XDP program defers (namespaces, principals) and, since sockops reports every
// accepted connection of a managed pod, re-decides every connection with NAMESPACE- and GLOBAL-scoped
// policies too. Where Kmesh's Go code disagrees with Istio's semantics the port keeps Kmesh's behaviour
// (the suite shows it as a Kmesh defect); such places say "Kmesh defect" beside the port, and
// docs/design.md ("The userspace half") lists them.
//
// The input is the workload API's istio.security.Authorization as e2e/lab/workload_authz.h types it
// (what istiod sends Kmesh), and Workloads as istiod sends them. Nothing here touches the kernel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "bpf_probe/bytes.h"
#include "e2e/lab/workload_authz.h"
#include "net/tuple.h"

namespace kmesh::lab {

// The parts of istio.workload.Workload the authorizer reads (Kmesh's api/workloadapi/workload.proto).
struct Workload {
  std::string uid;
  std::string name;
  std::string ns;
  std::string service_account;
  // As istiod sends it: "" when the mesh's trust domain is the default cluster.local (istiod's
  // pickTrustDomain elides it; workload.proto:187-188 "May be elided"). See IstiodTrustDomain().
  std::string trust_domain;
  std::string network;  // "" for the default network
  std::vector<net::IpAddr> addresses;
  // "ns/name" of the WORKLOAD_SELECTOR policies istiod found for this workload (workloadapi
  // WorkloadPolicyNames gives them).
  std::vector<std::string> authorization_policies;
  bool host_network = false;  // NetworkMode_HOST_NETWORK: not indexed by address
};

// What istiod puts in Workload.trust_domain for a mesh trust domain (istio's ambient workloads.go
// pickTrustDomain: "" for "cluster.local", else the trust domain).
std::string IstiodTrustDomain(const std::string& mesh_trust_domain);

// The source identity Kmesh derives from the client's IP (rbac.go:71-75, 526-528).
struct Identity {
  std::string trust_domain;
  std::string ns;
  std::string service_account;
  // "spiffe://<td>/ns/<ns>/sa/<sa>" (rbac.go:526-528).
  std::string ToString() const;
};

// rbac.go:77-86. src_ip/dst_ip are 4 bytes (IPv4) or 16 (IPv6), network order; dst_port host value.
struct RbacConnection {
  Identity src_identity;
  std::string dst_network;  // never set by Kmesh's record decoding: always "" (see DoRbac)
  bpf_probe::Bytes src_ip;
  bpf_probe::Bytes dst_ip;
  uint32_t dst_port = 0;
};

// Why Kmesh allowed or denied a connection, in doRbac's order (rbac.go:190-226), or why a record was
// skipped without a verdict (rbac.go:142-158: nothing is written for those).
enum class RbacReason {
  kUnknownDestination,  // no workload has the destination IP: deny
  kDenyPolicyMatched,   // a DENY policy matched: deny
  kNoAllowPolicy,       // no ALLOW policy applies: allow
  kAllowPolicyMatched,  // an ALLOW policy matched: allow
  kNoAllowMatched,      // ALLOW policies apply, none matched: deny
  kMalformedRecord,     // record length is not 40: skipped
  kUnknownMessageType,  // msg type neither IPv4 (0) nor IPv6 (1): skipped
};
const char* ToString(RbacReason r);  // "unknown_destination", "deny_policy_matched", ...

struct RbacVerdict {
  bool allow = false;
  RbacReason reason = RbacReason::kUnknownDestination;
  std::string policy;  // "ns/name" of the policy that decided (matched DENY or ALLOW), else ""
  // A record was skipped (malformed, unknown type): Kmesh writes nothing, so the connection stays allowed.
  bool skipped() const {
    return reason == RbacReason::kMalformedRecord || reason == RbacReason::kUnknownMessageType;
  }
  // "deny (DENY policy ns/x matched)", "allow (no ALLOW policy)".
  std::string ToString() const;
};

// One km_auth_req record as Rbac.Run reads it (rbac.go:142-158): msg type then the 36-byte tuple.
inline constexpr size_t kAuthRecordSize = 40;   // MSG_LEN, rbac.go:45-46
inline constexpr size_t kIpv4TupleLength = 12;  // IPV4_TUPLE_LENGTH, rbac.go:41-42
inline constexpr uint32_t kMsgTypeIpv4 = 0;     // pkg/constants/constants.go:52
inline constexpr uint32_t kMsgTypeIpv6 = 1;     // pkg/constants/constants.go:53

// What Rbac.Run does with one record.
struct RecordDecision {
  RbacVerdict verdict;
  std::optional<RbacConnection> connection;  // decoded; absent when skipped
  std::optional<net::Tuple> tuple;           // the same, as a Tuple (client -> server pod)
  // The km_auth_res key to write value 1 under, for a deny (xdpNotifyConnRst): the record's tuple bytes,
  // with bytes 12..35 zeroed for IPv4.
  std::optional<bpf_probe::Bytes> deny_key;
};

class Rbac {
 public:
  Rbac() = default;
  Rbac(const Rbac&) = delete;
  Rbac& operator=(const Rbac&) = delete;

  // policyStore.updatePolicy (policy_store.go:45-72). Throws kmesh::Error for a scope outside
  // GLOBAL/NAMESPACE/WORKLOAD_SELECTOR, as Kmesh returns an error.
  void UpdatePolicy(const workloadapi::Authorization& policy);
  // policyStore.removePolicy (policy_store.go:74-103): by "ns/name"; an unknown key is ignored.
  void RemovePolicy(const std::string& policy_key);
  // The keys of every stored policy (policy_store.go:106-115), sorted.
  std::vector<std::string> PolicyKeys() const;
  // Policy keys listed under `ns` ("" = GLOBAL) in byNamespace (policy_store.go:118-126), sorted.
  std::vector<std::string> PolicyKeysByNamespace(const std::string& ns) const;

  // The workload cache (workload_cache.go:71-90, 92-106).
  void AddOrUpdateWorkload(const Workload& w);
  void DeleteWorkload(const std::string& uid);

  // doRbac (rbac.go:190-226): true = allow.
  RbacVerdict DoRbac(const RbacConnection& conn) const;
  // The loop body of Rbac.Run (rbac.go:142-169) for one record: decode, DoRbac, and the key to write.
  RecordDecision Decide(bpf_probe::ByteView record) const;
  // buildConnV4 / buildConnV6 (rbac.go:466-524) on the 36 tuple bytes, with the source identity looked up.
  RbacConnection BuildConnection(uint32_t msg_type, bpf_probe::ByteView tuple) const;

 private:
  struct NetworkAddress {
    std::string network;
    net::IpAddr address;
    bool operator<(const NetworkAddress& o) const {
      return network != o.network ? network < o.network : address < o.address;
    }
  };

  // Callers hold mu_.
  const Workload* WorkloadByAddr(const std::string& network, const bpf_probe::Bytes& ip) const;
  Identity IdentityByIp(const bpf_probe::Bytes& ip) const;
  void Aggregate(const Workload& w, std::vector<const workloadapi::Authorization*>& allow,
                 std::vector<const workloadapi::Authorization*>& deny) const;

  mutable std::shared_mutex mu_;
  // policyStore (policy_store.go:28-36)
  std::map<std::string, workloadapi::Authorization> by_key_;
  std::map<std::string, std::set<std::string>> by_namespace_;
  // cache (workload_cache.go:39-43). byAddr keeps the workload object it was added with, like Kmesh's
  // pointers: an update that drops an address leaves that address on the old object.
  std::map<std::string, std::shared_ptr<const Workload>> by_uid_;
  std::map<NetworkAddress, std::shared_ptr<const Workload>> by_addr_;
};

// matches (rbac.go:249-290): whether `policy` matches `conn`, Kmesh's way.
bool Matches(const RbacConnection& conn, const workloadapi::Authorization& policy);

}  // namespace kmesh::lab
