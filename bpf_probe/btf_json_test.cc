#include <catch2/catch.hpp>

#include <bpf/btf.h>

#include <cstring>
#include <string>

#include "bpf_probe/btf_json.h"
#include "bpf_probe/json_writer.h"

using namespace kmesh::bpf_probe;

namespace {

// BTF built in user space (no kernel needed) for the shapes Kmesh's maps use, plus the awkward ones.
struct Types {
  Btf btf = Btf::Adopt(btf__new_empty());
  int u8, u16, u32, s32, u64, boolean, chr, tuple, policies, flags, color, name16, u128;

  Types() {
    struct btf* b = btf.mutable_get();
    u8 = btf__add_int(b, "__u8", 1, 0);
    u16 = btf__add_int(b, "__u16", 2, 0);
    u32 = btf__add_int(b, "__u32", 4, 0);
    s32 = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
    u64 = btf__add_int(b, "__u64", 8, 0);
    boolean = btf__add_int(b, "_Bool", 1, BTF_INT_BOOL);
    chr = btf__add_int(b, "char", 1, BTF_INT_SIGNED);  // as clang emits char
    u128 = btf__add_int(b, "__u128", 16, 0);
    const int be32 = btf__add_typedef(b, "__be32", u32);

    // struct km_tuple { union { struct { saddr, daddr, sport, dport } ipv4; struct {...} ipv6; }; }
    const int v4 = btf__add_struct(b, nullptr, 12);
    btf__add_field(b, "saddr", be32, 0, 0);
    btf__add_field(b, "daddr", be32, 32, 0);
    btf__add_field(b, "sport", u16, 64, 0);
    btf__add_field(b, "dport", u16, 80, 0);
    const int arr4 = btf__add_array(b, u32, u32, 4);
    const int v6 = btf__add_struct(b, nullptr, 36);
    btf__add_field(b, "saddr", arr4, 0, 0);
    btf__add_field(b, "daddr", arr4, 128, 0);
    btf__add_field(b, "sport", u16, 256, 0);
    btf__add_field(b, "dport", u16, 272, 0);
    const int un = btf__add_union(b, nullptr, 36);
    btf__add_field(b, "ipv4", v4, 0, 0);
    btf__add_field(b, "ipv6", v6, 0, 0);
    tuple = btf__add_struct(b, "km_tuple", 36);
    btf__add_field(b, nullptr, un, 0, 0);

    policies = btf__add_struct(b, "km_wl_policies", 16);
    btf__add_field(b, "policy_ids", arr4, 0, 0);

    color = btf__add_enum(b, "color", 4);
    btf__add_enum_value(b, "RED", 0);
    btf__add_enum_value(b, "GREEN", 7);

    // struct flags { __u32 a:3; __u32 b:5; int neg:4; bool on; enum color c; char name[6]; __u8 pad; }
    const int name6 = btf__add_array(b, u32, chr, 6);
    flags = btf__add_struct(b, "flags", 16);
    btf__add_field(b, "a", u32, 0, 3);
    btf__add_field(b, "b", u32, 3, 5);
    btf__add_field(b, "neg", s32, 8, 4);
    btf__add_field(b, "on", boolean, 16, 0);
    btf__add_field(b, "c", color, 32, 0);
    btf__add_field(b, "name", name6, 64, 0);
    btf__add_field(b, "pad", u8, 112, 0);
    name16 = btf__add_array(b, u32, chr, 4);
    (void)u64;
  }

  std::string Json(int type, const void* data, size_t size) const {
    std::string out;
    JsonWriter w(&out);
    BtfDecoder(btf.get()).Write(w, static_cast<uint32_t>(type), ByteView(static_cast<const uint8_t*>(data), size));
    return out;
  }
};

}  // namespace

TEST_CASE("BTF decoding of Kmesh's tuple nests the anonymous union under \"\", as bpftool does") {
  Types t;
  uint8_t key[36] = {0x0a, 0xf4, 0x01, 0x05, 0x0a, 0xf4, 0x01, 0x07, 0x40, 0x9c, 0x92, 0x4a};
  const std::string j = t.Json(t.tuple, key, sizeof key);
  CHECK_THAT(j, Catch::StartsWith("{\"\":{\"ipv4\":{\"saddr\":84014090,\"daddr\":117568522,\"sport\":40000,"
                                   "\"dport\":19090},\"ipv6\":{\"saddr\":[84014090,117568522,1251122240,0],"));
  CHECK(BtfDecoder(t.btf.get()).TypeName(static_cast<uint32_t>(t.tuple)) == "struct km_tuple");
  CHECK(BtfDecoder(t.btf.get()).SizeOf(static_cast<uint32_t>(t.tuple)) == 36);
}

TEST_CASE("BTF decoding like bpftool: arrays, bitfields as hex, bools, enums, char arrays, 128-bit ints") {
  Types t;
  const uint32_t ids[4] = {0x442a2c3d, 2, 0, 0};
  CHECK(t.Json(t.policies, ids, sizeof ids) == "{\"policy_ids\":[1143614525,2,0,0]}");

  uint8_t f[16] = {};
  f[0] = 0x05 | (0x1f << 3);  // a = 5, b = 31
  f[1] = 0x0e;                // neg = -2 (4-bit two's complement 1110)
  f[2] = 1;                   // on
  f[4] = 7;                   // GREEN
  std::memcpy(&f[8], "kme2e", 6);
  f[14] = 0xff;
  CHECK(t.Json(t.flags, f, sizeof f) ==
        "{\"a\":\"0x5\",\"b\":\"0x1f\",\"neg\":\"0xe\",\"on\":true,\"c\":\"GREEN\",\"name\":\"kme2e\",\"pad\":255}");

  f[4] = 3;                        // not an enumerator: the number
  std::memcpy(&f[8], "\x01\x02xx\x00\x00", 6);  // not text: the bytes
  CHECK(t.Json(t.flags, f, sizeof f) ==
        "{\"a\":\"0x5\",\"b\":\"0x1f\",\"neg\":\"0xe\",\"on\":true,\"c\":3,\"name\":[1,2,120,120,0,0],\"pad\":255}");

  uint8_t big[16] = {};
  big[0] = 0x01;
  big[15] = 0x80;
  CHECK(t.Json(t.u128, big, sizeof big) == "\"0x80000000000000000000000000000001\"");
}

TEST_CASE("BTF decoding refuses data shorter than the type, naming both sizes") {
  Types t;
  uint8_t small[8] = {};
  CHECK_THROWS_WITH(t.Json(t.tuple, small, sizeof small),
                    Catch::Contains("8 bytes") && Catch::Contains("struct km_tuple, which is 36 bytes"));
  CHECK_THROWS_WITH(t.Json(9999, small, sizeof small), Catch::Contains("9999"));
}

TEST_CASE("the JSON writer prints raw bytes exactly like bpftool and escapes strings") {
  std::string out;
  JsonWriter w(&out);
  const uint8_t bytes[3] = {0x0a, 0xff, 0x00};
  w.BeginArray().BeginObject().Key("key").HexArray(ByteView(bytes, 3)).Key("value").HexArray(ByteView(bytes, 0));
  w.Key("s").String("a\"b\\c\n\x01").EndObject().Uint(7).Int(-3).Bool(false).Null().EndArray();
  CHECK(out == "[{\"key\":[\"0x0a\",\"0xff\",\"0x00\"],\"value\":[],\"s\":\"a\\\"b\\\\c\\n\\u0001\"},7,-3,false,null]");
}
