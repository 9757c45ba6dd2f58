#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"
#include "bpf_probe/tuple.h"

using namespace kmesh::bpf_probe;

namespace {

std::string Hex(const TupleKey& k) { return HexSpaced(ByteView(k.data(), k.size())); }

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
    {"10.244.1.5:40000 -> 10.244.1.7:19090", PortOrder::kHost, "0a f4 01 05 0a f4 01 07 40 9c 92 4a" + Zeros(24)},
    {"10.244.1.5:40000 -> 10.244.1.7:19090", PortOrder::kNetwork,
     "0a f4 01 05 0a f4 01 07 9c 40 4a 92" + Zeros(24)},
    {"192.168.0.1:1 -> 192.168.0.2:8080", PortOrder::kHost, "c0 a8 00 01 c0 a8 00 02 01 00 90 1f" + Zeros(24)},
    {"[fd00::5]:40001 -> [fd00::7]:8080", PortOrder::kHost,
     "fd 00" + Zeros(13) + " 05 fd 00" + Zeros(13) + " 07 41 9c 90 1f"},
    {"[fd00::5]:40001 -> [fd00::7]:8080", PortOrder::kNetwork,
     "fd 00" + Zeros(13) + " 05 fd 00" + Zeros(13) + " 07 9c 41 1f 90"},
};

}  // namespace

TEST_CASE("tuples encode to Kmesh's 36-byte key and decode back, both port orders") {
  for (const auto& c : kKeyCases) {
    CAPTURE(c.tuple, ToString(c.order));
    const Tuple t = Tuple::Parse(c.tuple);
    const TupleKey key = EncodeTupleKey(t, c.order);
    CHECK(Hex(key) == c.key_hex);
    const Tuple back = DecodeTupleKey(ByteView(key.data(), key.size()), c.order);
    CHECK(back == t);
    CHECK(back.ToString() == c.tuple);
  }
}

TEST_CASE("decoding with the wrong port order gives byte-swapped ports, not the same tuple") {
  const Tuple t = Tuple::Parse("10.0.0.1:40000 -> 10.0.0.2:8080");
  const TupleKey key = EncodeTupleKey(t, PortOrder::kHost);
  const Tuple wrong = DecodeTupleKey(ByteView(key.data(), key.size()), PortOrder::kNetwork);
  CHECK(wrong.sport == 0x409c);  // 40000 = 0x9c40
  CHECK(wrong.dport == 0x901f);  // 8080 = 0x1f90
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
    CHECK_THROWS_WITH(Tuple::Parse(b.text), Catch::Contains(b.says));
  }
}

TEST_CASE("a key of the wrong size is refused with both sizes in the message") {
  const uint8_t short_key[16] = {};
  CHECK_THROWS_WITH(DecodeTupleKey(ByteView(short_key, 16)),
                    Catch::Contains("16 bytes") && Catch::Contains("is 36 bytes"));
}

TEST_CASE("verdicts and port orders print and parse") {
  CHECK(ToString(Verdict::kAllow) == "ALLOW");
  CHECK(ToString(Verdict::kDeny) == "DENY");
  CHECK(ToString(static_cast<Verdict>(7)) == "UNKNOWN(7)");
  CHECK(Drops(static_cast<Verdict>(7)));
  CHECK_FALSE(Drops(Verdict::kAllow));
  CHECK(ParseVerdict("Deny") == Verdict::kDeny);
  CHECK_THROWS_WITH(ParseVerdict("drop"), Catch::Contains("expected allow or deny"));
  CHECK(ParsePortOrder("network") == PortOrder::kNetwork);
  CHECK(ParsePortOrder("host") == PortOrder::kHost);
  CHECK_THROWS_WITH(ParsePortOrder("little"), Catch::Contains("v1.2.0"));
}

TEST_CASE("IPv6 addresses print canonically and IPv4-looking keys decode as IPv4") {
  CHECK(IpAddr::Parse("FD00:0:0::0001").ToString() == "fd00::1");
  CHECK(IpAddr::Parse("[fd00::1]").is_v4() == false);
  CHECK_THROWS_WITH(IpAddr::Parse("nope"), Catch::Contains("\"nope\" is not an IPv4 or IPv6 address"));
}
