#include "bpf_probe/testing/test_datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/runfiles.h"
#include "bpf_probe/prog.h"

namespace kmesh::bpf_probe::testing {
namespace {

int ProgFd(bpf_object* obj, const char* name) {
  bpf_program* p = bpf_object__find_program_by_name(obj, name);
  if (p == nullptr) throw Error(std::string("km_test_authz.o has no program ") + name);
  return bpf_program__fd(p);
}

}  // namespace

TestDatapath::TestDatapath() {
  const std::string path = Runfile("bpf_probe/km_test_authz.o");
  obj_ = bpf_object__open_file(path.c_str(), nullptr);
  if (obj_ == nullptr) ThrowErrno("open BPF object " + path);
  if (int rc = bpf_object__load(obj_); rc != 0) {
    bpf_object__close(obj_);
    obj_ = nullptr;
    ThrowErrno("load BPF object " + path, -rc);
  }
  const __u32 slot = 0;
  const int target = ProgFd(obj_, "kmt_policies");
  if (bpf_map_update_elem(map("km_xdp_tailcall").fd(), &slot, &target, BPF_ANY) != 0) {
    ThrowErrno("fill km_xdp_tailcall slot 0");
  }
}

TestDatapath::~TestDatapath() {
  if (obj_) bpf_object__close(obj_);
}

void TestDatapath::SetPortOrder(net::PortOrder order) {
  const __u32 key = 0, value = order == net::PortOrder::kNetwork ? 1 : 0;
  if (bpf_map_update_elem(map("kmt_config").fd(), &key, &value, BPF_ANY) != 0) ThrowErrno("write kmt_config");
}

int TestDatapath::xdp_prog_fd() const { return ProgFd(obj_, "kmt_xdp_authz"); }
int TestDatapath::policies_prog_fd() const { return ProgFd(obj_, "kmt_policies"); }
uint32_t TestDatapath::xdp_prog_id() const { return ReadProgramInfo(xdp_prog_fd()).id; }

Map TestDatapath::map(const std::string& name) const {
  bpf_map* m = bpf_object__find_map_by_name(obj_, name.c_str());
  if (m == nullptr) throw Error("km_test_authz.o has no map " + name);
  return Map::Borrow(bpf_map__fd(m));
}

Map CreateMap(uint32_t type, const std::string& name, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
              uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
  int fd = bpf_map_create(static_cast<bpf_map_type>(type), name.c_str(), key_size, value_size, max_entries, &opts);
  if (fd < 0) ThrowErrno("create test map " + name);
  return Map::Adopt(UniqueFd(fd));
}

std::string UniqueMapName(const std::string& prefix) {
  static int n = 0;
  std::string name = prefix + std::to_string(getpid()) + "_" + std::to_string(n++);
  if (name.size() > 15) name = name.substr(name.size() - 15);
  return name;
}

}  // namespace kmesh::bpf_probe::testing
