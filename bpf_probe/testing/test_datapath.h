// Test-only: loads km_test_authz.bpf.c (maps named and sized like Kmesh's, with BTF; an XDP program
// keying km_auth_res like Kmesh's xdp_authz) and unloads it on destruction, leaving nothing behind.
#pragma once

#include <string>

#include "bpf_probe/maps.h"
#include "net/tuple.h"

struct bpf_object;

namespace kmesh::bpf_probe::testing {

class TestDatapath {
 public:
  // Loads the object and fills tail-call slot 0 with kmt_policies.
  TestDatapath();
  ~TestDatapath();
  TestDatapath(const TestDatapath&) = delete;
  TestDatapath& operator=(const TestDatapath&) = delete;

  // How the program keys ports (kmt_config[0]).
  void SetPortOrder(net::PortOrder order);

  int xdp_prog_fd() const;  // kmt_xdp_authz
  int policies_prog_fd() const;  // kmt_policies (tail-call target)
  uint32_t xdp_prog_id() const;
  // One of the object's maps by name ("km_auth_res", ...), as an independent Map (its own fd).
  Map map(const std::string& name) const;

 private:
  bpf_object* obj_ = nullptr;
};

// A map without BTF made with bpf_map_create() (the fd dies with the Map, and the map with it).
Map CreateMap(uint32_t type, const std::string& name, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
              uint32_t flags = 0);

// A kernel map name no other run uses: "<prefix><pid>" (15 characters at most).
std::string UniqueMapName(const std::string& prefix);

}  // namespace kmesh::bpf_probe::testing
