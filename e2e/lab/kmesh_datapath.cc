#include "e2e/lab/kmesh_datapath.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "base/hex.h"
#include "base/runfiles.h"
#include "bpf_probe/bpf_error.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/prog.h"

namespace kmesh::lab {
namespace {

using bpf_probe::BpfNeeds;
using bpf_probe::ThrowBpf;

// libbpf's messages during a load on this thread go here (the verifier log on
// failure); elsewhere, stderr.
thread_local std::string *t_libbpf_log = nullptr;
constexpr size_t kLogKeep = 64 * 1024;

int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  if (t_libbpf_log == nullptr) return vfprintf(stderr, fmt, ap);
  va_list copy;
  va_copy(copy, ap);
  const int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n > 0) {
    std::string text(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(text.data(), text.size(), fmt, ap);
    text.resize(static_cast<size_t>(n));
    t_libbpf_log->append(text);
    if (t_libbpf_log->size() > 2 * kLogKeep) t_libbpf_log->erase(0, t_libbpf_log->size() - kLogKeep);
  }
  return n;
}

void InstallLibbpfPrint() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

std::string LastLines(const std::string &text, int lines) {
  size_t pos = text.size();
  while (pos > 0 && lines >= 0) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
    --lines;
  }
  return text.substr(pos + 1);
}

std::string FileSha256(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read " + path);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0)
    EVP_DigestUpdate(ctx, buf, static_cast<size_t>(in.gcount()));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return HexBytes(md, len);
}

bool Exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string BuildRecordOf(const std::string &object) {
  const std::string suffix = ".o";
  if (object.size() <= suffix.size() ||
      object.compare(object.size() - suffix.size(), suffix.size(), suffix) != 0) {
    throw Error("Kmesh datapath object " + object + ": expected a runfile ending in .o (a kmesh_bpf_object)");
  }
  return object.substr(0, object.size() - suffix.size()) + ".build.json";
}

// The build record kmesh_bpf_object wrote next to the object
// (third_party/kmesh/bpf2go_build.py).
DatapathIdentity ReadIdentity(const std::string &object_runfile, const std::string &object_path) {
  const std::string record_runfile = BuildRecordOf(object_runfile);
  const std::string record_path = Runfile(record_runfile);
  nlohmann::json r;
  try {
    std::ifstream in(record_path);
    r = nlohmann::json::parse(in);
  } catch (const std::exception &e) {
    throw Error("build record " + record_path + " is not JSON: " + e.what());
  }
  DatapathIdentity id;
  try {
    const auto &k = r.at("kmesh");
    id.kmesh_commit = k.at("commit").get<std::string>();
    id.pinned_commit = k.at("pinned_commit").get<std::string>();
    id.tree_path = k.at("path").get<std::string>();
    id.tree_found_by = k.at("found_by").get<std::string>();
    id.tree_digest = k.at("digest").get<std::string>();
    id.digest_vs_pinned = k.at("digest_vs_pinned").get<std::string>();
    id.object_sha256 = r.at("object_sha256").get<std::string>();
    id.clang_version = r.at("clang").get<std::string>();
    for (const auto &p : r.at("patches")) id.patches.push_back(p.at("file").get<std::string>());
  } catch (const nlohmann::json::exception &e) {
    throw Error("build record " + record_path + " lacks a field (" + e.what() +
                "); it is written by //third_party/kmesh:defs.bzl kmesh_bpf_object");
  }
  id.object = object_runfile;
  const std::string actual = FileSha256(object_path);
  if (actual != id.object_sha256) {
    throw Error("Kmesh datapath object " + object_path + " has sha256 " + actual + " but its build record " +
                record_path + " says " + id.object_sha256 +
                "; rebuild (bazel build //third_party/kmesh:all)");
  }
  return id;
}

// Offset of global `var` in the object's .data, from the object's BTF (as
// cilium/ebpf's Variable finds it).
uint32_t DataVarOffset(bpf_object *obj, const char *var) {
  const btf *b = bpf_object__btf(obj);
  if (b == nullptr)
    throw Error(
        "Kmesh's XDP object has no BTF; it is built with -g (bpf2go "
        "always adds it)");
  const int sec_id = btf__find_by_name_kind(b, ".data", BTF_KIND_DATASEC);
  if (sec_id < 0)
    throw Error(std::string("Kmesh's XDP object has no .data section; expected ") + var + " there");
  const btf_type *sec = btf__type_by_id(b, static_cast<uint32_t>(sec_id));
  const btf_var_secinfo *vs = btf_var_secinfos(sec);
  for (uint16_t i = 0; i < btf_vlen(sec); ++i, ++vs) {
    const btf_type *t = btf__type_by_id(b, vs->type);
    if (std::strcmp(btf__name_by_offset(b, t->name_off), var) == 0) {
      if (vs->size != sizeof(uint32_t)) {
        throw Error(std::string(var) + " in Kmesh's .data is " + std::to_string(vs->size) +
                    " bytes, expected 4");
      }
      return vs->offset;
    }
  }
  throw Error(std::string("Kmesh's XDP object has no global ") + var +
              " in .data (bpf/kmesh/workload/xdp.c:51)");
}

}  // namespace

DatapathIdentity ReadBuildIdentity(const std::string &object_runfile) {
  return ReadIdentity(object_runfile, Runfile(object_runfile));
}

const KmeshProgram &DatapathIdentity::program(const std::string &name) const {
  for (const auto &p : programs) {
    if (p.name == name) return p;
  }
  throw Error("the Kmesh datapath has no program " + name);
}

std::string DatapathIdentity::Describe() const {
  std::ostringstream s;
  s << "Kmesh "
    << (kmesh_commit == "snapshot" ? "snapshot of " + pinned_commit.substr(0, 8) : kmesh_commit.substr(0, 12))
    << " (" << tree_path << ", " << tree_found_by << "; " << digest_vs_pinned << ")";
  if (!patches.empty()) {
    s << ", MUTANT with";
    for (const auto &p : patches) s << " " << p;
  }
  s << "; " << object << " sha256:" << object_sha256.substr(0, 16) << ", " << clang_version << ";";
  for (size_t i = 0; i < programs.size(); ++i) {
    const auto &p = programs[i];
    s << (i ? "," : "") << " " << p.name << " id " << p.id << " tag " << p.tag;
  }
  return s.str();
}

std::unique_ptr<KmeshAuthzDatapath> KmeshAuthzDatapath::Load(const NodeBpffs &bpffs, const Options &options) {
  InstallLibbpfPrint();
  const std::string path = Runfile(options.object);
  std::unique_ptr<KmeshAuthzDatapath> dp(new KmeshAuthzDatapath());
  dp->identity_ = ReadIdentity(options.object, path);
  dp->pin_dir_ = bpffs.KmeshMapDir();
  if (!Exists(dp->pin_dir_))
    throw Error("pin folder " + dp->pin_dir_ + " does not exist (NodeBpffs makes it)");

  std::string log;
  t_libbpf_log = &log;
  struct Restore {
    ~Restore() { t_libbpf_log = nullptr; }
  } restore;

  dp->obj_ = bpf_object__open_file(path.c_str(), nullptr);
  if (dp->obj_ == nullptr) {
    const int err = errno;
    dp->obj_ = nullptr;
    ThrowErrno("open Kmesh's XDP object " + path + ": " + LastLines(log, 5), err);
  }
  // SEC("xdp_auth") is no libbpf section name; cilium/ebpf (Kmesh's loader)
  // types it XDP by its prefix.
  bpf_program *prog = nullptr;
  bpf_object__for_each_program(prog, dp->obj_) {
    bpf_program__set_type(prog, BPF_PROG_TYPE_XDP);
    bpf_program__set_expected_attach_type(prog, BPF_XDP);
  }
  for (const char *name : kKmeshXdpPrograms) {
    if (bpf_object__find_program_by_name(dp->obj_, name) == nullptr) {
      throw Error(std::string("Kmesh's XDP object ") + path + " has no program " + name +
                  " (expected xdp_authz, policies_check, policy_check, "
                  "xdp_shutdown_in_userspace)");
    }
  }
  // Every map but .data/.rodata/.bss pinned by name; an existing pin is reused
  // (cilium/ebpf PinByName).
  bpf_map *map = nullptr;
  bpf_object__for_each_map(map, dp->obj_) {
    if (bpf_map__is_internal(map)) continue;
    const std::string pin = dp->PinPath(bpf_map__name(map));
    if (!Exists(pin)) dp->created_pins_.push_back(pin);
    if (int rc = bpf_map__set_pin_path(map, pin.c_str()); rc != 0)
      ThrowBpf("set pin path " + pin, -rc, BpfNeeds::kBpf);
  }
  dp->authz_offload_offset_ = DataVarOffset(dp->obj_, "authz_offload");

  if (int rc = bpf_object__load(dp->obj_); rc != 0) {
    std::string hint;
    if (rc == -E2BIG) {
      hint =
          " E2BIG: a program exceeds the verifier's 1,000,000-instruction "
          "limit; Kmesh's policy_check does "
          "with clang 14/15 (this object: " +
          dp->identity_.clang_version + "); build with clang >= 16.";
    }
    // Pins a failed load made are not ours to keep.
    for (const auto &pin : dp->created_pins_) unlink(pin.c_str());
    dp->created_pins_.clear();
    throw Error("load Kmesh's XDP object " + path + " (" + dp->identity_.Describe() +
                "): " + std::strerror(-rc) + "." + hint + "\nlibbpf and the verifier said (last lines):\n" +
                LastLines(log, 30));
  }
  // Pins reused from another object (a sockops object loaded first) stay that
  // object's.
  std::vector<std::string> created;
  for (const auto &pin : dp->created_pins_) {
    if (Exists(pin)) created.push_back(pin);
  }
  dp->created_pins_ = created;

  // km_xdp_tailcall: slots as LoadXdpAuth fills them
  // (pkg/bpf/workload/xdp.go:98-117).
  const int tailcall = dp->map_fd(KM_MAP_XDP_TAILCALL);
  const std::pair<uint32_t, const char *> slots[] = {
      {KM_TAIL_CALL_POLICIES_CHECK, "policies_check"},
      {KM_TAIL_CALL_POLICY_CHECK, "policy_check"},
      {KM_TAIL_CALL_AUTH_IN_USER_SPACE, "xdp_shutdown_in_userspace"}};
  for (const auto &[slot, name] : slots) {
    const uint32_t fd = static_cast<uint32_t>(dp->prog_fd(name));
    if (bpf_map_update_elem(tailcall, &slot, &fd, BPF_ANY) != 0) {
      ThrowBpf(std::string("km_xdp_tailcall[") + std::to_string(slot) + "] = " + name, errno, BpfNeeds::kBpf);
    }
  }
  dp->SetAuthzOffload(options.authz_offload);

  for (const char *name : kKmeshXdpPrograms) {
    const int fd = dp->prog_fd(name);
    const bpf_probe::ProgramInfo info = bpf_probe::ReadProgramInfo(fd);
    bpf_prog_info raw{};
    uint32_t len = sizeof raw;
    if (bpf_obj_get_info_by_fd(fd, &raw, &len) != 0)
      ThrowBpf(std::string("info of program ") + name, errno, BpfNeeds::kBpf);
    dp->identity_.programs.push_back(KmeshProgram{name, info.name, info.id, info.tag, raw.verified_insns});
  }
  return dp;
}

KmeshAuthzDatapath::~KmeshAuthzDatapath() {
  links_.clear();  // each XdpLink detaches its own program only
  if (obj_ != nullptr) bpf_object__close(obj_);
  for (const auto &pin : created_pins_) unlink(pin.c_str());
}

std::string KmeshAuthzDatapath::Key(const netns::NetnsRef &ns, const std::string &ifname) {
  return std::to_string(ns.inode()) + "/" + ifname;
}

void KmeshAuthzDatapath::Attach(const netns::NetnsRef &ns, const std::string &ifname) {
  const std::string key = Key(ns, ifname);
  if (links_.count(key) != 0) throw Error("xdp_authz is already attached to " + ifname + " in " + ns.path());
  bpf_probe::XdpLink link =
      bpf_probe::XdpLink::Attach(ns, ifname, prog_fd("xdp_authz"), bpf_probe::XdpMode::kNone);
  if (link.mode() != bpf_probe::XdpMode::kNative) {
    throw Error("xdp_authz on " + ifname + " in " + ns.path() + " went to " +
                bpf_probe::ToString(link.mode()) +
                " mode; Kmesh's attach (no mode flag) gets native on a veth. Is " + ifname + " a veth?");
  }
  links_.emplace(key, std::move(link));
}

void KmeshAuthzDatapath::Detach(const netns::NetnsRef &ns, const std::string &ifname) {
  auto it = links_.find(Key(ns, ifname));
  if (it == links_.end())
    throw Error("xdp_authz was not attached to " + ifname + " in " + ns.path() + " by this datapath");
  bpf_probe::XdpLink link = std::move(it->second);
  links_.erase(it);
  link.Detach();
}

bool KmeshAuthzDatapath::Attached(const netns::NetnsRef &ns, const std::string &ifname) const {
  return links_.count(Key(ns, ifname)) != 0;
}

int KmeshAuthzDatapath::DataMapFd() const {
  bpf_map *map = nullptr;
  bpf_object__for_each_map(map, obj_) {
    const std::string name = bpf_map__name(map);
    if (bpf_map__is_internal(map) && name.size() >= 5 && name.compare(name.size() - 5, 5, ".data") == 0) {
      return bpf_map__fd(map);
    }
  }
  throw Error(
      "Kmesh's XDP object has no .data map (authz_offload lives there, "
      "bpf/kmesh/workload/xdp.c:51)");
}

void KmeshAuthzDatapath::SetAuthzOffload(uint32_t value) {
  const bpf_probe::Map data = bpf_probe::Map::Borrow(DataMapFd());
  const uint32_t zero = 0;
  const bpf_probe::ByteView key(reinterpret_cast<const uint8_t *>(&zero), sizeof zero);
  std::optional<bpf_probe::Bytes> bytes = data.Lookup(key);
  if (!bytes || bytes->size() < authz_offload_offset_ + sizeof value) {
    throw Error("Kmesh's .data map holds " + std::to_string(bytes ? bytes->size() : 0) +
                " bytes; authz_offload is at offset " + std::to_string(authz_offload_offset_));
  }
  std::memcpy(bytes->data() + authz_offload_offset_, &value, sizeof value);
  data.Update(key, bpf_probe::ByteView(bytes->data(), bytes->size()));
}

uint32_t KmeshAuthzDatapath::AuthzOffload() const {
  const bpf_probe::Map data = bpf_probe::Map::Borrow(DataMapFd());
  const uint32_t zero = 0;
  std::optional<bpf_probe::Bytes> bytes =
      data.Lookup(bpf_probe::ByteView(reinterpret_cast<const uint8_t *>(&zero), sizeof zero));
  uint32_t value = 0;
  if (!bytes || bytes->size() < authz_offload_offset_ + sizeof value)
    throw Error("Kmesh's .data map is too small");
  std::memcpy(&value, bytes->data() + authz_offload_offset_, sizeof value);
  return value;
}

std::vector<std::string> KmeshAuthzDatapath::PinnedMapNames() const {
  std::vector<std::string> names;
  bpf_map *map = nullptr;
  bpf_object__for_each_map(map, obj_) {
    if (!bpf_map__is_internal(map)) names.push_back(bpf_map__name(map));
  }
  return names;
}

int KmeshAuthzDatapath::map_fd(const std::string &name) const {
  const int fd = bpf_object__find_map_fd_by_name(obj_, name.c_str());
  if (fd >= 0) return fd;
  std::string have;
  for (const auto &n : PinnedMapNames()) have += (have.empty() ? "" : ", ") + n;
  throw Error("Kmesh's XDP datapath has no map " + name + " (it has: " + have + ")");
}

uint32_t KmeshAuthzDatapath::map_id(const std::string &name) const {
  return bpf_probe::ReadMapInfo(map_fd(name)).id;
}

bpf_probe::Map KmeshAuthzDatapath::OpenMap(const std::string &name) const {
  return bpf_probe::Map::Borrow(map_fd(name));
}

int KmeshAuthzDatapath::prog_fd(const std::string &name) const {
  bpf_program *p = bpf_object__find_program_by_name(obj_, name.c_str());
  if (p == nullptr || bpf_program__fd(p) < 0)
    throw Error("Kmesh's XDP datapath has no loaded program " + name);
  return bpf_program__fd(p);
}

}  // namespace kmesh::lab
