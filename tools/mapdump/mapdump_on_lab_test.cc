// kmesh-mapdump on a live lab node running Kmesh's own datapath, against bpftool: for every map pinned in
// the node's pin folder (as on a Kmesh node, /sys/fs/bpf/bpf_kmesh_workload/map), `kmesh-mapdump --pin-dir
// DIR dump NAME` gives bpftool's raw records byte for byte, in bpftool's order; a map whose entries cannot
// be listed (ring buffers, socket storage) gets a JSON answer that says why, where bpftool prints `[]`; the
// BTF-decoded view (`formatted`) is bpftool's, anonymous unions and structs nested under "" alike.
#include <dirent.h>

#include <catch2/catch.hpp>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/runfiles.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/maps.h"
#include "e2e/lab/lab.h"
#include "e2e/policy/template.h"
#include "netns/process.h"

using kmesh::e2e::AppKind;
using kmesh::lab::Lab;
using kmesh::netns::ProcessResult;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Vars;
using nlohmann::json;

namespace {

ProcessResult Mapdump(std::vector<std::string> args) {
  args.insert(args.begin(), kmesh::Runfile("tools/mapdump/kmesh-mapdump"));
  return kmesh::netns::Run(args);
}

ProcessResult Bpftool(std::vector<std::string> args) {
  args.insert(args.begin(), {"bpftool", "-j"});
  return kmesh::netns::Run(args);
}

// One curl from a client pod, bounded; its exit code (0 ok, 28 connect timeout).
int Curl(Lab& lab, const kmesh::e2e::App& client, const kmesh::e2e::App& server, uint16_t local_port) {
  kmesh::netns::ProcessOptions opts;
  opts.netns = lab.pod_of(client).ns.ref();
  return kmesh::netns::Run({"curl", "-sS", "-o", "/dev/null", "--local-port", std::to_string(local_port),
                            "--connect-timeout", "1", "--max-time", "3",
                            "http://" + server.ip.ToString() + ":" + std::to_string(server.port) + "/get"},
                           opts)
      .exit_code;
}

std::vector<std::string> PinnedNames(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& m : kmesh::bpf_probe::ListPinnedMaps(dir))
    out.push_back(m.pin_path.substr(dir.size() + 1));
  return out;
}

// A dump reduced to what bpftool calls the raw view: each record's "key" and "value" (or per-CPU "values"),
// in order, serialized compactly the way `bpftool -j` prints them.
std::string RawView(const json& dump) {
  json out = json::array();
  for (const auto& rec : dump) {
    json r = json::object();
    for (const char* k : {"key", "value", "values"}) {
      if (rec.contains(k)) r[k] = rec[k];
    }
    out.push_back(r);
  }
  return out.dump();
}

// What a map holds now, per bpftool (the reference).
struct Reference {
  ProcessResult dump;
  json show;  // `bpftool -j map show pinned`
};

}  // namespace

TEST_CASE("kmesh-mapdump --pin-dir on a live lab node: every Kmesh map as bpftool dumps it, byte for byte") {
  auto lab = Lab::Up();
  const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const auto& a = lab->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const auto& b = lab->Deploy({"sleep-b", AppKind::kClient, 0, "test-ns3", {}, false});
  // Policies as Kmesh's daemon writes them (km_authz_policy, kmesh_map*, km_wlpolicy), and a denied and an
  // allowed connection (km_auth_res, km_tcargs).
  lab->Apply(RenderPolicyTemplate(
      "ip-deny", Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", a.ip.ToString())));
  lab->Apply(RenderPolicyTemplate("from-and-to", Vars()
                                                     .Set("Name", "b-to-alt-port")
                                                     .Set("Namespace", "test-ns1")
                                                     .Set("App", "httpbin")
                                                     .Set("Action", "DENY")
                                                     .SetList("Ips", {b.ip.ToString(), "10.244.3.0/24"})
                                                     .SetList("Ports", {"9090", "9091"})));
  CHECK(Curl(*lab, a, server, 42001) == 28);
  CHECK(Curl(*lab, b, server, 42002) == 0);

  for (const std::string node : {"node1", "node2"}) {
    const std::string dir = lab->kmesh(node).pin_dir();
    const auto names = PinnedNames(dir);
    INFO(node << " pin folder " << dir);
    // Kmesh's XDP and sockops objects pin every map they define (pkg/bpf/utils/pin.go:74-82).
    REQUIRE(names.size() >= 20);
    std::map<std::string, size_t> records;
    std::set<std::string> refused;  // maps answered with a JSON error object (entries not walkable)
    for (const auto& name : names) {
      INFO("map " << name);
      const std::string pin = dir + "/" + name;
      const Reference ref{Bpftool({"map", "dump", "pinned", pin}),
                          json::parse(Bpftool({"map", "show", "pinned", pin}).out)};
      const ProcessResult ours = Mapdump({"--pin-dir", dir, "dump", name});
      INFO("kmesh-mapdump: exit " << ours.exit_code << ", stderr " << ours.err);
      INFO("bpftool: exit " << ref.dump.exit_code << ", stdout " << ref.dump.out.substr(0, 300));
      const json mine = json::parse(ours.out);  // valid JSON whatever happened
      const auto info = kmesh::bpf_probe::Map::OpenPinned(pin).info();
      CHECK(info.id == ref.show["id"]);
      if (!info.EntriesWalkable()) {
        // bpftool prints an empty array and fails without a word; kmesh-mapdump says why, as JSON.
        CHECK(ref.dump.exit_code != 0);
        CHECK(ours.exit_code == 1);
        REQUIRE(mine.is_object());
        CHECK_THAT(mine.value("error", ""), Catch::Contains("cannot dump " + name));
        CHECK(mine["map"]["id"] == ref.show["id"]);
        CHECK(mine["map"]["type"] == ref.show["type"]);
        CHECK(mine["map"]["pinned"] == pin);
        CHECK(mine["entries_walkable"] == false);
        refused.insert(name);
        continue;
      }
      REQUIRE(ref.dump.ok());
      REQUIRE(ours.ok());
      const json theirs = json::parse(ref.dump.out);
      REQUIRE(mine.is_array());
      // The raw view: the same records, in the same order, with the same bytes, printed the same way.
      CHECK(RawView(mine) == RawView(theirs));
      records[name] = theirs.size();
      // The BTF-decoded view: bpftool's, anonymous unions and structs nested under "" the same way.
      for (size_t i = 0; i < theirs.size() && i < mine.size(); ++i) {
        INFO("record " << i << "\n  bpftool:       " << theirs[i].value("formatted", json()).dump()
                       << "\n  kmesh-mapdump: " << mine[i].value("formatted", json()).dump());
        CHECK(theirs[i].contains("formatted") == mine[i].contains("formatted"));
        if (theirs[i].contains("formatted")) CHECK(theirs[i]["formatted"] == mine[i]["formatted"]);
      }
    }
    std::cout << node << ": records per map:";
    for (const auto& [m, n] : records) std::cout << " " << m << "=" << n;
    std::cout << "\n";

    // `maps` agrees: every pinned map, bpftool's id, and as many entries as bpftool dumped.
    const ProcessResult maps = Mapdump({"--pin-dir", dir, "maps", "--json"});
    REQUIRE(maps.ok());
    const json listed = json::parse(maps.out);
    std::set<std::string> listed_names;
    for (const auto& m : listed["maps"]) {
      const std::string name = m["name"];
      listed_names.insert(name);
      INFO("maps: " << m.dump());
      CHECK(m["pin_path"] == dir + "/" + name);
      CHECK(m["id"] == json::parse(Bpftool({"map", "show", "pinned", dir + "/" + name}).out)["id"]);
      if (records.count(name))
        CHECK(m["entries"] == records[name]);
      else
        CHECK(m["entries"].is_null());
    }
    CHECK(listed_names == std::set<std::string>(names.begin(), names.end()));

    // --by-name (every map on the machine, by kernel name) includes Kmesh's policy blob maps.
    const json by_name = json::parse(Mapdump({"maps", "--by-name", "--json"}).out);
    const uint32_t blob_id = kmesh::bpf_probe::Map::OpenPinned(dir + "/kmesh_map64").info().id;
    bool found = false;
    for (const auto& m : by_name["maps"]) found |= m["id"] == blob_id && m["name"] == "kmesh_map64";
    CHECK(found);
    // Socket storage (the kernel refuses to list it: errno 524) and the ring buffer were among them.
    CHECK(refused.count("km_sockstorage") == 1);
    CHECK(refused.count(KM_MAP_AUTH_REQ) == 1);
    // What the case set out to compare was there to compare.
    for (const char* m : {KM_MAP_FRONTEND, KM_MAP_XDP_TAILCALL, KM_MAP_AUTHZ_POLICY, "kmesh_map64"}) {
      CHECK(records[m] > 0);
    }
    if (std::string(node) == "node2") {
      CHECK(records[KM_MAP_WLPOLICY] > 0);
      CHECK(records[KM_MAP_AUTH_RES] > 0);
    }
  }
}
