// The workload API's istio.security.Authorization (what istiod sends Kmesh, Kmesh's
// api/workloadapi/security/authorization.proto) as a typed value, its proto3 wire form, and the
// translation istiod makes from an AuthorizationPolicy (istio-authz-facts.md §1-§5; "A:" is istio's
// pilot/pkg/serviceregistry/ambient/authorization.go at the commit that sheet read).
//
// The translation, in brief:
//   - scope: WORKLOAD_SELECTOR with spec.selector, else NAMESPACE, GLOBAL in the root namespace (A:426-433)
//   - each AuthorizationPolicy rule is one Rule; its Clauses, in this order (A:584-657):
//       a `to` clause with one Match per `to` entry (ports -> destination_ports, notPorts -> not_*)
//       a `from` clause with one Match per `from` entry (ipBlocks -> source_ips, namespaces, principals,
//       not_*) one clause per `when` condition, holding one Match (source.ip, source.namespace,
//       source.principal, destination.ip, destination.port; notValues -> the not_* twin in the same Match)
//   - strings: "*" presence, "*x" suffix x, "x*" prefix x, else exact (A:677-700)
//   - addresses: the address bytes (4 or 16) and the prefix length (A:733-768)
// Semantics (ztunnel and Kmesh userspace): a policy matches when any Rule does, a Rule when all its
// Clauses do, a Clause when any of its Matches does; within a Match field kinds AND, list values OR.
//
// What the workload API cannot carry is refused here, naming the policy and the field, instead of being
// translated the way istiod does it (istiod drops L7 rules of an ALLOW and strips L7 fields of a DENY,
// A:503-543, 650-654): hosts, paths, methods (and not-forms), request.headers and every other `when` key,
// and spec.targetRefs (istiod sends such a policy to no node dataplane, A:420-424). The lab enforces
// those with its waypoint stand-in.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2e/policy/policy.h"

namespace kmesh::lab::workloadapi {

enum class Scope : uint32_t { kGlobal = 0, kNamespace = 1, kWorkloadSelector = 2 };
enum class Action : uint32_t { kAllow = 0, kDeny = 1 };
const char* ToString(Scope s);   // "GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"
const char* ToString(Action a);  // "ALLOW", "DENY"

// istio.security.Address: the address bytes as sent (4 for IPv4, 16 for IPv6, network order) and the
// prefix length.
struct Address {
  std::vector<uint8_t> bytes;
  uint32_t length = 0;

  static Address FromCidr(const net::Cidr& cidr);
  // "10.244.1.5/32", "fd00::/64"; other byte counts as "<hex>/<length>".
  std::string ToString() const;
  bool operator==(const Address& o) const { return bytes == o.bytes && length == o.length; }
};

// istio.security.StringMatch. istiod also sends `presence` (field 4) for "*"; Kmesh's proto has no such
// field, so on a Kmesh node it arrives as a StringMatch with no match type (kUnset).
struct StringMatch {
  enum class Kind { kUnset, kExact, kPrefix, kSuffix, kPresence };
  Kind kind = Kind::kUnset;
  std::string value;  // for kExact, kPrefix, kSuffix

  // istiod's reading of a policy string (A:677-700).
  static StringMatch FromIstio(const std::string& text);
  static StringMatch Exact(const std::string& v) { return {Kind::kExact, v}; }
  // "exact:x", "prefix:x", "suffix:x", "presence", "unset".
  std::string ToString() const;
  bool operator==(const StringMatch& o) const { return kind == o.kind && value == o.value; }
};

struct Match {
  std::vector<StringMatch> namespaces, not_namespaces;
  std::vector<StringMatch> principals, not_principals;
  std::vector<Address> source_ips, not_source_ips;
  std::vector<Address> destination_ips, not_destination_ips;
  std::vector<uint32_t> destination_ports, not_destination_ports;

  bool Empty() const;
  bool operator==(const Match& o) const;
};

struct Clause {
  std::vector<Match> matches;
  bool operator==(const Clause& o) const { return matches == o.matches; }
};

struct Rule {
  std::vector<Clause> clauses;
  bool operator==(const Rule& o) const { return clauses == o.clauses; }
};

struct Authorization {
  std::string name;
  std::string ns;
  Scope scope = Scope::kGlobal;
  Action action = Action::kAllow;
  std::vector<Rule> rules;

  // "<namespace>/<name>": the XDS resource name and the string Kmesh hashes into the policy id
  // (api/v2/workloadapi/security/authorization_help.go:20-22).
  std::string ResourceName() const { return ns + "/" + name; }
  bool operator==(const Authorization& o) const {
    return name == o.name && ns == o.ns && scope == o.scope && action == o.action && rules == o.rules;
  }
};

// proto3 wire encoding, as istiod (and Kmesh's proto.Marshal in pkg/cache/v2/maps/authz.go:46-61)
// produces it: fields in number order, zero scalars and empty strings omitted, ports packed.
std::string Marshal(const Authorization& a);

// JSON for evidence and the lab daemon's protocol. Addresses as "10.244.1.5/32" (or
// {"bytes": "<hex>", "length": n} for other byte counts), string matches as {"exact": "x"}, {"prefix": ..},
// {"suffix": ..}, {"presence": true} or {} (unset). FromJson throws kmesh::Error naming the bad member.
nlohmann::json ToJson(const Authorization& a);
Authorization FromJson(const nlohmann::json& j);

struct TranslateOptions {
  // The mesh root namespace: a policy there without a selector is GLOBAL (istiod's default).
  std::string root_namespace = "istio-system";
};

// The Authorization istiod sends for `p`. Throws kmesh::Error "<origin>: policy ns/name: <field path>:
// <why>" for what the workload API cannot carry (L7 fields, other `when` keys, targetRefs).
Authorization Translate(const policy::AuthorizationPolicy& p, const TranslateOptions& opts = {});

// Whether istiod lists `p` in a workload's authorization_policies (workloads.go:846-877): it has a
// selector with at least one label, every label matches, and it lives in the workload's namespace or the
// root namespace. (`selector: {}` attaches to nothing: istiod's label selector is nil then; unconfirmed.)
bool SelectsWorkload(const policy::AuthorizationPolicy& p, const std::string& workload_ns,
                     const std::map<std::string, std::string>& labels, const TranslateOptions& opts = {});

// Workload.authorization_policies as istiod fills it: the sorted "ns/name" of every policy that selects
// the workload.
std::vector<std::string> WorkloadPolicyNames(const std::vector<policy::AuthorizationPolicy>& policies,
                                             const std::string& workload_ns,
                                             const std::map<std::string, std::string>& labels,
                                             const TranslateOptions& opts = {});

}  // namespace kmesh::lab::workloadapi
