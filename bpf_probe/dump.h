// Walking every entry of a map, safely while the map changes under us.
//
// Where the kernel has it (hash and array kinds), the walk uses BPF_MAP_LOOKUP_BATCH: the kernel hands
// out whole hash buckets at a time under the bucket lock, so entries added or deleted during the walk
// cause no duplicates and no restarts. Otherwise (or when asked) it falls back to BPF_MAP_GET_NEXT_KEY,
// where a deleted current key makes the kernel start over from the first key: the walk then remembers
// the keys it has already reported (no duplicates) and gives up after a bounded number of restarts,
// saying so in DumpStats (no endless loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "bpf_probe/bytes.h"
#include "bpf_probe/maps.h"

namespace kmesh::bpf_probe {

struct DumpOptions {
  bool use_batch = true;           // false forces the get_next_key walk
  uint32_t batch_entries = 1024;   // entries asked for per batch call (grown when a bucket is larger)
  uint32_t max_restarts = 1000;    // get_next_key walk: restarts tolerated before giving up (each is cheap:
                                   // the walk resumes from a recent key that still exists)
};

struct DumpStats {
  uint64_t records = 0;        // records reported
  bool batched = false;        // BPF_MAP_LOOKUP_BATCH was used
  uint32_t restarts = 0;       // get_next_key walk: times the kernel started over
  uint64_t vanished = 0;       // keys that disappeared between listing and lookup (not reported)
  bool complete = true;        // false when the walk gave up (too many restarts); records are partial
  // "1000 records (batched)" / "998 records (key walk, 3 restarts, 2 vanished)".
  std::string Describe() const;
};

// Called once per key present: `value` holds LookupValueSize() bytes (every CPU's value for per-CPU maps).
using RecordFn = std::function<void(ByteView key, ByteView value)>;

// Walks `map`, calling `on_record` once per key. Maps without keys to walk (ringbuf, queue, stack, bloom
// filter, struct_ops) throw kmesh::Error saying why.
DumpStats DumpMap(const Map& map, const RecordFn& on_record, const DumpOptions& opts = {});

}  // namespace kmesh::bpf_probe
