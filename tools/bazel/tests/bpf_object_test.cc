#include <catch2/catch.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "base/runfiles.h"

TEST_CASE("a bpf_object target loads from runfiles with BTF and runs") {
  const std::string path = kmesh::Runfile("tools/bazel/tests/xdp_count.o");
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  REQUIRE(obj != nullptr);
  REQUIRE(bpf_object__load(obj) == 0);
  bpf_program* prog = bpf_object__find_program_by_name(obj, "xdp_count");
  REQUIRE(prog != nullptr);
  CHECK(bpf_program__type(prog) == BPF_PROG_TYPE_XDP);
  CHECK(bpf_object__btf(obj) != nullptr);

  // Run it once on a dummy frame: the counter moves, so the program really executed.
  unsigned char frame[64] = {};
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame, .data_size_in = sizeof frame, .repeat = 3);
  REQUIRE(bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) == 0);
  CHECK(opts.retval == XDP_PASS);
  int map_fd = bpf_object__find_map_fd_by_name(obj, "seen");
  __u32 key = 0;
  __u64 count = 0;
  REQUIRE(bpf_map_lookup_elem(map_fd, &key, &count) == 0);
  CHECK(count == 3);
  bpf_object__close(obj);
}
