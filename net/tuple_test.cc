#include "net/tuple.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

using namespace kmesh::net;

namespace {

std::string Hex(const TupleKey& k) {
  std::string s;
  for (uint8_t b : k) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%s%02x", s.empty() ? "" : " ", b);
    s += buf;
  }
  return s;
}

std::string Zeros(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += " 00";
  return s;
}

// Expected keys written out by hand from kmesh-facts.md §1.3 (the facts' own example is the first row).
struct KeyCase {
  const char* tuple;
  PortOrder order;
  std::string key_hex;
};

const std::vector<KeyCase> kKeyCases = {
    {"10.244.1.5:40000 -> 10.244.1.7:19090", PortOrder::kHost,
     "0a f4 01 05 0a f4 01 07 40 9c 92 4a" + Zeros(24)},
    {"10.244.1.5:40000 -> 10.244.1.7:19090", PortOrder::kNetwork,
     "0a f4 01 05 0a f4 01 07 9c 40 4a 92" + Zeros(24)},
    {"192.168.0.1:1 -> 192.168.0.2:8080", PortOrder::kHost,
     "c0 a8 00 01 c0 a8 00 02 01 00 90 1f" + Zeros(24)},
    {"[fd00::5]:40001 -> [fd00::7]:8080", PortOrder::kHost,
     "fd 00" + Zeros(13) + " 05 fd 00" + Zeros(13) + " 07 41 9c 90 1f"},
    {"[fd00::5]:40001 -> [fd00::7]:8080", PortOrder::kNetwork,
     "fd 00" + Zeros(13) + " 05 fd 00" + Zeros(13) + " 07 9c 41 1f 90"},
};

}  // namespace

TEST_CASE("tuples encode to Kmesh's 36-byte key and decode back, both port orders") {
  for (const auto& c : kKeyCases) {
    CAPTURE(c.tuple, ToString(c.order));
    const Tuple t = *Tuple::Parse(c.tuple);
    const TupleKey key = EncodeTupleKey(t, c.order);
    CHECK(Hex(key) == c.key_hex);
    const Tuple back = *DecodeTupleKey(key.data(), key.size(), c.order);
    CHECK(back == t);
    CHECK(back.ToString() == c.tuple);
  }
}

TEST_CASE("decoding with the wrong port order gives byte-swapped ports, not the same tuple") {
  const Tuple t = *Tuple::Parse("10.0.0.1:40000 -> 10.0.0.2:8080");
  const TupleKey key = EncodeTupleKey(t, PortOrder::kHost);
  const Tuple wrong = *DecodeTupleKey(key.data(), key.size(), PortOrder::kNetwork);
  CHECK(wrong.src.port == 0x409c);  // 40000 = 0x9c40
  CHECK(wrong.dst.port == 0x901f);  // 8080 = 0x1f90
  CHECK(wrong != t);
}

TEST_CASE("tuple text parsing rejects bad input with a message naming the bad part") {
  struct Bad {
    const char* text;
    const char* says;
  };
  const Bad kBad[] = {
      {"10.0.0.1:1 10.0.0.2:2", "expected \"SRC_IP:PORT -> DST_IP:PORT\""},
      {"10.0.0.1 -> 10.0.0.2:2", "source \"10.0.0.1\" has no port"},
      {"10.0.0.1:99999 -> 10.0.0.2:2", "source port \"99999\""},
      {"10.0.0.1:1 -> 10.0.0.300:2", "destination address \"10.0.0.300\""},
      {"fd00::1:1 -> [fd00::2]:2", "must be bracketed"},
      {"10.0.0.1:1 -> [fd00::2]:2", "different IP families"},
      {"10.0.0.1:x1 -> 10.0.0.2:2", "source port \"x1\""},
  };
  for (const auto& b : kBad) {
    CAPTURE(b.text);
    const auto t = Tuple::Parse(b.text);
    CHECK_FALSE(t.ok());
    CHECK_THAT(t.error(), Catch::Contains(b.says) && Catch::Contains(b.text));
    CHECK_THROWS_WITH(*t, Catch::Contains(b.says));
  }
}

TEST_CASE("a key of the wrong size is refused with both sizes in the message") {
  const uint8_t short_key[16] = {};
  const auto t = DecodeTupleKey(short_key, 16);
  CHECK_FALSE(t.ok());
  CHECK_THAT(t.error(), Catch::Contains("16 bytes") && Catch::Contains("is 36 bytes"));
}

TEST_CASE("port orders print and parse") {
  CHECK(*ParsePortOrder("network") == PortOrder::kNetwork);
  CHECK(*ParsePortOrder("host") == PortOrder::kHost);
  CHECK_THAT(ParsePortOrder("little").error(), Catch::Contains("v1.2.0"));
  CHECK(std::string(ToString(PortOrder::kNetwork)) == "network");
}

TEST_CASE("endpoints go to sockaddr and back, IPv4 and IPv6") {
  for (const char* text : {"10.244.1.5:8080", "[fd00::7]:40001", "[::ffff:10.0.0.1]:80"}) {
    CAPTURE(text);
    const Endpoint e = *Endpoint::Parse(text);
    CHECK(e.ToString() == text);
    sockaddr_storage ss;
    const socklen_t len = e.ToSockaddr(ss);
    CHECK(len == (e.ip.is_v4() ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)));
    CHECK(*Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&ss), len) == e);
  }
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(443);
  in.sin_addr.s_addr = htonl(0x0a000001);
  CHECK(Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&in), sizeof in)->ToString() == "10.0.0.1:443");
  sockaddr unix_sa{};
  unix_sa.sa_family = AF_UNIX;
  CHECK_THAT(Endpoint::FromSockaddr(&unix_sa, sizeof unix_sa).error(), Catch::Contains("not IPv4 or IPv6"));
  CHECK_THAT(Endpoint::Parse("10.0.0.1").error(), Catch::Contains("has no port"));
}
