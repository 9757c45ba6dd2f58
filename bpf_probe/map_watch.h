// Changes to BPF maps as they happen, read-only: each Poll() reads the maps again (batched, like a dump)
// and reports what was added, removed or changed since the previous read, one MapChange each. Nothing is
// ever written to a map, and the reads are bounded by the maps' sizes, so the datapath does not notice.
// What `kmesh-mapdump watch` prints.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bpf_probe/bytes.h"
#include "bpf_probe/maps.h"
#include "net/tuple.h"

namespace kmesh::bpf_probe {

struct MapChange {
  enum class Kind { kAdded, kRemoved, kChanged };
  Kind kind = Kind::kAdded;
  std::string map;  // kernel name
  uint32_t map_id = 0;
  Bytes key;
  Bytes before;  // empty when added
  Bytes after;   // empty when removed
};

class MapWatcher {
 public:
  // Reads each map once (the state changes are counted from). Throws kmesh::Error for a map whose entries
  // cannot be walked (ring buffers, socket storage), naming it and why.
  explicit MapWatcher(std::vector<Map> maps);
  // Reads every map again; what changed since the previous read, map by map, keys in order.
  std::vector<MapChange> Poll();
  const std::vector<Map>& maps() const { return maps_; }
  // Entries of the map `i` at the last read.
  size_t EntriesOf(size_t i) const { return state_[i].size(); }

 private:
  std::vector<Map> maps_;
  std::vector<std::map<Bytes, Bytes>> state_;
};

// "+ 10.244.1.5:40001 -> 10.244.2.7:8080 DENY", "~ workload 77: [1143614525] -> [1143614525, 5]",
// "- kmesh_map64[17] (64 bytes)": a change in words, decoded as Kmesh's map (by name and layout) when it is
// one of Kmesh's, else the raw key and value as hex.
std::string DescribeChange(const MapChange& c, net::PortOrder order = net::PortOrder::kHost);

}  // namespace kmesh::bpf_probe
