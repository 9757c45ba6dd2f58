// Unit tier: snapshot diff logic on hand-made snapshots (the kernel test covers policies for real).
#include <catch2/catch.hpp>

#include <netinet/in.h>

#include "xfrm/xfrm.h"

using namespace kmesh::xfrm;
using kmesh::ipsec::KeyMaterial;

namespace {

XfrmState St(uint32_t spi, const std::string& key_hex, uint64_t packets = 0) {
  XfrmState s;
  s.family = AF_INET;
  s.src = "172.18.0.2";
  s.dst = "172.18.0.3";
  s.proto = IPPROTO_ESP;
  s.spi = Spi{spi};
  s.reqid = 1;
  s.mode = Mode::kTunnel;
  s.aead_name = "rfc4106(gcm(aes))";
  s.icv_bits = 128;
  s.aead_key = KeyMaterial::FromHex(key_hex);
  s.cur_packets = packets;
  return s;
}

XfrmSnapshot Snap(std::vector<XfrmState> states, std::vector<std::pair<std::string, uint64_t>> counters = {}) {
  XfrmSnapshot s;
  s.states = std::move(states);
  s.stats.counters = std::move(counters);
  return s;
}

}  // namespace

TEST_CASE("identical snapshots have no diff") {
  const auto a = Snap({St(1, "aa")}, {{"XfrmInNoStates", 0}});
  CHECK(Diff(a, a).empty());
  CHECK(Diff(a, a).Describe() == "no xfrm change");
}

TEST_CASE("a key change on the same SPI is a changed state, shown by fingerprint") {
  const auto d = Diff(Snap({St(1, "aa")}), Snap({St(1, "bb")}));
  REQUIRE(d.changed_states.size() == 1);
  CHECK(d.changed_states[0].id == "esp spi 0x00000001 src 172.18.0.2 dst 172.18.0.3");
  CHECK(d.changed_states[0].what == "key sha256:" + KeyMaterial::FromHex("aa").Fingerprint() + " -> sha256:" +
                                        KeyMaterial::FromHex("bb").Fingerprint());
  CHECK_THAT(d.ToJson().dump(), !Catch::Contains("\"aa\"") && !Catch::Contains("0xbb"));
}

TEST_CASE("one state replaced by another SPI on the same tunnel reads as an SPI change") {
  const auto d = Diff(Snap({St(1, "aa")}), Snap({St(2, "bb")}));
  CHECK(d.appeared_states.empty());
  CHECK(d.disappeared_states.empty());
  REQUIRE(d.changed_states.size() == 1);
  CHECK_THAT(d.changed_states[0].what, Catch::StartsWith("spi 0x00000001 -> 0x00000002; key sha256:"));
}

TEST_CASE("Kmesh's rotation keeps the old state: the new SPI appears, nothing disappears") {
  const auto d = Diff(Snap({St(1, "aa")}), Snap({St(1, "aa"), St(2, "bb")}));
  CHECK(d.changed_states.empty());
  REQUIRE(d.appeared_states.size() == 1);
  CHECK(d.appeared_states[0] == "esp spi 0x00000002 src 172.18.0.2 dst 172.18.0.3");
  CHECK(d.disappeared_states.empty());
}

TEST_CASE("traffic counters and error counters show up as changes") {
  const auto d = Diff(Snap({St(1, "aa", 10)}, {{"XfrmInNoStates", 0}, {"XfrmInStateProtoError", 3}}),
                      Snap({St(1, "aa", 25)}, {{"XfrmInNoStates", 4}, {"XfrmInStateProtoError", 3}}));
  REQUIRE(d.changed_states.size() == 1);
  CHECK_THAT(d.changed_states[0].what, Catch::Contains("lifetime 10 -> 25 packets"));
  REQUIRE(d.counters.size() == 1);
  CHECK(d.counters[0].name == "XfrmInNoStates");
  CHECK(d.ErrorsRaised().size() == 1);
  CHECK_THAT(d.Describe(), Catch::Contains("xfrm_stat XfrmInNoStates: 0 -> 4"));
}

TEST_CASE("xfrm_stat lookups name a counter the kernel does not have") {
  XfrmStats s;
  s.counters = {{"XfrmInError", 0}};
  CHECK_THROWS_WITH(s.Get("XfrmNope"), Catch::Contains("no counter XfrmNope"));
}
