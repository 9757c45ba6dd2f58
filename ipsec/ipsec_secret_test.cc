#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/runfiles.h"
#include "ipsec/ipsec_secret.h"

using kmesh::ipsec::IpsecSecret;
using kmesh::ipsec::KeyMaterial;

namespace {

std::string ReadData(const std::string& rel) {
  std::ifstream in(kmesh::Runfile(rel));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kKeyB64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj";  // bytes 0x00..0x23

}  // namespace

TEST_CASE("a kmeshctl secret parses, serializes back byte for byte, and shows its key only as a fingerprint") {
  const std::string text = ReadData("testdata/ipsec/secret_spi1.json");
  IpsecSecret s = IpsecSecret::Parse(text, "secret_spi1.json");
  CHECK(s.spi == 1);
  CHECK(s.aead_key_name == "rfc4106(gcm(aes))");
  CHECK(s.length == 128);
  REQUIRE(s.aead_key.size() == 36);
  CHECK(s.aead_key.bytes()[0] == 0x00);
  CHECK(s.aead_key.bytes()[35] == 0x23);
  CHECK(s.Serialize() == text);
  // sha256 of bytes 0x00..0x23, first 8 bytes (python3 -c "hashlib.sha256(bytes(range(36)))").
  CHECK(s.aead_key.Fingerprint() == "5d7e2d9b1dcbc85e");
  unsetenv("KMESH_E2E_REVEAL_KEYS");
  const std::string evidence = s.ToJson().dump();
  CHECK_THAT(evidence, Catch::Contains("sha256:5d7e2d9b1dcbc85e"));
  CHECK_THAT(evidence, !Catch::Contains(kKeyB64));
  CHECK_THAT(evidence, !Catch::Contains("000102030405"));
  setenv("KMESH_E2E_REVEAL_KEYS", "1", 1);
  CHECK(s.aead_key.ForDisplay() == "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223");
  unsetenv("KMESH_E2E_REVEAL_KEYS");
}

TEST_CASE("base64 round-trips every padding length") {
  for (size_t n = 0; n < 8; ++n) {
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(0xf0 + i));
    INFO("length " << n);
    CHECK(kmesh::ipsec::Base64Decode(kmesh::ipsec::Base64Encode(bytes), "test") == bytes);
  }
  CHECK(kmesh::ipsec::Base64Encode({'M', 'a'}) == "TWE=");
}

TEST_CASE("a bad secret is an error that names the field and what was expected") {
  const std::string key = std::string("\"") + kKeyB64 + "\"";
  struct Row {
    std::string json;
    std::vector<std::string> says;
  };
  const std::vector<Row> rows = {
      {"{not json", {"not valid JSON", "src.json"}},
      {"[1,2]", {"expected a JSON object", "array"}},
      {"{\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":" + key + ",\"length\":128}", {"\"spi\" is missing"}},
      {"{\"spi\":0,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":" + key + ",\"length\":128}",
       {"field \"spi\"", "from 1 to 4294967295", "found 0"}},
      {"{\"spi\":\"1\",\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":" + key + ",\"length\":128}", {"field \"spi\"", "found \"1\""}},
      {"{\"spi\":1,\"aeadKeyName\":\"gcm(aes)\",\"aeadKey\":" + key + ",\"length\":128}",
       {"field \"aeadKeyName\"", "expected an RFC AEAD name", "found \"gcm(aes)\""}},
      {"{\"spi\":1,\"aeadKeyName\":7,\"aeadKey\":" + key + ",\"length\":128}", {"field \"aeadKeyName\"", "expected a string", "number"}},
      {"{\"spi\":1,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":\"AAEC\",\"length\":128}",
       {"field \"aeadKey\"", "expected 36 bytes", "found 3"}},
      {"{\"spi\":1,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":\"AA*C\",\"length\":128}",
       {"field \"aeadKey\"", "expected base64", "'*' at offset 2"}},
      {"{\"spi\":1,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":[1],\"length\":128}", {"field \"aeadKey\"", "expected a base64 string"}},
      {"{\"spi\":1,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":" + key + "}", {"\"length\" is missing"}},
      {"{\"spi\":1,\"aeadKeyName\":\"rfc4106(gcm(aes))\",\"aeadKey\":" + key + ",\"length\":-1}", {"field \"length\"", "found -1"}},
  };
  for (const auto& row : rows) {
    INFO("secret " << row.json);
    try {
      IpsecSecret::Parse(row.json, "src.json");
      FAIL("accepted a bad secret");
    } catch (const kmesh::Error& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::Contains("IPsec secret (src.json)"));
      for (const auto& s : row.says) CHECK_THAT(what, Catch::Contains(s));
    }
  }
}

TEST_CASE("hex keys parse and refuse junk") {
  CHECK(KeyMaterial::FromHex("0x0aFF").bytes() == std::vector<uint8_t>{0x0a, 0xff});
  CHECK_THROWS_WITH(KeyMaterial::FromHex("abc"), Catch::Contains("even number of hex digits"));
  CHECK_THROWS_WITH(KeyMaterial::FromHex("zz"), Catch::Contains("'zz' at offset 0"));
}
