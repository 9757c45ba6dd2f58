#include "bpf_probe/btf_json.h"

#include <bpf/btf.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::bpf_probe {
namespace {

constexpr int kMaxDepth = 32;  // guards against a malformed (cyclic) BTF blob

const btf_type* TypeOrThrow(const struct btf* b, uint32_t id) {
  const btf_type* t = btf__type_by_id(b, id);
  if (t == nullptr) throw Error("BTF type id " + std::to_string(id) + " does not exist in this BTF object");
  return t;
}

// Follows typedefs and qualifiers (const, volatile, restrict, type tags) to the type that has a shape.
uint32_t SkipModifiers(const struct btf* b, uint32_t id) {
  for (int i = 0; i < kMaxDepth; ++i) {
    const btf_type* t = TypeOrThrow(b, id);
    if (!btf_is_typedef(t) && !btf_is_mod(t) && !btf_is_type_tag(t)) return id;
    id = t->type;
  }
  throw Error("BTF type chain at id " + std::to_string(id) + " is too deep (cyclic?)");
}

// Reads `bits` bits starting `bit_off` bits into `data` (little-endian bit numbering, as on x86).
unsigned __int128 ReadBits(ByteView data, uint32_t bit_off, uint32_t bits) {
  unsigned __int128 v = 0;
  const uint32_t first = bit_off / 8;
  const uint32_t shift = bit_off % 8;
  const uint32_t nbytes = (shift + bits + 7) / 8;
  for (uint32_t i = 0; i < nbytes && i < 16 && first + i < data.size; ++i) {
    v |= static_cast<unsigned __int128>(data[first + i]) << (8 * i);
  }
  v >>= shift;
  if (bits < 128) v &= (static_cast<unsigned __int128>(1) << bits) - 1;
  return v;
}

std::string Hex128(unsigned __int128 v) {
  char buf[40];
  const auto hi = static_cast<unsigned long long>(v >> 64);
  const auto lo = static_cast<unsigned long long>(v);
  if (hi) std::snprintf(buf, sizeof buf, "0x%llx%016llx", hi, lo);
  else std::snprintf(buf, sizeof buf, "0x%llx", lo);
  return buf;
}

}  // namespace

void Btf::Free::operator()(struct btf* b) const { btf__free(b); }

Btf Btf::LoadFromKernel(uint32_t btf_id) {
  struct btf* b = btf__load_from_kernel_by_id(btf_id);
  if (b == nullptr) {
    ThrowBpf("load BTF object id " + std::to_string(btf_id) + " from the kernel", errno, BpfNeeds::kSysAdmin);
  }
  return Adopt(b);
}

Btf Btf::Adopt(struct btf* b) {
  Btf out;
  out.btf_.reset(b);
  return out;
}

size_t BtfDecoder::SizeOf(uint32_t type_id) const {
  TypeOrThrow(btf_, type_id);
  const __s64 size = btf__resolve_size(btf_, type_id);
  if (size < 0) throw Error("BTF type " + TypeName(type_id) + " (id " + std::to_string(type_id) + ") has no size");
  return static_cast<size_t>(size);
}

std::string BtfDecoder::TypeName(uint32_t type_id) const {
  if (type_id == 0) return "void";
  const btf_type* t = btf__type_by_id(btf_, type_id);
  if (t == nullptr) return "<bad type id " + std::to_string(type_id) + ">";
  const char* name = btf__name_by_offset(btf_, t->name_off);
  const std::string n = name && *name ? name : "(anon)";
  switch (btf_kind(t)) {
    case BTF_KIND_STRUCT: return "struct " + n;
    case BTF_KIND_UNION: return "union " + n;
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64: return "enum " + n;
    case BTF_KIND_PTR: return TypeName(t->type) + " *";
    case BTF_KIND_CONST: return "const " + TypeName(t->type);
    case BTF_KIND_VOLATILE: return "volatile " + TypeName(t->type);
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      return TypeName(a->type) + "[" + std::to_string(a->nelems) + "]";
    }
    default: return n;
  }
}

void BtfDecoder::Write(JsonWriter& w, uint32_t type_id, ByteView data) const {
  const size_t size = SizeOf(type_id);
  if (data.size < size) {
    throw Error("cannot decode " + std::to_string(data.size) + " bytes as " + TypeName(type_id) + ", which is " +
                std::to_string(size) + " bytes");
  }
  WriteValue(w, type_id, data, 0, 0, 0);
}

// Struct and union members, as bpftool's btf_dumper_struct writes them: every member under its name, an
// anonymous struct or union member under the name "" (not lifted into the parent), a bitfield member as
// btf_dumper_bitfield does.
void BtfDecoder::WriteMembers(JsonWriter& w, uint32_t type_id, ByteView data, uint32_t bit_off,
                              int depth) const {
  const btf_type* t = TypeOrThrow(btf_, type_id);
  const struct btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
    const uint32_t moff = bit_off + btf_member_bit_offset(t, i);
    const uint32_t mbits = btf_member_bitfield_size(t, i);
    const char* name = btf__name_by_offset(btf_, m->name_off);
    w.Key(name ? name : "");
    if (mbits != 0) {
      w.String(Hex128(ReadBits(data, moff, mbits)));
    } else {
      WriteValue(w, m->type, data, moff, 0, depth + 1);
    }
  }
}

// One value of type `type_id` at `bit_off` bits into `data`, dispatched like bpftool's btf_dumper_do_type
// (tools/bpf/bpftool/btf_dumper.c), so `formatted` reads the same as `bpftool -j map dump` for the same BTF
// (//tools/mapdump:mapdump_on_lab_test compares them map by map on a node running Kmesh's datapath).
void BtfDecoder::WriteValue(JsonWriter& w, uint32_t type_id, ByteView data, uint32_t bit_off, uint32_t,
                            int depth) const {
  if (depth > kMaxDepth) throw Error("BTF type nesting deeper than " + std::to_string(kMaxDepth) + " (cyclic?)");
  const btf_type* t = TypeOrThrow(btf_, type_id);
  const uint32_t byte_off = bit_off / 8;
  const uint32_t in_byte = bit_off % 8;

  switch (btf_kind(t)) {
    case BTF_KIND_INT: {
      const uint8_t enc = btf_int_encoding(t);
      const uint32_t nbits = btf_int_bits(t);
      const uint32_t extra = btf_int_offset(t);
      // Bitfields, ints at a bit offset and odd widths: hex strings (btf_dumper_int_bits).
      if (in_byte != 0 || extra != 0 || nbits % 8 != 0) {
        w.String(Hex128(ReadBits(data, bit_off + extra, nbits)));
        return;
      }
      const unsigned __int128 v = ReadBits(data, bit_off, nbits);
      if (nbits == 128) {
        w.String(Hex128(v));
        return;
      }
      const bool standard = nbits == 8 || nbits == 16 || nbits == 32 || nbits == 64;
      if (enc == BTF_INT_BOOL) {
        w.Bool(v != 0);
      } else if (enc == BTF_INT_CHAR) {
        const char c = static_cast<char>(v);
        if (std::isprint(static_cast<unsigned char>(c))) {
          w.String(std::string_view(&c, 1));
        } else {
          w.String(std::string(1, c));
        }
      } else if (!standard) {
        w.String(Hex128(v));
      } else if (enc & BTF_INT_SIGNED) {
        int64_t x = static_cast<int64_t>(static_cast<uint64_t>(v));
        if (nbits < 64 && (x >> (nbits - 1)) & 1) x |= static_cast<int64_t>(~0ULL << nbits);
        w.Int(x);
      } else {
        w.Uint(static_cast<uint64_t>(v));
      }
      return;
    }
    case BTF_KIND_PTR: {
      // bpftool -j prints the pointer value as a decimal number.
      uint64_t p = 0;
      std::memcpy(&p, data.data + byte_off, sizeof p);
      w.Uint(p);
      return;
    }
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      // bpftool's is_str_array: the element type with only const/volatile/restrict skipped (a typedef of
      // char is not text), one byte, a char; printable up to a NUL within the array.
      const btf_type* et = btf__type_by_id(btf_, a->type);
      for (int i = 0; et != nullptr && btf_is_mod(et) && i < kMaxDepth; ++i) et = btf__type_by_id(btf_, et->type);
      const bool chars = et != nullptr && btf_is_int(et) && et->size == 1 &&
                         (btf_int_encoding(et) == BTF_INT_CHAR ||
                          std::strcmp(btf__name_by_offset(btf_, et->name_off), "char") == 0);
      if (chars && a->nelems > 0) {
        const char* s = reinterpret_cast<const char*>(data.data + byte_off);
        size_t n = 0;
        while (n < a->nelems && s[n] != '\0' && s[n] > 0x1f && s[n] < 0x7f) ++n;
        if (n < a->nelems && s[n] == '\0') {
          w.String(std::string_view(s, n));
          return;
        }
      }
      const size_t esize = SizeOf(a->type);
      w.BeginArray();
      for (uint32_t i = 0; i < a->nelems; ++i) {
        WriteValue(w, a->type, data, (byte_off + static_cast<uint32_t>(i * esize)) * 8, 0, depth + 1);
      }
      w.EndArray();
      return;
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION:
      w.BeginObject();
      WriteMembers(w, type_id, data, byte_off * 8, depth);
      w.EndObject();
      return;
    case BTF_KIND_ENUM: {
      // Read signed by the enum's size and compared with the enumerators' signed values.
      int64_t v = 0;
      switch (t->size) {
        case 1: v = static_cast<int8_t>(data[byte_off]); break;
        case 2: { int16_t x; std::memcpy(&x, data.data + byte_off, 2); v = x; break; }
        case 4: { int32_t x; std::memcpy(&x, data.data + byte_off, 4); v = x; break; }
        case 8: { int64_t x; std::memcpy(&x, data.data + byte_off, 8); v = x; break; }
        default: w.String("<" + TypeName(type_id) + ">"); return;
      }
      for (uint16_t i = 0; i < btf_vlen(t); ++i) {
        if (v == btf_enum(t)[i].val) {
          w.String(btf__name_by_offset(btf_, btf_enum(t)[i].name_off));
          return;
        }
      }
      w.Int(v);
      return;
    }
    case BTF_KIND_ENUM64: {
      uint64_t v;
      std::memcpy(&v, data.data + byte_off, 8);
      for (uint16_t i = 0; i < btf_vlen(t); ++i) {
        if (v == btf_enum64_value(&btf_enum64(t)[i])) {
          w.String(btf__name_by_offset(btf_, btf_enum64(t)[i].name_off));
          return;
        }
      }
      w.Int(static_cast<int64_t>(v));
      return;
    }
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
    case BTF_KIND_TYPE_TAG:
      WriteValue(w, SkipModifiers(btf_, type_id), data, bit_off, 0, depth + 1);
      return;
    case BTF_KIND_FLOAT: {
      if (t->size == 4) {
        float f;
        std::memcpy(&f, data.data + byte_off, 4);
        w.Double(f);
      } else if (t->size == 8) {
        double d;
        std::memcpy(&d, data.data + byte_off, 8);
        w.Double(d);
      } else {
        w.HexString(data.sub(byte_off, t->size));
      }
      return;
    }
    case BTF_KIND_VAR:
      // {"name": value}, as btf_dumper_var.
      w.BeginObject().Key(btf__name_by_offset(btf_, t->name_off));
      WriteValue(w, t->type, data, bit_off, 0, depth + 1);
      w.EndObject();
      return;
    case BTF_KIND_DATASEC: {
      // A global-data map (.data/.rodata/.bss): {"<section>": [{"<var>": value}, ...]}, as btf_dumper_datasec.
      w.BeginObject().Key(btf__name_by_offset(btf_, t->name_off)).BeginArray();
      const struct btf_var_secinfo* v = btf_var_secinfos(t);
      for (uint16_t i = 0; i < btf_vlen(t); ++i, ++v) {
        if (v->offset + v->size > data.size) {
          w.Null();
          continue;
        }
        WriteValue(w, v->type, data, bit_off + v->offset * 8, 0, depth + 1);
      }
      w.EndArray().EndObject();
      return;
    }
    default:
      // FWD, FUNC and the like have no value representation; say what it was.
      w.String("<" + TypeName(type_id) + ">");
      return;
  }
}

}  // namespace kmesh::bpf_probe
