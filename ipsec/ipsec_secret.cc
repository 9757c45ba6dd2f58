#include "ipsec/ipsec_secret.h"

#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "base/hex.h"

namespace kmesh::ipsec {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int B64Value(char c) {
  const char* p = std::strchr(kB64, c);
  return (c != '\0' && p != nullptr) ? static_cast<int>(p - kB64) : -1;
}

std::string TypeName(const nlohmann::json& v) { return v.type_name(); }

}  // namespace

bool RevealKeys() {
  const char* v = std::getenv("KMESH_E2E_REVEAL_KEYS");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

KeyMaterial KeyMaterial::FromHex(const std::string& text) {
  const std::string hex = text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0 ? text.substr(2) : text;
  size_t bad = 0;
  if (auto bytes = BytesFromHex(hex, &bad)) return KeyMaterial(std::move(*bytes));
  if (bad == hex.size())
    throw Error("key: expected an even number of hex digits, found " + std::to_string(hex.size()));
  bad &= ~size_t{1};
  throw Error("key: expected hex digits, found '" + hex.substr(bad, 2) + "' at offset " + std::to_string(bad));
}

std::string KeyMaterial::Fingerprint() const {
  if (bytes_.empty()) return "";
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes_.data(), bytes_.size(), digest);
  return HexBytes(digest, 8);
}

std::string KeyMaterial::ForDisplay() const {
  if (bytes_.empty()) return "(none)";
  if (RevealKeys()) return "0x" + HexBytes(bytes_.data(), bytes_.size());
  return "sha256:" + Fingerprint();
}

std::string KeyMaterial::RevealHex() const { return HexBytes(bytes_.data(), bytes_.size()); }

std::string Base64Encode(const std::vector<uint8_t>& in) {
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = in[i] << 16 | in[i + 1] << 8 | in[i + 2];
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += kB64[v >> 6 & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = in[i] << 16;
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = in[i] << 16 | in[i + 1] << 8;
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += kB64[v >> 6 & 63];
    out += '=';
  }
  return out;
}

std::vector<uint8_t> Base64Decode(const std::string& text, const std::string& what) {
  if (text.size() % 4 != 0) {
    throw Error(what + ": expected base64 (a multiple of 4 characters), found " +
                std::to_string(text.size()) + " characters");
  }
  std::vector<uint8_t> out;
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      v[k] = pad > 0 ? -1 : B64Value(c);
      if (v[k] < 0) {
        throw Error(what + ": expected base64, found '" + std::string(1, c) + "' at offset " +
                    std::to_string(i + k));
      }
    }
    const uint32_t n = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
    out.push_back(n >> 16 & 0xff);
    if (pad < 2) out.push_back(n >> 8 & 0xff);
    if (pad < 1) out.push_back(n & 0xff);
  }
  return out;
}

IpsecSecret IpsecSecret::Parse(const std::string& text, const std::string& source) {
  const std::string where = "IPsec secret (" + source + ")";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(where + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": expected a JSON object, found " + TypeName(j));
  auto field = [&](const char* name) -> const nlohmann::json& {
    auto it = j.find(name);
    if (it == j.end()) {
      throw Error(where + ": field \"" + name +
                  "\" is missing (expected {\"spi\",\"aeadKeyName\",\"aeadKey\",\"length\"})");
    }
    return *it;
  };
  IpsecSecret s;
  const auto& spi = field("spi");
  if (!spi.is_number_integer() || spi.get<int64_t>() < 1 || spi.get<int64_t>() > 0xffffffffLL) {
    throw Error(where + ": field \"spi\": expected an integer from 1 to 4294967295, found " +
                spi.dump());
  }
  s.spi = static_cast<uint32_t>(spi.get<int64_t>());
  const auto& name = field("aeadKeyName");
  if (!name.is_string()) {
    throw Error(where + ": field \"aeadKeyName\": expected a string, found " + TypeName(name));
  }
  s.aead_key_name = name.get<std::string>();
  if (s.aead_key_name.rfind("rfc", 0) != 0) {
    // Kmesh's handler refuses any name that does not start with "rfc".
    throw Error(where + ": field \"aeadKeyName\": expected an RFC AEAD name like \"" + kAeadName +
                "\", found \"" + s.aead_key_name + "\"");
  }
  const auto& key = field("aeadKey");
  if (!key.is_string()) {
    throw Error(where + ": field \"aeadKey\": expected a base64 string, found " + TypeName(key));
  }
  s.aead_key = KeyMaterial(Base64Decode(key.get<std::string>(), where + ": field \"aeadKey\""));
  if (s.aead_key.size() != kKeyBytes) {
    throw Error(where + ": field \"aeadKey\": expected " + std::to_string(kKeyBytes) +
                " bytes (32-byte AES key + 4-byte salt), found " + std::to_string(s.aead_key.size()));
  }
  const auto& length = field("length");
  if (!length.is_number_integer() || length.get<int64_t>() <= 0) {
    throw Error(where + ": field \"length\": expected a positive integer (ICV bits, 128), found " +
                length.dump());
  }
  s.length = static_cast<int>(length.get<int64_t>());
  return s;
}

std::string IpsecSecret::Serialize() const {
  // Built by hand to keep kmeshctl's field order (Go marshals struct fields in declaration order).
  return "{\"spi\":" + std::to_string(spi) + ",\"aeadKeyName\":" + nlohmann::json(aead_key_name).dump() +
         ",\"aeadKey\":\"" + Base64Encode(aead_key.bytes()) + "\",\"length\":" + std::to_string(length) +
         "}";
}

nlohmann::json IpsecSecret::ToJson() const {
  return {{"spi", spi}, {"aeadKeyName", aead_key_name}, {"aeadKey", aead_key.ForDisplay()},
          {"length", length}};
}

}  // namespace kmesh::ipsec
