// Kmesh's ids for names (pkg/utils/hash_name.go), one table per node daemon: a name's id is FNV-32a of
// the name, a collision moves on to id + 1 (wrapping at 2^32) until a free id is found (lines 92-119),
// and the table is persisted so a restarted daemon gives every name the id it had. Workload UIDs,
// services and "<namespace>/<name>" of policies share one table. Persistence follows Kmesh's: a new
// name is appended as a "name: id" line (flushDelta, lines 79-90), a deletion rewrites the file as YAML
// (flush, lines 65-77), a file that cannot be read starts an empty table (NewHashName, lines 39-54).
// Kmesh deletes only workload UIDs (workload_processor.go:316); policy names stay for the daemon's life.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace kmesh::lab {

class KmeshHashName {
 public:
  using HashFn = std::function<uint32_t(const std::string&)>;
  // `persist_path` plays Kmesh's /mnt/hash_name.yaml; "" keeps the table in memory only. `hash` is
  // FNV-32a (tests replace it to reach the wrap-around).
  explicit KmeshHashName(std::string persist_path, HashFn hash = nullptr);

  // The id of `name`, allocating it (and appending it to the file) when new.
  uint32_t Hash(const std::string& name);
  // The id `name` has, without allocating one.
  std::optional<uint32_t> Find(const std::string& name) const;
  // Forgets `name` (and rewrites the file) when present.
  void Delete(const std::string& name);

  const std::map<std::string, uint32_t>& names() const { return str_to_num_; }
  // Problems met while persisting (Kmesh only logs them, and so does this table): "" when none.
  const std::string& last_error() const { return last_error_; }

 private:
  void FlushDelta(const std::string& name, uint32_t num);
  void Flush();

  std::string path_;
  HashFn hash_;
  std::map<std::string, uint32_t> str_to_num_;
  std::map<uint32_t, std::string> num_to_str_;
  std::string last_error_;
};

}  // namespace kmesh::lab
