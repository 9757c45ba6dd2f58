#include "e2e/lab/kmesh_daemon.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/hex.h"
#include "e2e/lab/authorization_pbc.h"
#include "e2e/lab/kmesh_daemon_protocol.h"
#include "e2e/lab/workload_authz.h"
#include "third_party/kmesh/deserializer/kmesh_deserializer.h"

namespace kmesh::lab {

using nlohmann::json;
namespace proto = daemon_protocol;

namespace {

std::atomic<bool> g_daemon_alive{false};

constexpr const char* kFrontend = "km_frontend";
constexpr const char* kWlPolicy = "km_wlpolicy";
constexpr size_t kMaxPoliciesPerWorkload = 4;  // bpfcache.WorkloadPolicyValue.PolicyIds [4]uint32

std::vector<uint8_t> FromHex(const std::string& s) {
  size_t bad = 0;
  if (auto bytes = BytesFromHex(s, &bad)) return *bytes;
  if (bad == s.size()) throw Error("wire_hex has an odd number of digits (" + std::to_string(s.size()) + ")");
  bad &= ~size_t{1};
  throw Error("wire_hex is not hex at digit " + std::to_string(bad) + ": \"" + s.substr(bad, 2) + "\"");
}

bpf_probe::ByteView View(const void* p, size_t n) {
  return bpf_probe::ByteView(static_cast<const uint8_t*>(p), n);
}

// km_frontend's key: the address bytes (4 or 16) at the start of 16 zeroed bytes, as
// nets.CopyIpByteFromSlice fills bpfcache.FrontendKey (pkg/nets/nets.go:67-73).
std::array<uint8_t, 16> FrontendKey(const net::IpAddr& ip) {
  std::array<uint8_t, 16> key{};
  std::memcpy(key.data(), ip.data(), ip.size());
  return key;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& DeserializerMapEnv() {
  static const std::vector<std::pair<std::string, std::string>> env = {
      {"Authorization", "km_authz_policy"}, {"KmeshMap64", "kmesh_map64"},
      {"KmeshMap192", "kmesh_map192"},      {"KmeshMap296", "kmesh_map296"},
      {"KmeshMap1600", "kmesh_map1600"},
  };
  return env;
}

NodeDaemon::NodeDaemon(const NodeDaemonConfig& config)
    : config_(config), hash_(config.state_dir.empty() ? "" : config.state_dir + "/hash_name.yaml") {
  if (g_daemon_alive.exchange(true)) {
    throw Error(
        "a NodeDaemon already exists in this process: Kmesh's deserializer state is process-global, "
        "so each node needs its own kmesh-lab-daemon process");
  }
  try {
    for (const std::string name : proto::kDaemonMaps) {
      auto it = config_.map_ids.find(name);
      if (it == config_.map_ids.end())
        throw Error("no map id given for " + name + " (--map " + name + "=<id>)");
      bpf_probe::Map m = bpf_probe::Map::OpenById(it->second);
      if (m.info().name != name) {
        throw Error("map id " + std::to_string(it->second) + " is " + m.info().Describe() + ", expected " +
                    name);
      }
      maps_.emplace(name, std::move(m));
    }
    // ApiEnvCfg (loader.go:201-223): utils.SetEnvByBpfMapId sets each variable to the map's id in decimal.
    for (const auto& [env, name] : DeserializerMapEnv()) {
      const std::string id = std::to_string(maps_.at(name).info().id);
      if (setenv(env.c_str(), id.c_str(), 1) != 0) ThrowErrno("setenv " + env);
    }
    const int ret = deserial_init();  // loader.go:103-109
    if (ret != 0) {
      throw Error(
          "Kmesh's deserial_init() returned " + std::to_string(ret) +
          " (it opens kmesh_map64/192/296/1600 by the ids in KmeshMap64..KmeshMap1600; see the daemon log)");
    }
    if (!config_.pin_dir.empty()) {
      authorizer_ = std::make_unique<AuthorizerThread>(config_.pin_dir, rbac_,
                                                       [this](const AuthDecision& d) { Record(d); });
    }
  } catch (...) {
    g_daemon_alive = false;
    throw;
  }
}

NodeDaemon::~NodeDaemon() {
  authorizer_.reset();  // its thread records into decisions_: stop it first
  deserial_uninit();    // BpfWorkload.Stop (loader.go:111-114)
  g_daemon_alive = false;
}

const bpf_probe::Map& NodeDaemon::MapNamed(const std::string& name) const { return maps_.at(name); }

json NodeDaemon::Handle(const json& req) {
  try {
    const std::string op = req.at("op").get<std::string>();
    if (op == proto::kApplyAuthorization) return ApplyAuthorization(req);
    if (op == proto::kRemoveAuthorization) return RemoveAuthorization(req);
    if (op == proto::kLookupAuthorization) return LookupAuthorization(req);
    if (op == proto::kStoreWorkload) return StoreWorkload(req);
    if (op == proto::kRemoveWorkload) return RemoveWorkload(req);
    if (op == proto::kIds) return Ids(req);
    if (op == proto::kPing) return json{{"ok", true}, {"pid", getpid()}};
    if (op == proto::kDecisions) return Decisions(req);
    return json{{"ok", false}, {"error", "unknown op \"" + op + "\""}};
  } catch (const std::exception& e) {
    return json{{"ok", false}, {"error", e.what()}};
  }
}

// handleAuthorizationTypeResponse (workload_processor.go:1032-1052): the policy id is the hash of
// Authorization.ResourceName(), then maps_v2.AuthorizationUpdate (authz.go:110-124): the Go side marshals
// the message and protobuf-c unpacks it; here the proto3 bytes arrive as istiod sent them.
json NodeDaemon::ApplyAuthorization(const json& req) {
  const std::vector<uint8_t> bytes = FromHex(req.at("wire_hex").get<std::string>());
  auto msg = UnpackedAuthorization::Unpack(std::string(bytes.begin(), bytes.end()));
  const std::string resource = std::string(msg.get()->namespace_ ? msg.get()->namespace_ : "") + "/" +
                               (msg.get()->name ? msg.get()->name : "");
  rbac_.UpdatePolicy(FromProtobufC(*msg.get()));  // rbac.UpdatePolicy first, workload_processor.go:1044
  const uint32_t id = hash_.Hash(resource);
  unsigned int key = id;  // C.uint(policyKey)
  const int ret = deserial_update_elem(&key, msg.get());
  json reply{{"ok", ret == 0},
             {"policy_id", id},
             {"stored_key", proto::DeserializerStoredKey(id)},
             {"ret", ret},
             {"resource", resource}};
  if (ret != 0) {
    reply["error"] = "Kmesh's deserial_update_elem(" + std::to_string(id) + ", " + resource + ") returned " +
                     std::to_string(ret) + " (see the daemon log for the deserializer's own message)";
  }
  return reply;
}

// The removed-resources loop (workload_processor.go:1055-1061): Hash(resourceName) (which allocates an
// id for a name never seen) and maps_v2.AuthorizationDelete; a failure is only logged there.
json NodeDaemon::RemoveAuthorization(const json& req) {
  const std::string resource = req.at("resource").get<std::string>();
  rbac_.RemovePolicy(resource);  // workload_processor.go:1056
  const uint32_t id = hash_.Hash(resource);
  unsigned int key = id;
  const int ret = deserial_delete_elem(&key, &istio__security__authorization__descriptor);
  return json{{"ok", true}, {"policy_id", id}, {"ret", ret}, {"resource", resource}};
}

std::vector<uint8_t> NodeDaemon::ReadOuterKey(uint64_t outer_key, size_t len) const {
  static const char* kInner[] = {"kmesh_map64", "kmesh_map192", "kmesh_map296", "kmesh_map1600"};
  const uint32_t ok = static_cast<uint32_t>(outer_key);
  const uint32_t type = ok >> 24, index = ok & 0xffffff;
  if (type >= 4) throw Error("outer key " + std::to_string(ok) + " names map type " + std::to_string(type));
  const auto& m = MapNamed(kInner[type]);
  auto v = m.Lookup(View(&index, 4));
  if (!v) throw Error(std::string(kInner[type]) + " has no entry " + std::to_string(index));
  if (len > v->size()) throw Error("bytes field of " + std::to_string(len) + " bytes exceeds its blob");
  return std::vector<uint8_t>(v->begin(), v->begin() + len);
}

// maps_v2.AuthorizationLookup (authz.go:67-80) calls deserial_lookup_elem and then packs the result; the
// lookup leaves bytes fields as outer keys, so the daemon reads those blobs itself instead of packing.
json NodeDaemon::LookupAuthorization(const json& req) {
  unsigned int key = 0;
  if (req.contains("policy_id")) {
    key = req.at("policy_id").get<uint32_t>();
  } else {
    auto id = hash_.Find(req.at("resource").get<std::string>());
    if (!id) return json{{"ok", true}, {"found", false}};
    key = *id;
  }
  void* value = deserial_lookup_elem(&key, &istio__security__authorization__descriptor);
  if (value == nullptr) return json{{"ok", true}, {"found", false}, {"policy_id", key}};
  json reply;
  try {
    const auto* m = static_cast<const Istio__Security__Authorization*>(value);
    auto a = FromProtobufC(*m, [&](const ProtobufCBinaryData& b) {
      return ReadOuterKey(reinterpret_cast<uintptr_t>(b.data), b.len);
    });
    reply =
        json{{"ok", true}, {"found", true}, {"policy_id", key}, {"authorization", workloadapi::ToJson(a)}};
  } catch (const std::exception& e) {
    reply = json{{"ok", false},
                 {"error", std::string("reading back policy ") + std::to_string(key) + ": " + e.what()}};
  }
  deserial_free_elem(value);
  return reply;
}

// handleWorkload (workload_processor.go:552-622), the parts that write km_wlpolicy and km_frontend:
//  1. for a workload of this node, storeWorkloadPolicies (lines 567-569, 1178-1199): nothing at all when
//     the list is empty (the old entry stays), else the first 4 policy ids (more: a warning, dropped);
//  2. updateWorkloadInFrontendMap (lines 517-541): every address -> the workload id, unless host network;
//  3. when the first address changed, deleteFrontendByIp of every old address (lines 604-619).
// Kmesh also writes km_backend (lines 481-515); the lab's XDP does not read it, so the daemon only keeps
// what it would hold: the last address, which removal uses.
json NodeDaemon::StoreWorkload(const json& req) {
  const std::string uid = req.at("uid").get<std::string>();
  Workload w;
  w.node = req.at("node").get<std::string>();
  for (const auto& a : req.at("addresses")) w.addresses.push_back(*net::IpAddr::Parse(a.get<std::string>()));
  w.host_network = req.value("host_network", false);
  const auto policies = req.at("policies").get<std::vector<std::string>>();

  std::optional<Workload> old;
  if (auto it = workloads_.find(uid); it != workloads_.end()) old = it->second;
  workloads_[uid] = w;
  {
    // The workload cache the authorizer reads (WorkloadCache.AddOrUpdateWorkload, workload_cache.go:71-90).
    ::kmesh::lab::Workload cw;
    cw.uid = uid;
    cw.name = req.value("name", "");
    cw.ns = req.value("namespace", "");
    cw.service_account = req.value("service_account", "");
    cw.trust_domain = req.value("trust_domain", "");
    cw.network = req.value("network", "");
    cw.addresses = w.addresses;
    cw.authorization_policies = policies;
    cw.host_network = w.host_network;
    rbac_.AddOrUpdateWorkload(cw);
  }

  json wl{{"written", false}, {"policy_ids", json::array()}, {"dropped", json::array()}};
  if (w.node == config_.node_name && !policies.empty()) {
    const uint32_t wid = hash_.Hash(uid);
    uint32_t ids[kMaxPoliciesPerWorkload] = {0, 0, 0, 0};
    for (size_t i = 0; i < policies.size(); ++i) {
      if (i < kMaxPoliciesPerWorkload) {
        ids[i] = hash_.Hash(policies[i]);
        wl["policy_ids"].push_back(ids[i]);
      } else {
        // "Exceeded the number of elements in PolicyIds." and break (line 1191-1192)
        for (size_t j = i; j < policies.size(); ++j) wl["dropped"].push_back(policies[j]);
        break;
      }
    }
    MapNamed(kWlPolicy).Update(View(&wid, 4), View(ids, sizeof ids));
    wl["written"] = true;
  }

  const uint32_t backend_uid = hash_.Hash(uid);
  json frontends = json::array();
  if (!w.host_network) {
    for (const auto& ip : w.addresses) {
      const auto key = FrontendKey(ip);
      MapNamed(kFrontend).Update(View(key.data(), key.size()), View(&backend_uid, 4));
      frontends.push_back(ip.ToString());
    }
  }
  json removed = json::array();
  if (old && !w.addresses.empty() && !old->addresses.empty() && w.addresses[0] != old->addresses[0]) {
    for (const auto& ip : old->addresses) {
      const auto key = FrontendKey(ip);
      MapNamed(kFrontend).Delete(View(key.data(), key.size()));
      removed.push_back(ip.ToString());
    }
  }
  return json{{"ok", true},
              {"workload_id", backend_uid},
              {"wlpolicy", wl},
              {"frontends", frontends},
              {"removed_frontends", removed}};
}

// removeWorkload -> removeWorkloadFromBpfMap (workload_processor.go:249-318): the frontend entry of the
// address km_backend holds (the last one written), km_wlpolicy for a workload of this node, then the UID
// leaves the id table.
json NodeDaemon::RemoveWorkload(const json& req) {
  const std::string uid = req.at("uid").get<std::string>();
  auto it = workloads_.find(uid);
  if (it == workloads_.end()) return json{{"ok", true}, {"known", false}};
  const Workload w = it->second;
  workloads_.erase(it);
  const uint32_t backend_uid = hash_.Hash(uid);
  json removed = nullptr;
  if (!w.addresses.empty()) {
    const auto key = FrontendKey(w.addresses.back());
    MapNamed(kFrontend).Delete(View(key.data(), key.size()));
    removed = w.addresses.back().ToString();
  }
  if (w.node == config_.node_name) MapNamed(kWlPolicy).Delete(View(&backend_uid, 4));
  hash_.Delete(uid);
  rbac_.DeleteWorkload(uid);
  return json{{"ok", true}, {"known", true}, {"workload_id", backend_uid}, {"removed_frontend", removed}};
}

void NodeDaemon::Record(const AuthDecision& d) {
  auto us = [&](AuthDecision::Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  };
  json j{{"allow", d.verdict.allow},      {"reason", ToString(d.verdict.reason)},
         {"policy", d.verdict.policy},    {"tuple", d.tuple ? json(d.tuple->ToString()) : json(nullptr)},
         {"received_us", us(d.received)}, {"written_us", d.written ? json(us(*d.written)) : json(nullptr)},
         {"write_error", d.write_error},  {"describe", d.Describe()}};
  std::lock_guard<std::mutex> l(decisions_mu_);
  if (decisions_.size() >= 10000) decisions_.erase(decisions_.begin());  // bounded: evidence, not a log
  decisions_.push_back(std::move(j));
}

json NodeDaemon::Decisions(const json&) {
  std::lock_guard<std::mutex> l(decisions_mu_);
  json out = json::array();
  for (auto& d : decisions_) out.push_back(std::move(d));
  decisions_.clear();
  return json{{"ok", true}, {"authorizer", authorizer_ != nullptr}, {"decisions", out}};
}

json NodeDaemon::Ids(const json& req) {
  json ids = json::object();
  for (const auto& n : req.at("names")) {
    auto id = hash_.Find(n.get<std::string>());
    ids[n.get<std::string>()] = id ? json(*id) : json(nullptr);
  }
  return json{{"ok", true}, {"ids", ids}};
}

}  // namespace kmesh::lab
