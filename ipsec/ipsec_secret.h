// IPsec key material as the harness handles it: kept private, shown as a fingerprint, and Kmesh's secret
// (kmeshctl's `kmesh-ipsec` Secret, data key `ipSec`; kmesh-facts.md §3.1) parsed with errors that name
// the field. Shared by the lab (which writes the secret) and the kube env (which reads it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kmesh::ipsec {

// Bytes of a key. Never printed raw: ForDisplay() gives the fingerprint unless a person asked for the raw
// key with KMESH_E2E_REVEAL_KEYS=1.
class KeyMaterial {
 public:
  KeyMaterial() = default;
  explicit KeyMaterial(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  static KeyMaterial FromHex(const std::string& hex);  // throws kmesh::Error on a malformed string

  // The raw bytes, for derivation and for programming the kernel; never for output.
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }

  // First 8 bytes of SHA-256 of the key, in hex ("" for an empty key).
  std::string Fingerprint() const;
  // "sha256:<fingerprint>" or, with KMESH_E2E_REVEAL_KEYS=1, "0x<raw hex>".
  std::string ForDisplay() const;
  // Raw hex, for the few places that must hand the key to a tool (ip xfrm state add).
  std::string RevealHex() const;

  bool operator==(const KeyMaterial& o) const { return bytes_ == o.bytes_; }
  bool operator!=(const KeyMaterial& o) const { return bytes_ != o.bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// True when KMESH_E2E_REVEAL_KEYS=1.
bool RevealKeys();
std::string Base64Encode(const std::vector<uint8_t>& bytes);
// Throws kmesh::Error naming `what` when the text is not valid base64.
std::vector<uint8_t> Base64Decode(const std::string& text, const std::string& what);

// kmeshctl's secret: {"spi":N,"aeadKeyName":"rfc4106(gcm(aes))","aeadKey":"<base64 of 36 bytes>","length":128}.
struct IpsecSecret {
  static constexpr const char* kAeadName = "rfc4106(gcm(aes))";
  static constexpr size_t kKeyBytes = 36;  // 32-byte AES-256 key + 4-byte salt
  static constexpr int kIcvBits = 128;

  uint32_t spi = 0;
  std::string aead_key_name = kAeadName;
  KeyMaterial aead_key;
  int length = kIcvBits;  // ICV length in bits

  // Parses the JSON text; `source` (a file name, "secret kmesh-system/kmesh-ipsec", ...) appears in errors,
  // which name the field and what was expected. Enforces what Kmesh enforces: spi >= 1, a name starting
  // with "rfc", a 36-byte key.
  static IpsecSecret Parse(const std::string& json_text, const std::string& source);
  // The same JSON kmeshctl writes (field order and all); carries the raw key, so it is for the lab only.
  std::string Serialize() const;
  // Evidence form: the key as ForDisplay().
  nlohmann::json ToJson() const;
};

}  // namespace kmesh::ipsec
