#include <catch2/catch.hpp>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/names.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/prog.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/testing/private_bpffs.h"

using namespace kmesh::bpf_probe;
using kmesh::bpf_probe::testing::CreateMap;
using kmesh::bpf_probe::testing::TestDatapath;
using kmesh::bpf_probe::testing::UniqueMapName;

namespace {

std::set<std::string> Names(const std::vector<MapInfo>& maps) {
  std::set<std::string> out;
  for (const auto& m : maps) out.insert(m.name);
  return out;
}

using kmesh::bpf_probe::testing::WithPrivateBpffs;

}  // namespace

TEST_CASE("maps created like Kmesh's (no BTF) report Kmesh's sizes, flags and entry counts") {
  struct Row {
    uint32_t type;
    const char* name;
    uint32_t key, value, max, flags;
  };
  const Row kRows[] = {
      {BPF_MAP_TYPE_HASH, KM_MAP_AUTH_RES, KM_TUPLE_SIZE, 4, KM_AUTH_RES_MAX_ENTRIES, BPF_F_NO_PREALLOC},
      {BPF_MAP_TYPE_HASH, KM_MAP_WLPOLICY, 4, 16, KM_WLPOLICY_MAX_ENTRIES, BPF_F_NO_PREALLOC},
      {BPF_MAP_TYPE_HASH, KM_MAP_AUTHZ_POLICY, 4, KM_AUTHZ_POLICY_VALUE_SIZE, KM_AUTHZ_POLICY_MAX_ENTRIES,
       BPF_F_NO_PREALLOC},
      {BPF_MAP_TYPE_HASH, KM_MAP_FRONTEND, 16, 4, KM_FRONTEND_MAX_ENTRIES, BPF_F_NO_PREALLOC},
      {BPF_MAP_TYPE_PROG_ARRAY, KM_MAP_XDP_TAILCALL, 4, 4, 8, 0},
      {BPF_MAP_TYPE_RINGBUF, KM_MAP_AUTH_REQ, 0, 0, 4096, 0},
  };
  for (const auto& r : kRows) {
    CAPTURE(r.name);
    Map m = CreateMap(r.type, r.name, r.key, r.value, r.max, r.flags);
    const MapInfo& i = m.info();
    CHECK(i.name == r.name);
    CHECK(i.id != 0);
    CHECK(i.key_size == r.key);
    CHECK(i.value_size == r.value);
    CHECK(i.max_entries == r.max);
    CHECK(i.flags == r.flags);
    CHECK_FALSE(i.HasBtf());
    // Opening by id reaches the same kernel object.
    CHECK(Map::OpenById(i.id).info().id == i.id);
    if (r.type == BPF_MAP_TYPE_HASH) {
      CHECK(m.CountEntries() == 0);
      Bytes key(r.key, 0x11), value(r.value, 0x22);
      m.Update(key, value);
      CHECK(m.CountEntries() == 1);
      CHECK(*m.Lookup(key) == value);
      CHECK(m.Delete(key));
      CHECK_FALSE(m.Delete(key));
      CHECK_FALSE(m.Lookup(key).has_value());
    }
    if (r.type == BPF_MAP_TYPE_RINGBUF) {
      CHECK_THROWS_WITH(m.CountEntries(), Catch::Contains("must never be consumed"));
    }
  }
}

TEST_CASE("a wrong-sized key is refused before it reaches the kernel, with both sizes") {
  Map m = CreateMap(BPF_MAP_TYPE_HASH, UniqueMapName("kmt"), KM_TUPLE_SIZE, 4, 16);
  const Bytes key(12, 0);
  CHECK_THROWS_WITH(m.Lookup(key), Catch::Contains("key is 12 bytes, the map's is 36"));
  CHECK_THROWS_WITH(m.Update(key, Bytes(4, 0)), Catch::Contains("expected 36 B and 4 B"));
}

TEST_CASE("the kernel catalog finds a map by name, and says so when a name is ambiguous or missing") {
  const std::string name = UniqueMapName("kmt");
  Map a = CreateMap(BPF_MAP_TYPE_HASH, name, 4, 4, 8);
  {
    const MapCatalog cat = MapCatalog::FromKernel();
    REQUIRE(cat.Named(name).size() == 1);
    CHECK(cat.Open(name).info().id == a.info().id);
    CHECK_THROWS_WITH(cat.Open("km_no_such_map"), Catch::Contains("map km_no_such_map not found in kernel map names"));
  }
  Map b = CreateMap(BPF_MAP_TYPE_HASH, name, 4, 4, 8);
  const MapCatalog cat = MapCatalog::FromKernel();
  CHECK_THROWS_WITH(cat.Open(name), Catch::Contains("2 maps are named " + name) &&
                                        Catch::Contains(std::to_string(a.info().id)) &&
                                        Catch::Contains(std::to_string(b.info().id)));
  // A numeric reference is an id, a path a pin.
  CHECK(OpenMapRef(std::to_string(b.info().id), cat).info().id == b.info().id);
  CHECK_THROWS_WITH(OpenMapRef("4294967295", cat), Catch::Contains("does not exist"));
}

TEST_CASE("the maps of a program include those reached through its tail calls") {
  TestDatapath dp;
  const uint32_t prog = dp.xdp_prog_id();
  const std::set<std::string> direct = Names(ListProgramMaps(prog, false));
  CHECK(direct == std::set<std::string>{KM_MAP_AUTH_RES, KM_MAP_FRONTEND, KM_MAP_WLPOLICY, KM_MAP_XDP_TAILCALL,
                                        "kmt_config"});
  const MapCatalog cat = MapCatalog::FromProgram(prog);
  CHECK(Names(cat.maps()) == std::set<std::string>{KM_MAP_AUTH_RES, KM_MAP_FRONTEND, KM_MAP_WLPOLICY,
                                                   KM_MAP_XDP_TAILCALL, "kmt_config", KM_MAP_AUTHZ_POLICY});
  CHECK_THAT(cat.source(), Catch::Contains("kmt_xdp_authz"));
  // By program is precise even while other runs have maps of the same names.
  CHECK(cat.Open(KM_MAP_AUTH_RES).info().id == dp.map(KM_MAP_AUTH_RES).info().id);
  CHECK(cat.Open(KM_MAP_AUTH_RES).info().HasBtf());
  // A map that is not there: the error lists the Kmesh maps that are.
  CHECK_THROWS_WITH(cat.Open(KM_MAP_TCARGS),
                    Catch::Contains("km_tcargs not found in program") &&
                        Catch::Contains("km_auth_res (id " + std::to_string(dp.map(KM_MAP_AUTH_RES).info().id)));
}

TEST_CASE("pinned maps are found in a pin folder, programs pinned beside them are skipped") {
  TestDatapath dp;
  const std::string dir = "/tmp/" + kmesh::UniqueName("bpffs");
  WithPrivateBpffs(dir, [&] {
    for (const char* n : {KM_MAP_AUTH_RES, KM_MAP_WLPOLICY, KM_MAP_AUTHZ_POLICY}) {
      REQUIRE(bpf_obj_pin(dp.map(n).fd(), (dir + "/" + n).c_str()) == 0);
    }
    REQUIRE(bpf_obj_pin(dp.xdp_prog_fd(), (dir + "/xdp_authz").c_str()) == 0);
    const std::vector<MapInfo> pinned = ListPinnedMaps(dir);
    CHECK(Names(pinned) == std::set<std::string>{KM_MAP_AUTH_RES, KM_MAP_WLPOLICY, KM_MAP_AUTHZ_POLICY});
    for (const auto& m : pinned) CHECK(m.pin_path == dir + "/" + m.name);
    const MapCatalog cat = MapCatalog::FromPinDir(dir);
    Map auth = cat.Open(KM_MAP_AUTH_RES);
    CHECK(auth.info().id == dp.map(KM_MAP_AUTH_RES).info().id);
    CHECK(auth.info().pin_path == dir + "/" + KM_MAP_AUTH_RES);
    CHECK_THROWS_WITH(Map::OpenPinned(dir + "/xdp_authz"), Catch::Contains("not a BPF map"));
    CHECK_THROWS_WITH(cat.Open(KM_MAP_FRONTEND), Catch::Contains("Kmesh maps found there instead: km_"));
  });
  CHECK_THROWS_WITH(ListPinnedMaps(dir), Catch::Contains("does not exist"));
}

TEST_CASE("without CAP_SYS_ADMIN and CAP_BPF the error names the missing capability") {
  std::string message;
  // Capabilities are per thread: drop them on a throwaway thread only.
  std::thread t([&] {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) return;
    data[0].effective &= ~(1u << CAP_SYS_ADMIN);
    data[1].effective &= ~(1u << (39 - 32));  // CAP_BPF
    if (syscall(SYS_capset, &hdr, data) != 0) return;
    try {
      ListMaps();
      message = "(no error)";
    } catch (const kmesh::Error& e) {
      message = e.what();
    }
  });
  t.join();
  CHECK_THAT(message, Catch::Contains("Operation not permitted") && Catch::Contains("needs CAP_SYS_ADMIN"));
}
