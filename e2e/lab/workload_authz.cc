#include "e2e/lab/workload_authz.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "base/error.h"
#include "base/hex.h"

namespace kmesh::lab::workloadapi {

using nlohmann::json;

const char* ToString(Scope s) {
  switch (s) {
    case Scope::kGlobal:
      return "GLOBAL";
    case Scope::kNamespace:
      return "NAMESPACE";
    case Scope::kWorkloadSelector:
      return "WORKLOAD_SELECTOR";
  }
  return "?";
}

const char* ToString(Action a) {
  switch (a) {
    case Action::kAllow:
      return "ALLOW";
    case Action::kDeny:
      return "DENY";
  }
  return "?";
}

namespace {

std::string Hex(const std::vector<uint8_t>& b) { return HexBytes(b.data(), b.size()); }

std::vector<uint8_t> FromHex(const std::string& s, const std::string& where) {
  size_t bad = 0;
  if (auto bytes = BytesFromHex(s, &bad)) return *bytes;
  if (bad == s.size()) throw Error(where + ": hex \"" + s + "\" has an odd number of digits");
  throw Error(where + ": \"" + s + "\" is not hex (at digit " + std::to_string(bad & ~size_t{1}) + ")");
}

}  // namespace

// --- values ------------------------------------------------------------------------------------------

Address Address::FromCidr(const net::Cidr& cidr) {
  Address a;
  a.bytes = cidr.address().ToBytes();
  a.length = static_cast<uint32_t>(cidr.prefix_len());
  return a;
}

std::string Address::ToString() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (bytes.size() == 4) {
    inet_ntop(AF_INET, bytes.data(), text, sizeof text);
  } else if (bytes.size() == 16) {
    inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  } else {
    return Hex(bytes) + "/" + std::to_string(length);
  }
  return std::string(text) + "/" + std::to_string(length);
}

StringMatch StringMatch::FromIstio(const std::string& text) {
  if (text == "*") return {Kind::kPresence, ""};
  if (!text.empty() && text.front() == '*') return {Kind::kSuffix, text.substr(1)};
  if (!text.empty() && text.back() == '*') return {Kind::kPrefix, text.substr(0, text.size() - 1)};
  return {Kind::kExact, text};
}

std::string StringMatch::ToString() const {
  switch (kind) {
    case Kind::kUnset:
      return "unset";
    case Kind::kExact:
      return "exact:" + value;
    case Kind::kPrefix:
      return "prefix:" + value;
    case Kind::kSuffix:
      return "suffix:" + value;
    case Kind::kPresence:
      return "presence";
  }
  return "?";
}

bool Match::Empty() const {
  return namespaces.empty() && not_namespaces.empty() && principals.empty() && not_principals.empty() &&
         source_ips.empty() && not_source_ips.empty() && destination_ips.empty() &&
         not_destination_ips.empty() && destination_ports.empty() && not_destination_ports.empty();
}

bool Match::operator==(const Match& o) const {
  return namespaces == o.namespaces && not_namespaces == o.not_namespaces && principals == o.principals &&
         not_principals == o.not_principals && source_ips == o.source_ips &&
         not_source_ips == o.not_source_ips && destination_ips == o.destination_ips &&
         not_destination_ips == o.not_destination_ips && destination_ports == o.destination_ports &&
         not_destination_ports == o.not_destination_ports;
}

// --- proto3 wire ---------------------------------------------------------------------------------------

namespace {

enum WireType : uint32_t { kVarint = 0, kLengthDelimited = 2 };

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutTag(std::string& out, uint32_t field, WireType type) {
  PutVarint(out, (uint64_t{field} << 3) | type);
}

void PutBytes(std::string& out, uint32_t field, const std::string& bytes) {
  PutTag(out, field, kLengthDelimited);
  PutVarint(out, bytes.size());
  out += bytes;
}

// proto3 leaves out a string or bytes field that is empty, and a scalar that is zero.
void PutStringField(std::string& out, uint32_t field, const std::string& s) {
  if (!s.empty()) PutBytes(out, field, s);
}

void PutVarintField(std::string& out, uint32_t field, uint64_t v) {
  if (v == 0) return;
  PutTag(out, field, kVarint);
  PutVarint(out, v);
}

void PutPacked(std::string& out, uint32_t field, const std::vector<uint32_t>& values) {
  if (values.empty()) return;
  std::string packed;
  for (uint32_t v : values) PutVarint(packed, v);
  PutBytes(out, field, packed);
}

std::string EncodeAddress(const Address& a) {
  std::string out;
  PutStringField(out, 1, std::string(a.bytes.begin(), a.bytes.end()));
  PutVarintField(out, 2, a.length);
  return out;
}

std::string EncodeStringMatch(const StringMatch& m) {
  std::string out;
  switch (m.kind) {
    // A oneof member is sent even when empty: it says which member is set.
    case StringMatch::Kind::kExact:
      PutBytes(out, 1, m.value);
      break;
    case StringMatch::Kind::kPrefix:
      PutBytes(out, 2, m.value);
      break;
    case StringMatch::Kind::kSuffix:
      PutBytes(out, 3, m.value);
      break;
    case StringMatch::Kind::kPresence:
      PutBytes(out, 4, "");
      break;  // google.protobuf.Empty
    case StringMatch::Kind::kUnset:
      break;
  }
  return out;
}

std::string EncodeMatch(const Match& m) {
  std::string out;
  auto strings = [&](uint32_t field, const std::vector<StringMatch>& v) {
    for (const auto& s : v) PutBytes(out, field, EncodeStringMatch(s));
  };
  auto addresses = [&](uint32_t field, const std::vector<Address>& v) {
    for (const auto& a : v) PutBytes(out, field, EncodeAddress(a));
  };
  strings(1, m.namespaces);
  strings(2, m.not_namespaces);
  strings(3, m.principals);
  strings(4, m.not_principals);
  addresses(5, m.source_ips);
  addresses(6, m.not_source_ips);
  addresses(7, m.destination_ips);
  addresses(8, m.not_destination_ips);
  PutPacked(out, 9, m.destination_ports);
  PutPacked(out, 10, m.not_destination_ports);
  return out;
}

}  // namespace

std::string Marshal(const Authorization& a) {
  std::string out;
  PutStringField(out, 1, a.name);
  PutStringField(out, 2, a.ns);
  PutVarintField(out, 3, static_cast<uint32_t>(a.scope));
  PutVarintField(out, 4, static_cast<uint32_t>(a.action));
  for (const Rule& r : a.rules) {
    std::string rule;
    for (const Clause& c : r.clauses) {
      std::string clause;
      for (const Match& m : c.matches) PutBytes(clause, 2, EncodeMatch(m));  // Clause.matches = 2
      PutBytes(rule, 1, clause);                                             // Rule.clauses = 1
    }
    PutBytes(out, 5, rule);  // Authorization.rules = 5
  }
  return out;
}

// --- JSON ----------------------------------------------------------------------------------------------

namespace {

json AddressJson(const Address& a) {
  if (a.bytes.size() == 4 || a.bytes.size() == 16) return a.ToString();
  return json{{"bytes", Hex(a.bytes)}, {"length", a.length}};
}

Address AddressFromJson(const json& j, const std::string& where) {
  if (j.is_string()) {
    const std::string text = j.get<std::string>();
    const auto cidr = net::Cidr::Parse(text);
    if (!cidr) throw Error(where + ": \"" + text + "\" is not an address or CIDR");
    // Cidr::Parse masks host bits; keep the address as written, as istiod does.
    Address a = Address::FromCidr(*cidr);
    a.bytes = net::IpAddr::Parse(text.substr(0, text.find('/')))->Unmapped().ToBytes();
    return a;
  }
  if (j.is_object() && j.contains("bytes") && j.contains("length")) {
    Address a;
    a.bytes = FromHex(j.at("bytes").get<std::string>(), where + ".bytes");
    a.length = j.at("length").get<uint32_t>();
    return a;
  }
  throw Error(where + ": expected \"a.b.c.d/len\" or {\"bytes\", \"length\"}, found " + j.dump());
}

json StringMatchJson(const StringMatch& m) {
  switch (m.kind) {
    case StringMatch::Kind::kExact:
      return json{{"exact", m.value}};
    case StringMatch::Kind::kPrefix:
      return json{{"prefix", m.value}};
    case StringMatch::Kind::kSuffix:
      return json{{"suffix", m.value}};
    case StringMatch::Kind::kPresence:
      return json{{"presence", true}};
    case StringMatch::Kind::kUnset:
      break;
  }
  return json::object();
}

StringMatch StringMatchFromJson(const json& j, const std::string& where) {
  if (!j.is_object() || j.size() > 1)
    throw Error(where + ": expected one of exact/prefix/suffix/presence, found " + j.dump());
  if (j.empty()) return {};
  const auto& [k, v] = *j.items().begin();
  if (k == "exact") return {StringMatch::Kind::kExact, v.get<std::string>()};
  if (k == "prefix") return {StringMatch::Kind::kPrefix, v.get<std::string>()};
  if (k == "suffix") return {StringMatch::Kind::kSuffix, v.get<std::string>()};
  if (k == "presence") return {StringMatch::Kind::kPresence, ""};
  throw Error(where + ": unknown string match kind \"" + k + "\"");
}

// The Match fields, in proto order, with their JSON names.
struct MatchFields {
  template <typename Fn>
  static void Strings(Match& m, Fn fn) {
    fn("namespaces", m.namespaces);
    fn("not_namespaces", m.not_namespaces);
    fn("principals", m.principals);
    fn("not_principals", m.not_principals);
  }
  template <typename Fn>
  static void Addresses(Match& m, Fn fn) {
    fn("source_ips", m.source_ips);
    fn("not_source_ips", m.not_source_ips);
    fn("destination_ips", m.destination_ips);
    fn("not_destination_ips", m.not_destination_ips);
  }
  template <typename Fn>
  static void Ports(Match& m, Fn fn) {
    fn("destination_ports", m.destination_ports);
    fn("not_destination_ports", m.not_destination_ports);
  }
};

json MatchJson(Match m) {
  json j = json::object();
  MatchFields::Strings(m, [&](const char* name, const std::vector<StringMatch>& v) {
    if (v.empty()) return;
    for (const auto& s : v) j[name].push_back(StringMatchJson(s));
  });
  MatchFields::Addresses(m, [&](const char* name, const std::vector<Address>& v) {
    if (v.empty()) return;
    for (const auto& a : v) j[name].push_back(AddressJson(a));
  });
  MatchFields::Ports(m, [&](const char* name, const std::vector<uint32_t>& v) {
    if (!v.empty()) j[name] = v;
  });
  return j;
}

Match MatchFromJson(const json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": expected an object, found " + j.dump());
  Match m;
  size_t known = 0;
  MatchFields::Strings(m, [&](const char* name, std::vector<StringMatch>& v) {
    if (!j.contains(name)) return;
    ++known;
    size_t i = 0;
    for (const auto& s : j.at(name))
      v.push_back(StringMatchFromJson(s, where + "." + name + "[" + std::to_string(i++) + "]"));
  });
  MatchFields::Addresses(m, [&](const char* name, std::vector<Address>& v) {
    if (!j.contains(name)) return;
    ++known;
    size_t i = 0;
    for (const auto& a : j.at(name))
      v.push_back(AddressFromJson(a, where + "." + name + "[" + std::to_string(i++) + "]"));
  });
  MatchFields::Ports(m, [&](const char* name, std::vector<uint32_t>& v) {
    if (!j.contains(name)) return;
    ++known;
    v = j.at(name).get<std::vector<uint32_t>>();
  });
  if (known != j.size()) throw Error(where + ": unknown member in " + j.dump());
  return m;
}

template <typename E>
E EnumFromJson(const json& j, const std::string& where, std::initializer_list<E> values) {
  const std::string s = j.get<std::string>();
  for (E e : values) {
    if (s == ToString(e)) return e;
  }
  throw Error(where + ": unknown value \"" + s + "\"");
}

}  // namespace

json ToJson(const Authorization& a) {
  json rules = json::array();
  for (const Rule& r : a.rules) {
    json clauses = json::array();
    for (const Clause& c : r.clauses) {
      json matches = json::array();
      for (const Match& m : c.matches) matches.push_back(MatchJson(m));
      clauses.push_back(json{{"matches", matches}});
    }
    rules.push_back(json{{"clauses", clauses}});
  }
  return json{{"name", a.name},
              {"namespace", a.ns},
              {"scope", ToString(a.scope)},
              {"action", ToString(a.action)},
              {"rules", rules}};
}

Authorization FromJson(const json& j) {
  try {
    Authorization a;
    a.name = j.at("name").get<std::string>();
    a.ns = j.at("namespace").get<std::string>();
    a.scope =
        EnumFromJson(j.at("scope"), "scope", {Scope::kGlobal, Scope::kNamespace, Scope::kWorkloadSelector});
    a.action = EnumFromJson(j.at("action"), "action", {Action::kAllow, Action::kDeny});
    size_t r = 0;
    for (const auto& rj : j.at("rules")) {
      Rule rule;
      size_t c = 0;
      for (const auto& cj : rj.at("clauses")) {
        Clause clause;
        size_t m = 0;
        for (const auto& mj : cj.at("matches")) {
          clause.matches.push_back(MatchFromJson(mj, "rules[" + std::to_string(r) + "].clauses[" +
                                                         std::to_string(c) + "].matches[" +
                                                         std::to_string(m) + "]"));
          ++m;
        }
        rule.clauses.push_back(std::move(clause));
        ++c;
      }
      a.rules.push_back(std::move(rule));
      ++r;
    }
    return a;
  } catch (const json::exception& e) {
    throw Error(std::string("workload API Authorization JSON: ") + e.what() + " in " + j.dump());
  } catch (const Error& e) {
    throw Error(std::string("workload API Authorization JSON: ") + e.what());
  }
}

// --- translation ---------------------------------------------------------------------------------------

namespace {

class Translator {
 public:
  Translator(const policy::AuthorizationPolicy& p, const TranslateOptions& opts) : p_(p), opts_(opts) {}

  Authorization Run() {
    if (!p_.target_refs.empty()) {
      Refuse("spec.targetRefs",
             "istiod sends a policy attached with targetRefs to no node dataplane (pilot ambient "
             "authorization.go A:420-424), so Kmesh never sees it; the lab's waypoint stand-in enforces it");
    }
    Authorization a;
    a.name = p_.name;
    a.ns = p_.ns;
    a.action = p_.action == policy::Action::kDeny ? Action::kDeny : Action::kAllow;
    if (p_.has_selector) {
      a.scope = Scope::kWorkloadSelector;
    } else {
      a.scope = p_.ns == opts_.root_namespace ? Scope::kGlobal : Scope::kNamespace;
    }
    for (size_t r = 0; r < p_.rules.size(); ++r) a.rules.push_back(TranslateRule(p_.rules[r], r));
    return a;
  }

 private:
  [[noreturn]] void Refuse(const std::string& path, const std::string& why) const {
    throw Error(p_.origin.ToString() + ": policy " + p_.IdKey() + ": " + path + ": " + why);
  }

  void RefuseL7(bool present, const std::string& path) const {
    if (!present) return;
    Refuse(path,
           "an L7 attribute: the workload API (what istiod sends Kmesh) cannot carry it and Kmesh's node "
           "dataplane never sees it; attach the policy with spec.targetRefs so the lab's waypoint stand-in "
           "enforces it");
  }

  std::vector<Address> Addresses(const std::vector<net::Cidr>& v) const {
    std::vector<Address> out;
    for (const auto& c : v) out.push_back(Address::FromCidr(c));
    return out;
  }

  static std::vector<StringMatch> Strings(const std::vector<std::string>& v) {
    std::vector<StringMatch> out;
    for (const auto& s : v) out.push_back(StringMatch::FromIstio(s));
    return out;
  }

  std::vector<Address> ConditionAddresses(const std::vector<std::string>& values,
                                          const std::string& path) const {
    std::vector<Address> out;
    for (const auto& v : values) {
      const auto cidr = net::Cidr::Parse(v);
      if (!cidr) Refuse(path, "\"" + v + "\" is not an address or CIDR (istiod would drop it silently)");
      out.push_back(Address::FromCidr(*cidr));
    }
    return out;
  }

  std::vector<uint32_t> ConditionPorts(const std::vector<std::string>& values,
                                       const std::string& path) const {
    std::vector<uint32_t> out;
    for (const auto& v : values) {
      char* end = nullptr;
      const unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n > 65535)
        Refuse(path, "\"" + v + "\" is not a port 0-65535 (istiod would drop it silently)");
      out.push_back(static_cast<uint32_t>(n));
    }
    return out;
  }

  Rule TranslateRule(const policy::Rule& rule, size_t r) const {
    const std::string rp = "spec.rules[" + std::to_string(r) + "]";
    Rule out;
    if (!rule.to.empty()) {  // the `to` clause first (A:588-600)
      Clause c;
      for (size_t i = 0; i < rule.to.size(); ++i) {
        const policy::Operation& op = rule.to[i];
        const std::string path = rp + ".to[" + std::to_string(i) + "].operation.";
        RefuseL7(!op.hosts.empty(), path + "hosts");
        RefuseL7(!op.not_hosts.empty(), path + "notHosts");
        RefuseL7(!op.paths.empty(), path + "paths");
        RefuseL7(!op.not_paths.empty(), path + "notPaths");
        RefuseL7(!op.methods.empty(), path + "methods");
        RefuseL7(!op.not_methods.empty(), path + "notMethods");
        Match m;
        m.destination_ports.assign(op.ports.begin(), op.ports.end());
        m.not_destination_ports.assign(op.not_ports.begin(), op.not_ports.end());
        c.matches.push_back(std::move(m));
      }
      out.clauses.push_back(std::move(c));
    }
    if (!rule.from.empty()) {  // then the `from` clause (A:601-620)
      Clause c;
      for (const policy::Source& src : rule.from) {
        Match m;
        m.source_ips = Addresses(src.ip_blocks);
        m.not_source_ips = Addresses(src.not_ip_blocks);
        m.namespaces = Strings(src.namespaces);
        m.not_namespaces = Strings(src.not_namespaces);
        m.principals = Strings(src.principals);
        m.not_principals = Strings(src.not_principals);
        c.matches.push_back(std::move(m));
      }
      out.clauses.push_back(std::move(c));
    }
    for (size_t i = 0; i < rule.when.size(); ++i) {  // one clause per condition (A:629-649)
      const policy::Condition& cond = rule.when[i];
      const std::string path = rp + ".when[" + std::to_string(i) + "] (key " + cond.key.text + ")";
      Match m;
      using Kind = policy::ConditionKey::Kind;
      switch (cond.key.kind) {
        case Kind::kSourceIp:
          m.source_ips = ConditionAddresses(cond.values, path);
          m.not_source_ips = ConditionAddresses(cond.not_values, path);
          break;
        case Kind::kDestinationIp:
          m.destination_ips = ConditionAddresses(cond.values, path);
          m.not_destination_ips = ConditionAddresses(cond.not_values, path);
          break;
        case Kind::kDestinationPort:
          m.destination_ports = ConditionPorts(cond.values, path);
          m.not_destination_ports = ConditionPorts(cond.not_values, path);
          break;
        case Kind::kSourceNamespace:
          m.namespaces = Strings(cond.values);
          m.not_namespaces = Strings(cond.not_values);
          break;
        case Kind::kSourcePrincipal:
          m.principals = Strings(cond.values);
          m.not_principals = Strings(cond.not_values);
          break;
        case Kind::kRequestHeader:
        case Kind::kOther:
          RefuseL7(true, path);
      }
      out.clauses.push_back(Clause{{std::move(m)}});
    }
    return out;
  }

  const policy::AuthorizationPolicy& p_;
  const TranslateOptions& opts_;
};

}  // namespace

Authorization Translate(const policy::AuthorizationPolicy& p, const TranslateOptions& opts) {
  return Translator(p, opts).Run();
}

bool SelectsWorkload(const policy::AuthorizationPolicy& p, const std::string& workload_ns,
                     const std::map<std::string, std::string>& labels, const TranslateOptions& opts) {
  if (!p.has_selector || p.selector.empty() || !p.target_refs.empty()) return false;
  if (p.ns != workload_ns && p.ns != opts.root_namespace) return false;
  for (const auto& [k, v] : p.selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::vector<std::string> WorkloadPolicyNames(const std::vector<policy::AuthorizationPolicy>& policies,
                                             const std::string& workload_ns,
                                             const std::map<std::string, std::string>& labels,
                                             const TranslateOptions& opts) {
  std::vector<std::string> names;
  for (const auto& p : policies) {
    if (SelectsWorkload(p, workload_ns, labels, opts)) names.push_back(p.IdKey());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace kmesh::lab::workloadapi
