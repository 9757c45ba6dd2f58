// A streaming JSON writer: values go straight into a buffer that is flushed to a file descriptor (or
// appended to a string), so dumping a map of 100,000 entries never holds the whole document in memory.
// Compact output like `bpftool -j`; byte arrays in bpftool's form ["0x0a","0xf4"].
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bpf_probe/bytes.h"

namespace kmesh::bpf_probe {

class JsonWriter {
 public:
  // Writes to `fd` (not owned), flushing whenever the buffer passes 64 KiB and on Flush()/destruction.
  explicit JsonWriter(int fd);
  // Appends to `*out`.
  explicit JsonWriter(std::string* out);
  ~JsonWriter();
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  // Object member name; the next value call is its value.
  JsonWriter& Key(std::string_view name);
  JsonWriter& String(std::string_view s);
  JsonWriter& Uint(uint64_t v);
  JsonWriter& Int(int64_t v);
  JsonWriter& Double(double v);
  JsonWriter& Bool(bool v);
  JsonWriter& Null();
  // ["0x0a","0xf4",...], exactly as bpftool prints raw keys and values.
  JsonWriter& HexArray(ByteView bytes);
  // "0a f4 01 05" as one JSON string.
  JsonWriter& HexString(ByteView bytes);
  // A newline outside any value (between documents, or at the end like bpftool).
  JsonWriter& Newline();

  // Writes the buffer out; throws kmesh::Error when the descriptor refuses it.
  void Flush();
  // Whether anything has reached the descriptor yet (until then, Discard() can take the document back).
  bool flushed() const { return flushed_; }
  // Drops what is buffered and starts a new document (e.g. an error object instead of a dump that failed
  // before its first flush).
  void Discard();

 private:
  void BeforeValue();
  JsonWriter& Open(char bracket);
  JsonWriter& Close(char bracket);
  void Put(std::string_view s) {
    buf_.append(s.data(), s.size());
    if (fd_ >= 0 && buf_.size() >= kFlushAt) Flush();
  }
  void Put(char c) {
    buf_.push_back(c);
    if (fd_ >= 0 && buf_.size() >= kFlushAt) Flush();
  }
  void PutEscaped(std::string_view s);

  static constexpr size_t kFlushAt = 64 * 1024;
  int fd_ = -1;
  std::string own_;
  std::string& buf_;
  // One entry per open container: true once it holds a value (so the next one needs a comma).
  std::vector<bool> has_value_;
  bool after_key_ = false;
  bool flushed_ = false;
  size_t start_ = 0;  // where this writer's document begins in the caller's string
};

}  // namespace kmesh::bpf_probe
