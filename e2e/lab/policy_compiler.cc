#include "e2e/lab/policy_compiler.h"

#include <arpa/inet.h>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "bpf_probe/kmesh_abi.h"

namespace kmesh::lab {
namespace {

[[noreturn]] void Refuse(const policy::AuthorizationPolicy& p, const std::string& field,
                         const std::string& why) {
  throw Error(p.origin.ToString() + ": policy " + p.IdKey() + ": " + field + ": " + why);
}

lab_cidr V4Cidr(const policy::AuthorizationPolicy& p, const std::string& field, const policy::Cidr& c) {
  if (c.address().family() != policy::IpAddress::Family::kV4) {
    Refuse(p, field, c.ToString() + " is IPv6; the lab's datapath is IPv4-only");
  }
  lab_cidr out{};
  std::memcpy(&out.addr, c.address().bytes().data(), 4);
  const uint32_t mask = c.prefix_len() == 0 ? 0 : ~uint32_t{0} << (32 - c.prefix_len());
  out.mask = htonl(mask);
  out.addr &= out.mask;
  return out;
}

lab_cidr Host(const std::string& ip) {
  lab_cidr c{};
  inet_pton(AF_INET, ip.c_str(), &c.addr);
  c.mask = 0xffffffff;
  return c;
}

// A CIDR no real client has: what a namespace without pods compiles to (so the list is not empty,
// which would mean "any source").
constexpr lab_cidr kNobody{0, 0xffffffff};

template <typename T>
void Push(const policy::AuthorizationPolicy& p, const std::string& field, T* arr, uint8_t& n, const T& v) {
  if (n >= LAB_MAX) {
    Refuse(p, field, "more than 4 entries; Kmesh's XDP path (MAX_MEMBER_NUM_PER_POLICY) ignores the rest");
  }
  arr[n++] = v;
}

bool HasL7(const policy::Rule& r) {
  for (const auto& op : r.to) {
    if (!op.hosts.empty() || !op.not_hosts.empty() || !op.paths.empty() || !op.not_paths.empty() ||
        !op.methods.empty() || !op.not_methods.empty()) {
      return true;
    }
  }
  for (const auto& c : r.when) {
    if (c.key.kind == policy::ConditionKey::Kind::kRequestHeader) return true;
  }
  return false;
}

}  // namespace

CompiledPolicy Compile(const policy::AuthorizationPolicy& p, const NamespaceIps& ns_ips) {
  CompiledPolicy out;
  out.id = bpf_probe::PolicyId(p.ns, p.name);
  bool l7 = false;
  for (const auto& r : p.rules) l7 |= HasL7(r);
  if (!p.target_refs.empty()) {
    out.enforcer = Enforcer::kWaypoint;  // the waypoint evaluates the whole policy, L4 parts included
    for (size_t i = 0; i < p.rules.size(); ++i) {
      for (size_t j = 0; j < p.rules[i].from.size(); ++j) {
        const auto& s = p.rules[i].from[j];
        if (!s.principals.empty() || !s.not_principals.empty()) {
          Refuse(p, "spec.rules[" + std::to_string(i) + "].from[" + std::to_string(j) + "].source.principals",
                 "the lab does not support source.principals (no workload identities)");
        }
      }
    }
    return out;
  }
  if (l7) {
    Refuse(p, "spec.rules",
           "L7 fields (request.headers, hosts, paths, methods) are enforced only by a waypoint; a policy "
           "with spec.selector reaches Kmesh's XDP path, which has no L7 (use spec.targetRefs to the service)");
  }
  out.xdp.action = p.action == policy::Action::kDeny ? KM_ACTION_DENY : KM_ACTION_ALLOW;
  if (p.rules.size() > LAB_MAX) Refuse(p, "spec.rules", "more than 4 rules; Kmesh's XDP path ignores the rest");
  out.xdp.n_rules = static_cast<uint32_t>(p.rules.size());
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const policy::Rule& r = p.rules[i];
    const std::string rf = "spec.rules[" + std::to_string(i) + "]";
    std::vector<lab_match> sources(1), ops(1);  // an absent part is one match-anything entry
    if (!r.from.empty()) sources.clear();
    for (size_t j = 0; j < r.from.size(); ++j) {
      const policy::Source& s = r.from[j];
      const std::string f = rf + ".from[" + std::to_string(j) + "].source";
      if (!s.principals.empty() || !s.not_principals.empty()) {
        Refuse(p, f + ".principals", "the lab does not support source.principals (no workload identities)");
      }
      if (!s.ip_blocks.empty() && !s.namespaces.empty()) {
        Refuse(p, f, "ipBlocks and namespaces in one source (both must hold) cannot be expressed in the lab");
      }
      lab_match m{};
      for (const auto& c : s.ip_blocks) Push(p, f + ".ipBlocks", m.src, m.n_src, V4Cidr(p, f + ".ipBlocks", c));
      for (const auto& c : s.not_ip_blocks) {
        Push(p, f + ".notIpBlocks", m.not_src, m.n_not_src, V4Cidr(p, f + ".notIpBlocks", c));
      }
      for (const auto& ns : s.namespaces) {
        auto it = ns_ips.find(ns);
        if (it == ns_ips.end() || it->second.empty()) {
          Push(p, f + ".namespaces", m.src, m.n_src, kNobody);
          continue;
        }
        for (const auto& ip : it->second) Push(p, f + ".namespaces", m.src, m.n_src, Host(ip));
      }
      for (const auto& ns : s.not_namespaces) {
        auto it = ns_ips.find(ns);
        if (it == ns_ips.end()) continue;
        for (const auto& ip : it->second) Push(p, f + ".notNamespaces", m.not_src, m.n_not_src, Host(ip));
      }
      sources.push_back(m);
    }
    if (!r.to.empty()) ops.clear();
    for (size_t j = 0; j < r.to.size(); ++j) {
      const policy::Operation& o = r.to[j];
      const std::string f = rf + ".to[" + std::to_string(j) + "].operation";
      lab_match m{};
      for (uint16_t port : o.ports) Push(p, f + ".ports", m.ports, m.n_ports, port);
      for (uint16_t port : o.not_ports) Push(p, f + ".notPorts", m.not_ports, m.n_not_ports, port);
      ops.push_back(m);
    }
    for (size_t j = 0; j < r.when.size(); ++j) {
      Refuse(p, rf + ".when[" + std::to_string(j) + "]",
             "key " + r.when[j].key.text + " is not enforced by the lab's XDP path");
    }
    if (sources.size() * ops.size() > LAB_MAX) {
      Refuse(p, rf, "from x to makes more than 4 matches; Kmesh's XDP path ignores the rest");
    }
    lab_rule& lr = out.xdp.rules[i];
    for (const auto& s : sources) {
      for (const auto& o : ops) {
        lab_match m = s;
        m.n_ports = o.n_ports;
        m.n_not_ports = o.n_not_ports;
        std::memcpy(m.ports, o.ports, sizeof m.ports);
        std::memcpy(m.not_ports, o.not_ports, sizeof m.not_ports);
        lr.matches[lr.n_matches++] = m;
      }
    }
  }
  return out;
}

}  // namespace kmesh::lab
