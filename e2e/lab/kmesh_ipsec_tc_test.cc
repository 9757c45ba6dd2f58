// Kmesh's IPsec marking programs (//third_party/kmesh:tc_mark_encrypt, :tc_mark_decrypt) loaded like the
// daemon loads them, in a bpffs of the test's own; attached like pkg/utils/tc.go attaches them in a scratch
// namespace; judged with BPF_PROG_TEST_RUN on crafted frames. Needs no ESP in the kernel.
#include "e2e/lab/kmesh_ipsec_tc.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <string>

#include "base/names.h"
#include "bpf_probe/kmesh_abi.h"
#include "bpf_probe/tc.h"
#include "bpf_probe/test_run.h"
#include "e2e/lab/node_bpffs.h"
#include "netns/netns.h"
#include "netns/process.h"

using kmesh::lab::KmeshIpsecTc;
using kmesh::lab::NodeBpffs;
namespace bp = kmesh::bpf_probe;
namespace netns = kmesh::netns;

namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

// A work folder with a node bpffs in it; the bpffs is unmounted before the folder is removed.
struct Scratch {
  kmesh::ScratchDir dir{"ipsectc"};
  NodeBpffs bpffs_ = NodeBpffs::Mount(dir.path, "node");
  NodeBpffs& bpffs() { return bpffs_; }
};

struct SkbRun {
  int ret = -1;
  uint32_t mark = 0;
};

// Runs a sched_cls program once on `frame` with skb->mark = `mark_in`; returns its verdict and the mark.
SkbRun RunSkb(int prog_fd, bp::Bytes frame, uint32_t mark_in) {
  __sk_buff ctx{};
  ctx.mark = mark_in;
  __sk_buff out{};
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<uint32_t>(frame.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof ctx;
  opts.ctx_out = &out;
  opts.ctx_size_out = sizeof out;
  REQUIRE(bpf_prog_test_run_opts(prog_fd, &opts) == 0);
  return {static_cast<int>(opts.retval), out.mark};
}

bp::Bytes Syn(const std::string& dst) {
  return bp::BuildTcpSyn(kmesh::net::Tuple{*kmesh::net::IpAddr::Parse("10.244.1.5"), 40000,
                                           *kmesh::net::IpAddr::Parse(dst), 8080});
}

bp::Bytes Esp(const std::string& dst) {
  bp::Bytes f = Syn(dst);
  f[14 + 9] = 50;  // IPv4 protocol: ESP (the programs read only the header)
  return f;
}

}  // namespace

TEST_CASE("kmesh ipsec tc: km_nodeinfo keys are generalKNIMapKey's", "[ipsec][tc]") {
  auto k = kmesh::lab::NodeinfoKey("10.244.2.7/24");  // masked, as prefix.Masked()
  REQUIRE(k.size() == sizeof(km_nodeinfo_key));
  CHECK(k[0] == 24);
  CHECK(k[1] == 0);
  CHECK(k[4] == 10);
  CHECK(k[5] == 244);
  CHECK(k[6] == 2);
  CHECK(k[7] == 0);
  for (size_t i = 8; i < k.size(); ++i) CHECK(k[i] == 0);
  CHECK_THROWS_WITH(kmesh::lab::NodeinfoKey("10.244.2.0"), Catch::Contains("is not a CIDR"));
  CHECK_THROWS_WITH(kmesh::lab::NodeinfoKey("10.244.2.0/33"), Catch::Contains("is not a CIDR"));
}

TEST_CASE("kmesh ipsec tc: Kmesh's programs mark as Kmesh intends", "[ipsec][tc]") {
  Scratch s;
  auto tc = KmeshIpsecTc::Load(s.bpffs().KmeshMapDir());
  const std::string pin = s.bpffs().KmeshMapDir() + "/" KM_MAP_NODEINFO;
  REQUIRE(Exists(pin));
  CHECK(tc->encrypt_identity().programs.at(0).kernel_name == "tc_mark_encrypt");
  CHECK(tc->decrypt_identity().programs.at(0).kernel_name == "tc_mark_decrypt");
  CHECK_FALSE(tc->encrypt_identity().object_sha256.empty());
  CHECK(tc->encrypt_identity().pinned_commit == tc->decrypt_identity().pinned_commit);

  tc->UpdateNodeinfoCidr("10.244.2.0/24");
  CHECK(kmesh::lab::ReadNodeinfoCidrs(pin) == std::vector<std::string>{"10.244.2.0/24"});

  SECTION("tc_mark_encrypt marks 0xe0 exactly what goes to a peer's pod CIDR") {
    auto to_peer = RunSkb(tc->encrypt_fd(), Syn("10.244.2.7"), 0);
    CHECK(to_peer.ret == TC_ACT_OK);
    CHECK(to_peer.mark == KM_XFRM_ENCRYPT_MARK);
    auto elsewhere = RunSkb(tc->encrypt_fd(), Syn("10.244.3.7"), 0);
    CHECK(elsewhere.ret == TC_ACT_OK);
    CHECK(elsewhere.mark == 0);
    // Both programs share the one pinned km_nodeinfo: an entry deleted is gone for both.
    tc->DeleteNodeinfoCidr("10.244.2.0/24");
    CHECK(RunSkb(tc->encrypt_fd(), Syn("10.244.2.7"), 0).mark == 0);
    CHECK(kmesh::lab::ReadNodeinfoCidrs(pin).empty());
  }
  SECTION("tc_mark_decrypt keeps ESP and decrypted packets, clears every other mark") {
    CHECK(RunSkb(tc->decrypt_fd(), Esp("10.244.2.7"), 0x1234).mark == 0x1234);
    CHECK(RunSkb(tc->decrypt_fd(), Syn("10.244.2.7"), KM_XFRM_DECRYPTED_MARK).mark == KM_XFRM_DECRYPTED_MARK);
    CHECK(RunSkb(tc->decrypt_fd(), Syn("10.244.2.7"), KM_XFRM_ENCRYPT_MARK).mark == 0);
    CHECK(RunSkb(tc->decrypt_fd(), Syn("10.244.2.7"), 0x1234).mark == 0);
  }
  SECTION("a normal stop unpins km_nodeinfo; a restart exit keeps it for the next daemon") {
    tc.reset();
    CHECK(Exists(pin));  // closed without Unpin: the pin stays (exit type Restart)
    auto again = KmeshIpsecTc::Load(s.bpffs().KmeshMapDir());
    CHECK(again->reused_nodeinfo());
    CHECK(kmesh::lab::ReadNodeinfoCidrs(pin) == std::vector<std::string>{"10.244.2.0/24"});
    again->Unpin();
    CHECK_FALSE(Exists(pin));
  }
}

TEST_CASE("kmesh ipsec tc: attached as pkg/utils/tc.go attaches it, read back from the kernel",
          "[ipsec][tc]") {
  Scratch s;
  auto tc = KmeshIpsecTc::Load(s.bpffs().KmeshMapDir());
  netns::Netns ns = netns::Netns::Create("ipsectc");
  netns::RunChecked({"ip", "-n", ns.name(), "link", "add", "lxc9", "type", "veth", "peer", "name", "eth9"});
  CHECK(bp::QueryTcFilters(ns.ref(), "lxc9").empty());  // no clsact yet: nothing, no error

  bp::KmeshTcAttach(ns.ref(), "lxc9", tc->encrypt_fd());
  auto f = bp::KmeshTcFilter(ns.ref(), "lxc9");
  REQUIRE(f.has_value());
  CHECK(f->priority == 1);
  CHECK(f->handle == 1);
  CHECK(f->protocol == 3);  // ETH_P_ALL
  CHECK(f->direct_action);
  CHECK(f->name == "tc_ingress-lxc9");
  CHECK(f->prog.id == tc->encrypt_identity().programs.at(0).id);
  CHECK(f->prog.name == "tc_mark_encrypt");
  // `tc` prints the same filter.
  const auto shown =
      netns::RunChecked({"tc", "-n", ns.name(), "filter", "show", "dev", "lxc9", "ingress"}).out;
  CHECK_THAT(shown, Catch::Contains("pref 1 bpf") &&
                        Catch::Contains("handle 0x1 tc_ingress-lxc9 direct-action") &&
                        Catch::Contains("id " + std::to_string(f->prog.id) + " name tc_mark_encrypt"));

  // FilterReplace: attaching again (a restarted daemon's program) replaces the filter, never adds one.
  bp::KmeshTcAttach(ns.ref(), "lxc9", tc->decrypt_fd());
  auto all = bp::QueryTcFilters(ns.ref(), "lxc9");
  REQUIRE(all.size() == 1);
  CHECK(all[0].prog.name == "tc_mark_decrypt");

  bp::KmeshTcDetach(ns.ref(), "lxc9");
  CHECK(bp::QueryTcFilters(ns.ref(), "lxc9").empty());
  CHECK_THROWS_WITH(bp::KmeshTcDetach(ns.ref(), "lxc9"), Catch::Contains("lxc9"));
  CHECK_THROWS_WITH(bp::QueryTcFilters(ns.ref(), "nosuch0"), Catch::Contains("nosuch0"));
  tc->Unpin();
}
