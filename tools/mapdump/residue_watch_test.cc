// `kmesh-mapdump residue` and `watch` on maps Kmesh's own code wrote (e2e/conformance KmeshXdpUnderTest:
// Kmesh's XDP object in a private bpffs, policies written and removed by Kmesh's C deserializer):
//   - a policy set written, its connections judged by xdp_authz, then removed: the blobs Kmesh leaks (D9)
//     are reported as blobs no policy reaches, as many as kmesh_map64 grew over its baseline;
//   - a km_tcargs entry as xdp_authz left it (D4), and km_auth_res entries: one of a live loopback
//     connection (not residue), one of a connection that does not exist (residue, D3);
//   - `residue --baseline` prints exactly what the suites' back-to-baseline check (e2e/lab ResidueAgainst,
//     e2e/authz CheckResidue: the same bpf_probe code) reports;
//   - `watch` prints each change to km_auth_res, in order, and writes nothing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/maps.h"
#include "bpf_probe/residue.h"
#include "e2e/conformance/generator.h"
#include "e2e/conformance/kmesh_xdp.h"
#include "e2e/lab/kmesh_policy_writer.h"
#include "netns/process.h"

namespace bp = kmesh::bpf_probe;
namespace kc = kmesh::conformance;
using nlohmann::json;

namespace {

std::vector<std::string> Cmd(std::vector<std::string> args) {
  args.insert(args.begin(), kmesh::Runfile("tools/mapdump/kmesh-mapdump"));
  return args;
}

kmesh::netns::ProcessResult Mapdump(std::vector<std::string> args) { return kmesh::netns::Run(Cmd(args)); }

// A TCP connection on loopback in this process's namespace, closed with the object.
struct LoopbackConnection {
  int listener = -1, client = -1, server = -1;
  kmesh::net::Tuple tuple;  // client -> server
  LoopbackConnection() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener, 1) == 0);
    socklen_t len = sizeof a;
    getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    client = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    server = accept(listener, nullptr, nullptr);
    sockaddr_in c{};
    len = sizeof c;
    getsockname(client, reinterpret_cast<sockaddr*>(&c), &len);
    tuple = *kmesh::net::Tuple::Parse("127.0.0.1:" + std::to_string(ntohs(c.sin_port)) +
                             " -> 127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  }
  ~LoopbackConnection() {
    for (int fd : {client, server, listener}) {
      if (fd >= 0) close(fd);
    }
  }
};

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

}  // namespace

TEST_CASE("residue: leaked blobs, km_tcargs, verdicts of gone connections; the suites' baseline lines") {
  kc::KmeshXdpUnderTest node("/tmp");
  const std::string dir = node.pin_dir();
  const std::string base = TempDir() + "/" + kmesh::UniqueName("baseline") + ".json";
  auto fresh = Mapdump({"--pin-dir", dir, "residue", "--save-baseline", base, "--json"});
  INFO(fresh.err);
  REQUIRE(fresh.ok());
  CHECK(json::parse(fresh.out)["clean"] == true);  // a fresh node
  const auto lab_baseline = kmesh::lab::CountMapEntries(dir);

  // A generated policy set with addresses, judged by Kmesh's xdp_authz, then removed as Kmesh removes it.
  const bp::MapCatalog cat = bp::MapCatalog::FromPinDir(dir);
  const bp::AuthResultMap auth(cat.Open(KM_MAP_AUTH_RES));
  const bp::Map tcargs = cat.Open(KM_MAP_TCARGS);
  std::optional<std::pair<kmesh::net::Tuple, bp::TcArgs>> left;
  for (uint64_t i = 0; i < 20 && !left; ++i) {
    const kc::Case c = kc::Generate(kc::CaseSeed(29, i));
    const kc::Written w = node.Write(c);
    for (const auto& conn : c.connections) {
      const kc::Observation o = node.Run(conn);
      if (o.tcargs && !left) left.emplace(conn.tuple, *o.tcargs);
    }
    node.Undo(w);
  }
  REQUIRE(left);
  // The km_tcargs entry xdp_authz left for that tuple (Run read and removed it): put back as it was.
  uint8_t v[KM_TCARGS_VALUE_SIZE] = {};
  std::memcpy(v + KM_TCARGS_ACTION, &left->second.action, 4);
  v[KM_TCARGS_POLICY_INDEX] = left->second.policy_index;
  v[KM_TCARGS_NEED_TAILCALL_TO_USERSPACE] = left->second.need_tailcall_to_userspace;
  v[KM_TCARGS_N_RULES] = left->second.n_rules;
  std::memcpy(v + KM_TCARGS_AUTH_RESULT, &left->second.auth_result, 4);
  const kmesh::net::TupleKey tk = kmesh::net::EncodeTupleKey(left->first);
  tcargs.Update(bp::ByteView(tk.data(), tk.size()), bp::ByteView(v, sizeof v));
  LoopbackConnection live;
  const kmesh::net::Tuple gone = *kmesh::net::Tuple::Parse("10.99.0.1:40001 -> 10.99.0.2:8080");
  auth.Put(live.tuple, bp::Verdict::kAllow);
  auth.Put(gone, bp::Verdict::kDeny);

  const auto r = Mapdump({"--pin-dir", dir, "residue", "--baseline", base, "--json", "--limit", "1000"});
  INFO(r.err);
  REQUIRE(r.ok());
  const json j = json::parse(r.out);
  INFO(j.dump(1));
  CHECK(j["clean"] == false);
  // Every blob Kmesh left in kmesh_map64 after the removal is one no policy reaches (D9).
  const uint64_t grown =
      *kmesh::lab::CountMapEntries(dir).at("kmesh_map64").entries - *lab_baseline.at("kmesh_map64").entries;
  CHECK(grown > 0);
  CHECK(j["blobs"]["unreachable"]["kmesh_map64"].size() == grown);
  CHECK(j["blobs"]["policies"] == 0);
  REQUIRE(j["tcargs"].size() == 1);
  CHECK(j["tcargs"][0]["tuple"] == left->first.ToString());
  CHECK(j["tcargs"][0]["context"]["policy_index"] == left->second.policy_index);
  CHECK(j["auth_res"]["entries"] == 2);
  CHECK(j["auth_res"]["namespaces"].get<uint64_t>() >= 1);
  REQUIRE(j["auth_res"]["without_connection"].size() == 1);
  CHECK(j["auth_res"]["without_connection"][0]["tuple"] == gone.ToString());
  CHECK(j["auth_res"]["without_connection"][0]["verdict"] == "DENY");
  // The suites' back-to-baseline check reports the same lines.
  std::vector<std::string> tool;
  for (const auto& c : j["baseline"]["changes"]) tool.push_back(c["text"]);
  const auto suite = kmesh::lab::ResidueAgainst(lab_baseline, kmesh::lab::CountMapEntries(dir));
  CHECK(tool == suite);
  CHECK(std::find(tool.begin(), tool.end(), "km_auth_res: 0 -> 2 entries") != tool.end());
  CHECK(std::find(tool.begin(), tool.end(), "km_tcargs: 0 -> 1 entries") != tool.end());
  // Without connections read, the verdicts are not judged.
  const auto quick = json::parse(Mapdump({"--pin-dir", dir, "residue", "--no-connections", "--json"}).out);
  CHECK(quick["auth_res"]["connections_checked"] == false);
  CHECK(quick["auth_res"]["without_connection"].empty());
  std::filesystem::remove(base);
}

TEST_CASE("watch: each change to km_auth_res, in order, one line each; the map is left as it was") {
  kc::KmeshXdpUnderTest node("/tmp");
  const std::string dir = node.pin_dir();
  const bp::AuthResultMap auth(bp::MapCatalog::FromPinDir(dir).Open(KM_MAP_AUTH_RES));
  const kmesh::net::Tuple t = *kmesh::net::Tuple::Parse("10.244.1.5:40001 -> 10.244.2.7:8080");
  kmesh::netns::Process watch =
      kmesh::netns::Process::Start(Cmd({"--pin-dir", dir, "watch", "--interval", "10", "--count", "3"}));
  // Its first read is the state changes count from; give it time (each step is 5 intervals apart).
  const auto step = std::chrono::milliseconds(300);
  std::this_thread::sleep_for(step);
  auth.Put(t, bp::Verdict::kDeny);
  std::this_thread::sleep_for(step);
  auth.Put(t, bp::Verdict::kAllow);
  std::this_thread::sleep_for(step);
  CHECK(auth.Erase(t));
  const auto r = watch.Wait(kmesh::defaults::Command());
  INFO(r.Describe() << "\n" << r.out);
  REQUIRE(r.ok());
  std::istringstream lines(r.out);
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l.substr(l.find(' ') + 1));  // past the time
  CHECK(got == std::vector<std::string>{"km_auth_res + " + t.ToString() + "  DENY",
                                        "km_auth_res ~ " + t.ToString() + "  DENY -> ALLOW",
                                        "km_auth_res - " + t.ToString() + "  (was ALLOW)"});
  CHECK_THAT(r.err, Catch::Contains("watching km_auth_res"));
  CHECK(auth.Entries().empty());

  // --duration bounds a watch that sees nothing; --map watches another map.
  const auto quiet = Mapdump({"--pin-dir", dir, "watch", "--map", KM_MAP_TCARGS, "--duration", "200"});
  CHECK(quiet.ok());
  CHECK(quiet.out.empty());
  // A map whose entries cannot be walked is refused with the reason.
  const auto ring = Mapdump({"--pin-dir", dir, "watch", "--map", KM_MAP_AUTH_REQ, "--duration", "100"});
  CHECK(ring.exit_code == 1);
  CHECK_THAT(ring.err, Catch::Contains("cannot watch km_auth_req"));
}
