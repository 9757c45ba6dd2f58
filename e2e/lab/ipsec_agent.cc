#include "e2e/lab/ipsec_agent.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/tc.h"
#include "e2e/lab/kmesh_ipsec_tc.h"
#include "e2e/lab/kmesh_xfrm.h"
#include "ipsec/ipsec_layout.h"
#include "ipsec/ipsec_secret.h"
#include "net/ip.h"
#include "net/ipsec.h"
#include "net/tuple.h"
#include "netns/netlink.h"
#include "netns/netns.h"
#include "xfrm/xfrm.h"

namespace kmesh::lab {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using ipsec::IpsecSecret;
using ipsec::KeyMaterial;
using nlohmann::json;

// ---- small helpers ----------------------------------------------------------------------------------

std::string Now() {
  const auto t = std::chrono::system_clock::now();
  const time_t secs = std::chrono::system_clock::to_time_t(t);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  char buf[32];
  strftime(buf, sizeof buf, "%H:%M:%S", gmtime(&secs));
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03lld", buf, static_cast<long long>(ms));
  return out;
}

std::string g_node;
#define LOG(msg) (std::cout << Now() << " [" << g_node << "] " << msg << std::endl)

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void WriteAtomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << text;
    if (!f) throw Error("cannot write " + tmp);
  }
  fs::rename(tmp, path);
}

// net.IP.Equal on text addresses (false when one is not an address).
bool IpEqual(const net::IpAddr& a, const std::string& b) {
  const auto y = net::IpAddr::Parse(b);
  return y && *y == a;
}
bool IpEqual(const std::string& a, const std::string& b) {
  const auto x = net::IpAddr::Parse(a);
  return x && IpEqual(*x, b);
}

// ---- KmeshNodeInfo (pkg/kube/apis/kmeshnodeinfo/v1alpha1/types.go) ---------------------------------

struct KniSpec {
  uint32_t spi = 0;
  std::vector<std::string> addresses;
  std::string boot_id;
  std::vector<std::string> pod_cidrs;
  bool operator==(const KniSpec& o) const {
    return spi == o.spi && addresses == o.addresses && boot_id == o.boot_id && pod_cidrs == o.pod_cidrs;
  }
};

json ToJson(const KniSpec& k) {
  return json{{"spi", k.spi}, {"addresses", k.addresses}, {"bootID", k.boot_id}, {"podCIDRS", k.pod_cidrs}};
}

// ---- Lab faults (lab.h) -----------------------------------------------------------------------------

struct Faults {
  std::set<std::string> active;
  bool Has(const std::string& name) const { return active.count(name) != 0; }
};

// ---- The IPsec handler (pkg/controller/encryption/ipsec/ipsec_handler.go) ---------------------------

class IpsecHandler {
 public:
  IpsecHandler(KmeshXfrm& xfrm, const Faults& faults) : xfrm_(xfrm), faults_(faults) {}

  uint32_t spi = 0;                         // Spi
  std::map<uint32_t, IpsecSecret> history;  // historyIpSecKey: every SPI loaded, for the daemon's lifetime

  // LoadIPSecKeyFromFile (lines 56-84): JSON decode, name must start with "rfc", Spi = key.Spi,
  // historyIpSecKey[Spi] = key.
  void LoadKeyFromFile(const std::string& path) {
    const auto text = ReadFile(path);
    if (!text) throw Error("load ipsec keys failed: cannot open " + path);
    IpsecSecret s = IpsecSecret::Parse(*text, path);
    spi = s.spi;
    history[spi] = s;
    LOG("load ipsec key from file " << path << ": spi " << spi << ", key " << s.aead_key.ForDisplay());
  }

  // CreateXfrmRule (lines 149-176).
  void CreateXfrmRule(const KniSpec& local, const KniSpec& remote) {
    auto it = history.find(remote.spi);
    if (it == history.end()) {
      LOG("can not found the spi key, maybe spi has expire before kmesh start (remote spi " << remote.spi
                                                                                            << ")");
      return;
    }
    for (const auto& remote_ip : remote.addresses) {
      for (const auto& local_ip : local.addresses) {
        CreateIngress(remote_ip, local_ip, remote.boot_id, local.boot_id, local.spi, local.pod_cidrs);
        if (remote.spi > local.spi) continue;  // only ingress until our own SPI catches up (line 163)
        try {
          CreateEgress(local_ip, remote_ip, local.boot_id, remote.boot_id, it->second, remote.pod_cidrs);
        } catch (const std::exception& e) {
          throw Error(std::string("create xfrm out rule failed, ") + e.what());
        }
      }
    }
  }

  // Clean (lines 350-395): every policy with a template from or to `ip`, then every state from or to it.
  void Clean(const std::string& ip) {
    for (const auto& p : xfrm_.ListPolicies()) {
      for (const auto& t : p.templates) {
        if (IpEqual(t.src, ip) || IpEqual(t.dst, ip)) {
          xfrm_.DeletePolicy(p);
          LOG("clean " << ip << ": deleted policy " << p.Id());
          break;  // the policy is gone (Kmesh's loop goes on to the next template of a deleted policy)
        }
      }
    }
    for (const auto& s : xfrm_.ListStates()) {
      if (IpEqual(s.src, ip) || IpEqual(s.dst, ip)) {
        xfrm_.DeleteState(s);
        LOG("clean " << ip << ": deleted state " << s.Id());
      }
    }
  }

  // Flush (lines 397-401): every policy and every ESP state; errors ignored.
  void Flush() {
    try {
      xfrm_.FlushPolicies();
    } catch (const std::exception& e) {
      LOG("flush policies: " << e.what());
    }
    try {
      xfrm_.FlushEspStates();
    } catch (const std::exception& e) {
      LOG("flush states: " << e.what());
    }
  }

 private:
  // generateIPSecKey (lines 136-147). Go slices []byte(bootID)[:36], which panics on a shorter boot id.
  static KeyMaterial GenerateKey(const std::string& src_ip, const std::string& dst_ip,
                                 const std::string& src_boot, const std::string& dst_boot,
                                 const KeyMaterial& key) {
    if (src_boot.size() < 36 || dst_boot.size() < 36) {
      throw Error(
          "boot id shorter than 36 bytes: Kmesh's generateIPSecKey would panic (ipsec_handler.go:142-143)");
    }
    return ipsec::DeriveKey(key, src_ip, dst_ip, src_boot, dst_boot);
  }

  // createXfrmRuleIngress (lines 186-220): the state with the local SPI's key and output-mark, then in and
  // fwd policies for every local pod CIDR.
  void CreateIngress(const std::string& remote_ip, const std::string& local_ip,
                     const std::string& remote_boot, const std::string& local_boot, uint32_t local_spi,
                     const std::vector<std::string>& pod_cidrs) {
    // historyIpSecKey[spi] of a missing SPI is Go's zero value: an empty key and SPI 0.
    const auto it = history.find(local_spi);
    const IpsecSecret secret = it == history.end() ? IpsecSecret{0, "", KeyMaterial(), 0} : it->second;
    if (faults_.Has("xfrm-state-missing")) {
      LOG("fault xfrm-state-missing: ingress state src " << remote_ip << " dst " << local_ip
                                                         << " not created");
    } else {
      KeyMaterial key = GenerateKey(remote_ip, local_ip, remote_boot, local_boot, secret.aead_key);
      CreateState(remote_ip, local_ip, key, secret, /*ingress=*/true);
    }
    const std::string all = remote_ip.find(':') == std::string::npos ? "0.0.0.0/0" : "::/0";
    for (const auto& cidr : pod_cidrs) {
      try {
        KmeshXfrmPolicy p{all, cidr, xfrm::Dir::kIn, remote_ip, local_ip, 0, net::kDecryptedMark};
        CreateOrUpdatePolicy(p);
        p.dir = xfrm::Dir::kFwd;
        CreateOrUpdatePolicy(p);
      } catch (const std::exception& e) {
        throw Error(std::string("failed to create policy rule, ") + e.what());
      }
    }
  }

  // createXfrmRuleEgress (lines 228-262): the state with the remote SPI's key (no output-mark), then the
  // out policy for every remote pod CIDR, its template carrying that SPI.
  void CreateEgress(const std::string& local_ip, const std::string& remote_ip, const std::string& local_boot,
                    const std::string& remote_boot, const IpsecSecret& secret,
                    const std::vector<std::string>& pod_cidrs) {
    KeyMaterial key = GenerateKey(local_ip, remote_ip, local_boot, remote_boot, secret.aead_key);
    if (faults_.Has("wrong-key")) {
      auto bytes = key.bytes();
      bytes[0] ^= 0xff;
      key = KeyMaterial(bytes);
    }
    CreateState(local_ip, remote_ip, key, secret, /*ingress=*/false);
    const std::string all = local_ip.find(':') == std::string::npos ? "0.0.0.0/0" : "::/0";
    for (const auto& cidr : pod_cidrs) {
      try {
        CreateOrUpdatePolicy(
            KmeshXfrmPolicy{all, cidr, xfrm::Dir::kOut, local_ip, remote_ip, secret.spi, net::kEncryptMark});
      } catch (const std::exception& e) {
        throw Error(std::string("failed to create policy rule, ") + e.what());
      }
    }
  }

  // createStateRule (lines 264-291): an add that answers EEXIST is ignored: the existing state, whatever
  // it holds, stays.
  void CreateState(const std::string& src, const std::string& dst, const KeyMaterial& key,
                   const IpsecSecret& secret, bool ingress) {
    const xfrm::EspTunnelState s{src,
                                 dst,
                                 net::Spi{secret.spi},
                                 secret.aead_key_name,
                                 key,
                                 static_cast<uint32_t>(secret.length),
                                 ingress ? std::optional(net::kDecryptedMark) : std::nullopt};
    try {
      xfrm_.AddState(s);
      LOG("xfrm state add src " << src << " dst " << dst << " spi " << Hex32(secret.spi) << " key "
                                << key.ForDisplay() << (ingress ? " output-mark 0xd0" : ""));
    } catch (const netns::NetlinkError& e) {
      if (e.err() != EEXIST) {
        throw Error(std::string("failed to add xfrm state to host in inserting xfrm out rule, ") + e.what());
      }
    }
  }

  // xfrmPolicyCreateOrUpdate (lines 339-348): add, and update when the add answers EEXIST.
  void CreateOrUpdatePolicy(const KmeshXfrmPolicy& p) {
    const std::string what = "src " + p.src_cidr + " dst " + p.dst_cidr + " dir " + xfrm::ToString(p.dir) +
                             " tmpl " + p.tmpl_src + " -> " + p.tmpl_dst + " spi " + Hex32(p.tmpl_spi);
    try {
      xfrm_.AddPolicy(p);
      LOG("xfrm policy add " << what);
    } catch (const netns::NetlinkError& e) {
      if (e.err() != EEXIST) throw;
      xfrm_.UpdatePolicy(p);
      LOG("xfrm policy update (add answered EEXIST) " << what);
    }
  }

  KmeshXfrm& xfrm_;
  const Faults& faults_;
};

// ---- client-go's rate-limited work queue, as the controller uses it --------------------------------
// workqueue.DefaultTypedControllerRateLimiter: per item 5 ms * 2^(requeues so far), at most 1000 s (the
// 10 qps bucket never binds at the lab's rates); an item waiting is not added twice, the earlier time wins.

class WorkQueue {
 public:
  void AddRateLimited(const std::string& key) {
    const int n = failures_[key]++;
    const std::chrono::milliseconds delay(std::min<long long>(5LL << std::min(n, 30), 1000LL * 1000));
    const auto when = Clock::now() + delay;
    auto it = waiting_.find(key);
    if (it == waiting_.end() || when < it->second) waiting_[key] = when;
  }
  int NumRequeues(const std::string& key) const {
    auto it = failures_.find(key);
    return it == failures_.end() ? 0 : it->second;
  }
  void Forget(const std::string& key) { failures_.erase(key); }
  std::optional<std::string> PopReady() {
    const auto now = Clock::now();
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      if (it->second <= now) {
        std::string key = it->first;
        waiting_.erase(it);
        return key;
      }
    }
    return std::nullopt;
  }
  std::optional<Clock::time_point> NextDeadline() const {
    std::optional<Clock::time_point> next;
    for (const auto& [k, t] : waiting_) {
      if (!next || t < *next) next = t;
    }
    return next;
  }

 private:
  std::map<std::string, Clock::time_point> waiting_;
  std::map<std::string, int> failures_;
};

constexpr int kMaxRetries = 5;  // ipsec_controller.go:55

// ---- The agent: loader + IPsec controller + the manage controller's linkTc --------------------------

class Agent {
 public:
  explicit Agent(AgentConfig cfg)
      : cfg_(std::move(cfg)), xfrm_(netns::NetnsRef::Self()), handler_(xfrm_, faults_) {}

  int Main() {
    // Signals arrive on a descriptor, so the event loop wakes for them as for any other event.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    sigfd_ = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sigfd_ < 0) ThrowErrno("signalfd");
    inotify_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotify_ < 0) ThrowErrno("inotify_init1");
    for (const char* sub : {"kni", "faults", "pods", "datapath", "exit"})
      fs::create_directories(cfg_.state_dir + "/" + sub);
    ReadFaults();

    // The daemon's BPF loader (pkg/bpf/workload/loader.go:69-75,147): Kmesh's tc objects, km_nodeinfo pinned.
    // The start type (pkg/bpf/bpf.go:172-201, restart.SetStartStatus): Restart when a daemon that exited for
    // a restart left its BPF pinned (here: km_nodeinfo, the pin this agent owns), else Normal.
    restart_start_ = fs::exists(cfg_.pin_dir + "/km_nodeinfo");
    tc_ = KmeshIpsecTc::Load(cfg_.pin_dir);
    LOG("start type " << (restart_start_ ? "Restart (km_nodeinfo left pinned by the previous daemon)"
                                         : "Normal"));
    LOG("loaded Kmesh's tc_mark_encrypt (id "
        << tc_->encrypt_identity().programs[0].id << ") and tc_mark_decrypt (id "
        << tc_->decrypt_identity().programs[0].id << ") from " << tc_->encrypt_identity().Describe());
    NewController();
    StartInformer();
    const bool running = Run();
    StartManage();
    WriteRecord();
    Loop(running);
    // The exit type (daemon/manager/manager.go:119, restart.InferNextStartType): Restart while Kmesh's
    // DaemonSet exists (a pod restart), Normal when it is gone (uninstall). The lab says which in
    // exit/<node>.
    const std::string exit_file = cfg_.state_dir + "/exit/" + cfg_.node;
    const bool restart_exit = ReadFile(exit_file).value_or("").rfind("restart", 0) == 0;
    std::error_code ec;
    fs::remove(exit_file, ec);
    LOG("exit type " << (restart_exit ? "Restart" : "Normal"));
    Stop();
    // BpfLoader.Stop (pkg/bpf/bpf.go:141-170): a Restart/Update exit returns before closing anything; a
    // Normal exit closes the tc objects and unpins their maps (pkg/bpf/general/tc.go:138-169).
    if (!restart_exit) tc_->Unpin();
    tc_.reset();
    LOG("stopped");
    return 0;
  }

 private:
  // NewController (ipsec_controller.go:78-146): the key file if it exists, the local KmeshNodeInfo.
  void NewController() {
    if (fs::exists(SecretPath(cfg_.state_dir))) handler_.LoadKeyFromFile(SecretPath(cfg_.state_dir));
    local_ = KniSpec{handler_.spi, {cfg_.address}, cfg_.boot_id, {cfg_.pod_cidr}};
    LOG("controller: local KmeshNodeInfo " << ToJson(local_).dump());
  }

  // The informer: its initial list delivers an Add for every object (client-go), which the handler queues.
  void StartInformer() {
    kni_watch_ = inotify_add_watch(inotify_, (cfg_.state_dir + "/kni").c_str(),
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE);
    for (const auto& e : fs::directory_iterator(cfg_.state_dir + "/kni")) {
      if (e.path().extension() != ".json") continue;
      const std::string name = e.path().stem().string();
      if (auto k = ReadKni(name)) {
        cache_[name] = *k;
        HandleKniAdd(name);
      }
    }
  }

  std::optional<KniSpec> ReadKni(const std::string& name) {
    const std::string path = KniPath(cfg_.state_dir, name);
    const auto text = ReadFile(path);
    if (!text) return std::nullopt;
    try {
      const json j = json::parse(*text);
      return KniSpec{j.at("spi").get<uint32_t>(), j.at("addresses").get<std::vector<std::string>>(),
                     j.at("bootID").get<std::string>(), j.at("podCIDRS").get<std::vector<std::string>>()};
    } catch (const std::exception& e) {
      LOG("informer: KmeshNodeInfo " << path << ": " << e.what());
      return std::nullopt;
    }
  }

  // Run (ipsec_controller.go:149-186). Returns false where Kmesh's Run returns early (the controller then
  // does nothing more until the daemon stops).
  bool Run() {
    AttachTcDecrypt();
    SyncAllNodeInfo();
    try {
      UpdateLocalKmeshNodeInfo();
    } catch (const std::exception& e) {
      LOG("failed to update local node info: " << e.what() << " (Run returns: no more IPsec work)");
      return false;
    }
    StartWatch();
    return true;
  }

  // handleTc(TC_ATTACH/TC_DETACH) (lines 198-229): every non-loopback interface with one of our addresses.
  std::vector<std::string> NodeInterfaces() {
    std::set<std::string> out;
    struct ifaddrs* all = nullptr;
    if (getifaddrs(&all) != 0) return {};
    for (auto* i = all; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_LOOPBACK)) continue;
      const auto ep = net::Endpoint::FromSockaddr(i->ifa_addr, sizeof(sockaddr_in6));
      if (!ep) continue;  // not IPv4 or IPv6
      for (const auto& a : local_.addresses) {
        if (IpEqual(ep->ip, a)) out.insert(i->ifa_name);
      }
    }
    freeifaddrs(all);
    return {out.begin(), out.end()};
  }

  void AttachTcDecrypt() {
    for (const auto& ifname : NodeInterfaces()) {
      try {
        bpf_probe::KmeshTcAttach(netns::NetnsRef::Self(), ifname, tc_->decrypt_fd());
        decrypt_on_.insert(ifname);
        LOG("tc_mark_decrypt attached to ingress of " << ifname);
      } catch (const std::exception& e) {
        LOG("failed to attach tc ebpf on interface " << ifname << ", " << e.what());
      }
    }
  }

  void DetachTcDecrypt() {
    for (const auto& ifname : NodeInterfaces()) {
      try {
        bpf_probe::KmeshTcDetach(netns::NetnsRef::Self(), ifname);
        LOG("tc_mark_decrypt detached from " << ifname);
      } catch (const std::exception& e) {
        LOG("failed to detach tc ebpf on interface " << ifname << ", " << e.what());
      }
    }
    decrypt_on_.clear();
  }

  // syncAllNodeInfo (lines 384-398): every peer in the lister, errors logged.
  void SyncAllNodeInfo() {
    for (const auto& [name, spec] : cache_) {
      if (name == cfg_.node) continue;
      try {
        HandleOneNodeInfo(name, spec);
      } catch (const std::exception& e) {
        LOG("failed to create xfrm rule for node " << name << ": err: " << e.what());
      }
    }
  }

  // handleOneNodeInfo (lines 320-341): xfrm for the peer, then its pod CIDRs into km_nodeinfo.
  void HandleOneNodeInfo(const std::string& name, const KniSpec& node) {
    handler_.CreateXfrmRule(local_, node);
    if (faults_.Has("nodeinfo-entry-missing")) {
      LOG("fault nodeinfo-entry-missing: km_nodeinfo not updated for " << name);
      return;
    }
    for (const auto& cidr : node.pod_cidrs) {
      try {
        tc_->UpdateNodeinfoCidr(cidr);
      } catch (const std::exception& e) {
        throw Error(std::string("update kni map podCIDR failed, ") + e.what());
      }
    }
    LOG("handled KmeshNodeInfo " << name << " (spi " << node.spi << ")");
  }

  // updateLocalKmeshNodeInfo (lines 400-420): create when the lister has none, update when the spec differs.
  void UpdateLocalKmeshNodeInfo() {
    auto it = cache_.find(cfg_.node);
    if (it != cache_.end() && it->second == local_) return;
    WriteAtomic(KniPath(cfg_.state_dir, cfg_.node), ToJson(local_).dump(2) + "\n");
    LOG((it == cache_.end() ? "created" : "updated") << " own KmeshNodeInfo: spi " << local_.spi);
  }

  // StartWatch (ipsec_handler.go:86-125): Write, Create, Rename and Chmod events arm a 100 ms timer, after
  // which the key is loaded and handleIpsecUpdate runs. Istio's filewatcher (pkg/filewatcher/worker.go,
  // not in the Kmesh tree) watches the file's folder and forwards an event of that folder only when the
  // file's MD5 differs from the last one it saw (its baseline taken when the watch starts).
  void StartWatch() {
    secret_watch_ = inotify_add_watch(inotify_, cfg_.state_dir.c_str(),
                                      IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB);
    secret_seen_ = ReadFile(SecretPath(cfg_.state_dir)).value_or("");
    LOG("start watching file " << SecretPath(cfg_.state_dir));
  }

  void OnSecretEvent() {
    const std::string now = ReadFile(SecretPath(cfg_.state_dir)).value_or("");
    if (now == secret_seen_) return;
    secret_seen_ = now;
    if (!secret_timer_) secret_timer_ = Clock::now() + std::chrono::milliseconds(100);
  }

  void OnSecretTimer() {
    secret_timer_.reset();
    if (faults_.Has("rotation-not-applied") && handler_.spi != 0) {
      LOG("fault rotation-not-applied: secret change ignored");
      return;
    }
    try {
      handler_.LoadKeyFromFile(SecretPath(cfg_.state_dir));
    } catch (const std::exception& e) {
      LOG("failed to load ipsec key, " << e.what());
      return;
    }
    HandleIpsecUpdate();
  }

  // handleIpsecUpdate (lines 469-511): xfrm for every peer with the new local SPI, then our own
  // KmeshNodeInfo's spi, read back from the lister (nothing when the lister lacks it).
  void HandleIpsecUpdate() {
    local_.spi = handler_.spi;
    for (const auto& [name, spec] : cache_) {
      if (name == cfg_.node) continue;
      try {
        handler_.CreateXfrmRule(local_, spec);
      } catch (const std::exception& e) {
        LOG(e.what());
      }
    }
    auto it = cache_.find(cfg_.node);
    if (it == cache_.end()) {
      LOG("failed to get kmesh node info: " << cfg_.node << " not found");
      return;
    }
    if (it->second.spi == handler_.spi) return;
    KniSpec update = it->second;
    update.spi = local_.spi;
    WriteAtomic(KniPath(cfg_.state_dir, cfg_.node), ToJson(update).dump(2) + "\n");
    LOG("updated own KmeshNodeInfo: spi " << update.spi);
  }

  // handleKNIAdd / handleKNIUpdate (lines 255-290): peers only, updates only when the spec changed.
  void HandleKniAdd(const std::string& name) {
    if (name == cfg_.node) return;
    LOG("informer: add KmeshNodeInfo " << name);
    queue_.AddRateLimited(name);
  }
  void HandleKniUpdate(const std::string& name, const KniSpec& old_spec, const KniSpec& new_spec) {
    if (name == cfg_.node) return;
    if (old_spec == new_spec) return;
    LOG("informer: update KmeshNodeInfo " << name << " (spi " << old_spec.spi << " -> " << new_spec.spi
                                          << ")");
    queue_.AddRateLimited(name);
  }
  // handleKNIDelete (lines 292-318): Clean(ip) for every address (stop at the first error), then the pod
  // CIDRs out of km_nodeinfo. Runs in the informer's handler, not through the queue. It does not skip our
  // own name.
  void HandleKniDelete(const std::string& name, const KniSpec& node) {
    LOG("informer: delete KmeshNodeInfo " << name);
    for (const auto& ip : node.addresses) {
      try {
        handler_.Clean(ip);
      } catch (const std::exception& e) {
        LOG("failed to delete ipsec for node " << name << ": " << e.what());
        return;
      }
    }
    for (const auto& cidr : node.pod_cidrs) tc_->DeleteNodeinfoCidr(cidr);
  }

  // processNextItem (lines 433-466).
  void ProcessNextItem(const std::string& name) {
    auto it = cache_.find(name);
    if (it == cache_.end()) return;  // IsNotFound: dropped
    try {
      HandleOneNodeInfo(name, it->second);
    } catch (const std::exception& e) {
      if (queue_.NumRequeues(name) < kMaxRetries) {
        LOG("failed to handle other node " << name << " err: " << e.what() << ", will retry");
        queue_.AddRateLimited(name);
      } else {
        LOG("failed to handle other node " << name << " err: " << e.what() << ", giving up");
        queue_.Forget(name);
      }
      return;
    }
    queue_.Forget(name);
  }

  void OnKniEvent(const std::string& file, uint32_t mask) {
    if (fs::path(file).extension() != ".json") return;
    const std::string name = fs::path(file).stem().string();
    auto old = cache_.find(name);
    if (mask & (IN_DELETE | IN_MOVED_FROM)) {
      if (old == cache_.end()) return;
      const KniSpec gone = old->second;
      cache_.erase(old);
      HandleKniDelete(name, gone);
      return;
    }
    auto now = ReadKni(name);
    if (!now) return;
    if (old == cache_.end()) {
      cache_[name] = *now;
      HandleKniAdd(name);
    } else {
      const KniSpec before = old->second;
      old->second = *now;
      HandleKniUpdate(name, before, *now);
    }
  }

  // ---- the manage controller's part: linkTc / unlinkTc (manage_controller.go:251-279, 516-575) ----

  void StartManage() {
    pods_watch_ =
        inotify_add_watch(inotify_, (cfg_.state_dir + "/pods").c_str(), IN_CLOSE_WRITE | IN_MOVED_TO);
    SyncPods();
  }

  std::map<std::string, std::string> ReadPods() {
    std::map<std::string, std::string> pods;  // pod -> host veth
    std::istringstream in(ReadFile(PodsPath(cfg_.state_dir, cfg_.node)).value_or(""));
    for (std::string pod, veth; in >> pod >> veth;) pods[pod] = veth;
    return pods;
  }

  void SyncPods() {
    const auto pods = ReadPods();
    const bool mark = !faults_.Has("egress-not-marked");
    for (auto it = encrypt_on_.begin(); it != encrypt_on_.end();) {
      if (pods.count(it->first) && mark) {
        ++it;
        continue;
      }
      try {
        bpf_probe::KmeshTcDetach(netns::NetnsRef::Self(), it->second);
        LOG("tc_mark_encrypt detached from " << it->second << " (pod " << it->first << ")");
      } catch (const std::exception& e) {
        LOG("unlinkTc " << it->second << ": " << e.what());
      }
      it = encrypt_on_.erase(it);
    }
    if (!mark) {
      LOG("fault egress-not-marked: tc_mark_encrypt not attached to pod veths");
      return;
    }
    for (const auto& [pod, veth] : pods) {
      if (encrypt_on_.count(pod)) continue;
      try {
        bpf_probe::KmeshTcAttach(netns::NetnsRef::Self(), veth, tc_->encrypt_fd());
        encrypt_on_[pod] = veth;
        LOG("tc_mark_encrypt attached to ingress of " << veth << " (pod " << pod << ")");
      } catch (const std::exception& e) {
        LOG("Run link tc for pod " << pod << " failed: " << e.what());
      }
    }
    WriteRecord();
  }

  // ---- lab faults ----

  void ReadFaults() {
    faults_watch_ = faults_watch_ >= 0 ? faults_watch_
                                       : inotify_add_watch(inotify_, (cfg_.state_dir + "/faults").c_str(),
                                                           IN_CLOSE_WRITE | IN_MOVED_TO);
    std::set<std::string> f;
    std::istringstream in(ReadFile(FaultsPath(cfg_.state_dir, cfg_.node)).value_or(""));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) f.insert(line);
    }
    if (f == faults_.active) return;
    const auto before = faults_.active;
    faults_.active = f;
    for (const auto& name : f) {
      if (before.count(name)) continue;
      LOG("fault injected: " << name);
      if (name == "xfrm-state-missing" && handler_.spi != 0) DeleteOwnIngressStates();
      if (name == "nodeinfo-entry-missing" && tc_) {
        for (const auto& [peer, spec] : cache_) {
          if (peer == cfg_.node) continue;
          for (const auto& cidr : spec.pod_cidrs) tc_->DeleteNodeinfoCidr(cidr);
          LOG("fault nodeinfo-entry-missing: km_nodeinfo entries of " << peer << " deleted");
        }
      }
    }
    if (tc_ && (before.count("egress-not-marked") != f.count("egress-not-marked"))) SyncPods();
  }

  // The fault's deletion: the ingress states of the current SPI (Kmesh never re-creates them).
  void DeleteOwnIngressStates() {
    try {
      for (const auto& s : xfrm_.ListStates()) {
        if (s.spi.value == handler_.spi && s.output_mark && IpEqual(s.dst, cfg_.address)) {
          xfrm_.DeleteState(s);
          LOG("fault xfrm-state-missing: deleted " << s.Id());
        }
      }
    } catch (const std::exception& e) {
      LOG("fault xfrm-state-missing: " << e.what());
    }
  }

  // What this node's Kmesh loaded and where it attached it (evidence; the kernel's own view is read by the
  // harness with bpf_probe::QueryTcFilters).
  void WriteRecord() {
    if (!tc_) return;
    json j = tc_->ToJson();
    j["node"] = cfg_.node;
    j["agent_pid"] = getpid();
    j["decrypt_on"] = std::vector<std::string>(decrypt_on_.begin(), decrypt_on_.end());
    json enc = json::object();
    for (const auto& [pod, veth] : encrypt_on_) enc[pod] = veth;
    j["encrypt_on"] = enc;
    WriteAtomic(DatapathRecordPath(cfg_.state_dir, cfg_.node), j.dump(2) + "\n");
  }

  // ---- the event loop ----

  void Loop(bool running) {
    std::vector<uint8_t> buf(64 * 1024);
    while (true) {
      // Due work first: the secret's debounce timer, then queued KmeshNodeInfo items.
      if (running && secret_timer_ && Clock::now() >= *secret_timer_) OnSecretTimer();
      while (running) {
        auto key = queue_.PopReady();
        if (!key) break;
        ProcessNextItem(*key);
      }
      std::optional<Clock::time_point> next = running ? queue_.NextDeadline() : std::nullopt;
      if (running && secret_timer_ && (!next || *secret_timer_ < *next)) next = secret_timer_;
      int timeout = -1;
      if (next) {
        timeout = static_cast<int>(std::max<long long>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count() + 1));
      }
      pollfd fds[2] = {{sigfd_, POLLIN, 0}, {inotify_, POLLIN, 0}};
      const int n = poll(fds, 2, timeout);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) ThrowErrno("poll");
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si{};
        if (read(sigfd_, &si, sizeof si) > 0) {
          LOG("signal " << si.ssi_signo << ": stopping");
          return;
        }
      }
      if (!(fds[1].revents & POLLIN)) continue;
      const ssize_t len = read(inotify_, buf.data(), buf.size());
      for (ssize_t off = 0; off < len;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        const std::string file = ev->len ? ev->name : "";
        try {
          if (ev->wd == kni_watch_) {
            OnKniEvent(file, ev->mask);
          } else if (ev->wd == secret_watch_) {
            if (running) OnSecretEvent();  // any event in the folder: the content hash decides
          } else if (ev->wd == faults_watch_ && file == cfg_.node) {
            ReadFaults();
          } else if (ev->wd == pods_watch_ && file == cfg_.node) {
            SyncPods();
          }
        } catch (const std::exception& e) {
          LOG("error handling an event on " << file << ": " << e.what());
        }
      }
    }
  }

  // Stop (ipsec_controller.go:189-196): StopWatch; then, if this daemon's *start* type was Normal, delete our
  // KmeshNodeInfo, detach tc_mark_decrypt, flush every policy and ESP state, whatever the exit type.
  void Stop() {
    if (secret_watch_ >= 0) inotify_rm_watch(inotify_, secret_watch_);
    if (restart_start_) {
      LOG("stopping: started as Restart, so Stop cleans nothing (ipsec_controller.go:191)");
      return;
    }
    LOG("stopping: started as Normal: delete own KmeshNodeInfo, detach tc_mark_decrypt, flush xfrm");
    std::error_code ec;
    fs::remove(KniPath(cfg_.state_dir, cfg_.node), ec);
    DetachTcDecrypt();
    handler_.Flush();
    WriteRecord();
  }

  AgentConfig cfg_;
  bool restart_start_ = false;
  Faults faults_;
  KmeshXfrm xfrm_;
  IpsecHandler handler_;
  std::unique_ptr<KmeshIpsecTc> tc_;
  KniSpec local_;                         // our own KmeshNodeInfo (named cfg_.node)
  std::map<std::string, KniSpec> cache_;  // the informer's store (every KmeshNodeInfo, ours too)
  WorkQueue queue_;
  int sigfd_ = -1;
  int inotify_ = -1;
  int kni_watch_ = -1, secret_watch_ = -1, faults_watch_ = -1, pods_watch_ = -1;
  std::string secret_seen_;
  std::optional<Clock::time_point> secret_timer_;
  std::set<std::string> decrypt_on_;
  std::map<std::string, std::string> encrypt_on_;  // pod -> host veth
};

}  // namespace

std::string SecretPath(const std::string& d) { return d + "/secret.json"; }
std::string KniPath(const std::string& d, const std::string& node) { return d + "/kni/" + node + ".json"; }
std::string FaultsPath(const std::string& d, const std::string& node) { return d + "/faults/" + node; }
std::string PodsPath(const std::string& d, const std::string& node) { return d + "/pods/" + node; }
std::string DatapathRecordPath(const std::string& d, const std::string& node) {
  return d + "/datapath/" + node + ".json";
}

int RunAgent(const AgentConfig& cfg) {
  g_node = cfg.node;
  try {
    return Agent(cfg).Main();
  } catch (const std::exception& e) {
    std::cerr << "kmesh-lab-agent [" << cfg.node << "]: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace kmesh::lab
