#include <catch2/catch.hpp>

#include <cstdint>

#include "bpf_probe/test_run.h"

using namespace kmesh::bpf_probe;
using namespace kmesh::net;

namespace {

// RFC 1071: summing a region that includes its own checksum gives 0xffff.
uint16_t Verify(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

}  // namespace

TEST_CASE("a crafted IPv4 SYN has Kmesh's expected shape and valid checksums") {
  const Bytes f = BuildTcpSyn(*Tuple::Parse("10.244.1.5:40000 -> 10.244.1.7:19090"));
  REQUIRE(f.size() == 14 + 20 + 20);
  CHECK(Be16(&f[12]) == 0x0800);
  const uint8_t* ip = &f[14];
  const uint8_t* tcp = ip + 20;
  CHECK(ip[0] == 0x45);  // 20-byte header, as Kmesh's parser assumes
  CHECK(ip[9] == 6);
  CHECK(Verify(ip, 20) == 0xffff);
  CHECK(Be16(tcp) == 40000);       // ports on the wire are network order whatever the key's order
  CHECK(Be16(tcp + 2) == 19090);
  CHECK(tcp[13] == 0x02);          // SYN only
  uint32_t pseudo = Be16(ip + 12) + Be16(ip + 14) + Be16(ip + 16) + Be16(ip + 18) + 6 + 20;
  CHECK(Verify(tcp, 20, pseudo) == 0xffff);
}

TEST_CASE("a crafted IPv6 SYN has valid checksums") {
  const Bytes f = BuildTcpSyn(*Tuple::Parse("[fd00::5]:40001 -> [fd00::7]:8080"));
  REQUIRE(f.size() == 14 + 40 + 20);
  CHECK(Be16(&f[12]) == 0x86dd);
  const uint8_t* ip = &f[14];
  const uint8_t* tcp = ip + 40;
  CHECK(ip[0] >> 4 == 6);
  CHECK(ip[6] == 6);
  uint32_t pseudo = 6 + 20;
  for (int i = 8; i < 40; i += 2) pseudo += Be16(ip + i);
  CHECK(Verify(tcp, 20, pseudo) == 0xffff);
  CHECK(Be16(tcp + 2) == 8080);
}

TEST_CASE("XDP actions print by name") {
  CHECK(ToString(XdpAction::kDrop) == "DROP");
  CHECK(ToString(XdpAction::kPass) == "PASS");
  CHECK(ToString(static_cast<XdpAction>(9)) == "ACTION(9)");
}
