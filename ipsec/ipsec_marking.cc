#include "ipsec/ipsec_marking.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "base/disagreement.h"

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

std::vector<MarkingProblem> JudgeMarking(const NodeMarking& m,
                                         const std::vector<std::string>& expected_nodeinfo) {
  namespace code = e2e::disagreement;
  std::vector<MarkingProblem> problems;
  for (const char* name : {"tc_mark_encrypt", "tc_mark_decrypt"}) {
    const LoadedProgram* p = m.Loaded(name);
    if (p == nullptr) {
      problems.push_back({code::kTcNotAttached, m.node + ": the node's Kmesh did not load " + name});
    } else if (p->object_sha256.empty() || p->pinned_commit.empty()) {
      problems.push_back(
          {code::kTcNotAttached, m.node + ": " + name + " (id " + std::to_string(p->id) +
                                     ") has no build record naming the Kmesh tree it came from"});
    }
  }
  for (const auto& a : m.attachments) {
    const std::string where = m.node + ": ingress of " + a.ifname + " (" + a.role + ")";
    if (!a.filter) {
      problems.push_back(
          {code::kTcNotAttached, where + ": no bpf filter at pref 1 handle 1, expected Kmesh's " + a.want});
      continue;
    }
    const LoadedProgram* p = m.Loaded(a.want);
    if (p != nullptr && a.filter->prog.id != p->id) {
      problems.push_back(
          {code::kTcNotAttached, where + ": holds program id " + std::to_string(a.filter->prog.id) + " (" +
                                     a.filter->prog.name + "), expected " + a.want + " id " +
                                     std::to_string(p->id) + " as the node's Kmesh loaded it"});
    } else if (a.filter->prog.name != a.want) {
      problems.push_back(
          {code::kTcNotAttached, where + ": holds program " + a.filter->prog.name + ", expected " + a.want});
    }
    if (!a.filter->direct_action)
      problems.push_back({code::kTcFilterWrong, where + ": filter is not direct-action (Kmesh's is)"});
    if (a.filter->name != "tc_ingress-" + a.ifname) {
      problems.push_back({code::kTcFilterWrong, where + ": filter is named \"" + a.filter->name +
                                                    "\", Kmesh names it \"tc_ingress-" + a.ifname + "\""});
    }
    if (a.filter->protocol != 3)
      problems.push_back({code::kTcFilterWrong, where + ": filter protocol is not all (ETH_P_ALL)"});
  }
  const std::set<std::string> want(expected_nodeinfo.begin(), expected_nodeinfo.end());
  const std::set<std::string> have(m.nodeinfo_cidrs.begin(), m.nodeinfo_cidrs.end());
  for (const auto& c : want) {
    if (!have.count(c))
      problems.push_back(
          {code::kNodeinfoEntryMissing, m.node + ": km_nodeinfo lacks the peer pod CIDR " + c});
  }
  for (const auto& c : have) {
    if (!want.count(c))
      problems.push_back(
          {code::kNodeinfoEntryExtra, m.node + ": km_nodeinfo holds " + c + ", which is no peer's pod CIDR"});
  }
  return problems;
}

MarkRun RunMarkProgram(uint32_t prog_id, const std::string& src_ip, const std::string& dst_ip) {
  MarkRun r;
  r.prog_id = prog_id;
  r.src_ip = src_ip;
  r.dst_ip = dst_ip;
  in_addr src{}, dst{};
  if (inet_pton(AF_INET, src_ip.c_str(), &src) != 1 || inet_pton(AF_INET, dst_ip.c_str(), &dst) != 1) {
    r.error = "not two IPv4 addresses (" + src_ip + ", " + dst_ip + "); the mark check builds an IPv4 packet";
    return r;
  }
  const int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) {
    r.error = "no program id " + std::to_string(prog_id) + " in this kernel (" + std::strerror(errno) + ")";
    return r;
  }
  // Ethernet (IPv4), IPv4 (20 bytes, TCP), TCP SYN 40000 -> 8000: what a pod sends toward a peer pod.
  uint8_t pkt[14 + 20 + 20] = {};
  pkt[12] = 0x08;
  pkt[14] = 0x45;
  pkt[16] = 0;
  pkt[17] = 40;
  pkt[22] = 64;
  pkt[23] = IPPROTO_TCP;
  std::memcpy(pkt + 26, &src, 4);
  std::memcpy(pkt + 30, &dst, 4);
  pkt[34] = 40000 >> 8;
  pkt[35] = 40000 & 0xff;
  pkt[36] = 8000 >> 8;
  pkt[37] = 8000 & 0xff;
  pkt[46] = 5 << 4;
  pkt[47] = 0x02;  // SYN
  __sk_buff ctx_in{}, ctx_out{};
  uint8_t out[sizeof pkt + 64] = {};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_out = out, .data_size_in = sizeof pkt,
              .data_size_out = sizeof out, .ctx_in = &ctx_in, .ctx_out = &ctx_out,
              .ctx_size_in = sizeof ctx_in, .ctx_size_out = sizeof ctx_out, .retval = 0, .repeat = 1);
  const int rc = bpf_prog_test_run_opts(fd, &opts);
  const int err = errno;
  close(fd);
  if (rc != 0) {
    r.error = "BPF_PROG_TEST_RUN of program id " + std::to_string(prog_id) + " failed: " + std::strerror(err);
    return r;
  }
  r.ran = true;
  r.mark = ctx_out.mark;
  r.verdict = opts.retval;
  return r;
}

nlohmann::json MarkRun::ToJson() const {
  nlohmann::json j = {{"prog_id", prog_id}, {"src", src_ip}, {"dst", dst_ip}, {"ran", ran}};
  if (ran) {
    char hex[16];
    snprintf(hex, sizeof hex, "0x%x", mark);
    j["mark"] = hex;
    j["verdict"] = verdict;
  } else {
    j["error"] = error;
  }
  return j;
}

std::string MarkRun::Describe() const {
  char hex[16];
  snprintf(hex, sizeof hex, "0x%x", mark);
  return "program id " + std::to_string(prog_id) + " run on " + src_ip + " -> " + dst_ip + ": " +
         (ran ? std::string("mark ") + hex : "did not run: " + error);
}

}  // namespace kmesh::ipsec
