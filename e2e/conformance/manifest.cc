#include "e2e/conformance/manifest.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "base/error.h"

namespace kmesh::conformance {

namespace pol = kmesh::policy;

namespace {

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

template <typename T, typename F>
std::string Flow(const std::vector<T>& v, F&& text) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + Quote(text(v[i]));
  return out + "]";
}

std::string Strings(const std::vector<std::string>& v) {
  return Flow(v, [](const std::string& s) { return s; });
}
std::string Cidrs(const std::vector<net::Cidr>& v) {
  return Flow(v, [](const net::Cidr& c) { return c.ToString(); });
}
std::string Ports(const std::vector<uint16_t>& v) {
  return Flow(v, [](uint16_t p) { return std::to_string(p); });
}

// `key: [..]` lines at `indent` for each non-empty list; the first line may carry a prefix ("- ").
class Fields {
 public:
  Fields(std::ostringstream& out, std::string first_prefix, std::string indent)
      : out_(out), prefix_(std::move(first_prefix)), indent_(std::move(indent)) {}
  void Add(const char* key, const std::string& flow, bool present) {
    if (!present) return;
    out_ << (first_ ? prefix_ : indent_) << key << ": " << flow << "\n";
    first_ = false;
  }

 private:
  std::ostringstream& out_;
  std::string prefix_, indent_;
  bool first_ = true;
};

}  // namespace

std::string ToYaml(const pol::AuthorizationPolicy& p) {
  std::ostringstream o;
  o << "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: " << p.name
    << "\n  namespace: " << p.ns << "\nspec:\n";
  if (p.has_selector) {
    o << "  selector:\n    matchLabels:\n";
    for (const auto& [k, v] : p.selector) o << "      " << k << ": " << v << "\n";
  }
  o << "  action: " << pol::ActionName(p.action) << "\n";
  if (p.rules.empty()) {
    o << "  rules: []\n";
    return o.str();
  }
  o << "  rules:\n";
  for (const auto& rule : p.rules) {
    if (rule.from.empty() && rule.to.empty() && rule.when.empty()) {
      o << "  - {}\n";
      continue;
    }
    std::string lead = "  - ";
    auto part = [&](const char* name) {
      o << lead << name << ":\n";
      lead = "    ";
    };
    if (!rule.from.empty()) {
      part("from");
      for (const auto& s : rule.from) {
        o << "    - source:\n";
        Fields f(o, "        ", "        ");
        f.Add("ipBlocks", Cidrs(s.ip_blocks), !s.ip_blocks.empty());
        f.Add("notIpBlocks", Cidrs(s.not_ip_blocks), !s.not_ip_blocks.empty());
        f.Add("namespaces", Strings(s.namespaces), !s.namespaces.empty());
        f.Add("notNamespaces", Strings(s.not_namespaces), !s.not_namespaces.empty());
        f.Add("principals", Strings(s.principals), !s.principals.empty());
        f.Add("notPrincipals", Strings(s.not_principals), !s.not_principals.empty());
      }
    }
    if (!rule.to.empty()) {
      part("to");
      for (const auto& op : rule.to) {
        o << "    - operation:\n";
        Fields f(o, "        ", "        ");
        f.Add("ports", Ports(op.ports), !op.ports.empty());
        f.Add("notPorts", Ports(op.not_ports), !op.not_ports.empty());
        f.Add("hosts", Strings(op.hosts), !op.hosts.empty());
        f.Add("notHosts", Strings(op.not_hosts), !op.not_hosts.empty());
        f.Add("paths", Strings(op.paths), !op.paths.empty());
        f.Add("notPaths", Strings(op.not_paths), !op.not_paths.empty());
        f.Add("methods", Strings(op.methods), !op.methods.empty());
        f.Add("notMethods", Strings(op.not_methods), !op.not_methods.empty());
      }
    }
    if (!rule.when.empty()) {
      part("when");
      for (const auto& c : rule.when) {
        Fields f(o, "    - ", "      ");
        f.Add("key", Quote(c.key.text), true);
        f.Add("values", Strings(c.values), !c.values.empty());
        f.Add("notValues", Strings(c.not_values), !c.not_values.empty());
      }
    }
  }
  return o.str();
}

std::string ToYaml(const std::vector<pol::AuthorizationPolicy>& policies) {
  std::string out;
  for (size_t i = 0; i < policies.size(); ++i) out += (i ? "---\n" : "") + ToYaml(policies[i]);
  return out;
}

std::string ToYaml(const RegressionCase& r) {
  std::ostringstream o;
  o << "# Kmesh defect " << r.defect << " (" << r.kind << "), found by //e2e/conformance from case seed "
    << r.found_seed << " and shrunk.\n"
    << "# Written by the conformance run; //e2e/conformance:regression_test runs it on Kmesh's XDP.\n"
    << "name: " << r.name << "\n"
    << "defect: " << r.defect << "\n"
    << "kind: " << r.kind << "\n"
    << "explanation: " << Quote(r.explanation) << "\n"
    << "found_seed: " << r.found_seed << "\n"
    << "workload:\n"
    << "  namespace: " << r.c.workload.ns << "\n"
    << "  labels: {";
  bool first = true;
  for (const auto& [k, v] : r.c.workload.labels) {
    o << (first ? "" : ", ") << k << ": " << v;
    first = false;
  }
  o << "}\n"
    << "  uid: " << Quote(r.c.workload.uid) << "\n"
    << "  ipv4: " << Quote(r.c.workload.ipv4.ToString()) << "\n"
    << "  ipv6: " << Quote(r.c.workload.ipv6.ToString()) << "\n"
    << "connection: " << Quote(r.c.connections.at(0).tuple.ToString()) << "\n"
    << "istio: " << r.istio << "\n"
    << "kmesh: " << Quote(r.kmesh) << "\n"
    << "policies: |\n";
  std::istringstream lines(ToYaml(r.c.policies));
  for (std::string line; std::getline(lines, line);) o << "  " << line << "\n";
  return o.str();
}

RegressionCase ParseRegressionCase(const std::string& yaml_text, const std::string& origin) {
  RegressionCase r;
  YAML::Node doc;
  try {
    doc = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": not YAML: " + e.what());
  }
  auto need = [&](const YAML::Node& n, const char* key) {
    if (!n[key]) throw Error(origin + ": " + key + ": missing (see manifest.h RegressionCase)");
    return n[key];
  };
  try {
    r.name = need(doc, "name").as<std::string>();
    r.defect = need(doc, "defect").as<std::string>();
    r.kind = need(doc, "kind").as<std::string>();
    r.explanation = need(doc, "explanation").as<std::string>();
    r.found_seed = need(doc, "found_seed").as<uint64_t>();
    r.c.seed = r.found_seed;
    const YAML::Node w = need(doc, "workload");
    r.c.workload.ns = need(w, "namespace").as<std::string>();
    r.c.workload.labels = need(w, "labels").as<std::map<std::string, std::string>>();
    r.c.workload.uid = need(w, "uid").as<std::string>();
    r.c.workload.ipv4 = *net::IpAddr::Parse(need(w, "ipv4").as<std::string>());
    r.c.workload.ipv6 = *net::IpAddr::Parse(need(w, "ipv6").as<std::string>());
    r.c.connections.push_back(Connection{*net::Tuple::Parse(need(doc, "connection").as<std::string>())});
    r.istio = need(doc, "istio").as<std::string>();
    r.kmesh = need(doc, "kmesh").as<std::string>();
    r.c.policies = pol::ParseManifests(need(doc, "policies").as<std::string>(), origin + " policies");
  } catch (const YAML::Exception& e) {
    throw Error(origin + ": " + e.what());
  }
  return r;
}

RegressionCase ReadRegressionCase(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read regression case " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string base = path.substr(path.rfind('/') + 1);
  return ParseRegressionCase(ss.str(), base);
}

}  // namespace kmesh::conformance
