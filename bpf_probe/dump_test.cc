#include <catch2/catch.hpp>

#include <linux/bpf.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bpf_probe/dump.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/testing/test_datapath.h"

using namespace kmesh::bpf_probe;
using kmesh::bpf_probe::testing::CreateMap;
using kmesh::bpf_probe::testing::UniqueMapName;

namespace {

Bytes Key(uint32_t n) {
  Bytes k(KM_TUPLE_SIZE, 0);
  std::memcpy(k.data(), &n, 4);
  return k;
}

uint32_t KeyNumber(ByteView k) {
  uint32_t n;
  std::memcpy(&n, k.data, 4);
  return n;
}

constexpr uint32_t kStable = 3000;       // keys 0..2999 stay for the whole dump
constexpr uint32_t kChurnBase = 100000;  // keys from here are added and deleted while we dump
constexpr uint32_t kChurn = 3000;

}  // namespace

TEST_CASE("a dump of a map that changes under it: no crash, no endless loop, no duplicates, no lost entries") {
  struct Mode {
    const char* name;
    bool batch;
    uint32_t batch_entries;
  };
  const Mode kModes[] = {{"batched", true, 64}, {"key walk", false, 0}};
  for (const auto& mode : kModes) {
    CAPTURE(mode.name);
    Map m = CreateMap(BPF_MAP_TYPE_HASH, UniqueMapName("kmt"), KM_TUPLE_SIZE, 4, 16384, BPF_F_NO_PREALLOC);
    const Bytes value(4, 1);
    for (uint32_t i = 0; i < kStable; ++i) m.Update(Key(i), value);
    for (uint32_t i = 0; i < kChurn; ++i) m.Update(Key(kChurnBase + i), value);

    std::atomic<bool> stop{false};
    std::atomic<uint64_t> mutations{0};
    std::thread mutator([&] {
      std::mt19937 rng(42);
      while (!stop) {
        const uint32_t k = kChurnBase + rng() % kChurn;
        if (!m.Delete(Key(k))) m.Update(Key(k), value);
        ++mutations;
      }
    });
    // Let the mutator get going, then dump several times while it runs.
    while (mutations < 1000) std::this_thread::yield();
    DumpOptions opts;
    opts.use_batch = mode.batch;
    if (mode.batch_entries) opts.batch_entries = mode.batch_entries;
    int complete_rounds = 0;
    uint32_t restarts = 0;
    for (int round = 0; round < 5; ++round) {
      std::vector<uint32_t> seen;
      const uint64_t before = mutations;
      const DumpStats stats = DumpMap(m, [&](ByteView k, ByteView) { seen.push_back(KeyNumber(k)); }, opts);
      CAPTURE(round, stats.Describe(), mutations - before);
      CHECK(stats.batched == mode.batch);
      const std::set<uint32_t> unique(seen.begin(), seen.end());
      CHECK(unique.size() == seen.size());  // no duplicates
      CHECK(stats.records == seen.size());
      for (uint32_t n : unique) CHECK((n < kStable || (n >= kChurnBase && n < kChurnBase + kChurn)));
      restarts += stats.restarts;
      if (stats.complete) {
        ++complete_rounds;
        uint32_t stable_seen = 0;
        for (uint32_t n : unique) stable_seen += n < kStable;
        CHECK(stable_seen == kStable);  // every key that stayed was reported
      }
    }
    stop = true;
    mutator.join();
    INFO("restarts over all rounds: " << restarts);
    CHECK(mutations > 1000);     // the map really changed during the dumps
    CHECK(complete_rounds > 0);  // and the "nothing lost" check above really ran
    WARN(mode.name << ": " << complete_rounds << "/5 complete rounds, " << restarts << " restarts");
  }
}

TEST_CASE("the key walk gives up after a bounded number of restarts instead of looping") {
  Map m = CreateMap(BPF_MAP_TYPE_HASH, UniqueMapName("kmt"), 4, 4, 64);
  const Bytes v(4, 0);
  for (uint32_t i = 0; i < 32; ++i) m.Update(Bytes{static_cast<uint8_t>(i), 0, 0, 0}, v);
  // Deleting every key as soon as it is reported forces a restart at every step.
  DumpOptions opts;
  opts.use_batch = false;
  opts.max_restarts = 3;
  uint64_t calls = 0;
  const DumpStats stats = DumpMap(
      m,
      [&](ByteView k, ByteView) {
        ++calls;
        m.Delete(k);
        // ... and putting back a key reported earlier, so the walk keeps meeting keys it has seen.
        if (calls > 1) m.Update(Bytes{0, 0, 0, 0}, v);
      },
      opts);
  CHECK(stats.records == calls);
  CHECK(stats.records <= 32);
  CHECK(stats.restarts <= 4);
  INFO(stats.Describe());
  CHECK((stats.complete || stats.restarts > opts.max_restarts));
}

TEST_CASE("batch lookups cope with a batch smaller than one hash bucket, and arrays walk every slot") {
  Map h = CreateMap(BPF_MAP_TYPE_HASH, UniqueMapName("kmt"), 4, 4, 4096);
  for (uint32_t i = 0; i < 4000; ++i) h.Update(Bytes{uint8_t(i), uint8_t(i >> 8), 0, 0}, Bytes(4, 7));
  DumpOptions opts;
  opts.batch_entries = 1;  // any bucket with two entries makes the kernel answer ENOSPC: we grow and retry
  std::set<uint32_t> keys;
  const DumpStats stats = DumpMap(h, [&](ByteView k, ByteView) { keys.insert(KeyNumber(k)); }, opts);
  CHECK(stats.batched);
  CHECK(stats.records == 4000);
  CHECK(keys.size() == 4000);

  Map a = CreateMap(BPF_MAP_TYPE_ARRAY, UniqueMapName("kmt"), 4, 8, 10);
  CHECK(a.CountEntries() == 10);
  Map pc = CreateMap(BPF_MAP_TYPE_PERCPU_HASH, UniqueMapName("kmt"), 4, 4, 8);
  pc.Update(Bytes(4, 1), Bytes(pc.LookupValueSize(), 3));
  uint64_t n = 0;
  DumpMap(pc, [&](ByteView, ByteView v) {
    ++n;
    CHECK(v.size == pc.LookupValueSize());
  });
  CHECK(n == 1);
}
