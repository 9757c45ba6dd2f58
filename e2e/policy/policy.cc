#include "e2e/policy/policy.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "base/error.h"

namespace kmesh::policy {

const char* ActionName(Action a) { return a == Action::kAllow ? "ALLOW" : "DENY"; }

namespace {

// A mapping's fields in order, each with its key node (whose mark is the field's line, also when the
// value is empty).
struct Field {
  std::string name;
  YAML::Node key;
  YAML::Node value;
};

// Istio fields the model deliberately does not cover: parsing them would silently drop a constraint.
const std::map<std::string, std::string>& UncoveredIstioFields() {
  static const std::map<std::string, std::string> fields = {
      {"remoteIpBlocks", "source.remoteIpBlocks (X-Forwarded-For / proxy protocol)"},
      {"notRemoteIpBlocks", "source.notRemoteIpBlocks"},
      {"requestPrincipals", "source.requestPrincipals (JWT)"},
      {"notRequestPrincipals", "source.notRequestPrincipals (JWT)"},
      {"serviceAccounts", "source.serviceAccounts"},
      {"notServiceAccounts", "source.notServiceAccounts"},
      {"provider", "spec.provider (CUSTOM action)"},
  };
  return fields;
}

// YAML 1.2 core schema: what a plain (unquoted) scalar means when it is not a string.
std::string PlainScalarType(const std::string& s) {
  static const std::regex kInt("[-+]?([0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)");
  static const std::regex kFloat(
      "[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)");
  static const std::regex kBool("true|True|TRUE|false|False|FALSE");
  static const std::regex kNull("null|Null|NULL|~");
  if (std::regex_match(s, kInt)) return "the number " + s;
  if (std::regex_match(s, kFloat)) return "the number " + s;
  if (std::regex_match(s, kBool)) return "the boolean " + s;
  if (std::regex_match(s, kNull)) return "null";
  return "";
}

std::string Describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar: {
      if (n.Tag() == "?") {
        if (std::string t = PlainScalarType(n.Scalar()); !t.empty()) return t;
      }
      return "the string \"" + n.Scalar() + "\"";
    }
    default: return "nothing";
  }
}

bool IsDnsLabel(const std::string& s, size_t max) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return !s.empty() && s.size() <= max && std::regex_match(s, kLabel);
}

bool IsDnsSubdomain(const std::string& s) {
  static const std::regex kSub("[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, kSub);
}

class DocParser {
 public:
  explicit DocParser(std::string origin) : origin_(std::move(origin)) {}

  [[noreturn]] void Fail(const YAML::Node& at, const std::string& path, const std::string& msg) const {
    const int line = at.Mark().line >= 0 ? at.Mark().line + 1 : 0;
    throw Error(origin_ + ":" + std::to_string(line) + ": " + path + ": " + msg);
  }

  // The fields of mapping `n`; every name must be in `known`. Duplicate keys are an error (yaml-cpp
  // would otherwise keep the first silently).
  // `open`: any field name is allowed (labels, annotations, matchLabels).
  std::vector<Field> Fields(const YAML::Node& n, const YAML::Node& key, const std::string& path,
                            const std::set<std::string>& known, bool open = false) const {
    if (!n.IsMap()) Fail(n.IsNull() ? key : n, path, "expected a mapping, found " + Describe(n));
    std::vector<Field> out;
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string name = it->first.IsScalar() ? it->first.Scalar() : "";
      const std::string fpath = path.empty() ? name : path + "." + name;
      if (!it->first.IsScalar())
        Fail(it->first, path, "a field name must be a string, found " + Describe(it->first));
      if (!seen.insert(name).second) Fail(it->first, fpath, "appears twice");
      if (!open && !known.count(name)) {
        auto u = UncoveredIstioFields().find(name);
        if (u != UncoveredIstioFields().end()) {
          Fail(it->first, fpath, u->second + " is an Istio field the lab's policy model does not cover");
        }
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        Fail(it->first, fpath, "unknown field (expected one of: " + list + ")");
      }
      out.push_back(Field{name, it->first, it->second});
    }
    return out;
  }

  std::string String(const Field& f, const std::string& path) const {
    const YAML::Node& n = f.value;
    if (!n.IsScalar()) Fail(n.IsNull() ? f.key : n, path, "expected a string, found " + Describe(n));
    return StringScalar(n, path);
  }

  std::string StringScalar(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) Fail(n, path, "expected a string, found " + Describe(n));
    if (n.Tag() == "?") {
      if (std::string t = PlainScalarType(n.Scalar()); !t.empty()) {
        Fail(n, path, "expected a string, found " + t + " (quote it)");
      }
    }
    return n.Scalar();
  }

  // A sequence, each item handed to `item(node, item_path)`. An empty or null list is an empty vector.
  void Each(const Field& f, const std::string& path,
            const std::function<void(const YAML::Node&, const std::string&)>& item) const {
    if (f.value.IsNull()) return;
    if (!f.value.IsSequence()) Fail(f.value, path, "expected a sequence, found " + Describe(f.value));
    size_t i = 0;
    for (const auto& n : f.value) {
      item(n, path + "[" + std::to_string(i) + "]");
      ++i;
    }
  }

  std::vector<std::string> Strings(const Field& f, const std::string& path) const {
    std::vector<std::string> out;
    Each(f, path, [&](const YAML::Node& n, const std::string& p) {
      std::string s = StringScalar(n, p);
      if (s.empty()) Fail(n, p, "is empty");
      out.push_back(s);
    });
    return out;
  }

  std::vector<net::Cidr> Cidrs(const Field& f, const std::string& path) const {
    std::vector<net::Cidr> out;
    Each(f, path, [&](const YAML::Node& n, const std::string& p) {
      if (!n.IsScalar()) Fail(n, p, "expected an address or CIDR string, found " + Describe(n));
      const auto c = net::Cidr::Parse(n.Scalar());
      if (!c) Fail(n, p, "\"" + n.Scalar() + "\" is not a CIDR (an IPv4/IPv6 address, optionally /prefix)");
      out.push_back(*c);
    });
    return out;
  }

  uint16_t Port(const YAML::Node& n, const std::string& p) const {
    // Istio's ports are strings ("8000"); a bare number is accepted too, as kubectl users write both.
    if (!n.IsScalar()) Fail(n, p, "expected a port, found " + Describe(n));
    const std::string& s = n.Scalar();
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(s) < 1 || std::stoi(s) > 65535) {
      Fail(n, p, "\"" + s + "\" is not a port (1-65535)");
    }
    return static_cast<uint16_t>(std::stoi(s));
  }

  std::vector<uint16_t> Ports(const Field& f, const std::string& path) const {
    std::vector<uint16_t> out;
    Each(f, path, [&](const YAML::Node& n, const std::string& p) { out.push_back(Port(n, p)); });
    return out;
  }

  Source ParseSource(const Field& f, const std::string& path) const {
    Source s;
    for (const auto& g :
         Fields(f.value, f.key, path,
                {"ipBlocks", "notIpBlocks", "namespaces", "notNamespaces", "principals", "notPrincipals"})) {
      const std::string p = path + "." + g.name;
      if (g.name == "ipBlocks") s.ip_blocks = Cidrs(g, p);
      else if (g.name == "notIpBlocks") s.not_ip_blocks = Cidrs(g, p);
      else if (g.name == "namespaces") s.namespaces = Strings(g, p);
      else if (g.name == "notNamespaces") s.not_namespaces = Strings(g, p);
      else if (g.name == "principals") s.principals = Strings(g, p);
      else if (g.name == "notPrincipals") s.not_principals = Strings(g, p);
    }
    if (s.ip_blocks.empty() && s.not_ip_blocks.empty() && s.namespaces.empty() && s.not_namespaces.empty() &&
        s.principals.empty() && s.not_principals.empty()) {
      Fail(f.value.IsNull() ? f.key : f.value, path,
           "must set at least one field (Istio rejects an empty source)");
    }
    return s;
  }

  Operation ParseOperation(const Field& f, const std::string& path) const {
    Operation o;
    for (const auto& g :
         Fields(f.value, f.key, path,
                {"ports", "notPorts", "hosts", "notHosts", "paths", "notPaths", "methods", "notMethods"})) {
      const std::string p = path + "." + g.name;
      if (g.name == "ports") o.ports = Ports(g, p);
      else if (g.name == "notPorts") o.not_ports = Ports(g, p);
      else if (g.name == "hosts") o.hosts = Strings(g, p);
      else if (g.name == "notHosts") o.not_hosts = Strings(g, p);
      else if (g.name == "paths") o.paths = Strings(g, p);
      else if (g.name == "notPaths") o.not_paths = Strings(g, p);
      else if (g.name == "methods") o.methods = Strings(g, p);
      else if (g.name == "notMethods") o.not_methods = Strings(g, p);
    }
    if (o.ports.empty() && o.not_ports.empty() && o.hosts.empty() && o.not_hosts.empty() && o.paths.empty() &&
        o.not_paths.empty() && o.methods.empty() && o.not_methods.empty()) {
      Fail(f.value.IsNull() ? f.key : f.value, path,
           "must set at least one field (Istio rejects an empty operation)");
    }
    return o;
  }

  ConditionKey ParseKey(const Field& f, const std::string& path) const {
    ConditionKey k;
    k.text = String(f, path);
    static const std::map<std::string, ConditionKey::Kind> kPlain = {
        {"source.ip", ConditionKey::Kind::kSourceIp},
        {"source.namespace", ConditionKey::Kind::kSourceNamespace},
        {"source.principal", ConditionKey::Kind::kSourcePrincipal},
        {"destination.ip", ConditionKey::Kind::kDestinationIp},
        {"destination.port", ConditionKey::Kind::kDestinationPort},
        {"remote.ip", ConditionKey::Kind::kOther},
        {"request.auth.principal", ConditionKey::Kind::kOther},
        {"request.auth.audiences", ConditionKey::Kind::kOther},
        {"request.auth.presenter", ConditionKey::Kind::kOther},
        {"connection.sni", ConditionKey::Kind::kOther},
    };
    if (auto it = kPlain.find(k.text); it != kPlain.end()) {
      k.kind = it->second;
      return k;
    }
    static const std::regex kHeader("request\\.headers\\[([^\\[\\]]+)\\]");
    static const std::regex kClaim("request\\.auth\\.claims\\[.+\\]");
    std::smatch m;
    if (std::regex_match(k.text, m, kHeader)) {
      k.kind = ConditionKey::Kind::kRequestHeader;
      k.header = m[1];
      return k;
    }
    if (std::regex_match(k.text, kClaim) || k.text.rfind("experimental.", 0) == 0) return k;
    Fail(f.value, path,
         "\"" + k.text +
             "\" is not an Istio condition key (request.headers[<name>], source.ip, "
             "source.namespace, source.principal, destination.ip, destination.port, remote.ip, "
             "request.auth.*, connection.sni)");
  }

  Condition ParseCondition(const YAML::Node& n, const std::string& path) const {
    Condition c;
    bool has_key = false;
    // Values are checked against the key's kind once the key is known (it may come after them).
    std::vector<std::pair<YAML::Node, std::string>> value_nodes;
    for (const auto& g : Fields(n, n, path, {"key", "values", "notValues"})) {
      const std::string p = path + "." + g.name;
      if (g.name == "key") {
        c.key = ParseKey(g, p);
        has_key = true;
      } else {
        auto& list = g.name == "values" ? c.values : c.not_values;
        Each(g, p, [&](const YAML::Node& v, const std::string& vp) {
          if (!v.IsScalar()) Fail(v, vp, "expected a string, found " + Describe(v));
          list.push_back(v.Scalar());
          value_nodes.emplace_back(v, vp);
        });
      }
    }
    if (!has_key) Fail(n, path + ".key", "missing (every condition needs a key)");
    if (c.values.empty() && c.not_values.empty()) {
      Fail(n, path, "needs values or notValues (Istio rejects a condition with neither)");
    }
    for (const auto& [v, vp] : value_nodes) CheckConditionValue(v, vp, c.key.kind);
    return c;
  }

  void CheckConditionValue(const YAML::Node& v, const std::string& p, ConditionKey::Kind kind) const {
    const std::string& s = v.Scalar();
    if (kind == ConditionKey::Kind::kSourceIp || kind == ConditionKey::Kind::kDestinationIp) {
      if (!net::Cidr::Parse(s))
        Fail(v, p, "\"" + s + "\" is not a CIDR (an IPv4/IPv6 address, optionally /prefix)");
    } else if (kind == ConditionKey::Kind::kDestinationPort) {
      Port(v, p);
    }
  }

  Rule ParseRule(const YAML::Node& n, const std::string& path) const {
    Rule r;
    if (n.IsNull()) Fail(n, path, "a rule must be a mapping (write {} for a rule that matches everything)");
    for (const auto& g : Fields(n, n, path, {"from", "to", "when"})) {
      const std::string p = path + "." + g.name;
      if (!g.value.IsNull() && g.value.IsSequence() && g.value.size() == 0) {
        Fail(g.key, p, "must not be empty (Istio rejects an empty list here; leave the field out)");
      }
      if (g.name == "from") {
        Each(g, p, [&](const YAML::Node& item, const std::string& ip) {
          for (const auto& h : Fields(item, item, ip, {"source"}))
            r.from.push_back(ParseSource(h, ip + ".source"));
          if (item.size() == 0) Fail(item, ip + ".source", "missing");
        });
      } else if (g.name == "to") {
        Each(g, p, [&](const YAML::Node& item, const std::string& ip) {
          for (const auto& h : Fields(item, item, ip, {"operation"})) {
            r.to.push_back(ParseOperation(h, ip + ".operation"));
          }
          if (item.size() == 0) Fail(item, ip + ".operation", "missing");
        });
      } else {
        Each(g, p, [&](const YAML::Node& item, const std::string& ip) {
          r.when.push_back(ParseCondition(item, ip));
        });
      }
    }
    return r;
  }

  TargetRef ParseTargetRef(const YAML::Node& n, const std::string& path) const {
    TargetRef t;
    bool has_kind = false, has_name = false;
    for (const auto& g : Fields(n, n, path, {"group", "kind", "name", "namespace"})) {
      const std::string p = path + "." + g.name;
      // group "" is written as a quoted empty string; an empty plain value is null, which also means "".
      if (g.name == "group") t.group = g.value.IsNull() ? "" : String(g, p);
      else if (g.name == "kind") t.kind = String(g, p), has_kind = true;
      else if (g.name == "name") t.name = String(g, p), has_name = true;
      else t.ns = String(g, p);
    }
    if (!has_kind || t.kind.empty()) Fail(n, path + ".kind", "missing");
    if (!has_name || t.name.empty()) Fail(n, path + ".name", "missing");
    return t;
  }

  AuthorizationPolicy ParseDocument(const YAML::Node& doc) const {
    AuthorizationPolicy p;
    p.origin = Origin{origin_, doc.Mark().line + 1};
    const auto fields = Fields(doc, doc, "", {"apiVersion", "kind", "metadata", "spec"});
    auto find = [&](const std::string& name) -> const Field* {
      for (const auto& f : fields) {
        if (f.name == name) return &f;
      }
      return nullptr;
    };
    const Field* api = find("apiVersion");
    const Field* kind = find("kind");
    // The kind first: for a document of another kind, that is the news, not a missing apiVersion.
    if (!kind) Fail(doc, "kind", "missing (expected AuthorizationPolicy)");
    const std::string kind_text = String(*kind, "kind");
    if (kind_text != "AuthorizationPolicy") {
      Fail(kind->value, "kind", "\"" + kind_text + "\" is not supported here (expected AuthorizationPolicy)");
    }
    if (!api) Fail(doc, "apiVersion", "missing (expected security.istio.io/v1 or security.istio.io/v1beta1)");
    const std::string api_text = String(*api, "apiVersion");
    if (api_text != "security.istio.io/v1" && api_text != "security.istio.io/v1beta1") {
      Fail(api->value, "apiVersion",
           "\"" + api_text +
               "\" is not supported (expected security.istio.io/v1 or security.istio.io/v1beta1)");
    }

    const Field* meta = find("metadata");
    if (!meta) Fail(doc, "metadata", "missing");
    bool has_name = false, has_ns = false;
    for (const auto& g :
         Fields(meta->value, meta->key, "metadata", {"name", "namespace", "labels", "annotations"})) {
      const std::string path = "metadata." + g.name;
      if (g.name == "name") {
        p.name = String(g, path);
        has_name = true;
        if (!IsDnsSubdomain(p.name)) {
          Fail(g.value, path, "\"" + p.name + "\" is not a valid name (lower-case DNS subdomain)");
        }
      } else if (g.name == "namespace") {
        p.ns = String(g, path);
        has_ns = true;
        if (!IsDnsLabel(p.ns, 63)) {
          Fail(g.value, path, "\"" + p.ns + "\" is not a valid namespace (lower-case DNS label, at most 63)");
        }
      } else {
        // Labels and annotations do not change the policy's meaning; only their shape is checked.
        for (const auto& l : Fields(g.value, g.key, path, {}, true)) String(l, path + "." + l.name);
      }
    }
    if (!has_name) Fail(meta->key, "metadata.name", "missing");
    if (!has_ns)
      Fail(meta->key, "metadata.namespace", "missing (the lab has no current namespace to default to)");

    const Field* spec = find("spec");
    if (!spec) Fail(doc, "spec", "missing (write spec: {} for an allow-nothing policy)");
    if (spec->value.IsNull()) Fail(spec->key, "spec", "is null (write spec: {} for an allow-nothing policy)");
    bool has_selector_field = false;
    for (const auto& g :
         Fields(spec->value, spec->key, "spec", {"selector", "targetRef", "targetRefs", "action", "rules"})) {
      const std::string path = "spec." + g.name;
      if (g.name == "action") {
        const std::string a = String(g, path);
        if (a == "ALLOW") p.action = Action::kAllow;
        else if (a == "DENY") p.action = Action::kDeny;
        else if (a == "AUDIT" || a == "CUSTOM")
          Fail(g.value, path, a + " is not supported by the lab (ALLOW or DENY)");
        else Fail(g.value, path, "\"" + a + "\" is not an action (ALLOW or DENY)");
      } else if (g.name == "selector") {
        has_selector_field = true;
        for (const auto& h : Fields(g.value, g.key, path, {"matchLabels"})) {
          p.has_selector = true;
          for (const auto& l : Fields(h.value, h.key, path + ".matchLabels", {}, true)) {
            p.selector[l.name] = String(l, path + ".matchLabels." + l.name);
          }
        }
      } else if (g.name == "targetRef") {
        p.target_refs.push_back(ParseTargetRef(g.value, path));
      } else if (g.name == "targetRefs") {
        Each(g, path, [&](const YAML::Node& n, const std::string& ip) {
          p.target_refs.push_back(ParseTargetRef(n, ip));
        });
      } else if (g.name == "rules") {
        Each(g, path,
             [&](const YAML::Node& n, const std::string& ip) { p.rules.push_back(ParseRule(n, ip)); });
      }
    }
    if (has_selector_field && !p.target_refs.empty()) {
      Fail(spec->key, "spec", "sets both selector and targetRef(s); Istio allows only one of them");
    }
    return p;
  }

 private:
  std::string origin_;
};

}  // namespace

std::vector<AuthorizationPolicy> ParseManifests(const std::string& yaml_text, const std::string& origin) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml_text);
  } catch (const YAML::ParserException& e) {
    throw Error(origin + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                ": not valid YAML: " + e.msg);
  }
  DocParser parser(origin);
  std::vector<AuthorizationPolicy> out;
  std::map<std::string, Origin> seen;
  for (const auto& doc : docs) {
    if (doc.IsNull()) continue;  // an empty document (a stray ---)
    AuthorizationPolicy p = parser.ParseDocument(doc);
    auto [it, fresh] = seen.emplace(p.IdKey(), p.origin);
    if (!fresh) {
      throw Error(p.origin.ToString() + ": metadata.name: policy " + p.IdKey() +
                  " is defined twice (first at " + it->second.ToString() + ")");
    }
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<AuthorizationPolicy> ParseFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) ThrowErrno("reading policy manifest " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const size_t slash = path.rfind('/');
  return ParseManifests(ss.str(), slash == std::string::npos ? path : path.substr(slash + 1));
}

}  // namespace kmesh::policy
