// Needs ESP with rfc4106(gcm(aes)) (tag needs_esp; runs through tools/vm, on the host when its kernel has
// ESP, else in the VM). On a kernel without ESP every case fails at once saying so: a state test must
// never pass where states cannot exist.
//  1. Kmesh's layout (kmesh-facts.md §3.4) programmed on two node namespaces reads back field by field,
//     agrees with `ip xfrm state`, passes the layout checker, and each fault is named.
//  2. ESP crosses the underlay with the expected SPIs, no plaintext leaks, the state counters move, and
//     the sanity capture sees the same probe in clear once the policies are gone.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <netinet/in.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/runfiles.h"
#include "capture/capture.h"
#include "e2e/framework/case_output.h"
#include "ipsec/ipsec_layout.h"
#include "traffic/traffic.h"
#include "traffic/traffic_testing.h"
#include "xfrm/xfrm.h"
#include "netns/process.h"
#include "netns/route.h"

using namespace kmesh::ipsec;
using namespace kmesh::xfrm;
using kmesh::netns::Netns;
using kmesh::netns::RunIn;

namespace {

void RequireEsp() {
  const std::string why = EspUnsupportedReason();
  if (!why.empty()) FAIL(why);
}

IpsecSecret LoadSecret(const std::string& file) {
  std::ifstream in(kmesh::Runfile("testdata/ipsec/" + file));
  std::stringstream ss;
  ss << in.rdbuf();
  return IpsecSecret::Parse(ss.str(), file);
}

// `ip -batch` from a private file, so keys never appear on a command line or in an error message.
void IpBatch(const Netns& ns, const std::vector<std::string>& lines) {
  char path[] = "/tmp/kme2e-xfrm-batch-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) kmesh::ThrowErrno("mkstemp");
  fchmod(fd, 0600);
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  kmesh::netns::ProcessOptions opts;
  opts.netns = ns.ref();
  auto r = written ? kmesh::netns::Run({"ip", "-batch", path}, opts) : kmesh::netns::ProcessResult{};
  unlink(path);
  if (!written) throw kmesh::Error("cannot write the ip batch file");
  if (!r.ok()) throw kmesh::Error("ip -batch in " + ns.name() + " exited " + std::to_string(r.exit_code) + ": " + r.err);
}

std::string StateLine(const std::string& src, const std::string& dst, uint32_t spi, const KeyMaterial& key, bool ingress) {
  return "xfrm state add src " + src + " dst " + dst + " proto esp spi " + std::to_string(spi) +
         " reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' 0x" + key.RevealHex() + " 128" +
         (ingress ? " output-mark 0xd0 mask 0xffffffff" : "");
}

// What Kmesh's ipsec_handler programs on `local` for `remote` (kmesh-facts.md §3.4).
std::vector<std::string> KmeshLines(const NodeInfo& L, const NodeInfo& R, const SecretHistory& secrets) {
  std::vector<std::string> lines;
  const KeyMaterial in_key = DeriveKey(secrets.Find(L.spi)->aead_key, R.address, L.address, R.boot_id, L.boot_id);
  lines.push_back(StateLine(R.address, L.address, L.spi, in_key, true));
  for (const char* dir : {"in", "fwd"}) {
    lines.push_back("xfrm policy add src 0.0.0.0/0 dst " + L.pod_cidrs[0] + " dir " + dir +
                    " mark 0xd0 mask 0xffffffff tmpl src " + R.address + " dst " + L.address + " proto esp reqid 1 mode tunnel");
  }
  if (R.spi <= L.spi) {
    const KeyMaterial out_key = DeriveKey(secrets.Find(R.spi)->aead_key, L.address, R.address, L.boot_id, R.boot_id);
    lines.push_back(StateLine(L.address, R.address, R.spi, out_key, false));
    lines.push_back("xfrm policy add src 0.0.0.0/0 dst " + R.pod_cidrs[0] + " dir out mark 0xe0 mask 0xffffffff tmpl src " +
                    L.address + " dst " + R.address + " proto esp spi " + std::to_string(R.spi) + " reqid 1 mode tunnel");
  }
  return lines;
}

// `ip xfrm state` blocks: "src A dst B" then indented lines.
std::vector<std::string> IpStateBlocks(const std::string& text) {
  std::vector<std::string> blocks;
  std::istringstream lines(text);
  for (std::string l; std::getline(lines, l);) {
    if (l.empty()) continue;
    if (l[0] != '\t' && l[0] != ' ') blocks.emplace_back();
    if (!blocks.empty()) blocks.back() += l + "\n";
  }
  return blocks;
}

void Save(const std::string& name, const nlohmann::json& j) {
  std::ofstream(kmesh::e2e::CaseOutputDir() + "/" + name) << j.dump(2) << "\n";
}

}  // namespace

TEST_CASE("Kmesh's xfrm layout on two nodes reads back field by field and passes the layout check") {
  RequireEsp();
  SecretHistory secrets;
  secrets.Add(LoadSecret("secret_spi1.json"));
  const NodeInfo a_info{"A", "172.18.0.2", {"10.244.0.0/24"}, 1, "3f1c2b9e-6a0d-4c55-9e71-2b8f0e4d1a77"};
  const NodeInfo b_info{"B", "172.18.0.3", {"10.244.1.0/24"}, 1, "b5e0d6a2-91f4-4e3b-8c2d-7a6f5e4d3c21"};
  Netns a = Netns::Create("nodea");
  Netns b = Netns::Create("nodeb");
  IpBatch(a, KmeshLines(a_info, b_info, secrets));
  IpBatch(b, KmeshLines(b_info, a_info, secrets));

  NodeEvidence ea{a_info, Snapshot(a.ref())};
  NodeEvidence eb{b_info, Snapshot(b.ref())};
  Save("node_a.json", ea.snapshot.ToJson());
  Save("node_b.json", eb.snapshot.ToJson());
  LayoutReport report = CheckLayout(ea, eb, secrets);
  Save("layout.json", report.ToJson());
  INFO(report.Describe());
  CHECK(report.ok());
  for (const auto& d : report.directions) CHECK(d.agree);

  // Field by field, node B.
  REQUIRE(eb.snapshot.states.size() == 2);
  const XfrmState* in = eb.snapshot.FindState(IPPROTO_ESP, Spi{1}, "172.18.0.3");
  const XfrmState* out = eb.snapshot.FindState(IPPROTO_ESP, Spi{1}, "172.18.0.2");
  REQUIRE(in != nullptr);
  REQUIRE(out != nullptr);
  CHECK(in->src == "172.18.0.2");
  CHECK(in->reqid == 1);
  CHECK(in->mode == Mode::kTunnel);
  CHECK(in->aead_name == "rfc4106(gcm(aes))");
  CHECK(in->icv_bits == 128);
  CHECK(in->aead_key.size() == 36);
  REQUIRE(in->output_mark.has_value());
  CHECK(*in->output_mark == Mark{0xd0, 0xffffffff});
  CHECK_FALSE(out->output_mark.has_value());
  CHECK(in->aead_key == DeriveKey(secrets.Find(1)->aead_key, "172.18.0.2", "172.18.0.3", a_info.boot_id, b_info.boot_id));

  // iproute2 on the same namespace shows the same SPI, mode, AEAD, key and output-mark.
  const auto blocks = IpStateBlocks(RunIn(b.ref(), {"ip", "xfrm", "state", "show"}).out);
  REQUIRE(blocks.size() == eb.snapshot.states.size());
  for (const auto& s : eb.snapshot.states) {
    INFO("state " << s.Id());
    bool found = false;
    for (const auto& blk : blocks) {
      if (blk.rfind("src " + s.src + " dst " + s.dst + "\n", 0) != 0) continue;
      found = true;
      CHECK(blk.find("proto esp spi " + s.spi.ToString() + " reqid 1 mode tunnel") != std::string::npos);
      CHECK(blk.find("aead rfc4106(gcm(aes)) 0x" + s.aead_key.RevealHex() + " 128") != std::string::npos);
      CHECK((blk.find("output-mark 0xd0/0xffffffff") != std::string::npos) == s.output_mark.has_value());
    }
    CHECK(found);
  }

  // Faults, each named by the checker.
  struct Fault {
    const char* name;
    std::vector<std::string> on_b;  // ip -batch lines applied to node B
    std::string finding;
  };
  const KeyMaterial stale = DeriveKey(secrets.Find(1)->aead_key, "172.18.0.2", "172.18.0.3", "old-boot-id", b_info.boot_id);
  const std::vector<Fault> faults = {
      {"ingress state missing", {"xfrm state delete src 172.18.0.2 dst 172.18.0.3 proto esp spi 1"},
       "node B: ingress state src 172.18.0.2 dst 172.18.0.3 spi 0x00000001: missing"},
      {"ingress key derived with a stale boot id",
       {"xfrm state delete src 172.18.0.2 dst 172.18.0.3 proto esp spi 1", StateLine("172.18.0.2", "172.18.0.3", 1, stale, true)},
       "the two ends hold different keys"},
      {"ingress state without output-mark",
       {"xfrm state delete src 172.18.0.2 dst 172.18.0.3 proto esp spi 1",
        StateLine("172.18.0.2", "172.18.0.3", 1, in->aead_key, false)},
       "output-mark is not set, expected 0xd0/0xffffffff"},
      {"fwd policy missing", {"xfrm policy delete src 0.0.0.0/0 dst 10.244.1.0/24 dir fwd mark 0xd0 mask 0xffffffff"},
       "node B: policy dir fwd src 0.0.0.0/0 dst 10.244.1.0/24: missing"},
  };
  for (const auto& f : faults) {
    INFO("fault: " << f.name);
    IpBatch(b, {"xfrm state flush", "xfrm policy flush"});
    IpBatch(b, KmeshLines(b_info, a_info, secrets));
    IpBatch(b, f.on_b);
    LayoutReport r = CheckLayout(ea, NodeEvidence{b_info, Snapshot(b.ref())}, secrets);
    INFO(r.Describe());
    bool named = false;
    for (const auto& x : r.findings) named = named || x.ToString().find(f.finding) != std::string::npos;
    CHECK(named);
    CHECK_THAT(r.Describe(), !Catch::Contains(stale.RevealHex()));
  }
}

TEST_CASE("ESP crosses the underlay with the expected SPIs and no plaintext; the sanity capture sees plaintext without xfrm") {
  RequireEsp();
  using kmesh::e2e::testing::TestServer;
  SecretHistory secrets;
  secrets.Add(LoadSecret("secret_spi2.json"));
  const KeyMaterial& key = secrets.Find(2)->aead_key;
  Netns a = Netns::Create("espa");
  Netns b = Netns::Create("espb");
  RunIn(a.ref(), {"ip", "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b.name()});
  struct Side {
    Netns* ns;
    const char* dev;
    const char* underlay;
    const char* pod;
    const char* peer_underlay;
    const char* peer_cidr;
    const char* boot;
  };
  const Side sides[] = {{&a, "a0", "172.31.0.1", "10.244.0.1", "172.31.0.2", "10.244.1.0/24", "aaaaaaaa-0000-4000-8000-000000000001"},
                        {&b, "b0", "172.31.0.2", "10.244.1.1", "172.31.0.1", "10.244.0.0/24", "bbbbbbbb-0000-4000-8000-000000000002"}};
  for (const auto& s : sides) {
    RunIn(s.ns->ref(), {"ip", "link", "set", "lo", "up"});
    RunIn(s.ns->ref(), {"ip", "addr", "add", std::string(s.pod) + "/32", "dev", "lo"});
    RunIn(s.ns->ref(), {"ip", "addr", "add", std::string(s.underlay) + "/24", "dev", s.dev});
    RunIn(s.ns->ref(), {"ip", "link", "set", s.dev, "up"});
    RunIn(s.ns->ref(), {"ip", "route", "add", s.peer_cidr, "via", s.peer_underlay, "dev", s.dev, "src", s.pod});
  }
  // Tunnel a -> b carries spi 2 (b's), b -> a spi 3 (a's), each key derived as Kmesh does. No marks:
  // there is no tc program here to set 0xe0, so the policies select by pod CIDR.
  auto program = [&](const Side& L, const Side& R, uint32_t local_spi, uint32_t remote_spi) {
    const std::string local_cidr = std::string(L.pod).substr(0, std::string(L.pod).rfind('.')) + ".0/24";
    IpBatch(*L.ns, {
        StateLine(R.underlay, L.underlay, local_spi, DeriveKey(key, R.underlay, L.underlay, R.boot, L.boot), false),
        StateLine(L.underlay, R.underlay, remote_spi, DeriveKey(key, L.underlay, R.underlay, L.boot, R.boot), false),
        "xfrm policy add src " + std::string(L.peer_cidr) + " dst " + local_cidr + " dir in tmpl src " + R.underlay + " dst " +
            L.underlay + " proto esp reqid 1 mode tunnel",
        "xfrm policy add src " + local_cidr + " dst " + L.peer_cidr + " dir out tmpl src " + L.underlay + " dst " + R.underlay +
            " proto esp spi " + std::to_string(remote_spi) + " reqid 1 mode tunnel",
    });
  };
  program(sides[0], sides[1], 3, 2);
  program(sides[1], sides[0], 2, 3);
  TestServer server(b.ref(), 8080, TestServer::Behaviour::kHttp, 200);

  const auto route_a = kmesh::netns::RouteTo(a.ref(), "10.244.1.1");
  const auto route_b = kmesh::netns::RouteTo(b.ref(), "10.244.0.1");
  REQUIRE(route_a.interface == "a0");
  REQUIRE(route_b.interface == "b0");
  struct Captures {
    kmesh::capture::CaptureSummary a, b;
  };
  // What each node sends: inbound ESP is re-injected on the same device once decrypted, so only the
  // outbound direction tells a leak from a decryption.
  auto capture_probe = [&](const std::string& label, uint16_t port) {
    kmesh::capture::CaptureSpec spec;
    spec.inner = kmesh::e2e::testing::TupleOf("10.244.0.1", port, "10.244.1.1", 8080);
    spec.filter = kmesh::capture::AssertFilter("172.31.0.1", "172.31.0.2", spec.inner);
    spec.marker = "kmesh-e2e-esp-marker";
    spec.save_dir = kmesh::e2e::CaseOutputDir();
    spec.direction = kmesh::capture::CaptureSpec::Direction::kOut;
    spec.interface = route_a.interface;
    spec.label = label + "_node_a";
    auto cap_a = kmesh::capture::Capture::Start(a.ref(), spec);
    spec.interface = route_b.interface;
    spec.label = label + "_node_b";
    auto cap_b = kmesh::capture::Capture::Start(b.ref(), spec);
    kmesh::e2e::ProbeSpec probe;
    probe.dst.ip = *kmesh::net::IpAddr::Parse("10.244.1.1");
    probe.dst.port = 8080;
    probe.src_ip = *kmesh::net::IpAddr::Parse("10.244.0.1");
    probe.src_port = port;
    probe.headers = {{"X-Marker", spec.marker}};
    const auto outcome = kmesh::e2e::Probe(a.ref(), probe);
    INFO(outcome.ToString());
    CHECK(outcome.Summary() == "ok(200)");
    return Captures{cap_a.Finish(), cap_b.Finish()};
  };

  const XfrmSnapshot before = Snapshot(a.ref());
  const Captures encrypted = capture_probe("esp", 43001);
  const XfrmSnapshot after = Snapshot(a.ref());
  Save("esp_capture_a.json", encrypted.a.ToJson());
  Save("esp_capture_b.json", encrypted.b.ToJson());
  INFO(encrypted.a.Describe());
  INFO(encrypted.b.Describe());
  const auto verdict_a = kmesh::capture::JudgeEncrypted(encrypted.a, 2);  // a -> b carries b's SPI
  const auto verdict_b = kmesh::capture::JudgeEncrypted(encrypted.b, 3);  // b -> a carries a's SPI
  INFO(verdict_a.Describe());
  INFO(verdict_b.Describe());
  CHECK(verdict_a.pass);
  CHECK(verdict_b.pass);
  CHECK(encrypted.a.esp_spis.size() == 1);
  CHECK(encrypted.b.esp_spis.size() == 1);
  const SnapshotDiff d = Diff(before, after);
  Save("esp_diff.json", d.ToJson());
  INFO(d.Describe());
  CHECK(d.changed_states.size() == 2);  // both of a's states counted packets
  CHECK(d.ErrorsRaised().empty());

  // Sanity: the same filters see the probe in clear once the policies are gone.
  IpBatch(a, {"xfrm policy flush"});
  IpBatch(b, {"xfrm policy flush"});
  const Captures plain = capture_probe("sanity", 43002);
  Save("sanity_capture_a.json", plain.a.ToJson());
  INFO(plain.a.Describe());
  CHECK(kmesh::capture::JudgePlaintextVisible(plain.a).pass);
  CHECK(plain.b.plaintext.size() >= 3);  // the answers in clear (the marker travels only a -> b)
  CHECK_FALSE(kmesh::capture::JudgeEncrypted(plain.a, 2).pass);
}
