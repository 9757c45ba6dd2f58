// Unit tier: kmesh-probe is one self-contained file (no program interpreter, no shared library), so
// `kubectl cp` into any Kmesh pod (openEuler, not Debian) is enough to run it; and its command line
// refuses bad input with a usage message and status 2.
#include <elf.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <vector>

#include "base/runfiles.h"
#include "netns/process.h"

using Catch::Matchers::Contains;

namespace {

std::vector<char> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("kmesh-probe is statically linked: no interpreter, no DT_NEEDED") {
  const std::string path = kmesh::Runfile("tools/probe/kmesh-probe");
  const std::vector<char> bin = ReadAll(path);
  REQUIRE(bin.size() > sizeof(Elf64_Ehdr));
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(bin.data());
  REQUIRE(std::string(reinterpret_cast<const char*>(eh->e_ident), 4) ==
          "\x7f"
          "ELF");
  REQUIRE(eh->e_ident[EI_CLASS] == ELFCLASS64);
  REQUIRE(eh->e_phoff + static_cast<size_t>(eh->e_phnum) * sizeof(Elf64_Phdr) <= bin.size());
  size_t needed = 0;
  bool interp = false;
  for (int i = 0; i < eh->e_phnum; ++i) {
    const auto* ph = reinterpret_cast<const Elf64_Phdr*>(bin.data() + eh->e_phoff + i * sizeof(Elf64_Phdr));
    if (ph->p_type == PT_INTERP) interp = true;
    if (ph->p_type == PT_DYNAMIC) {
      REQUIRE(ph->p_offset + ph->p_filesz <= bin.size());
      for (size_t off = 0; off + sizeof(Elf64_Dyn) <= ph->p_filesz; off += sizeof(Elf64_Dyn)) {
        const auto* d = reinterpret_cast<const Elf64_Dyn*>(bin.data() + ph->p_offset + off);
        if (d->d_tag == DT_NULL) break;
        if (d->d_tag == DT_NEEDED) ++needed;
      }
    }
  }
  CHECK_FALSE(interp);
  CHECK(needed == 0);
}

TEST_CASE("kmesh-probe: usage errors exit 2 and say what was wrong") {
  struct Row {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {{}, "no command given"},
      {{"frobnicate"}, "unknown command \"frobnicate\""},
      {{"auth"}, "auth needs --tuple"},
      {{"maps", "--colour"}, "unknown option --colour"},
      {{"xdp"}, "xdp needs --pod-ip, --netns or --pid"},
      {{"capture", "--netns", "/proc/self/ns/net"}, "capture needs --iface or --peer"},
      {{"xfrm-delete-state", "--src", "1.1.1.1", "--dst", "2.2.2.2", "--spi", "0xzz"}, "--spi \"0xzz\""},
  };
  const std::string probe = kmesh::Runfile("tools/probe/kmesh-probe");
  for (const auto& row : rows) {
    std::vector<std::string> argv = {probe};
    argv.insert(argv.end(), row.args.begin(), row.args.end());
    const auto r = kmesh::netns::Run(argv);
    INFO(r.Describe());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(row.expected));
    CHECK_THAT(r.err, Contains("usage: kmesh-probe"));
    CHECK(r.out.empty());
  }
  // Bad values inside a valid command are error reports (exit 1) that name the value.
  const auto bad =
      kmesh::netns::Run({probe, "--maps", "pin:/nonexistent", "auth", "--tuple", "10.0.0.1:1 -> nowhere"});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.out, Contains("\"error\""));
  CHECK_THAT(bad.out, Contains("nowhere"));
  // A map source that is none of the forms, or an '@' without an interface, says which forms there are.
  for (const auto& [source, expected] : std::vector<std::pair<std::string, std::string>>{
           {"xdp:pod-a", "expected pin:<folder>, prog:<id>, xdp:<netns path>[@<ifname>] or xdp:<pod IP>"},
           {"xdp:/run/netns/pod-a@", "an interface name follows '@'"},
           {"netns:/run/netns/pod-a", "netns:/run/netns/pod-a\\\": expected pin:<folder>"}}) {
    const auto r = kmesh::netns::Run({probe, "--maps", source, "maps"});
    INFO(r.Describe());
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Contains("\"error\"") && Contains(expected));
  }
  const auto help = kmesh::netns::Run({probe, "--help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Contains("find-netns") && Contains("xdp:PATH[@IFNAME]") && Contains("--all"));
}
