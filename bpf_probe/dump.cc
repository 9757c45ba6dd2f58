#include "bpf_probe/dump.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <deque>
#include <cerrno>
#include <string>
#include <unordered_set>

#include "base/error.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::bpf_probe {
namespace {

constexpr int kEnotsupp = 524;  // the kernel's ENOTSUPP, which leaks to user space from bpf(2)

bool BatchCandidate(uint32_t type) {
  switch (type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      return true;
    default:
      return false;
  }
}

// Returns false when the kernel has no batch operation for this map (caller falls back).
bool BatchWalk(const Map& map, const RecordFn& on_record, const DumpOptions& opts, DumpStats& stats) {
  const MapInfo& info = map.info();
  const size_t ksize = info.key_size;
  const size_t vsize = map.LookupValueSize();
  uint32_t want = std::max<uint32_t>(1, std::min(opts.batch_entries, std::max<uint32_t>(1, info.max_entries)));
  Bytes keys(want * ksize), values(want * vsize);
  // The batch cursor is map-specific: a bucket index for hashes, a key for arrays.
  Bytes in_batch(std::max<size_t>(ksize, 8)), out_batch(std::max<size_t>(ksize, 8));
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, bopts);
  while (true) {
    __u32 count = want;
    int rc = bpf_map_lookup_batch(map.fd(), first ? nullptr : in_batch.data(), out_batch.data(), keys.data(),
                                  values.data(), &count, &bopts);
    const int err = rc != 0 ? errno : 0;
    if (rc != 0 && err == ENOSPC && count == 0) {
      // One hash bucket holds more entries than we asked for: ask for more and retry the same cursor.
      want *= 2;
      keys.resize(want * ksize);
      values.resize(want * vsize);
      continue;
    }
    if (rc != 0 && err != ENOENT) {
      if (first && (err == EINVAL || err == ENOTSUP || err == kEnotsupp)) return false;
      ThrowBpf("batch lookup in " + info.Describe(), err, BpfNeeds::kBpf);
    }
    for (__u32 i = 0; i < count; ++i) {
      on_record(ByteView(keys.data() + i * ksize, ksize), ByteView(values.data() + i * vsize, vsize));
      ++stats.records;
    }
    if (err == ENOENT) break;  // that was the last batch
    first = false;
    std::swap(in_batch, out_batch);
  }
  stats.batched = true;
  return true;
}

void KeyWalk(const Map& map, const RecordFn& on_record, const DumpOptions& opts, DumpStats& stats) {
  const MapInfo& info = map.info();
  const size_t ksize = info.key_size;
  Bytes cur(ksize), next(ksize), value(map.LookupValueSize());
  std::unordered_set<std::string> seen;  // keys reported (or vanished): never report one twice
  std::deque<Bytes> trail;                // the last few keys reported, to resume from after a restart
  constexpr size_t kTrail = 8;
  bool have_cur = false;
  bool rewalking = false;  // between a restart and the first key not yet seen
  // Each pass over the map is at most max_entries + 1 steps; restarts are bounded, so the walk is too.
  const uint64_t max_steps = (static_cast<uint64_t>(info.max_entries) + 1) * (opts.max_restarts + 2);
  for (uint64_t steps = 0;; ++steps) {
    if (steps > max_steps) {
      stats.complete = false;
      return;
    }
    if (bpf_map_get_next_key(map.fd(), have_cur ? cur.data() : nullptr, next.data()) != 0) {
      if (errno == ENOENT) return;  // past the last key
      ThrowBpf("walk the keys of " + info.Describe(), errno, BpfNeeds::kBpf);
    }
    std::string k(reinterpret_cast<const char*>(next.data()), ksize);
    if (seen.count(k)) {
      // The kernel only hands back a key we already had when our current key was deleted and it
      // started over from the first key. Resume from the newest key of ours that still exists rather
      // than walking everything again.
      if (!rewalking) {
        rewalking = true;
        if (++stats.restarts > opts.max_restarts) {
          stats.complete = false;
          return;
        }
        bool resumed = false;
        for (auto it = trail.rbegin(); it != trail.rend() && !resumed; ++it) {
          if (bpf_map_lookup_elem(map.fd(), it->data(), value.data()) == 0) {
            cur = *it;
            resumed = true;
          }
        }
        if (resumed) continue;
      }
    } else {
      rewalking = false;
      seen.insert(std::move(k));
      if (bpf_map_lookup_elem(map.fd(), next.data(), value.data()) == 0) {
        on_record(ByteView(next), ByteView(value));
        ++stats.records;
        trail.push_back(next);
        if (trail.size() > kTrail) trail.pop_front();
      } else if (errno == ENOENT) {
        ++stats.vanished;  // deleted between get_next_key and lookup; for arrays: an empty slot
      } else {
        ThrowBpf("lookup in " + info.Describe(), errno, BpfNeeds::kBpf);
      }
    }
    std::swap(cur, next);
    have_cur = true;
  }
}

}  // namespace

std::string DumpStats::Describe() const {
  std::string s = std::to_string(records) + " records (" + (batched ? "batched" : "key walk");
  if (restarts) s += ", " + std::to_string(restarts) + " restarts";
  if (vanished) s += ", " + std::to_string(vanished) + " vanished";
  s += ")";
  if (!complete) s += "; INCOMPLETE: the map changed faster than it could be walked";
  return s;
}

DumpStats DumpMap(const Map& map, const RecordFn& on_record, const DumpOptions& opts) {
  if (const std::string why = map.info().NotWalkableReason(); !why.empty()) {
    throw Error("cannot dump " + map.info().Describe() + ": " + why);
  }
  DumpStats stats;
  if (opts.use_batch && BatchCandidate(map.info().type) && BatchWalk(map, on_record, opts, stats)) return stats;
  KeyWalk(map, on_record, opts, stats);
  return stats;
}

}  // namespace kmesh::bpf_probe
