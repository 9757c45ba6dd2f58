#include "e2e/conformance/kmesh_xdp.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "base/error.h"
#include "base/names.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"

namespace kmesh::conformance {

namespace bp = kmesh::bpf_probe;
namespace wa = kmesh::lab::workloadapi;

namespace {

constexpr const char* kNode = "node-under-test";

// The maps a case writes: the daemon's (km_authz_policy, the inner maps, km_wlpolicy, km_frontend) and
// the programs' (km_auth_res, km_tcargs; Run removes its tuple's entries, Reset whatever is left).
const char* const kCaseMaps[] = {"km_authz_policy", "kmesh_map64",   "kmesh_map192",
                                 "kmesh_map296",    "kmesh_map1600", "km_wlpolicy",
                                 "km_frontend",     KM_MAP_AUTH_RES, KM_MAP_TCARGS};

// Every key of `m`, walked once (bpf_map_get_next_key from the previous key; a hash map walk visits each
// bucket once), then deleted. Returns how many entries there were.
uint64_t Empty(const bp::Map& m) {
  const size_t key_size = m.info().key_size;
  std::vector<std::vector<uint8_t>> keys;
  std::vector<uint8_t> prev(key_size), next(key_size);
  const void* at = nullptr;
  while (bpf_map_get_next_key(m.fd(), at, next.data()) == 0) {
    keys.push_back(next);
    prev = next;
    at = prev.data();
  }
  for (const auto& k : keys) {
    if (bpf_map_delete_elem(m.fd(), k.data()) != 0 && errno != ENOENT) {
      ThrowErrno("empty " + m.info().Describe() + ": delete an entry");
    }
  }
  return keys.size();
}

}  // namespace

std::string Observation::ToString() const {
  return "XDP_" + bp::ToString(action) +
         ", km_auth_res = " + (auth_res ? bp::ToString(*auth_res) : "no entry") +
         ", km_tcargs = " + (tcargs ? tcargs->ToString() : "no entry");
}

KmeshXdpUnderTest::Folder::Folder(const std::string& parent) : path(parent + "/" + UniqueName("conformance")) {
  // What a killed earlier run left here: its node's bpffs mount, then its folder.
  lab::SweepStaleBpffs();
  SweepStaleFolders(parent, "conformance");
  std::filesystem::create_directories(path);
}

KmeshXdpUnderTest::Folder::~Folder() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

KmeshXdpUnderTest::KmeshXdpUnderTest(const std::string& work_parent)
    : folder_(work_parent),
      bpffs_(lab::NodeBpffs::Mount(work_, kNode)),
      dp_(lab::KmeshAuthzDatapath::Load(bpffs_)),
      xdp_authz_fd_(dp_->prog_fd("xdp_authz")),
      auth_res_(dp_->OpenMap(KM_MAP_AUTH_RES)),
      tcargs_(dp_->OpenMap(KM_MAP_TCARGS)),
      wlpolicy_(dp_->OpenMap(KM_MAP_WLPOLICY)) {
  for (const char* name : kCaseMaps) reset_maps_.push_back(dp_->OpenMap(name));
  StartDaemon();
}

KmeshXdpUnderTest::~KmeshXdpUnderTest() {
  writer_.reset();  // the daemon first, then the maps it writes
  dp_.reset();
}

void KmeshXdpUnderTest::StartDaemon() {
  std::error_code ec;
  std::filesystem::remove_all(work_ + "/state", ec);  // Kmesh's hash_name.yaml: a fresh node has none
  lab::PolicyWriterOptions o;
  o.node_name = kNode;
  o.pin_dir = dp_->pin_dir();
  o.state_dir = work_ + "/state";
  writer_ = std::make_unique<lab::KmeshPolicyWriter>(o);
  holds_case_ = false;
  cases_since_reset_ = 0;
}

void KmeshXdpUnderTest::Reset() {
  writer_.reset();
  for (const auto& m : reset_maps_) Empty(m);
  ++resets_;
  StartDaemon();
}

uint64_t KmeshXdpUnderTest::InnerEntries() const { return dp_->OpenMap("kmesh_map64").CountEntries(); }

void KmeshXdpUnderTest::Undo(const Written& w) {
  bool leaked = false;
  std::vector<std::string> names;
  for (const auto& [resource, p] : w.policies) names.push_back(resource);
  const std::vector<lab::PolicyWrite> removed = writer_->RemoveAuthorizations(names);
  for (const lab::PolicyWrite& r : removed) {
    if (r.ret == 0) continue;
    const WrittenPolicy& p = w.policies.at(r.resource);
    if (p.stored_key != p.policy_id) {
      // D8 again: deserial_delete_elem looks the policy up by its full id and misses the entry strncpy
      // cut down; Kmesh only logs it (workload_processor.go:1055-1060), so the policy stays for good.
      leaked = true;
      continue;
    }
    throw Error("Kmesh's deserial_delete_elem(" + std::to_string(r.policy_id) + ", " + r.resource +
                ") returned " + std::to_string(r.ret) + " (log: " + writer_->log_path() + ")");
  }
  holds_case_ = false;
  if (leaked) Reset();  // what Kmesh left behind would change the next case's maps
}

Written KmeshXdpUnderTest::Write(const Case& c) {
  if (holds_case_) throw Error("KmeshXdpUnderTest::Write: the node already holds a case; Undo() it first");
  holds_case_ = true;
  ++cases_since_reset_;
  Written w;
  std::vector<lab::workloadapi::Authorization> all;
  for (const auto& p : c.policies) all.push_back(wa::Translate(p, wa::TranslateOptions{kRootNamespace}));
  const std::vector<lab::PolicyWrite> writes = writer_->ApplyAuthorizations(all);
  for (size_t i = 0; i < all.size(); ++i) {
    WrittenPolicy wp;
    wp.resource = c.policies[i].IdKey();
    wp.authorization = all[i];
    wp.policy_id = writes[i].policy_id;
    wp.stored_key = writes[i].stored_key;
    w.policies[wp.resource] = wp;
  }
  w.selected = wa::WorkloadPolicyNames(c.policies, c.workload.ns, c.workload.labels,
                                       wa::TranslateOptions{kRootNamespace});
  lab::WorkloadSpec spec;
  spec.uid = c.workload.uid;
  spec.node = kNode;
  spec.addresses = {c.workload.ipv4.ToString(), c.workload.ipv6.ToString()};
  spec.policies = w.selected;
  spec.name = "httpbin-0";
  spec.ns = c.workload.ns;
  spec.service_account = "httpbin";
  const lab::WorkloadWrite ww = writer_->StoreWorkload(spec);
  w.workload_id = ww.workload_id;
  w.listed_ids = ww.policy_ids;
  w.dropped = ww.dropped;
  if (!ww.wlpolicy_written) {
    // Kmesh leaves the previous list when the new one is empty (D7); a node that never had one has none.
    const uint32_t id = ww.workload_id;
    wlpolicy_.Delete(bp::ByteView(reinterpret_cast<const uint8_t*>(&id), 4));
  }
  return w;
}

Observation KmeshXdpUnderTest::Run(const Connection& conn) {
  Observation o;
  o.action = bp::TestRunXdp(xdp_authz_fd_, conn.tuple).action;
  const net::TupleKey key = net::EncodeTupleKey(conn.tuple);
  uint32_t verdict = 0;
  if (bpf_map_lookup_elem(auth_res_.fd(), key.data(), &verdict) == 0) {
    o.auth_res = static_cast<bp::Verdict>(verdict);
    bpf_map_delete_elem(auth_res_.fd(), key.data());
  }
  uint8_t ctx[KM_TCARGS_VALUE_SIZE];
  if (bpf_map_lookup_elem(tcargs_.fd(), key.data(), ctx) == 0) {
    o.tcargs = bp::TcArgs::Decode(bp::ByteView(ctx, sizeof ctx));
    bpf_map_delete_elem(tcargs_.fd(), key.data());
  }
  return o;
}

std::string KmeshXdpUnderTest::DescribeMaps(const Written& w) const {
  std::ostringstream o;
  o << "km_wlpolicy[" << w.workload_id << "] = [";
  for (size_t i = 0; i < w.listed_ids.size(); ++i) {
    o << (i ? ", " : "") << w.listed_ids[i] << " (" << w.selected[i] << ")";
  }
  o << "]";
  if (!w.dropped.empty()) {
    o << "; not listed (beyond Kmesh's 4):";
    for (const auto& d : w.dropped) o << " " << d;
  }
  o << "\nkm_authz_policy:";
  const bp::AuthzPolicyMap policies(dp_->OpenMap(KM_MAP_AUTHZ_POLICY));
  for (const auto& [resource, p] : w.policies) {
    o << "\n  " << resource << ": id " << p.policy_id;
    if (p.stored_key != p.policy_id) o << ", stored under key " << p.stored_key << " (id has a zero byte)";
    o << (policies.Contains(p.stored_key) ? "" : " MISSING") << ", " << wa::ToString(p.authorization.scope)
      << " " << wa::ToString(p.authorization.action) << ", " << p.authorization.rules.size() << " rule(s)";
  }
  return o.str();
}

}  // namespace kmesh::conformance
