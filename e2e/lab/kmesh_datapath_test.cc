// Kmesh's own XDP authorization datapath (//third_party/kmesh:xdp) loaded,
// pinned and attached like a Kmesh node, in a bpffs of the test's own. The
// object is loaded once for the whole binary (the verifier spends ~2.7 s of CPU
// on each load); the last case tears it down and proves nothing is left behind.
#include "e2e/lab/kmesh_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/prog.h"
#include "bpf_probe/test_run.h"
#include "bpf_probe/xdp.h"
#include "e2e/lab/node_bpffs.h"
#include "net/tuple.h"
#include "netns/netns.h"
#include "netns/process.h"

using kmesh::lab::KmeshAuthzDatapath;
using kmesh::lab::NodeBpffs;
namespace bp = kmesh::bpf_probe;
namespace netns = kmesh::netns;

namespace {

bool IsBpffs(const std::string &path) {
  struct statfs st {};
  return statfs(path.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

bool Exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// A work folder of the test's own, like the lab's (/tmp/kme2e-<pid>-lab-<n>).
struct WorkDir {
  std::string path = "/tmp/" + kmesh::UniqueName("kmdp-test");
  WorkDir() { std::filesystem::create_directories(path); }
  ~WorkDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Kmesh's sockops object, loaded first with every map pinned by name, as
// BpfWorkload.Load loads SockOps before XdpAuth
// (pkg/bpf/workload/loader.go:126-137), so the XDP object reuses its pins.
struct SockopsObject {
  bpf_object *obj = nullptr;
  std::vector<std::string> pins;
  explicit SockopsObject(const std::string &pin_dir) {
    const std::string path = kmesh::Runfile("third_party/kmesh/sockops.o");
    obj = bpf_object__open_file(path.c_str(), nullptr);
    REQUIRE(obj != nullptr);
    bpf_map *m = nullptr;
    bpf_object__for_each_map(m, obj) {
      if (bpf_map__is_internal(m)) continue;
      pins.push_back(pin_dir + "/" + bpf_map__name(m));
      REQUIRE(bpf_map__set_pin_path(m, pins.back().c_str()) == 0);
    }
    REQUIRE(bpf_object__load(obj) == 0);
  }
  ~SockopsObject() {
    bpf_object__close(obj);
    for (const auto &p : pins) unlink(p.c_str());
  }
  uint32_t map_id(const std::string &name) const {
    return bp::ReadMapInfo(bpf_object__find_map_fd_by_name(obj, name.c_str())).id;
  }
};

struct Node {
  WorkDir work;
  NodeBpffs bpffs = NodeBpffs::Mount(work.path, "node");
  std::unique_ptr<SockopsObject> sockops = std::make_unique<SockopsObject>(bpffs.KmeshMapDir());
  std::chrono::milliseconds load_wall{0};
  std::unique_ptr<KmeshAuthzDatapath> dp = Load();

  std::unique_ptr<KmeshAuthzDatapath> Load() {
    const auto start = std::chrono::steady_clock::now();
    auto loaded = KmeshAuthzDatapath::Load(bpffs);
    load_wall =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    return loaded;
  }
};

std::unique_ptr<Node> &SharedSlot() {
  static std::unique_ptr<Node> node;
  return node;
}

Node &Shared() {
  auto &node = SharedSlot();
  if (!node) {
    node = std::make_unique<Node>();
    WARN("loaded Kmesh's XDP object in " << node->load_wall.count()
                                         << " ms wall: " << node->dp->identity().Describe());
  }
  return *node;
}

// A client and a server namespace joined by a veth pair: the server side is a
// pod's eth0.
struct PodPair {
  netns::Netns cli = netns::Netns::Create("kmdpcli");
  netns::Netns srv = netns::Netns::Create("kmdpsrv");
  PodPair() {
    netns::RunChecked({"ip", "-n", cli.name(), "link", "add", "veth-c", "type", "veth", "peer", "name",
                       "eth0", "netns", srv.name()});
    netns::RunChecked({"ip", "-n", cli.name(), "link", "set", "veth-c", "up"});
    netns::RunChecked({"ip", "-n", srv.name(), "link", "set", "eth0", "up"});
  }
};

const kmesh::net::Tuple kSyn = *kmesh::net::Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080");

bp::ByteView View(const void *p, size_t n) { return bp::ByteView(static_cast<const uint8_t *>(p), n); }

}  // namespace

TEST_CASE(
    "Kmesh's XDP object loads: four programs verified, tail calls filled "
    "as LoadXdpAuth does") {
  Node &node = Shared();
  const KmeshAuthzDatapath &dp = *node.dp;
  const auto &id = dp.identity();

  REQUIRE(id.programs.size() == 4);
  for (const char *name : kmesh::lab::kKmeshXdpPrograms) {
    const auto &p = id.program(name);
    INFO(name);
    CHECK(p.id != 0);
    CHECK(p.tag.size() == 16);
    CHECK(p.kernel_name == std::string(name).substr(0, 15));  // "xdp_shutdown_in"
    const bp::ProgramInfo info = bp::ReadProgramById(p.id);
    CHECK(info.TypeName() == "xdp");
    CHECK(info.tag == p.tag);
    CHECK(p.verified_insns > 0);
    CHECK(p.verified_insns < 1000000);
  }
  WARN("policy_check: " << id.program("policy_check").verified_insns
                        << " instructions verified (limit 1,000,000)");

  // km_xdp_tailcall: 0 policies_check, 1 policy_check, 2
  // xdp_shutdown_in_userspace (constants.go:66-68).
  const bp::Map tailcall = dp.OpenMap(KM_MAP_XDP_TAILCALL);
  CHECK(tailcall.info().TypeName() == "prog_array");
  const std::pair<uint32_t, const char *> slots[] = {
      {KM_TAIL_CALL_POLICIES_CHECK, "policies_check"},
      {KM_TAIL_CALL_POLICY_CHECK, "policy_check"},
      {KM_TAIL_CALL_AUTH_IN_USER_SPACE, "xdp_shutdown_in_userspace"}};
  for (const auto &[slot, name] : slots) {
    INFO("slot " << slot);
    const auto value = tailcall.Lookup(View(&slot, sizeof slot));
    REQUIRE(value.has_value());
    uint32_t prog_id = 0;
    std::memcpy(&prog_id, value->data(), sizeof prog_id);
    CHECK(prog_id == id.program(name).id);
  }
  for (uint32_t slot = 3; slot < tailcall.info().max_entries; ++slot) {
    CHECK_FALSE(tailcall.Lookup(View(&slot, sizeof slot)).has_value());
  }
  CHECK(dp.AuthzOffload() == 1);  // pkg/bpf/bpf.go:313

  // The identity the evidence prints comes from the build record, and it is
  // this object.
  CHECK(id.object == "third_party/kmesh/xdp.o");
  CHECK(id.object_sha256.size() == 64);
  CHECK(id.clang_version.find("clang version") != std::string::npos);
  CHECK(!id.kmesh_commit.empty());
  CHECK(id.pinned_commit.size() == 40);
  CHECK(id.patches.empty());
}

TEST_CASE(
    "every Kmesh map is pinned by name in the node's pin folder, visible "
    "to another process") {
  Node &node = Shared();
  const KmeshAuthzDatapath &dp = *node.dp;
  CHECK(dp.pin_dir() == node.bpffs.path() + "/bpf_kmesh_workload/map");

  std::set<std::string> pinned;
  for (const bp::MapInfo &m : bp::ListPinnedMaps(dp.pin_dir())) pinned.insert(m.name);
  const std::vector<std::string> names = dp.PinnedMapNames();
  REQUIRE(names.size() >= 10);
  for (const std::string &name : names) {
    INFO(name);
    CHECK((name.rfind("km_", 0) == 0 || name.rfind("kmesh_map", 0) == 0));
    CHECK(pinned.count(name) == 1);
    CHECK(bp::Map::OpenPinned(dp.PinPath(name)).info().id == dp.map_id(name));
  }
  // The XDP path's maps (kmesh-facts §1.3) and the deserializer's inner maps,
  // with Kmesh's layouts.
  for (const char *name : {KM_MAP_AUTH_RES, KM_MAP_AUTH_REQ, KM_MAP_AUTHZ_POLICY, KM_MAP_WLPOLICY,
                           KM_MAP_FRONTEND, KM_MAP_TCARGS, KM_MAP_XDP_TAILCALL, "km_manage", "kmesh_map64",
                           "kmesh_map192", "kmesh_map296", "kmesh_map1600"}) {
    INFO(name);
    CHECK(pinned.count(name) == 1);
  }
  for (const char *name : {KM_MAP_AUTH_RES, KM_MAP_WLPOLICY, KM_MAP_FRONTEND, KM_MAP_AUTHZ_POLICY}) {
    CHECK(bp::KmeshLayoutProblem(dp.OpenMap(name).info(), name) == "");
  }
  // .data/.rodata are not pinned (pkg/bpf/utils/pin.go:77).
  for (const std::string &name : pinned) CHECK(name.find(".data") == std::string::npos);

  // Another process sees the pins, as kmesh-probe on a node would: the bpffs is
  // in the machine's mounts.
  const auto r = netns::RunChecked({"bpftool", "-j", "map", "show", "pinned", dp.PinPath(KM_MAP_AUTH_RES)});
  CHECK(r.out.find("\"id\":" + std::to_string(dp.map_id(KM_MAP_AUTH_RES)) + ",") != std::string::npos);
}

TEST_CASE(
    "maps are shared with Kmesh's sockops object loaded first, through "
    "the pins") {
  Node &node = Shared();
  for (const char *name : {KM_MAP_AUTH_RES, KM_MAP_AUTH_REQ, KM_MAP_WLPOLICY, KM_MAP_FRONTEND, "km_manage"}) {
    INFO(name);
    CHECK(node.dp->map_id(name) == node.sockops->map_id(name));
  }
}

TEST_CASE(
    "xdp_authz attached as kmesh-cni does (no mode flag) is native on a "
    "veth, and detaches") {
  Node &node = Shared();
  KmeshAuthzDatapath &dp = *node.dp;
  PodPair pods;
  const netns::NetnsRef srv = pods.srv.ref();

  dp.Attach(srv, "eth0");
  CHECK(dp.Attached(srv, "eth0"));
  const bp::XdpAttachment a = bp::QueryXdp(srv, "eth0");
  REQUIRE(a.attached());
  CHECK(a.mode == bp::XdpMode::kNative);
  const bp::ProgramInfo *prog = a.program(bp::XdpMode::kNative);
  REQUIRE(prog != nullptr);
  CHECK(prog->id == dp.identity().program("xdp_authz").id);
  CHECK(prog->name == "xdp_authz");
  CHECK(prog->tag == dp.identity().program("xdp_authz").tag);
  CHECK_THROWS_WITH(dp.Attach(srv, "eth0"), Catch::Contains("already attached"));

  dp.Detach(srv, "eth0");
  CHECK_FALSE(dp.Attached(srv, "eth0"));
  CHECK_FALSE(bp::QueryXdp(srv, "eth0").attached());
  CHECK_THROWS_WITH(dp.Detach(srv, "eth0"), Catch::Contains("was not attached"));
}

TEST_CASE(
    "a SYN passes with empty maps, and with a workload whose policy is "
    "absent (no policy: pass)") {
  Node &node = Shared();
  const KmeshAuthzDatapath &dp = *node.dp;
  const int xdp = dp.prog_fd("xdp_authz");
  const bp::Map tcargs = dp.OpenMap(KM_MAP_TCARGS);
  const kmesh::net::TupleKey key = kmesh::net::EncodeTupleKey(kSyn);

  CHECK(bp::TestRunXdp(xdp, kSyn).action == bp::XdpAction::kPass);
  CHECK_FALSE(tcargs.Lookup(bp::ByteView(key.data(), key.size())).has_value());  // no frontend: early pass

  // km_frontend[dst] = workload 7001; km_wlpolicy[7001] = {policy 4242};
  // km_authz_policy has no 4242.
  const uint32_t workload = 7001, policy = 4242;
  bp::FrontendMap(dp.OpenMap(KM_MAP_FRONTEND)).Put(bp::Frontend{kSyn.dst.ip, workload});
  km_wl_policies ids{};
  ids.policy_ids[0] = policy;
  dp.OpenMap(KM_MAP_WLPOLICY).Update(View(&workload, sizeof workload), View(&ids, sizeof ids));
  REQUIRE_FALSE(dp.OpenMap(KM_MAP_AUTHZ_POLICY).Lookup(View(&policy, sizeof policy)).has_value());

  CHECK(bp::TestRunXdp(xdp, kSyn).action == bp::XdpAction::kPass);
  // xdp_authz took the policy path: it stored the match context for this tuple
  // before its tail call (bpf/kmesh/workload/xdp.c:101-117); policies_check
  // found no policy 4242 and returned the default pass.
  CHECK(tcargs.Lookup(bp::ByteView(key.data(), key.size())).has_value());
  CHECK_FALSE(dp.OpenMap(KM_MAP_AUTH_RES).Lookup(bp::ByteView(key.data(), key.size())).has_value());

  const auto fkey = bp::EncodeFrontendKey(kSyn.dst.ip);
  dp.OpenMap(KM_MAP_FRONTEND).Delete(bp::ByteView(fkey.data(), fkey.size()));
  dp.OpenMap(KM_MAP_WLPOLICY).Delete(View(&workload, sizeof workload));
  tcargs.Delete(bp::ByteView(key.data(), key.size()));
}

TEST_CASE(
    "a cached deny drops; with authz_offload 0 xdp_authz hands it to "
    "slot 2, which consumes it") {
  Node &node = Shared();
  KmeshAuthzDatapath &dp = *node.dp;
  const int xdp = dp.prog_fd("xdp_authz");
  const bp::Map auth = dp.OpenMap(KM_MAP_AUTH_RES);
  const kmesh::net::TupleKey key = kmesh::net::EncodeTupleKey(kSyn);
  const bp::ByteView k(key.data(), key.size());
  const uint32_t deny = KM_AUTH_DENY;

  auth.Update(k, View(&deny, sizeof deny));
  CHECK(bp::TestRunXdp(xdp, kSyn).action == bp::XdpAction::kDrop);  // xdp.c:119
  CHECK(auth.Lookup(k).has_value());

  // `kmeshctl authz disable`: xdp_authz tail-calls xdp_shutdown_in_userspace
  // (xdp.c:83-85), which turns the packet into a RST, passes it and deletes the
  // verdict (xdp.c:28-46, 140-144).
  dp.SetAuthzOffload(0);
  CHECK(dp.AuthzOffload() == 0);
  CHECK(bp::TestRunXdp(xdp, kSyn).action == bp::XdpAction::kPass);
  CHECK_FALSE(auth.Lookup(k).has_value());
  dp.SetAuthzOffload(1);
  CHECK(dp.AuthzOffload() == 1);
  auth.Delete(k);
}

TEST_CASE(
    "a node's bpffs is a bpffs in the machine's mount namespace, gone on "
    "destruction") {
  WorkDir work;
  std::string path;
  {
    NodeBpffs fs = NodeBpffs::Mount(work.path, "probe");
    path = fs.path();
    CHECK(path.rfind(work.path + "/kme2e-" + std::to_string(getpid()) + "-bpffs-probe-", 0) == 0);
    CHECK(IsBpffs(path));
    CHECK(Exists(fs.KmeshMapDir()));
    // Another process (in the machine's mount namespace) sees the mount.
    const auto r = netns::RunChecked({"stat", "-f", "-c", "%T", path});
    CHECK(r.out == "bpf_fs\n");
    NodeBpffs moved = std::move(fs);
    CHECK(moved.path() == path);
    CHECK(fs.path().empty());
  }
  CHECK_FALSE(Exists(path));
  CHECK_THROWS_WITH(NodeBpffs::Mount(work.path + "/missing", "x"), Catch::Contains("does not exist"));
}

TEST_CASE("the bpffs of a SIGKILLed run is swept; a live run's is not") {
  WorkDir work;
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // A run that mounts its node's bpffs and is then killed before it can clean
    // up.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(fds[0]);
    try {
      NodeBpffs fs = NodeBpffs::Mount(work.path, "crashed");
      const std::string p = fs.path() + "\n";
      if (write(fds[1], p.data(), p.size()) < 0) _exit(2);
      pause();
    } catch (...) {
    }
    _exit(1);
  }
  close(fds[1]);
  std::string path;
  char c = 0;
  while (read(fds[0], &c, 1) == 1 && c != '\n') path += c;
  close(fds[0]);
  REQUIRE(!path.empty());
  CHECK(path.find("-" + std::to_string(child) + "-bpffs-crashed-") != std::string::npos);
  REQUIRE(IsBpffs(path));

  auto swept = kmesh::lab::SweepStaleBpffs();
  CHECK(std::find(swept.begin(), swept.end(), path) == swept.end());  // its owner is alive
  CHECK(IsBpffs(path));

  kill(child, SIGKILL);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(IsBpffs(path));  // the crash left it mounted

  swept = kmesh::lab::SweepStaleBpffs();
  CHECK(std::find(swept.begin(), swept.end(), path) != swept.end());
  CHECK_FALSE(IsBpffs(path));
  CHECK_FALSE(Exists(path));
}

// Last: tears the shared node down (a later case, e.g. under --order rand,
// loads it again).
TEST_CASE("tearing a node down leaves no program, pin or mount behind") {
  auto &slot = SharedSlot();
  Shared();
  const std::string mount = slot->bpffs.path();
  const std::string pin_dir = slot->dp->pin_dir();
  std::vector<uint32_t> ids;
  for (const auto &p : slot->dp->identity().programs) ids.push_back(p.id);
  const std::string first_pin = slot->dp->PinPath(KM_MAP_AUTH_RES);
  REQUIRE(Exists(first_pin));

  slot->dp.reset();
  // The pins the XDP object reused belong to the sockops object loaded first;
  // its own (e.g. the tail-call map) are gone with it.
  CHECK(Exists(first_pin));
  CHECK_FALSE(Exists(pin_dir + "/" + KM_MAP_XDP_TAILCALL));
  slot.reset();
  CHECK_FALSE(Exists(mount));

  // Programs are freed after an RCU grace period: wait for it, bounded.
  const auto deadline = std::chrono::steady_clock::now() + kmesh::defaults::XdpAttached();
  auto alive = [&] {
    int n = 0;
    for (uint32_t id : ids) {
      const int fd = bpf_prog_get_fd_by_id(id);
      if (fd >= 0) {
        close(fd);
        ++n;
      }
    }
    return n;
  };
  while (alive() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kmesh::defaults::PollInterval());
  }
  CHECK(alive() == 0);
}
