// Benchmark (not a test): what one evidence read costs on a node, the way the kube env reads it and the
// way a person would by hand, side by side in one run, with the ratio. Run as root:
//   bazel run //tools/probe:bench_probe [-- RUNS]
// Reads, on a km_auth_res of 8192 entries (Kmesh's size) behind an XDP program on a pod's veth:
//   - one tuple's verdict: in-process (kind transport) / kmesh-probe process (probe transport, before
//     kubectl exec's own cost) / `bpftool -j map lookup id N key hex ...`
//   - the pod's XDP attachment: in-process / kmesh-probe xdp --netns / `ip -j -n NS link show dev eth0`
//   - and what starting any process costs on the machine (`true`), which the two commands pay too.
// Each figure is the median of RUNS runs (default 50).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/privileges.h"
#include "base/runfiles.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/kmesh_maps.h"
#include "bpf_probe/testing/test_datapath.h"
#include "bpf_probe/xdp.h"
#include "node/node_local.h"
#include "netns/netns.h"
#include "netns/process.h"

using namespace kmesh;
using Clock = std::chrono::steady_clock;

namespace {

double MedianMicros(int runs, const std::function<void()>& fn) {
  std::vector<double> us;
  fn();  // warm up (page cache, first exec)
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

void Check(const netns::ProcessResult& r) {
  if (!r.ok()) throw Error(r.Describe());
}

std::string Hex(const kmesh::net::TupleKey& k) {
  std::string s;
  char b[4];
  for (uint8_t c : k) {
    std::snprintf(b, sizeof b, "%02x ", c);
    s += b;
  }
  return s;
}

void Row(const char* what, const char* how, double us, double base) {
  std::printf("  %-26s %-52s %10.1f us  %6.1fx\n", what, how, us, us / base);
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(5, std::atoi(argv[1])) : 50;
  if (const std::string missing = MissingKernelPrivileges(); !missing.empty()) {
    std::fprintf(stderr, "bench_probe: %s (run as root)\n", missing.c_str());
    return 1;
  }
  try {
    netns::Netns node = netns::Netns::Create("bnode");
    netns::Netns pod = netns::Netns::Create("bpod");
    netns::RunChecked({"ip", "-n", node.name(), "link", "add", "veth-pod", "type", "veth", "peer", "name",
                       "eth0", "netns", pod.name()});
    netns::RunChecked({"ip", "-n", pod.name(), "addr", "add", "100.126.0.2/24", "dev", "eth0"});
    netns::RunChecked({"ip", "-n", pod.name(), "link", "set", "eth0", "up"});
    bpf_probe::testing::TestDatapath dp;
    auto link = bpf_probe::XdpLink::Attach(pod.ref(), "eth0", dp.xdp_prog_fd(), bpf_probe::XdpMode::kNative);
    bpf_probe::AuthResultMap auth(dp.map(KM_MAP_AUTH_RES));
    for (int i = 0; i < KM_AUTH_RES_MAX_ENTRIES; ++i) {
      auth.Put(*kmesh::net::Tuple::Parse("10.244.0." + std::to_string(1 + i % 250) + ":" +
                                       std::to_string(40000 + i / 250) + " -> 100.126.0.2:8080"),
               i % 2 ? bpf_probe::Verdict::kDeny : bpf_probe::Verdict::kAllow);
    }
    const auto tuple = *kmesh::net::Tuple::Parse("10.244.0.7:40011 -> 100.126.0.2:8080");
    const std::string probe = Runfile("tools/probe/kmesh-probe");
    const std::string prog = "prog:" + std::to_string(dp.xdp_prog_id());
    const std::string map_id = std::to_string(auth.map().info().id);

    std::printf("kmesh-probe evidence reads, median of %d runs (km_auth_res with %d entries)\n\n", runs,
                KM_AUTH_RES_MAX_ENTRIES);
    std::printf("  %-26s %-52s %13s  %7s\n", "read", "how", "time", "ratio");
    const auto catalog = bpf_probe::MapCatalog::FromProgram(dp.xdp_prog_id());
    const double a1 =
        MedianMicros(runs, [&] { node::LookupAuth(catalog, tuple, kmesh::net::PortOrder::kHost); });
    const double a2 = MedianMicros(runs, [&] {
      Check(netns::Run({probe, "--maps", prog, "auth", "--tuple", tuple.ToString()}));
    });
    std::vector<std::string> bpftool = {"bpftool", "-j", "map", "lookup", "id", map_id, "key", "hex"};
    std::string key = Hex(kmesh::net::EncodeTupleKey(tuple));
    for (size_t at = 0; at < key.size(); at += 3) bpftool.push_back(key.substr(at, 2));
    const double a3 = MedianMicros(runs, [&] { Check(netns::Run(bpftool)); });
    Row("km_auth_res[tuple]", "in process (kind transport)", a1, a1);
    Row("", "kmesh-probe --maps prog:ID auth --tuple T", a2, a1);
    Row("", "bpftool -j map lookup id N key hex ...", a3, a1);

    const double x1 = MedianMicros(runs, [&] { bpf_probe::QueryXdp(pod.ref(), "eth0"); });
    const double x2 = MedianMicros(runs, [&] {
      Check(netns::Run({probe, "xdp", "--netns", pod.path(), "--dev", "eth0"}));
    });
    const double x3 = MedianMicros(runs, [&] {
      Check(netns::Run({"ip", "-j", "-n", pod.name(), "link", "show", "dev", "eth0"}));
    });
    std::printf("\n");
    Row("XDP of the pod's eth0", "in process (kind transport)", x1, x1);
    Row("", "kmesh-probe xdp --netns NS --dev eth0", x2, x1);
    Row("", "ip -j -n NS link show dev eth0", x3, x1);
    const double spawn = MedianMicros(runs, [&] { Check(netns::Run({"true"})); });
    std::printf("\n");
    Row("(starting any process)", "true", spawn, a1);
    std::printf(
        "\nOn a cluster the probe transport adds one `kubectl exec` per read (an API server round trip).\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_probe: %s\n", e.what());
    return 1;
  }
  return 0;
}
