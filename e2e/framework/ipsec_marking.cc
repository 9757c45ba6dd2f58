#include "e2e/framework/ipsec_marking.h"

#include <algorithm>
#include <set>

namespace kmesh::ipsec {

const LoadedProgram* NodeMarking::Loaded(const std::string& name) const {
  for (const auto& p : loaded) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

nlohmann::json NodeMarking::ToJson() const {
  nlohmann::json l = nlohmann::json::array();
  for (const auto& p : loaded) {
    l.push_back({{"name", p.name},
                 {"id", p.id},
                 {"tag", p.tag},
                 {"kmesh_commit", p.kmesh_commit},
                 {"pinned_commit", p.pinned_commit},
                 {"object_sha256", p.object_sha256},
                 {"clang", p.clang}});
  }
  nlohmann::json a = nlohmann::json::array();
  for (const auto& x : attachments) {
    nlohmann::json f = nullptr;
    if (x.filter) {
      f = {{"priority", x.filter->priority},
           {"handle", x.filter->handle},
           {"protocol", x.filter->protocol},
           {"name", x.filter->name},
           {"direct_action", x.filter->direct_action},
           {"prog_id", x.filter->prog.id},
           {"prog_name", x.filter->prog.name},
           {"prog_tag", x.filter->prog.tag},
           {"text", x.filter->ToString()}};
    }
    a.push_back({{"ifname", x.ifname}, {"role", x.role}, {"want", x.want}, {"ingress_filter", f}});
  }
  return {{"node", node},
          {"loaded", l},
          {"attachments", a},
          {"km_nodeinfo", {{"pin", nodeinfo_pin}, {"cidrs", nodeinfo_cidrs}}}};
}

std::string NodeMarking::Describe() const {
  std::string s = node + ":";
  for (const auto& x : attachments) {
    s += " " + x.ifname + " (" + x.role + "): ";
    s += x.filter ? x.filter->ToString() : "no filter at pref 1 handle 1 on ingress";
    s += ";";
  }
  s += " km_nodeinfo {";
  for (size_t i = 0; i < nodeinfo_cidrs.size(); ++i) s += (i ? ", " : "") + nodeinfo_cidrs[i];
  s += "}";
  for (const auto& p : loaded) {
    s += "; loaded " + p.name + " id " + std::to_string(p.id) + " from Kmesh " +
         (p.kmesh_commit == "snapshot" ? "snapshot of " + p.pinned_commit.substr(0, 8)
                                       : p.kmesh_commit.substr(0, 12)) +
         " (object sha256:" + p.object_sha256.substr(0, 16) + ", " + p.clang + ")";
  }
  return s;
}

std::vector<std::string> CheckMarking(const NodeMarking& m,
                                      const std::vector<std::string>& expected_nodeinfo) {
  std::vector<std::string> problems;
  for (const char* name : {"tc_mark_encrypt", "tc_mark_decrypt"}) {
    const LoadedProgram* p = m.Loaded(name);
    if (p == nullptr) {
      problems.push_back(m.node + ": the node's Kmesh did not load " + name);
    } else if (p->object_sha256.empty() || p->pinned_commit.empty()) {
      problems.push_back(m.node + ": " + name + " (id " + std::to_string(p->id) +
                         ") has no build record naming the Kmesh tree it came from");
    }
  }
  for (const auto& a : m.attachments) {
    const std::string where = m.node + ": ingress of " + a.ifname + " (" + a.role + ")";
    if (!a.filter) {
      problems.push_back(where + ": no bpf filter at pref 1 handle 1, expected Kmesh's " + a.want);
      continue;
    }
    const LoadedProgram* p = m.Loaded(a.want);
    if (p != nullptr && a.filter->prog.id != p->id) {
      problems.push_back(where + ": holds program id " + std::to_string(a.filter->prog.id) + " (" +
                         a.filter->prog.name + "), expected " + a.want + " id " + std::to_string(p->id) +
                         " as the node's Kmesh loaded it");
    } else if (a.filter->prog.name != a.want) {
      problems.push_back(where + ": holds program " + a.filter->prog.name + ", expected " + a.want);
    }
    if (!a.filter->direct_action) problems.push_back(where + ": filter is not direct-action (Kmesh's is)");
    if (a.filter->name != "tc_ingress-" + a.ifname) {
      problems.push_back(where + ": filter is named \"" + a.filter->name +
                         "\", Kmesh names it \"tc_ingress-" + a.ifname + "\"");
    }
    if (a.filter->protocol != 3) problems.push_back(where + ": filter protocol is not all (ETH_P_ALL)");
  }
  const std::set<std::string> want(expected_nodeinfo.begin(), expected_nodeinfo.end());
  const std::set<std::string> have(m.nodeinfo_cidrs.begin(), m.nodeinfo_cidrs.end());
  for (const auto& c : want) {
    if (!have.count(c)) problems.push_back(m.node + ": km_nodeinfo lacks the peer pod CIDR " + c);
  }
  for (const auto& c : have) {
    if (!want.count(c))
      problems.push_back(m.node + ": km_nodeinfo holds " + c + ", which is no peer's pod CIDR");
  }
  return problems;
}

}  // namespace kmesh::ipsec
