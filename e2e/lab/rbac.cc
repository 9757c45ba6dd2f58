// Each function below names the Kmesh function it ports (file:line at ec501a98). The structure follows
// the Go code on purpose, so a reader can hold both side by side.
#include "e2e/lab/rbac.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace kmesh::lab {
namespace {

using bpf_probe::Bytes;
using bpf_probe::ByteView;
using net::IpAddr;
using workloadapi::Address;
using workloadapi::Authorization;
using workloadapi::Match;
using workloadapi::StringMatch;

constexpr const char* kSpiffePrefix = "spiffe://";  // SPIFFE_PREFIX, rbac.go:40

bool HasPrefix(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool HasSuffix(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// The generated Go getters of the StringMatch oneof: the value when that member is set, else "". Kmesh's
// proto has no `presence` member (api/workloadapi/security/authorization.proto), so a presence sent by
// istiod is dropped when Kmesh unmarshals it and arrives as an unset oneof.
std::string GetPrefix(const StringMatch& m) { return m.kind == StringMatch::Kind::kPrefix ? m.value : ""; }
std::string GetSuffix(const StringMatch& m) { return m.kind == StringMatch::Kind::kSuffix ? m.value : ""; }
std::string GetExact(const StringMatch& m) { return m.kind == StringMatch::Kind::kExact ? m.value : ""; }

bool IsV4Mapped(const Bytes& b) {
  static const uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return b.size() == 16 && std::memcmp(b.data(), kPrefix, 12) == 0;
}

// Go's net.IP.To4: 4 bytes stay, an IPv4-mapped 16-byte address gives its last 4, anything else nothing.
std::optional<Bytes> To4(const Bytes& ip) {
  if (ip.size() == 4) return ip;
  if (IsV4Mapped(ip)) return Bytes(ip.begin() + 12, ip.end());
  return std::nullopt;
}

// What net.ParseCIDR(fmt.Sprintf("%s/%d", net.IP(addr.GetAddress()).String(), addr.GetLength())) yields
// (rbac.go:394, 407): net.IP.String prints a 4-byte or IPv4-mapped address as dotted IPv4 and other 16-byte
// addresses as IPv6, and anything else as text ParseCIDR rejects; ParseCIDR rejects a prefix longer than
// the family's and masks the host bits.
struct GoIpNet {
  Bytes network;  // 4 or 16 bytes, masked
  uint32_t prefix = 0;
};

std::optional<GoIpNet> ParseCidrLikeGo(const Address& a) {
  Bytes ip = To4(a.bytes).value_or(a.bytes);
  if (ip.size() != 4 && ip.size() != 16) return std::nullopt;
  const uint32_t bits = static_cast<uint32_t>(ip.size() * 8);
  if (a.length > bits) return std::nullopt;
  for (uint32_t i = 0; i < bits; ++i) {
    if (i >= a.length) ip[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
  }
  return GoIpNet{ip, a.length};
}

// net.IPNet.Contains: an IPv4(-mapped) address is compared in its 4-byte form; families must agree.
bool Contains(const GoIpNet& n, const Bytes& ip_in) {
  Bytes ip = To4(ip_in).value_or(ip_in);
  if (ip.size() != n.network.size()) return false;
  for (uint32_t i = 0; i < n.prefix; ++i) {
    const uint8_t bit = static_cast<uint8_t>(0x80u >> (i % 8));
    if ((ip[i / 8] & bit) != (n.network[i / 8] & bit)) return false;
  }
  return true;
}

// internalMatchDstIp (rbac.go:392-403) and internalMatchSrcIp (rbac.go:405-416), identical: an address
// Go cannot parse is skipped.
bool InternalMatchIp(const Bytes& ip, const std::vector<Address>& addresses) {
  for (const auto& addr : addresses) {
    auto net = ParseCidrLikeGo(addr);
    if (!net) continue;
    if (Contains(*net, ip)) return true;
  }
  return false;
}

// internalMatchDstPort (rbac.go:418-425).
bool InternalMatchDstPort(uint32_t port, const std::vector<uint32_t>& ports) {
  return std::find(ports.begin(), ports.end(), port) != ports.end();
}

// internalMatchPrincipal and internalMatchNamespace (rbac.go:427-464), the same test of a string (the
// principal without its "spiffe://"). Kmesh defect: a StringMatch without a value (istiod's presence, "*")
// matches only the empty string (rbac.go:437-439, 456-458). An identity is never empty here, so principals:
// ["*"] never matches and notPrincipals: ["*"] never excludes (Istio: any authenticated peer); namespaces:
// ["*"] matches only sources Kmesh does not know.
bool InternalMatchString(const std::string& value, const std::vector<StringMatch>& matches) {
  for (const auto& p : matches) {
    const bool m = !GetPrefix(p).empty()   ? HasPrefix(value, GetPrefix(p))
                   : !GetSuffix(p).empty() ? HasSuffix(value, GetSuffix(p))
                   : !GetExact(p).empty()  ? value == GetExact(p)
                                           : value.empty();
    if (m) return true;
  }
  return false;
}

// The shape of matchDstIp, matchSrcIp, matchDstPort, matchPrincipal and matchNamespace (rbac.go:292-390):
// the positive list empty or hit, and the negative list empty or no hit.
template <typename V, typename L, typename Hit>
bool MatchLists(const V& v, const L& positive, const L& negative, Hit hit) {
  return (positive.empty() || hit(v, positive)) && (negative.empty() || !hit(v, negative));
}

// matchPrincipal (rbac.go:349-371): the identity must start with "spiffe://" (Identity::ToString always
// does), then the lists are tested without it.
bool MatchPrincipal(const std::string& src_id, const Match& m) {
  if (!HasPrefix(src_id, kSpiffePrefix)) return false;
  return MatchLists(src_id.substr(std::strlen(kSpiffePrefix)), m.principals, m.not_principals,
                    InternalMatchString);
}

// isEmptyMatch (rbac.go:530-536). Go tests nil slices; after Kmesh unmarshals the wire form an empty
// repeated field is nil, so "empty" is the same thing here.
bool IsEmptyMatch(const Match& m) {
  return m.destination_ips.empty() && m.not_destination_ips.empty() && m.source_ips.empty() &&
         m.not_source_ips.empty() && m.destination_ports.empty() && m.not_destination_ports.empty() &&
         m.principals.empty() && m.not_principals.empty() && m.namespaces.empty() && m.not_namespaces.empty();
}

std::optional<IpAddr> AddrFromSlice(const Bytes& ip) {
  if (ip.size() == 4) return IpAddr::V4(ip.data());
  if (ip.size() == 16) return IpAddr::V6(ip.data());
  return std::nullopt;
}

}  // namespace

std::string IstiodTrustDomain(const std::string& mesh_trust_domain) {
  return mesh_trust_domain == "cluster.local" ? "" : mesh_trust_domain;
}

// Identity.String (rbac.go:526-528).
std::string Identity::ToString() const {
  return std::string(kSpiffePrefix) + trust_domain + "/ns/" + ns + "/sa/" + service_account;
}

const char* ToString(RbacReason r) {
  switch (r) {
    case RbacReason::kUnknownDestination:
      return "unknown_destination";
    case RbacReason::kDenyPolicyMatched:
      return "deny_policy_matched";
    case RbacReason::kNoAllowPolicy:
      return "no_allow_policy";
    case RbacReason::kAllowPolicyMatched:
      return "allow_policy_matched";
    case RbacReason::kNoAllowMatched:
      return "no_allow_matched";
    case RbacReason::kMalformedRecord:
      return "malformed_record";
    case RbacReason::kUnknownMessageType:
      return "unknown_message_type";
  }
  return "?";
}

std::string RbacVerdict::ToString() const {
  std::string why;
  switch (reason) {
    case RbacReason::kUnknownDestination:
      why = "destination workload not found";
      break;
    case RbacReason::kDenyPolicyMatched:
      why = "DENY policy " + policy + " matched";
      break;
    case RbacReason::kNoAllowPolicy:
      why = "no ALLOW policy";
      break;
    case RbacReason::kAllowPolicyMatched:
      why = "ALLOW policy " + policy + " matched";
      break;
    case RbacReason::kNoAllowMatched:
      why = "no ALLOW policy matched";
      break;
    case RbacReason::kMalformedRecord:
      return "skipped (record is not 40 bytes)";
    case RbacReason::kUnknownMessageType:
      return "skipped (unknown message type)";
  }
  return std::string(allow ? "allow" : "deny") + " (" + why + ")";
}

// policyStore.updatePolicy (policy_store.go:45-72). Kmesh defect: a WORKLOAD_SELECTOR update returns
// before touching byNamespace (policy_store.go:54-56), so a policy that was NAMESPACE-scoped and gains a
// selector stays listed for its whole namespace and keeps applying to every workload there.
void Rbac::UpdatePolicy(const Authorization& policy) {
  const std::string key = policy.ResourceName();
  std::unique_lock lock(mu_);
  std::string ns;
  switch (policy.scope) {
    case workloadapi::Scope::kWorkloadSelector:
      by_key_[key] = policy;
      return;
    case workloadapi::Scope::kGlobal:
      ns = "";
      break;
    case workloadapi::Scope::kNamespace:
      ns = policy.ns;
      break;
    default:
      throw Error("invalid scope " + std::to_string(static_cast<uint32_t>(policy.scope)) +
                  " of authorization policy " + key + " (Kmesh's policyStore.updatePolicy refuses it)");
  }
  by_namespace_[ns].insert(key);
  by_key_[key] = policy;
}

// policyStore.removePolicy (policy_store.go:74-103).
void Rbac::RemovePolicy(const std::string& policy_key) {
  std::unique_lock lock(mu_);
  auto it = by_key_.find(policy_key);
  if (it == by_key_.end()) return;
  const Authorization policy = it->second;
  by_key_.erase(it);
  std::string ns;
  switch (policy.scope) {
    case workloadapi::Scope::kGlobal:
      ns = "";
      break;
    case workloadapi::Scope::kNamespace:
      ns = policy.ns;
      break;
    default:
      return;
  }
  auto s = by_namespace_.find(ns);
  if (s != by_namespace_.end()) {
    s->second.erase(policy_key);
    if (s->second.empty()) by_namespace_.erase(s);
  }
}

std::vector<std::string> Rbac::PolicyKeys() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [k, v] : by_key_) keys.push_back(k);
  return keys;
}

// policyStore.getByNamespace (policy_store.go:118-126).
std::vector<std::string> Rbac::PolicyKeysByNamespace(const std::string& ns) const {
  std::shared_lock lock(mu_);
  auto it = by_namespace_.find(ns);
  if (it == by_namespace_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

// cache.AddOrUpdateWorkload (workload_cache.go:71-90): host-network workloads are not indexed by address.
void Rbac::AddOrUpdateWorkload(const Workload& w) {
  auto shared = std::make_shared<const Workload>(w);
  std::unique_lock lock(mu_);
  by_uid_[w.uid] = shared;
  if (!w.host_network) {
    for (const auto& ip : w.addresses) by_addr_[NetworkAddress{w.network, ip}] = shared;
  }
}

// cache.DeleteWorkload and deleteAddr (workload_cache.go:92-106, 119-127): an address now held by
// another uid stays.
void Rbac::DeleteWorkload(const std::string& uid) {
  std::unique_lock lock(mu_);
  auto it = by_uid_.find(uid);
  if (it == by_uid_.end()) return;
  for (const auto& ip : it->second->addresses) {
    auto a = by_addr_.find(NetworkAddress{it->second->network, ip});
    if (a != by_addr_.end() && a->second->uid == uid) by_addr_.erase(a);
  }
  by_uid_.erase(it);
}

// cache.GetWorkloadByAddr (workload_cache.go:58-62) with netip.AddrFromSlice: a 16-byte IPv4-mapped
// address is an IPv6 key, distinct from the 4-byte one.
const Workload* Rbac::WorkloadByAddr(const std::string& network, const Bytes& ip) const {
  auto addr = AddrFromSlice(ip);
  if (!addr) return nullptr;
  auto it = by_addr_.find(NetworkAddress{network, *addr});
  return it == by_addr_.end() ? nullptr : it->second.get();
}

// getIdentityByIp (rbac.go:538-552): looked up on the default network ("") whatever network the source
// is on; an unknown source has the empty identity ("spiffe:///ns//sa/"). Kmesh defects: the identity comes
// from the source IP, not from an mTLS peer certificate (rbac.go:538 "todo"), so namespace and principal
// rules also grant or deny clients that have no mesh identity; and the trust domain is taken as istiod
// sends it, which is "" for the default cluster.local, so a principal written the Istio way
// ("cluster.local/ns/a/sa/b") never equals Kmesh's "/ns/a/sa/b".
Identity Rbac::IdentityByIp(const Bytes& ip) const {
  std::shared_lock lock(mu_);
  const Workload* w = WorkloadByAddr("", ip);
  if (w == nullptr) return Identity{};
  return Identity{w->trust_domain, w->ns, w->service_account};
}

// buildConnV4 (rbac.go:466-491) and buildConnV6 (rbac.go:493-524): addresses big-endian (so the bytes
// as they are), ports in native order; dstNetwork is never set.
RbacConnection Rbac::BuildConnection(uint32_t msg_type, ByteView tuple) const {
  if (tuple.size != 36) {
    throw Error("a km_auth_req tuple is 36 bytes, got " + std::to_string(tuple.size));
  }
  RbacConnection conn;
  if (msg_type == kMsgTypeIpv4) {
    conn.src_ip = tuple.sub(0, 4).ToBytes();
    conn.dst_ip = tuple.sub(4, 4).ToBytes();
    conn.dst_port = bpf_probe::ReadHost<uint16_t>(tuple, 10);
  } else {
    conn.src_ip = tuple.sub(0, 16).ToBytes();
    conn.dst_ip = tuple.sub(16, 16).ToBytes();
    conn.dst_port = bpf_probe::ReadHost<uint16_t>(tuple, 34);
  }
  conn.src_identity = IdentityByIp(conn.src_ip);
  return conn;
}

// aggregate (rbac.go:228-247): the workload's own (selector) policies, then those listed for its
// namespace, then the global ones; names not in the store are skipped.
void Rbac::Aggregate(const Workload& w, std::vector<const Authorization*>& allow,
                     std::vector<const Authorization*>& deny) const {
  std::vector<std::string> names = w.authorization_policies;
  for (const char* scope_ns : {w.ns.c_str(), ""}) {
    auto it = by_namespace_.find(scope_ns);
    if (it != by_namespace_.end()) names.insert(names.end(), it->second.begin(), it->second.end());
  }
  for (const auto& name : names) {
    auto p = by_key_.find(name);
    if (p == by_key_.end()) continue;
    if (p->second.action == workloadapi::Action::kAllow) {
      allow.push_back(&p->second);
    } else if (p->second.action == workloadapi::Action::kDeny) {
      deny.push_back(&p->second);
    }
  }
}

// doRbac (rbac.go:190-226), in its order: unknown destination -> deny; any DENY match -> deny; no ALLOW
// policy -> allow; any ALLOW match -> allow; else deny. The destination is looked up on conn.dst_network,
// which Kmesh's decoding never sets: a workload on a named network is never found and every connection to
// it is denied (Kmesh defect in multi-network meshes, rbac.go:192).
RbacVerdict Rbac::DoRbac(const RbacConnection& conn) const {
  std::shared_lock lock(mu_);
  const Workload* dst = WorkloadByAddr(conn.dst_network, conn.dst_ip);
  if (dst == nullptr) return RbacVerdict{false, RbacReason::kUnknownDestination, ""};
  std::vector<const Authorization*> allow, deny;
  Aggregate(*dst, allow, deny);
  for (const auto* p : deny) {
    if (Matches(conn, *p)) return RbacVerdict{false, RbacReason::kDenyPolicyMatched, p->ResourceName()};
  }
  if (allow.empty()) return RbacVerdict{true, RbacReason::kNoAllowPolicy, ""};
  for (const auto* p : allow) {
    if (Matches(conn, *p)) return RbacVerdict{true, RbacReason::kAllowPolicyMatched, p->ResourceName()};
  }
  return RbacVerdict{false, RbacReason::kNoAllowMatched, ""};
}

// The body of Rbac.Run's loop (rbac.go:142-169) and xdpNotifyConnRst's key (xdp_auth_handler.go:29-43).
RecordDecision Rbac::Decide(ByteView record) const {
  RecordDecision d;
  if (record.size != kAuthRecordSize) {
    d.verdict = RbacVerdict{true, RbacReason::kMalformedRecord, ""};
    return d;
  }
  // binary.LittleEndian.Uint32, whatever the host (rbac.go:147).
  const uint32_t msg_type = static_cast<uint32_t>(record[0]) | static_cast<uint32_t>(record[1]) << 8 |
                            static_cast<uint32_t>(record[2]) << 16 | static_cast<uint32_t>(record[3]) << 24;
  if (msg_type != kMsgTypeIpv4 && msg_type != kMsgTypeIpv6) {
    d.verdict = RbacVerdict{true, RbacReason::kUnknownMessageType, ""};
    return d;
  }
  const ByteView tuple = record.sub(4, kAuthRecordSize - 4);
  d.connection = BuildConnection(msg_type, tuple);
  const auto& c = *d.connection;
  net::Tuple t;
  t.src.ip = *AddrFromSlice(c.src_ip);
  t.dst.ip = *AddrFromSlice(c.dst_ip);
  t.src.port = bpf_probe::ReadHost<uint16_t>(tuple, msg_type == kMsgTypeIpv4 ? 8 : 32);
  t.dst.port = static_cast<uint16_t>(c.dst_port);
  d.tuple = t;
  d.verdict = DoRbac(c);
  if (!d.verdict.allow) {
    Bytes key = tuple.ToBytes();
    if (msg_type == kMsgTypeIpv4) {
      for (size_t i = kIpv4TupleLength; i < key.size(); ++i) key[i] = 0;
    }
    d.deny_key = std::move(key);
  }
  return d;
}

// matches (rbac.go:249-290): a policy without rules never matches; a rule matches when every clause does
// (a clause without matches counts as matched); a clause matches when one of its non-empty matches does;
// within a match the field kinds AND (dst IP, src IP, dst port, principal, namespace, in Kmesh's order).
bool Matches(const RbacConnection& conn, const Authorization& policy) {
  if (policy.rules.empty()) return false;
  const std::string src_id = conn.src_identity.ToString();
  for (const auto& rule : policy.rules) {
    bool rule_match = true;
    for (const auto& clause : rule.clauses) {
      bool clause_match = false;
      for (const auto& match : clause.matches) {
        if (IsEmptyMatch(match)) continue;
        if (MatchLists(conn.dst_ip, match.destination_ips, match.not_destination_ips, InternalMatchIp) &&
            MatchLists(conn.src_ip, match.source_ips, match.not_source_ips, InternalMatchIp) &&
            MatchLists(conn.dst_port, match.destination_ports, match.not_destination_ports,
                       InternalMatchDstPort) &&
            MatchPrincipal(src_id, match) &&
            MatchLists(conn.src_identity.ns, match.namespaces, match.not_namespaces, InternalMatchString)) {
          clause_match = true;
          break;
        }
      }
      if (clause.matches.empty()) clause_match = true;
      rule_match = rule_match && clause_match;
      if (!rule_match) break;
    }
    if (rule_match) return true;
  }
  return false;
}

}  // namespace kmesh::lab
