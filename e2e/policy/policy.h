// A typed Istio AuthorizationPolicy (security.istio.io/v1 and v1beta1), the parts the lab and the
// suites reason about, and a strict parser for multi-document YAML manifests.
//
// Semantics (Istio's; Evaluate() in evaluate.h implements them):
//  - A policy matches a request when at least one of its rules matches. A policy with no rules matches
//    nothing: an ALLOW policy without rules therefore allows nothing ("allow-nothing"), a DENY policy
//    without rules denies nothing. `rules: [{}]` (one empty rule) matches every request ("allow-all").
//  - A rule matches when every part it has matches: `from` (any one of its sources), `to` (any one of its
//    operations) and `when` (all of its conditions). An absent or empty part is not checked.
//  - A source / an operation matches when every field it sets matches; a field matches when the request
//    value matches any entry of the list, a not-field when it matches none of them.
//  - String matches (namespaces, principals, hosts, paths, methods, header values) are exact, prefix
//    ("abc*"), suffix ("*abc") or presence ("*"). Hosts compare case-insensitively.
//  - action defaults to ALLOW when omitted. AUDIT and CUSTOM are not supported (parse error).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "net/ip.h"

namespace kmesh::policy {

enum class Action { kAllow, kDeny };
const char* ActionName(Action a);  // "ALLOW" / "DENY"

// Where in a manifest something was written: "ip-deny.yaml:14".
struct Origin {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  std::string ToString() const { return file + ":" + std::to_string(line); }
};

struct Source {
  std::vector<net::Cidr> ip_blocks, not_ip_blocks;
  std::vector<std::string> namespaces, not_namespaces;
  std::vector<std::string> principals, not_principals;
};

struct Operation {
  std::vector<uint16_t> ports, not_ports;
  std::vector<std::string> hosts, not_hosts;
  std::vector<std::string> paths, not_paths;
  std::vector<std::string> methods, not_methods;
};

// A `when` key, typed. Istio's other keys (request.auth.*, remote.ip, connection.sni, ...) parse into
// kOther with the key kept, so SupportedBy() can name them; Evaluate() refuses them.
struct ConditionKey {
  enum class Kind {
    kRequestHeader,    // request.headers[<name>]
    kSourceIp,         // source.ip
    kSourceNamespace,  // source.namespace
    kSourcePrincipal,  // source.principal
    kDestinationIp,    // destination.ip
    kDestinationPort,  // destination.port
    kOther,
  };
  Kind kind = Kind::kOther;
  std::string header;  // for kRequestHeader: the header name as written
  std::string text;    // the key as written in the manifest
};

struct Condition {
  ConditionKey key;
  std::vector<std::string> values, not_values;
};

struct Rule {
  std::vector<Source> from;
  std::vector<Operation> to;
  std::vector<Condition> when;
};

// spec.targetRefs entry (or the deprecated singular spec.targetRef).
struct TargetRef {
  std::string group;  // "" for core (Service)
  std::string kind;   // "Service", "Gateway", ...
  std::string name;
  std::string ns;  // empty: the policy's namespace
};

struct AuthorizationPolicy {
  std::string name;
  std::string ns;
  Action action = Action::kAllow;
  // spec.selector.matchLabels; empty with has_selector false means "every workload of the namespace".
  bool has_selector = false;
  std::map<std::string, std::string> selector;
  std::vector<TargetRef> target_refs;
  std::vector<Rule> rules;
  Origin origin;  // where the document starts

  // "<namespace>/<name>": the string Kmesh hashes (FNV-32a) into the policy id of km_authz_policy.
  std::string IdKey() const { return ns + "/" + name; }
};

// Parses every document of a manifest (documents separated by ---; empty documents are skipped).
// Each document must be a security.istio.io/v1 or v1beta1 AuthorizationPolicy. Anything wrong (YAML
// syntax, unknown kind or field, wrong type, bad port, bad CIDR, duplicate policy) throws kmesh::Error
// "<origin>:<line>: <field path>: <what is wrong>" and nothing is returned: all policies or none.
std::vector<AuthorizationPolicy> ParseManifests(const std::string& yaml_text, const std::string& origin);

// Reads and parses a file; origin is the file's base name.
std::vector<AuthorizationPolicy> ParseFile(const std::string& path);

}  // namespace kmesh::policy
