// Opening ESP the way the capture does (OpenEsp): rfc4106(gcm(aes)) with a 36-byte key (AES-256 key, then
// the 4-byte salt), AAD = SPI and sequence number, nonce = salt and the packet's IV, 16-byte ICV, RFC 4303
// trailer. The packet here is sealed with OpenSSL's one-shot EVP_CipherInit path directly from the RFC's
// layout; the suite cross-checks OpenEsp against the kernel's own ESP in every IPsec case.
#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "capture/capture.h"

using kmesh::capture::OpenEsp;
using kmesh::ipsec::KeyMaterial;

namespace {

const KeyMaterial kKey = KeyMaterial::FromHex(
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "cafebabe");

// An IPv4 + TCP packet 10.244.1.5:40000 -> 10.244.2.7:8000 carrying `payload`.
std::vector<uint8_t> Inner(const std::string& payload) {
  std::vector<uint8_t> p(40 + payload.size(), 0);
  p[0] = 0x45;
  p[2] = static_cast<uint8_t>(p.size() >> 8);
  p[3] = static_cast<uint8_t>(p.size());
  p[8] = 64;
  p[9] = 6;
  const uint8_t src[4] = {10, 244, 1, 5}, dst[4] = {10, 244, 2, 7};
  std::memcpy(&p[12], src, 4);
  std::memcpy(&p[16], dst, 4);
  p[20] = 40000 >> 8;
  p[21] = 40000 & 0xff;
  p[22] = 8000 >> 8;
  p[23] = 8000 & 0xff;
  p[32] = 5 << 4;  // data offset
  p[33] = 0x18;    // PSH ACK
  std::memcpy(&p[40], payload.data(), payload.size());
  return p;
}

// ESP header, IV, ciphertext of (inner, padding 1..n, pad length, next header 4), ICV.
std::vector<uint8_t> Seal(const std::vector<uint8_t>& inner, uint32_t spi, uint32_t seq,
                          const KeyMaterial& key) {
  std::vector<uint8_t> plain = inner;
  size_t pad = (4 - (plain.size() + 2) % 4) % 4;
  for (size_t i = 1; i <= pad; ++i) plain.push_back(static_cast<uint8_t>(i));
  plain.push_back(static_cast<uint8_t>(pad));
  plain.push_back(4);  // IPv4 in tunnel mode
  const uint8_t iv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint8_t> out = {static_cast<uint8_t>(spi >> 24), static_cast<uint8_t>(spi >> 16),
                              static_cast<uint8_t>(spi >> 8),  static_cast<uint8_t>(spi),
                              static_cast<uint8_t>(seq >> 24), static_cast<uint8_t>(seq >> 16),
                              static_cast<uint8_t>(seq >> 8),  static_cast<uint8_t>(seq)};
  out.insert(out.end(), iv, iv + 8);
  uint8_t nonce[12];
  std::memcpy(nonce, key.bytes().data() + 32, 4);
  std::memcpy(nonce + 4, iv, 8);
  std::vector<uint8_t> ct(plain.size() + 16);
  int n = 0, m = 0;
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.bytes().data(), nonce) == 1);
  REQUIRE(EVP_EncryptUpdate(ctx, nullptr, &n, out.data(), 8) == 1);
  REQUIRE(EVP_EncryptUpdate(ctx, ct.data(), &n, plain.data(), static_cast<int>(plain.size())) == 1);
  REQUIRE(EVP_EncryptFinal_ex(ctx, ct.data() + n, &m) == 1);
  uint8_t tag[16];
  REQUIRE(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1);
  EVP_CIPHER_CTX_free(ctx);
  out.insert(out.end(), ct.begin(), ct.begin() + n + m);
  out.insert(out.end(), tag, tag + 16);
  return out;
}

}  // namespace

TEST_CASE("OpenEsp returns the inner packet of an rfc4106(gcm(aes)) ESP packet, trailer removed") {
  const auto inner = Inner("GET /anything/kmesh-e2e-marker-42001 HTTP/1.1\r\n");
  const auto esp = Seal(inner, 2, 17, kKey);
  const auto opened = OpenEsp(esp.data(), esp.size(), kKey);
  REQUIRE(opened.has_value());
  CHECK(*opened == inner);
}

TEST_CASE(
    "OpenEsp refuses what does not authenticate: another key, a flipped bit, the AAD changed, short input") {
  const auto esp = Seal(Inner("payload"), 2, 17, kKey);
  auto other = kKey.bytes();
  other[0] ^= 1;
  CHECK_FALSE(OpenEsp(esp.data(), esp.size(), KeyMaterial(other)).has_value());
  auto salt = kKey.bytes();
  salt[35] ^= 1;  // the salt is part of the nonce
  CHECK_FALSE(OpenEsp(esp.data(), esp.size(), KeyMaterial(salt)).has_value());
  auto flipped = esp;
  flipped[20] ^= 0x80;
  CHECK_FALSE(OpenEsp(flipped.data(), flipped.size(), kKey).has_value());
  auto seq = esp;
  seq[7] ^= 1;  // the sequence number is authenticated
  CHECK_FALSE(OpenEsp(seq.data(), seq.size(), kKey).has_value());
  CHECK_FALSE(OpenEsp(esp.data(), 20, kKey).has_value());
  CHECK_FALSE(OpenEsp(esp.data(), esp.size(), KeyMaterial(std::vector<uint8_t>(32, 1))).has_value());
}
