// bench_xfrm: snapshot 10,000 xfrm policies (and states, where the kernel has ESP) in a fresh namespace
// with this project's netlink reader, with libnl-xfrm's cache, and with `ip xfrm policy show >/dev/null`
// (what a person would run), in one run; prints the times side by side and the ratios.
// Not a test: `bazel run //xfrm:bench_xfrm [-- COUNT]` as root.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

#include "base/error.h"
#include "base/privileges.h"
#include "xfrm/xfrm.h"
#include "xfrm/xfrm_libnl.h"
#include "netns/netns.h"
#include "netns/process.h"

using Clock = std::chrono::steady_clock;
using kmesh::netns::Netns;

namespace {

// Median wall time of `runs` calls, in seconds.
double Median(int runs, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto s = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void Batch(const Netns& ns, const std::string& path) {
  kmesh::netns::RunChecked({"ip", "-n", ns.name(), "-batch", path}, {}, std::chrono::minutes(2));
}

void Row(const char* what, double secs, double reference) {
  std::printf("  %-44s %9.4f s   %6.2fx of ip\n", what, secs, secs / reference);
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 10000;
  if (count <= 0 || count > 60000) {
    std::cerr << "bench_xfrm: COUNT must be 1..60000, found " << (argc > 1 ? argv[1] : "") << "\n";
    return 2;
  }
  if (std::string missing = kmesh::MissingKernelPrivileges(); !missing.empty()) {
    std::cerr << "bench_xfrm: " << missing << "\n";
    return 1;
  }
  try {
    Netns ns = Netns::Create("benchxfrm");
    char tmpl[] = "/tmp/kme2e-bench-xfrm-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) kmesh::ThrowErrno("mkstemp");
    close(fd);
    const std::string batch = tmpl;
    {
      std::ofstream out(batch);
      for (int i = 0; i < count; ++i) {
        out << "xfrm policy add src 0.0.0.0/0 dst 10." << (i / 256 % 256) << "." << (i % 256) << "." << (i / 65536) * 16
            << "/28 dir out mark 0xe0 mask 0xffffffff tmpl src 172.18.0.2 dst 172.18.0.3 proto esp spi 0x"
            << std::hex << (i + 1) << std::dec << " reqid 1 mode tunnel\n";
      }
    }
    const auto add_start = Clock::now();
    Batch(ns, batch);
    const double add = std::chrono::duration<double>(Clock::now() - add_start).count();

    kmesh::netns::ProcessOptions discard;
    discard.netns = ns.ref();
    discard.output = kmesh::netns::ProcessOptions::Output::kDiscard;
    size_t ours_n = 0, libnl_n = 0;
    const int runs = 5;
    const double ip = Median(runs, [&] { kmesh::netns::RunChecked({"ip", "xfrm", "policy", "show"}, discard); });
    const double ours = Median(runs, [&] { ours_n = kmesh::xfrm::DumpPolicies(ns.ref()).size(); });
    const double libnl = Median(runs, [&] { libnl_n = kmesh::xfrm::DumpPoliciesWithLibnl(ns.ref()).size(); });
    const double snap = Median(runs, [&] { kmesh::xfrm::Snapshot(ns.ref()); });

    std::printf("bench_xfrm: %d xfrm policies in namespace %s (added with ip -batch in %.2f s); median of %d runs\n",
                count, ns.name().c_str(), add, runs);
    Row("ip xfrm policy show >/dev/null (reference)", ip, ip);
    Row("kmesh-e2e DumpPolicies (netlink, typed)", ours, ip);
    Row("kmesh-e2e Snapshot (states+policies+stat)", snap, ip);
    Row("libnl-xfrm cache (xfrmnl_sp_alloc_cache)", libnl, ip);
    std::printf("  policies read: ours %zu, libnl %zu (expected %d)\n", ours_n, libnl_n, count);
    int rc = ours_n == static_cast<size_t>(count) && libnl_n == static_cast<size_t>(count) ? 0 : 1;
    std::printf("  verdict: ours %s iproute2 (ratio %.2f)\n", ours <= ip ? "not slower than" : "SLOWER than", ours / ip);

    if (std::string why = kmesh::xfrm::EspUnsupportedReason(); !why.empty()) {
      std::printf("states: not measured: %s\n", why.c_str());
    } else {
      std::ofstream out(batch, std::ios::trunc);
      for (int i = 0; i < count; ++i) {
        out << "xfrm state add src 172.18.0.2 dst 172.18.0.3 proto esp spi 0x" << std::hex << (0x1000 + i) << std::dec
            << " reqid 1 mode tunnel aead 'rfc4106(gcm(aes))' 0x" << std::string(72, '1') << " 128\n";
      }
      out.close();
      Batch(ns, batch);
      size_t states_n = 0;
      const double ip_s = Median(runs, [&] { kmesh::netns::RunChecked({"ip", "xfrm", "state", "show"}, discard); });
      const double ours_s = Median(runs, [&] { states_n = kmesh::xfrm::DumpStates(ns.ref()).size(); });
      std::printf("states: %d\n", count);
      Row("ip xfrm state show >/dev/null (reference)", ip_s, ip_s);
      Row("kmesh-e2e DumpStates (netlink, typed)", ours_s, ip_s);
      std::printf("  states read: %zu\n", states_n);
      if (states_n != static_cast<size_t>(count)) rc = 1;
    }
    unlink(batch.c_str());
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "bench_xfrm: " << e.what() << "\n";
    return 1;
  }
}
