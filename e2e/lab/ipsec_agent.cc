#include "e2e/lab/ipsec_agent.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <net/if.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include "base/defaults.h"
#include "base/error.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_abi.h"
#include "e2e/framework/ipsec_layout.h"
#include "e2e/framework/ipsec_secret.h"
#include "e2e/framework/xfrm.h"
#include "netns/process.h"

namespace kmesh::lab {
namespace {

namespace fs = std::filesystem;
using ipsec::IpsecSecret;
using ipsec::KeyMaterial;
using nlohmann::json;

volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

std::string Now() {
  char buf[32];
  time_t t = time(nullptr);
  strftime(buf, sizeof buf, "%H:%M:%S", gmtime(&t));
  return buf;
}

#define LOG(cfg, msg) (std::cout << Now() << " [" << (cfg).node << "] " << msg << std::endl)

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void WriteAtomic(const std::string& path, const std::string& text, mode_t mode = 0644) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
  }
  chmod(tmp.c_str(), mode);
  fs::rename(tmp, path);
}

struct Kni {
  uint32_t spi = 0;
  std::vector<std::string> addresses;
  std::string boot_id;
  std::vector<std::string> pod_cidrs;
};

json ToJson(const Kni& k) {
  return json{{"spi", k.spi}, {"addresses", k.addresses}, {"bootID", k.boot_id}, {"podCIDRS", k.pod_cidrs}};
}

std::string Hex32(uint32_t v) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

class Agent {
 public:
  explicit Agent(AgentConfig cfg) : cfg_(std::move(cfg)) {}

  int Run() {
    fs::create_directories(cfg_.state_dir + "/kni");
    fs::create_directories(cfg_.state_dir + "/faults");
    LoadTc();
    LOG(cfg_, "started: address " << cfg_.address << ", pod CIDR " << cfg_.pod_cidr);
    auto next_resync = std::chrono::steady_clock::now();
    while (!g_stop) {
      try {
        bool changed = ReadFaults();
        changed |= ReadSecret();
        changed |= ReadPeers();
        MarkEgress();
        if (changed || std::chrono::steady_clock::now() >= next_resync) {
          Reconcile();
          next_resync = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
      } catch (const std::exception& e) {
        LOG(cfg_, "error: " << e.what());
      }
      std::this_thread::sleep_for(defaults::PollInterval());
    }
    Stop();
    return 0;
  }

 private:
  bool Fault(const std::string& name) const { return faults_.count(name) != 0; }

  bool ReadFaults() {
    std::set<std::string> f;
    std::istringstream in(ReadFile(FaultsPath(cfg_.state_dir, cfg_.node)));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) f.insert(line);
    }
    if (f == faults_) return false;
    for (const auto& name : f) {
      if (!faults_.count(name)) LOG(cfg_, "fault injected: " << name);
    }
    faults_ = f;
    return true;
  }

  bool ReadSecret() {
    const std::string text = ReadFile(SecretPath(cfg_.state_dir));
    if (text.empty() || text == last_secret_text_) return false;
    if (Fault("rotation-not-applied") && local_spi_ != 0) return false;  // keeps the old SPI
    last_secret_text_ = text;
    IpsecSecret s = IpsecSecret::Parse(text, SecretPath(cfg_.state_dir));
    history_[s.spi] = s.aead_key;
    if (s.spi != local_spi_) {
      LOG(cfg_, "secret: spi " << s.spi << ", key " << s.aead_key.ForDisplay());
      local_spi_ = s.spi;
    }
    return true;
  }

  bool ReadPeers() {
    std::map<std::string, Kni> peers;
    for (const auto& e : fs::directory_iterator(cfg_.state_dir + "/kni")) {
      const std::string name = e.path().stem().string();
      if (name == cfg_.node || e.path().extension() != ".json") continue;
      try {
        json j = json::parse(ReadFile(e.path().string()));
        Kni k;
        k.spi = j.at("spi").get<uint32_t>();
        k.addresses = j.at("addresses").get<std::vector<std::string>>();
        k.boot_id = j.at("bootID").get<std::string>();
        k.pod_cidrs = j.at("podCIDRS").get<std::vector<std::string>>();
        peers[name] = k;
      } catch (const std::exception&) {
        // half-written by a peer: read again next round
        if (peers_.count(name)) peers[name] = peers_[name];
      }
    }
    bool changed = false;
    for (const auto& [name, k] : peers_) {
      if (!peers.count(name)) {
        LOG(cfg_, "peer " << name << " withdrew its KmeshNodeInfo: cleaning its xfrm entries");
        for (const auto& addr : k.addresses) Clean(addr);
        changed = true;
      }
    }
    for (const auto& [name, k] : peers) {
      auto it = peers_.find(name);
      if (it == peers_.end() || ToJson(it->second) != ToJson(k)) changed = true;
    }
    peers_ = peers;
    return changed;
  }

  // What CreateXfrmRule programs for every peer. iproute2 exits at the first failing command even in
  // `-force` batch mode (a state that exists answers EEXIST), so states already in the kernel are left
  // out and policies (updates, which never fail on existing entries) go first. Keys travel only in a
  // 0600 file that is removed at once.
  void Reconcile() {
    if (local_spi_ == 0) return;
    if (peers_.empty()) PublishKni();  // nothing to program yet: announce ourselves so peers appear
    std::set<std::string> present;
    for (const auto& st : xfrm::DumpStates(netns::NetnsRef::Self())) {
      present.insert(st.src + ">" + st.dst + "#" + std::to_string(st.spi.value));
    }
    auto has = [&](const std::string& src, const std::string& dst, uint32_t spi) {
      return present.count(src + ">" + dst + "#" + std::to_string(spi)) != 0;
    };
    std::vector<std::string> policies, states;
    const std::string& local = cfg_.address;
    for (const auto& [name, peer] : peers_) {
      for (const auto& remote : peer.addresses) {
        // Ingress: local SPI, derived with (remote, local).
        if (Fault("xfrm-state-missing")) {
          if (has(remote, local, local_spi_)) {
            states.push_back("xfrm state delete src " + remote + " dst " + local + " proto esp spi " + Hex32(local_spi_));
          }
        } else if (!has(remote, local, local_spi_)) {
          KeyMaterial in = ipsec::DeriveKey(history_.at(local_spi_), remote, local, peer.boot_id, cfg_.boot_id);
          states.push_back("xfrm state add src " + remote + " dst " + local + " proto esp spi " + Hex32(local_spi_) +
                           " reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x" + in.RevealHex() +
                           " 128 output-mark 0xd0 mask 0xffffffff");
        }
        for (const char* dir : {"in", "fwd"}) {
          policies.push_back("xfrm policy update src 0.0.0.0/0 dst " + cfg_.pod_cidr + " dir " + dir +
                             " mark 0xd0 mask 0xffffffff tmpl src " + remote + " dst " + local +
                             " proto esp reqid 1 mode tunnel");
        }
        // Egress: only once the peer's SPI is not newer than ours, with the peer's SPI and its key.
        if (peer.spi <= local_spi_ && history_.count(peer.spi)) {
          if (!has(local, remote, peer.spi)) {
            KeyMaterial out = ipsec::DeriveKey(history_.at(peer.spi), local, remote, cfg_.boot_id, peer.boot_id);
            if (Fault("wrong-key")) {
              auto bytes = out.bytes();
              bytes[0] ^= 0xff;
              out = KeyMaterial(bytes);
            }
            states.push_back("xfrm state add src " + local + " dst " + remote + " proto esp spi " + Hex32(peer.spi) +
                             " reqid 1 mode tunnel aead rfc4106(gcm(aes)) 0x" + out.RevealHex() + " 128");
          }
          for (const auto& cidr : peer.pod_cidrs) {
            policies.push_back("xfrm policy update src 0.0.0.0/0 dst " + cidr +
                               " dir out mark 0xe0 mask 0xffffffff tmpl src " + local + " dst " + remote +
                               " proto esp spi " + Hex32(peer.spi) + " reqid 1 mode tunnel");
          }
        }
      }
    }
    // States before the policies that use them (as CreateXfrmRule does): a policy without its state
    // drops packets (XfrmOutNoStates).
    RunBatch(states, "states");
    RunBatch(policies, "policies");
    PublishKni();
  }

  // Our KmeshNodeInfo announces the SPI only once its ingress state is programmed, so a peer never
  // encrypts with an SPI we cannot decrypt yet (XfrmInNoStates).
  void PublishKni() {
    if (published_spi_ == local_spi_) return;
    Kni self{local_spi_, {cfg_.address}, cfg_.boot_id, {cfg_.pod_cidr}};
    WriteAtomic(KniPath(cfg_.state_dir, cfg_.node), ToJson(self).dump(2) + "\n");
    published_spi_ = local_spi_;
  }

  void RunBatch(const std::vector<std::string>& lines, const std::string& what) {
    if (lines.empty()) return;
    const std::string batch = cfg_.state_dir + "/." + cfg_.node + ".xfrm";
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    WriteAtomic(batch, text, 0600);
    auto r = netns::Run({"ip", "-batch", batch});
    fs::remove(batch);
    if (!r.ok()) {
      std::string err = r.err;
      while (!err.empty() && err.back() == '\n') err.pop_back();
      LOG(cfg_, "ip xfrm " << what << " failed (exit " << r.exit_code << "): " << err);
    }
  }

  // Kmesh's Clean(ip): every policy whose template names the node, and every state between us.
  void Clean(const std::string& ip) {
    auto run = [&](std::vector<std::string> argv) { netns::Run(argv); };
    run({"ip", "xfrm", "state", "deleteall", "src", ip, "dst", cfg_.address});
    run({"ip", "xfrm", "state", "deleteall", "src", cfg_.address, "dst", ip});
    // Policies carry the peer in their template; the simplest exact rule is to drop the ones of its CIDRs.
    for (const auto& [name, k] : peers_) {
      if (std::find(k.addresses.begin(), k.addresses.end(), ip) == k.addresses.end()) continue;
      for (const auto& cidr : k.pod_cidrs) {
        run({"ip", "xfrm", "policy", "delete", "src", "0.0.0.0/0", "dst", cidr, "dir", "out", "mark", "0xe0", "mask",
             "0xffffffff"});
      }
    }
    for (const char* dir : {"in", "fwd"}) {
      run({"ip", "xfrm", "policy", "delete", "src", "0.0.0.0/0", "dst", cfg_.pod_cidr, "dir", dir, "mark", "0xd0",
           "mask", "0xffffffff"});
    }
  }

  void LoadTc() {
    const std::string path = Runfile("e2e/lab/bpf/tc_mark_encrypt.o");
    tc_obj_ = bpf_object__open_file(path.c_str(), nullptr);
    if (tc_obj_ == nullptr || bpf_object__load(tc_obj_) != 0) throw Error("cannot load " + path);
    tc_prog_fd_ = bpf_program__fd(bpf_object__find_program_by_name(tc_obj_, "tc_mark_encrypt"));
    nodeinfo_fd_ = bpf_object__find_map_fd_by_name(tc_obj_, KM_MAP_NODEINFO);
  }

  // km_nodeinfo = the peers' pod CIDRs; tc_mark_encrypt on the node side of every pod veth (lxc*).
  void MarkEgress() {
    const bool want = !Fault("egress-not-marked");
    std::set<std::string> cidrs;
    if (want) {
      for (const auto& [name, k] : peers_) cidrs.insert(k.pod_cidrs.begin(), k.pod_cidrs.end());
    }
    for (const auto& c : marked_cidrs_) {
      if (!cidrs.count(c)) bpf_map_delete_elem(nodeinfo_fd_, NodeinfoKey(c).data());
    }
    for (const auto& c : cidrs) {
      uint32_t one = 1;
      if (!marked_cidrs_.count(c)) bpf_map_update_elem(nodeinfo_fd_, NodeinfoKey(c).data(), &one, BPF_ANY);
    }
    marked_cidrs_ = cidrs;
    // if_nameindex() asks the kernel of this namespace (/sys/class/net would show the mounter's).
    std::vector<std::pair<std::string, int>> links;
    if (struct if_nameindex* all = if_nameindex()) {
      for (auto* i = all; i->if_index != 0; ++i) links.emplace_back(i->if_name, static_cast<int>(i->if_index));
      if_freenameindex(all);
    }
    for (const auto& [ifname, idx] : links) {
      if (ifname.rfind("lxc", 0) != 0 || tc_attached_.count(ifname)) continue;
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = idx, .attach_point = BPF_TC_INGRESS);
      int rc = bpf_tc_hook_create(&hook);
      if (rc != 0 && rc != -EEXIST) {
        LOG(cfg_, "clsact on " << ifname << ": " << strerror(-rc));
        continue;
      }
      LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = tc_prog_fd_, .handle = 1, .priority = 1);
      rc = bpf_tc_attach(&hook, &opts);
      if (rc != 0) {
        LOG(cfg_, "tc_mark_encrypt on " << ifname << ": " << strerror(-rc));
        continue;
      }
      tc_attached_.insert(ifname);
      LOG(cfg_, "tc_mark_encrypt attached to " << ifname);
    }
  }

  static std::array<uint8_t, 20> NodeinfoKey(const std::string& cidr) {
    std::array<uint8_t, 20> k{};
    const auto slash = cidr.find('/');
    uint32_t prefix = static_cast<uint32_t>(std::stoul(cidr.substr(slash + 1)));
    std::memcpy(k.data(), &prefix, 4);
    inet_pton(AF_INET, cidr.substr(0, slash).c_str(), k.data() + 4);
    return k;
  }

  // Kmesh's normal stop: flush all xfrm policies and ESP states, withdraw the KmeshNodeInfo.
  void Stop() {
    LOG(cfg_, "stopping: flushing xfrm and withdrawing KmeshNodeInfo");
    fs::remove(KniPath(cfg_.state_dir, cfg_.node));
    netns::Run({"ip", "xfrm", "policy", "flush"});
    netns::Run({"ip", "xfrm", "state", "flush", "proto", "esp"});
    for (const auto& ifname : tc_attached_) {
      int idx = static_cast<int>(if_nametoindex(ifname.c_str()));
      if (idx == 0) continue;
      LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = idx, .attach_point = BPF_TC_INGRESS);
      LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
      bpf_tc_detach(&hook, &opts);
    }
    if (tc_obj_) bpf_object__close(tc_obj_);
  }

  AgentConfig cfg_;
  std::set<std::string> faults_;
  std::string last_secret_text_;
  std::map<uint32_t, KeyMaterial> history_;
  uint32_t local_spi_ = 0;
  uint32_t published_spi_ = 0;
  std::map<std::string, Kni> peers_;
  bpf_object* tc_obj_ = nullptr;
  int tc_prog_fd_ = -1;
  int nodeinfo_fd_ = -1;
  std::set<std::string> marked_cidrs_;
  std::set<std::string> tc_attached_;
};

}  // namespace

std::string SecretPath(const std::string& d) { return d + "/secret.json"; }
std::string KniPath(const std::string& d, const std::string& node) { return d + "/kni/" + node + ".json"; }
std::string FaultsPath(const std::string& d, const std::string& node) { return d + "/faults/" + node; }

int RunAgent(const AgentConfig& cfg) {
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  try {
    return Agent(cfg).Run();
  } catch (const std::exception& e) {
    std::cerr << "kmesh-lab-agent [" << cfg.node << "]: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace kmesh::lab
