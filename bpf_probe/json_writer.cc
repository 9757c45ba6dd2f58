#include "bpf_probe/json_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>

#include "base/error.h"

namespace kmesh::bpf_probe {
namespace {

// "0x00".."0xff" with quotes, six characters each: the hot path of a raw dump.
struct HexTable {
  char text[256][6];
  HexTable() {
    static const char* kHex = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      text[i][0] = '"';
      text[i][1] = '0';
      text[i][2] = 'x';
      text[i][3] = kHex[i >> 4];
      text[i][4] = kHex[i & 15];
      text[i][5] = '"';
    }
  }
};
const HexTable kHexTable;

}  // namespace

JsonWriter::JsonWriter(int fd) : fd_(fd), buf_(own_) { own_.reserve(kFlushAt + 4096); }

JsonWriter::JsonWriter(std::string* out) : buf_(*out), start_(out->size()) {}

JsonWriter::~JsonWriter() {
  if (fd_ < 0) return;
  try {
    Flush();
  } catch (...) {
    // A destructor must not throw; callers who care call Flush() themselves.
  }
}

void JsonWriter::Flush() {
  if (fd_ < 0) return;
  size_t off = 0;
  while (off < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      buf_.clear();
      ThrowErrno("write JSON output", err);
    }
    off += static_cast<size_t>(n);
    flushed_ = true;
  }
  buf_.clear();
}

void JsonWriter::Discard() {
  buf_.resize(fd_ >= 0 ? 0 : start_);
  has_value_.clear();
  after_key_ = false;
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_value_.empty()) {
    if (has_value_.back()) Put(',');
    has_value_.back() = true;
  }
}

JsonWriter& JsonWriter::Open(char bracket) {
  BeforeValue();
  Put(bracket);
  has_value_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::Close(char bracket) {
  has_value_.pop_back();
  Put(bracket);
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view name) {
  BeforeValue();
  PutEscaped(name);
  Put(':');
  after_key_ = true;
  return *this;
}

void JsonWriter::PutEscaped(std::string_view s) {
  Put('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': Put("\\\""); break;
      case '\\': Put("\\\\"); break;
      case '\n': Put("\\n"); break;
      case '\t': Put("\\t"); break;
      case '\r': Put("\\r"); break;
      default:
        if (u < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", u);
          Put(esc);
        } else {
          Put(c);
        }
    }
  }
  Put('"');
}

JsonWriter& JsonWriter::String(std::string_view s) {
  BeforeValue();
  PutEscaped(s);
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t v) {
  BeforeValue();
  char tmp[24];
  int n = std::snprintf(tmp, sizeof tmp, "%llu", static_cast<unsigned long long>(v));
  Put(std::string_view(tmp, static_cast<size_t>(n)));
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t v) {
  BeforeValue();
  char tmp[24];
  int n = std::snprintf(tmp, sizeof tmp, "%lld", static_cast<long long>(v));
  Put(std::string_view(tmp, static_cast<size_t>(n)));
  return *this;
}

JsonWriter& JsonWriter::Double(double v) {
  BeforeValue();
  if (!std::isfinite(v)) {
    Put("null");  // JSON has no NaN/Inf
    return *this;
  }
  char tmp[40];
  int n = std::snprintf(tmp, sizeof tmp, "%.17g", v);
  Put(std::string_view(tmp, static_cast<size_t>(n)));
  return *this;
}

JsonWriter& JsonWriter::Bool(bool v) {
  BeforeValue();
  Put(v ? "true" : "false");
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  Put("null");
  return *this;
}

JsonWriter& JsonWriter::HexArray(ByteView bytes) {
  BeforeValue();
  // One append for the whole array: 7 characters a byte.
  const size_t need = bytes.size == 0 ? 2 : bytes.size * 7 + 1;
  const size_t start = buf_.size();
  buf_.resize(start + need);
  char* p = &buf_[start];
  *p++ = '[';
  for (size_t i = 0; i < bytes.size; ++i) {
    if (i) *p++ = ',';
    const char* h = kHexTable.text[bytes[i]];
    p[0] = h[0]; p[1] = h[1]; p[2] = h[2]; p[3] = h[3]; p[4] = h[4]; p[5] = h[5];
    p += 6;
  }
  *p++ = ']';
  if (fd_ >= 0 && buf_.size() >= kFlushAt) Flush();
  return *this;
}

JsonWriter& JsonWriter::HexString(ByteView bytes) {
  return String(HexSpaced(bytes));
}

JsonWriter& JsonWriter::Newline() {
  Put('\n');
  return *this;
}

}  // namespace kmesh::bpf_probe
