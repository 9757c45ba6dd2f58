// Unit tier: kmesh-probe's JSON, both sides. Round trips through the framework's own ToJson, recorded
// reports (testdata/kubectl/probe_*.json), and the whole cluster path of the IPsec check: KmeshNodeInfo
// and the secret from kubectl, each node's xfrm from kmesh-probe, into the framework's layout checker.
#include "node/probe_json.h"

#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "base/error.h"
#include "ipsec/ipsec_layout.h"
#include "e2e/kube/cluster.h"
#include "e2e/kube/replay_testing.h"

using namespace kmesh;
using namespace kmesh::kube;
using namespace kmesh::node;
using Catch::Matchers::Contains;
using kmesh::kube::testing::Recorded;

namespace {

nlohmann::json Report(const std::string& file, const std::string& command) {
  return ParseReport(Recorded(file), command, file);
}

xfrm::XfrmSnapshot SampleSnapshot() {
  xfrm::XfrmSnapshot s;
  s.netns = "/run/netns/x";
  xfrm::XfrmState st;
  st.family = AF_INET;
  st.src = "172.18.0.3";
  st.dst = "172.18.0.2";
  st.proto = IPPROTO_ESP;
  st.spi = xfrm::Spi{2};
  st.reqid = 1;
  st.mode = xfrm::Mode::kTunnel;
  st.selector = {AF_INET, "0.0.0.0/0", "0.0.0.0/0", 0, 0, 0, 0, 0, 0};
  st.aead_name = "rfc4106(gcm(aes))";
  st.icv_bits = 128;
  st.aead_key = ipsec::KeyMaterial::FromHex(std::string(72, 'a'));
  st.output_mark = xfrm::Mark{0xd0, 0xffffffff};
  st.cur_packets = 7;
  st.oseq = 3;
  s.states.push_back(st);
  xfrm::XfrmPolicy p;
  p.dir = xfrm::Dir::kOut;
  p.selector = {AF_INET, "0.0.0.0/0", "10.244.1.0/24", IPPROTO_TCP, 0, 0, 8080, 0xffff, 0};
  p.mark = xfrm::Mark{0xe0, 0xffffffff};
  p.index = 9;
  xfrm::XfrmTemplate t;
  t.family = AF_INET;
  t.src = "172.18.0.2";
  t.dst = "172.18.0.3";
  t.proto = IPPROTO_ESP;
  t.spi = xfrm::Spi{2};
  t.reqid = 1;
  t.mode = xfrm::Mode::kTunnel;
  p.templates.push_back(t);
  s.policies.push_back(p);
  s.stats.counters = {{"XfrmInError", 0}, {"XfrmInNoStates", 4}};
  return s;
}

}  // namespace

TEST_CASE("every report is checked for its envelope before its body is read") {
  struct Row {
    std::string text;
    std::string expected;
  };
  const std::vector<Row> rows = {
      {"OCI runtime exec failed",
       "node w: output is not kmesh-probe's JSON: found \"OCI runtime exec failed\""},
      {"{\"command\":\"maps\"}", "output lacks \"probe\": \"kmesh-probe\""},
      {"{\"probe\":\"kmesh-probe\",\"version\":7,\"command\":\"maps\"}",
       "kmesh-probe report version 7, this harness reads version 1"},
      {Recorded("probe_error.handwritten.json"),
       "node w: kmesh-probe failed: pin folder /sys/fs/bpf/bpf_kmesh_workload/map does not exist"},
      {Recorded("probe_auth_deny.handwritten.json"), "expected a \"maps\" report, found \"auth\""},
  };
  for (const auto& row : rows) {
    INFO(row.text);
    CHECK_THROWS_WITH(ParseReport(row.text, "maps", "node w"), Contains(row.expected));
  }
}

TEST_CASE("an xfrm snapshot survives ToJson and back, raw keys only when asked for") {
  const auto s = SampleSnapshot();
  const auto with_keys = Envelope("xfrm", XfrmReportBody(s, true));
  const auto back = XfrmSnapshotFromJson(ParseReport(with_keys.dump(), "xfrm", "t").at("snapshot"), "t");
  REQUIRE(back.states.size() == 1);
  REQUIRE(back.policies.size() == 1);
  const auto& st = back.states[0];
  CHECK(st.Id() == s.states[0].Id());
  CHECK(st.family == AF_INET);
  CHECK(st.mode == xfrm::Mode::kTunnel);
  CHECK(st.aead_key == s.states[0].aead_key);
  REQUIRE(st.output_mark.has_value());
  CHECK(*st.output_mark == (xfrm::Mark{0xd0, 0xffffffff}));
  CHECK(st.selector == s.states[0].selector);
  CHECK(st.cur_packets == 7);
  CHECK(st.oseq == 3);
  const auto& p = back.policies[0];
  CHECK(p.Id() == s.policies[0].Id());
  CHECK(p.selector == s.policies[0].selector);
  CHECK(p.templates == s.policies[0].templates);
  CHECK(p.index == 9);
  CHECK(back.stats.Get("XfrmInNoStates") == 4);

  // Without --include-raw-keys the key is a fingerprint only, and nothing raw is in the text.
  const std::string plain = Envelope("xfrm", XfrmReportBody(s, false)).dump();
  CHECK(plain.find(s.states[0].aead_key.RevealHex()) == std::string::npos);
  CHECK(plain.find(s.states[0].aead_key.Fingerprint()) != std::string::npos);
  CHECK(XfrmSnapshotFromJson(nlohmann::json::parse(plain).at("snapshot"), "t").states.at(0).aead_key.empty());
}

TEST_CASE("a corrupt xfrm report names the field") {
  auto j = Report("probe_xfrm_worker.handwritten.json", "xfrm").at("snapshot");
  auto bad = j;
  bad["states"][1]["spi"] = 2;
  CHECK_THROWS_WITH(XfrmSnapshotFromJson(bad, "kmesh-probe xfrm on w"),
                    Contains("kmesh-probe xfrm on w: field states[1].spi: expected a string"));
  bad = j;
  bad["policies"][0]["mark"] = "0xd0";
  CHECK_THROWS_WITH(XfrmSnapshotFromJson(bad, "w"),
                    Contains("field policies[0].mark: expected a mark like 0xd0/0xffffffff"));
  bad = j;
  bad["policies"][2]["templates"][0]["mode"] = "tunel";
  CHECK_THROWS_WITH(XfrmSnapshotFromJson(bad, "w"),
                    Contains("policies[2].templates[0].mode: expected transport, tunnel"));
  bad = j;
  bad["states"][0]["aead_key_hex"] = std::string(72, '0');
  CHECK_THROWS_WITH(XfrmSnapshotFromJson(bad, "w"),
                    Contains("aead_key_hex does not match aead.key_fingerprint"));
}

TEST_CASE(
    "kubectl's KmeshNodeInfo and secret plus kmesh-probe's xfrm of each node pass Kmesh's layout check") {
  const auto infos =
      ParseKmeshNodeInfos(nlohmann::json::parse(Recorded("kmeshnodeinfos.handwritten.json")), "kni");
  REQUIRE(infos.size() == 2);
  ipsec::SecretHistory secrets;
  secrets.Add(
      ParseIpsecSecret(nlohmann::json::parse(Recorded("secret_kmesh_ipsec.handwritten.json")), "secret"));
  const auto cp =
      XfrmSnapshotFromJson(Report("probe_xfrm_control_plane.handwritten.json", "xfrm").at("snapshot"), "cp");
  const auto worker =
      XfrmSnapshotFromJson(Report("probe_xfrm_worker.handwritten.json", "xfrm").at("snapshot"), "worker");
  ipsec::LayoutReport r = ipsec::CheckLayout({infos[0], cp}, {infos[1], worker}, secrets);
  INFO(r.Describe());
  CHECK(r.ok());
  REQUIRE(r.directions.size() == 2);
  for (const auto& d : r.directions) CHECK(d.agree);

  // The same path sees a broken node: the worker's ingress state without its output-mark.
  auto broken_json = Report("probe_xfrm_worker.handwritten.json", "xfrm").at("snapshot");
  broken_json["states"][0]["output_mark"] = nullptr;
  const auto broken = XfrmSnapshotFromJson(broken_json, "worker");
  r = ipsec::CheckLayout({infos[0], cp}, {infos[1], broken}, secrets);
  CHECK_FALSE(r.ok());
  CHECK_THAT(r.Describe(), Contains("output-mark"));
}

TEST_CASE("maps, auth, xdp and capture reports") {
  const MapsReport m = MapsReportFromJson(Report("probe_maps.handwritten.json", "maps"), "maps");
  CHECK(m.HasPolicy(2471187720u));  // FNV-32a("test-ns1/ip-deny-policy")
  CHECK(m.workload_id == 3832489621u);
  CHECK(m.WorkloadLists(2471187720u));
  CHECK_FALSE(m.WorkloadLists(1));
  CHECK(m.maps.size() == 5);
  const MapsReport back = MapsReportFromJson(ToJson(m), "roundtrip");
  CHECK(back.policy_ids == m.policy_ids);
  CHECK(back.workload_policy_ids == m.workload_policy_ids);
  const MapsReport not_yet =
      MapsReportFromJson(Report("probe_maps_not_yet.handwritten.json", "maps"), "maps");
  CHECK_FALSE(not_yet.workload_policy_ids.has_value());
  CHECK_FALSE(not_yet.WorkloadLists(2471187720u));

  const AuthReport deny = AuthReportFromJson(Report("probe_auth_deny.handwritten.json", "auth"), "auth");
  REQUIRE(deny.verdict.has_value());
  CHECK(*deny.verdict == bpf_probe::Verdict::kDeny);
  CHECK(deny.tuple.ToString() == "10.244.0.12:42019 -> 10.244.1.7:8080");
  CHECK_FALSE(
      AuthReportFromJson(Report("probe_auth_none.handwritten.json", "auth"), "auth").verdict.has_value());

  const auto x = XdpAttachmentFromJson(Report("probe_xdp.handwritten.json", "xdp"), "xdp");
  REQUIRE(x.attached());
  CHECK(x.program(bpf_probe::XdpMode::kNative)->name == "xdp_authz");
  CHECK(x.program()->id == 412);
  CHECK(x.ifname == "eth0");
  CHECK_THROWS_WITH(
      XdpAttachmentFromJson(Report("probe_xdp_contradiction.handwritten.json", "xdp"), "xdp on w"),
      Contains("xdp on w: XDP mode none with 1 programs listed"));

  const auto c =
      CaptureSummaryFromJson(Report("probe_capture.handwritten.json", "capture").at("summary"), "capture");
  CHECK(c.packets == 14);
  CHECK(c.esp_spis.at(1) == 14);
  CHECK(c.marker_checked);
  CHECK(capture::JudgeEncrypted(c, 1).pass);
  CHECK_FALSE(capture::JudgeEncrypted(c, 2).pass);
  CHECK(CaptureSummaryFromJson(CaptureReportBody(c).at("summary"), "rt").esp_spis == c.esp_spis);
}

TEST_CASE("find-netns --all lists every holder of an address, and a malformed holder is named") {
  NetnsHolders h;
  h.ip = "10.244.2.2";
  h.scanned = 41;
  h.searched = "/proc and /run/netns";
  h.holders = {NetnsOwner{"10.244.2.2", "/run/netns/kme2e-7-pod-3", 0, 4026532101u, "eth0"},
               NetnsOwner{"10.244.2.2", "/proc/77/ns/net", 77, 4026532188u, "eth0"}};
  const NetnsHolders back = NetnsHoldersFromJson(Envelope("find-netns", ToJson(h)), "find-netns");
  CHECK(back.ip == h.ip);
  CHECK(back.scanned == 41);
  CHECK(back.searched == h.searched);
  REQUIRE(back.holders.size() == 2);
  CHECK(back.holders[1].pid == 77);
  REQUIRE(back.WithInode(4026532101u) != nullptr);
  CHECK(back.WithInode(4026532101u)->netns == "/run/netns/kme2e-7-pod-3");
  CHECK(back.WithInode(1) == nullptr);
  CHECK(
      back.Describe() ==
      "/run/netns/kme2e-7-pod-3 (eth0, inode 4026532101), /proc/77/ns/net (pid 77, eth0, inode 4026532188)");
  CHECK(NetnsHolders{}.Describe() == "none");

  nlohmann::json bad = ToJson(h);
  bad["holders"][1].erase("inode");
  CHECK_THROWS_WITH(NetnsHoldersFromJson(bad, "find-netns on w"),
                    Contains("find-netns on w: holders[1]: field inode is missing"));
  bad["holders"] = "none";
  CHECK_THROWS_WITH(NetnsHoldersFromJson(bad, "find-netns on w"),
                    Contains("field holders: expected an array"));
}
