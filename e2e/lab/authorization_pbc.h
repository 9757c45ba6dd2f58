// The workload API Authorization in protobuf-c form (Kmesh's
// api/v2-c/workloadapi/security/authorization.pb-c.h), the form Kmesh's deserializer reads and writes:
// unpacking wire bytes as Kmesh's daemon does, and reading a message back into the typed value.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "e2e/lab/workload_authz.h"
#include "third_party/kmesh/deserializer/kmesh_deserializer.h"

namespace kmesh::lab {

// An Istio__Security__Authorization unpacked by protobuf-c from wire bytes, freed with
// istio__security__authorization__free_unpacked (pkg/cache/v2/maps/authz.go:46-65 does the same).
class UnpackedAuthorization {
 public:
  // Throws kmesh::Error when protobuf-c refuses the bytes (naming their size) or they are empty: Kmesh's
  // authorizationToClang returns a nil message for an empty encoding (authz.go:52-54), and
  // deserial_update_elem then fails with -EINVAL.
  static UnpackedAuthorization Unpack(const std::string& wire);
  ~UnpackedAuthorization();
  UnpackedAuthorization(UnpackedAuthorization&& o) noexcept : msg_(o.msg_) { o.msg_ = nullptr; }
  UnpackedAuthorization& operator=(UnpackedAuthorization&&) = delete;
  UnpackedAuthorization(const UnpackedAuthorization&) = delete;

  Istio__Security__Authorization* get() const { return msg_; }

 private:
  explicit UnpackedAuthorization(Istio__Security__Authorization* m) : msg_(m) {}
  Istio__Security__Authorization* msg_;
};

// The bytes of a `bytes` field. In a message unpacked from the wire that is data[0..len); in one that
// deserial_lookup_elem returned, `data` still holds the Kmesh outer key of the blob (the lookup converts
// strings, messages and repeated fields back to pointers, but not bytes: create_struct/field_query,
// deserialization_to_bpf_map.c:765-777), and the caller resolves it.
using BytesReader = std::function<std::vector<uint8_t>(const ProtobufCBinaryData&)>;

// Plain pointers (a message from protobuf-c's unpack).
std::vector<uint8_t> ReadBytesInPlace(const ProtobufCBinaryData& b);

// The typed value of `m`, reading bytes fields with `read_bytes`. A StringMatch without a match type
// (what "*" becomes on a Kmesh node) reads as kUnset.
workloadapi::Authorization FromProtobufC(const Istio__Security__Authorization& m,
                                         const BytesReader& read_bytes = ReadBytesInPlace);

}  // namespace kmesh::lab
