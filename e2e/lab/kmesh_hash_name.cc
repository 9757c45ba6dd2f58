#include "e2e/lab/kmesh_hash_name.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "bpf_probe/fnv.h"

namespace kmesh::lab {

KmeshHashName::KmeshHashName(std::string persist_path, HashFn hash)
    : path_(std::move(persist_path)), hash_(hash ? std::move(hash) : HashFn(bpf_probe::Fnv32a)) {
  if (path_.empty()) return;
  std::ifstream in(path_);
  if (!in) return;  // no file yet: an empty table, as Kmesh
  try {
    YAML::Node doc = YAML::LoadFile(path_);
    if (!doc.IsMap()) return;
    for (const auto& kv : doc) {
      const auto name = kv.first.as<std::string>();
      const auto num = kv.second.as<uint32_t>();
      str_to_num_[name] = num;
      num_to_str_[num] = name;
    }
  } catch (const YAML::Exception& e) {
    // Kmesh starts over with an empty table when the file does not parse (hash_name.go:45-47).
    str_to_num_.clear();
    num_to_str_.clear();
    last_error_ = path_ + ": " + e.what() + " (table started empty, as Kmesh does)";
  }
}

uint32_t KmeshHashName::Hash(const std::string& name) {
  if (auto it = str_to_num_.find(name); it != str_to_num_.end()) return it->second;
  uint32_t num = hash_(name);
  while (num_to_str_.count(num) != 0) ++num;  // linear probing; uint32_t wraps like Go's
  num_to_str_[num] = name;
  str_to_num_[name] = num;
  FlushDelta(name, num);
  return num;
}

std::optional<uint32_t> KmeshHashName::Find(const std::string& name) const {
  auto it = str_to_num_.find(name);
  if (it == str_to_num_.end()) return std::nullopt;
  return it->second;
}

void KmeshHashName::Delete(const std::string& name) {
  auto it = str_to_num_.find(name);
  if (it == str_to_num_.end()) return;
  num_to_str_.erase(it->second);
  str_to_num_.erase(it);
  Flush();
}

void KmeshHashName::FlushDelta(const std::string& name, uint32_t num) {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::app);
  out << name << ": " << num << "\n";
  if (!out) last_error_ = "append to " + path_ + ": " + std::strerror(errno);
}

void KmeshHashName::Flush() {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::trunc);
  if (!str_to_num_.empty()) {
    YAML::Emitter e;
    e << YAML::BeginMap;
    for (const auto& [name, num] : str_to_num_) e << YAML::Key << name << YAML::Value << num;
    e << YAML::EndMap;
    out << e.c_str() << "\n";
  }
  if (!out) last_error_ = "rewrite " + path_ + ": " + std::strerror(errno);
}

}  // namespace kmesh::lab
