#include "e2e/lab/kmesh_ipsec_tc.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/runfiles.h"
#include "bpf_probe/bpf_error.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/prog.h"
#include "net/ip.h"

namespace kmesh::lab {
namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

nlohmann::json IdentityJson(const DatapathIdentity& id) {
  nlohmann::json j{{"kmesh_commit", id.kmesh_commit},
                   {"pinned_commit", id.pinned_commit},
                   {"tree", id.tree_path},
                   {"tree_found_by", id.tree_found_by},
                   {"tree_digest", id.tree_digest},
                   {"digest_vs_pinned", id.digest_vs_pinned},
                   {"object", id.object},
                   {"object_sha256", id.object_sha256},
                   {"clang", id.clang_version}};
  if (!id.programs.empty()) {
    j["program"] = id.programs[0].name;
    j["kernel_name"] = id.programs[0].kernel_name;
    j["id"] = id.programs[0].id;
    j["tag"] = id.programs[0].tag;
  }
  return j;
}

}  // namespace

std::vector<uint8_t> NodeinfoKey(const std::string& cidr) {
  const auto bad = [&] { return Error("km_nodeinfo: '" + cidr + "' is not a CIDR (netip.ParsePrefix)"); };
  const auto slash = cidr.find('/');
  if (slash == std::string::npos) throw bad();
  const auto ip = net::IpAddr::Parse(cidr.substr(0, slash));
  int bits = -1;
  try {
    size_t used = 0;
    bits = std::stoi(cidr.substr(slash + 1), &used);
    if (used != cidr.size() - slash - 1) bits = -1;
  } catch (const std::exception&) {
    bits = -1;
  }
  if (!ip || bits < 0 || bits > ip->bits()) throw bad();
  km_nodeinfo_key key{};
  key.prefixlen = static_cast<uint32_t>(bits);
  const net::IpAddr masked = ip->Masked(bits);  // prefix.Masked(): host bits cleared
  std::memcpy(key.ip, masked.data(), masked.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(&key);
  return std::vector<uint8_t>(bytes, bytes + sizeof key);
}

std::vector<std::string> ReadNodeinfoCidrs(const std::string& pin) {
  const int fd = bpf_obj_get(pin.c_str());
  if (fd < 0) ThrowErrno("open the pinned km_nodeinfo " + pin, errno);
  std::vector<std::string> out;
  km_nodeinfo_key key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    key = next;
    const uint8_t* ip = reinterpret_cast<const uint8_t*>(key.ip);
    bool tail_zero = true;
    for (int i = 4; i < 16; ++i) tail_zero &= ip[i] == 0;
    const bool v4 = key.prefixlen <= 32 && tail_zero;
    out.push_back((v4 ? net::IpAddr::V4(ip) : net::IpAddr::V6(ip)).ToString() + "/" +
                  std::to_string(key.prefixlen));
  }
  close(fd);
  std::sort(out.begin(), out.end());
  return out;
}

bpf_object* KmeshIpsecTc::LoadOne(const std::string& runfile, const char* program, DatapathIdentity& id,
                                  int& prog_fd) {
  id = ReadBuildIdentity(runfile);
  const std::string path = Runfile(runfile);
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (obj == nullptr) ThrowErrno("open Kmesh's object " + path, errno);
  bpf_program* prog = bpf_object__find_program_by_name(obj, program);
  if (prog == nullptr) {
    bpf_object__close(obj);
    throw Error("Kmesh's object " + path + " has no program " + program);
  }
  bpf_program__set_type(prog, BPF_PROG_TYPE_SCHED_CLS);
  std::vector<std::string> mine;
  bpf_map* map = nullptr;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;
    const std::string pin = pin_dir_ + "/" + bpf_map__name(map);
    if (!Exists(pin)) mine.push_back(pin);
    if (int rc = bpf_map__set_pin_path(map, pin.c_str()); rc != 0) {
      bpf_object__close(obj);
      bpf_probe::ThrowBpf("set pin path " + pin, -rc, bpf_probe::BpfNeeds::kBpf);
    }
  }
  if (int rc = bpf_object__load(obj); rc != 0) {
    for (const auto& pin : mine) unlink(pin.c_str());
    bpf_object__close(obj);
    throw Error("load Kmesh's object " + path + " (" + id.Describe() + "): " + std::strerror(-rc) +
                " (libbpf printed the verifier's log above)");
  }
  for (const auto& pin : mine) {
    if (Exists(pin)) created_pins_.push_back(pin);
  }
  prog_fd = bpf_program__fd(prog);
  const bpf_probe::ProgramInfo info = bpf_probe::ReadProgramInfo(prog_fd);
  id.programs.push_back(KmeshProgram{program, info.name, info.id, info.tag, 0});
  return obj;
}

std::unique_ptr<KmeshIpsecTc> KmeshIpsecTc::Load(const std::string& pin_dir) {
  if (!Exists(pin_dir)) throw Error("pin folder " + pin_dir + " does not exist (NodeBpffs makes it)");
  std::unique_ptr<KmeshIpsecTc> tc(new KmeshIpsecTc());
  tc->pin_dir_ = pin_dir;
  tc->reused_nodeinfo_ = Exists(pin_dir + "/" KM_MAP_NODEINFO);
  // The encrypt object first, as LoadAndAssign does in loadKmeshTCObjects (tc.go:108-113): it creates
  // km_nodeinfo, the decrypt object reuses the pin.
  // A source mutant of Kmesh's tc_mark_encrypt (e2e/mutation) instead of Kmesh's own object.
  const char* mutant = std::getenv("KMESH_E2E_LAB_TC_ENCRYPT_OBJECT");
  const std::string encrypt_object = mutant && *mutant ? mutant : "third_party/kmesh/tc_mark_encrypt.o";
  tc->encrypt_ = tc->LoadOne(encrypt_object, "tc_mark_encrypt", tc->encrypt_id_, tc->encrypt_fd_);
  tc->decrypt_ =
      tc->LoadOne("third_party/kmesh/tc_mark_decrypt.o", "tc_mark_decrypt", tc->decrypt_id_, tc->decrypt_fd_);
  tc->nodeinfo_fd_ = bpf_object__find_map_fd_by_name(tc->encrypt_, KM_MAP_NODEINFO);
  if (tc->nodeinfo_fd_ < 0) throw Error("Kmesh's tc_mark_encrypt object has no map " KM_MAP_NODEINFO);
  bpf_map_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(tc->nodeinfo_fd_, &info, &len) == 0) tc->nodeinfo_id_ = info.id;
  return tc;
}

KmeshIpsecTc::~KmeshIpsecTc() {
  if (encrypt_ != nullptr) bpf_object__close(encrypt_);
  if (decrypt_ != nullptr) bpf_object__close(decrypt_);
}

void KmeshIpsecTc::Unpin() {
  unlink((pin_dir_ + "/" KM_MAP_NODEINFO).c_str());
  for (const auto& pin : created_pins_) unlink(pin.c_str());
  created_pins_.clear();
}

void KmeshIpsecTc::UpdateNodeinfoCidr(const std::string& cidr) {
  const auto key = NodeinfoKey(cidr);
  const uint32_t one = 1;
  if (bpf_map_update_elem(nodeinfo_fd_, key.data(), &one, BPF_ANY) != 0) {
    bpf_probe::ThrowBpf("km_nodeinfo update " + cidr, errno, bpf_probe::BpfNeeds::kBpf);
  }
}

void KmeshIpsecTc::DeleteNodeinfoCidr(const std::string& cidr) {
  try {
    const auto key = NodeinfoKey(cidr);
    bpf_map_delete_elem(nodeinfo_fd_, key.data());
  } catch (const std::exception&) {
    // deleteKNIMapCIDR returns silently on a malformed CIDR and ignores the map's answer.
  }
}

nlohmann::json KmeshIpsecTc::ToJson() const {
  return {{"tc_mark_encrypt", IdentityJson(encrypt_id_)},
          {"tc_mark_decrypt", IdentityJson(decrypt_id_)},
          {"km_nodeinfo", {{"pin", pin_dir_ + "/" KM_MAP_NODEINFO}, {"id", nodeinfo_id_}}}};
}

}  // namespace kmesh::lab
