// BTF-driven decoding of raw map keys and values into JSON, shaped like bpftool's btf_dumper
// (tools/bpf/bpftool/btf_dumper.c): the same JSON for the same BTF, so `formatted` reads like `bpftool -j
// map dump`. Ints as numbers (bitfields and odd widths as "0x.." strings, 128-bit ints too), enums by name
// (else the signed number), structs and unions by member name (an anonymous member under the name ""),
// char arrays that hold text as strings, pointers as numbers, typedefs and qualifiers followed, global
// data sections as {"<section>": [{"<var>": value}, ...]}. Raw bytes are the caller's to print beside it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "bpf_probe/bytes.h"
#include "bpf_probe/json_writer.h"

struct btf;

namespace kmesh::bpf_probe {

// A BTF object owned by us (btf__free on destruction).
class Btf {
 public:
  // The kernel's BTF object `btf_id` (a map's or program's btf_id). Needs CAP_SYS_ADMIN.
  static Btf LoadFromKernel(uint32_t btf_id);
  // Takes ownership of a libbpf btf (e.g. built with btf__new_empty() + btf__add_*() in tests).
  static Btf Adopt(struct btf* b);

  const struct btf* get() const { return btf_.get(); }
  struct btf* mutable_get() { return btf_.get(); }

 private:
  struct Free {
    void operator()(struct btf* b) const;
  };
  std::unique_ptr<struct btf, Free> btf_;
};

class BtfDecoder {
 public:
  // `btf` must outlive the decoder.
  explicit BtfDecoder(const struct btf* btf) : btf_(btf) {}

  // Size in bytes of `type_id`, following typedefs; throws kmesh::Error when it has none.
  size_t SizeOf(uint32_t type_id) const;
  // Readable type name: "struct km_tuple", "__u32", "unsigned int[4]".
  std::string TypeName(uint32_t type_id) const;
  // Writes `data` as one JSON value of type `type_id`. Throws kmesh::Error when `data` is shorter than
  // the type (naming both sizes) or the type id does not exist.
  void Write(JsonWriter& w, uint32_t type_id, ByteView data) const;

 private:
  void WriteValue(JsonWriter& w, uint32_t type_id, ByteView data, uint32_t bit_off, uint32_t bits,
                  int depth) const;
  void WriteMembers(JsonWriter& w, uint32_t type_id, ByteView data, uint32_t bit_off, int depth) const;
  const struct btf* btf_;
};

}  // namespace kmesh::bpf_probe
