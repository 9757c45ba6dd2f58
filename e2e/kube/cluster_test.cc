// Unit tier: kubectl's JSON (recorded in testdata/kubectl/, in kubectl's own shapes) as typed records.
#include "e2e/kube/cluster.h"

#include <catch2/catch.hpp>
#include <set>

#include "base/error.h"
#include "e2e/kube/replay_testing.h"

using namespace kmesh::kube;
using Catch::Matchers::Contains;
using kmesh::kube::testing::Recorded;

namespace {

nlohmann::json Load(const std::string& name) { return nlohmann::json::parse(Recorded(name)); }

}  // namespace

TEST_CASE("pods: readiness, node, IP and containers come from kubectl get pods -o json") {
  const auto pods = ParsePodList(Load("pods_httpbin_ready.handwritten.json"), "test");
  REQUIRE(pods.size() == 1);
  const PodInfo& p = pods[0];
  CHECK(p.name == "httpbin-5d9c7b6f48-k2x9q");
  CHECK(p.ns == "test-ns1");
  CHECK(p.node == "kmesh-testing-worker");
  CHECK(p.ip == "10.244.1.7");
  CHECK(p.phase == "Running");
  CHECK(p.ready);
  CHECK_FALSE(p.deleting);
  CHECK(p.container_names == std::vector<std::string>{"server"});
  REQUIRE(p.containers.size() == 1);
  CHECK(p.containers[0].image == "gcr.io/istio-testing/app:latest");
  CHECK(p.containers[0].image_id ==
        "gcr.io/istio-testing/app@sha256:7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a");
  CHECK(p.labels.at("app") == "httpbin");
  CHECK(PodProblem(p).empty());

  const auto creating = ParsePodList(Load("pods_sleep_creating.handwritten.json"), "test").at(0);
  CHECK_FALSE(creating.ready);
  CHECK(creating.ip.empty());
  CHECK(PodProblem(creating).empty());  // ContainerCreating: waiting still makes sense
  CHECK_THAT(creating.Describe(), Contains("sleep waiting ContainerCreating"));
}

TEST_CASE("pod problems that waiting will not fix are named, with the image and kubelet's message") {
  struct Row {
    const char* file;
    const char* expected;
  };
  const std::vector<Row> rows = {
      {"pods_httpbin_image_pull.handwritten.json",
       "image gcr.io/istio-testing/app:no-such-tag of container server cannot be pulled (ErrImagePull)"},
      {"pods_kmesh_crashloop.handwritten.json",
       "container kmesh keeps crashing (5 restarts, CrashLoopBackOff)"},
  };
  for (const auto& row : rows) {
    INFO(row.file);
    std::string problem;
    for (const auto& p : ParsePodList(Load(row.file), row.file)) {
      if (problem.empty()) problem = PodProblem(p);
    }
    CHECK_THAT(problem, Contains(row.expected));
  }
  // ImagePullBackOff (kubelet's state after the first failed pull) is also a pull failure.
  auto p = ParsePodList(Load("pods_httpbin_image_pull.handwritten.json"), "t").at(0);
  p.containers.at(0).waiting_reason = "ImagePullBackOff";
  p.containers.at(0).waiting_message = "Back-off pulling image \"gcr.io/istio-testing/app:no-such-tag\"";
  CHECK_THAT(PodProblem(p), Contains("cannot be pulled (ImagePullBackOff)"));
  CHECK_THAT(PodProblem(p), Contains("Back-off pulling image"));
}

TEST_CASE("a list that is not a list is an error naming the source") {
  CHECK_THROWS_WITH(ParsePodList(Load("version.handwritten.json"), "kubectl get pods"),
                    Contains("kubectl get pods: expected a Pod list"));
  CHECK_THROWS_WITH(ParsePod(nlohmann::json::array(), "x"), Contains("expected a Pod object"));
}

TEST_CASE("dual stack: a pod's IPv6 address from status.podIPs; the families from the nodes' podCIDRs") {
  const nlohmann::json pods = nlohmann::json::parse(R"({"kind": "PodList", "items": [
      {"metadata": {"name": "httpbin", "namespace": "test-ns1"},
       "status": {"podIP": "10.244.1.7", "podIPs": [{"ip": "10.244.1.7"}, {"ip": "fd00:10:244:1::7"}]}},
      {"metadata": {"name": "v6only", "namespace": "test-ns1"},
       "status": {"podIP": "fd00:10:244:1::8", "podIPs": [{"ip": "fd00:10:244:1::8"}]}}]})");
  const auto p = ParsePodList(pods, "test");
  REQUIRE(p.size() == 2);
  CHECK(p[0].ip == "10.244.1.7");
  CHECK(p[0].ip6 == "fd00:10:244:1::7");
  CHECK(p[1].ip == "fd00:10:244:1::8");  // IPv6 primary (an IPv6 cluster): ip is already the IPv6 one
  CHECK(p[1].ip6.empty());

  using kmesh::net::Family;
  NodeFacts dual{"n1", "172.18.0.2", {"10.244.1.0/24", "fd00:10:244:1::/64"}, "", true};
  NodeFacts v6{"n2", "fc00:f853:ccd:e793::3", {"fd00:10:244:2::/64"}, "", true};
  CHECK(PodFamilies({dual}) == std::vector<Family>{Family::kIPv4, Family::kIPv6});
  CHECK(PodFamilies({v6}) == std::vector<Family>{Family::kIPv6});
  CHECK(PodFamilies(ParseNodeList(Load("nodes.handwritten.json"), "nodes")) ==
        std::vector<Family>{Family::kIPv4});
  NodeFacts none{"n3", "172.18.0.4", {}, "", true};
  CHECK_THROWS_WITH(PodFamilies({none}), Contains("KMESH_E2E_FAMILIES"));
}

TEST_CASE("nodes: InternalIP, pod CIDRs and boot ids, sorted by name") {
  const auto nodes = ParseNodeList(Load("nodes.handwritten.json"), "nodes");
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[0].name == "kmesh-testing-control-plane");
  CHECK(nodes[0].internal_ip == "172.18.0.2");
  CHECK(nodes[0].pod_cidrs == std::vector<std::string>{"10.244.0.0/24"});
  CHECK(nodes[0].boot_id == "3f1c2b9e-6a0d-4c55-9e71-2b8f0e4d1a77");
  CHECK(nodes[0].ready);
  CHECK(nodes[1].name == "kmesh-testing-worker");
  CHECK(nodes[1].internal_ip == "172.18.0.3");
}

TEST_CASE("KmeshNodeInfo: spi, addresses, bootID and podCIDRS (capital S)") {
  const auto infos = ParseKmeshNodeInfos(Load("kmeshnodeinfos.handwritten.json"), "kni");
  REQUIRE(infos.size() == 2);
  CHECK(infos[0].name == "kmesh-testing-control-plane");
  CHECK(infos[0].address == "172.18.0.2");
  CHECK(infos[0].spi == 1);
  CHECK(infos[0].pod_cidrs == std::vector<std::string>{"10.244.0.0/24"});
  CHECK(infos[1].boot_id == "b5e0d6a2-91f4-4e3b-8c2d-7a6f5e4d3c21");
  CHECK_THROWS_WITH(ParseKmeshNodeInfos(Load("kmeshnodeinfos_podcidrs_typo.handwritten.json"), "kni"),
                    Contains("spec has podCIDRs but KmeshNodeInfo's field is podCIDRS"));
  auto missing = Load("kmeshnodeinfos.handwritten.json");
  missing["items"][0]["spec"].erase("bootID");
  CHECK_THROWS_WITH(ParseKmeshNodeInfos(missing, "kni"), Contains("spec.bootID is missing"));
}

TEST_CASE("the IPsec secret: data.ipSec is kmeshctl's JSON in base64") {
  const auto s =
      ParseIpsecSecret(Load("secret_kmesh_ipsec.handwritten.json"), "secret kmesh-system/kmesh-ipsec");
  CHECK(s.spi == 1);
  CHECK(s.aead_key_name == "rfc4106(gcm(aes))");
  CHECK(s.aead_key.RevealHex() == "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223");
  auto other = Load("secret_kmesh_ipsec.handwritten.json");
  other["data"] = {{"psk", "AAAA"}};
  CHECK_THROWS_WITH(ParseIpsecSecret(other, "secret"),
                    Contains("no data.ipSec (kmeshctl's data key); the secret holds {psk}"));
}

TEST_CASE("kubectl version: the server's version, or an error when only the client answered") {
  CHECK(ParseServerVersion(Load("version.handwritten.json"), "v") == "v1.30.0");
  CHECK_THROWS_WITH(
      ParseServerVersion(nlohmann::json::parse(Recorded("version_unreachable.stdout")), "kubectl version"),
      Contains("no serverVersion.gitVersion"));
  CHECK_THROWS_WITH(ParseServerVersion(Load("version_client.json"), "kubectl version --client"),
                    Contains("kubectl version --client: no serverVersion.gitVersion"));
}

TEST_CASE("hand-written pod lists are consistent: each container has its own containerID") {
  for (const char* file :
       {"pods_httpbin_image_pull.handwritten.json", "pods_httpbin_ready.handwritten.json",
        "pods_kmesh.handwritten.json", "pods_kmesh_crashloop.handwritten.json",
        "pods_kmesh_kernel_native.handwritten.json", "pods_kmesh_no_ipsec.handwritten.json",
        "pods_kmesh_worker.handwritten.json", "pods_kmesh_worker_only.handwritten.json",
        "pods_kmesh_worker_replaced.handwritten.json", "pods_kmesh_worker_restarting.handwritten.json",
        "pods_sleep_creating.handwritten.json", "pods_sleep_ready.handwritten.json"}) {
    INFO(file);
    std::set<std::string> ids;
    size_t containers = 0;
    for (const auto& pod : Load(file).at("items")) {
      for (const char* kind : {"initContainerStatuses", "containerStatuses"}) {
        if (!pod["status"].contains(kind)) continue;
        for (const auto& c : pod["status"][kind]) {
          if (!c.contains("containerID")) continue;  // not started yet
          ++containers;
          ids.insert(c["containerID"].get<std::string>());
        }
      }
    }
    CHECK(ids.size() == containers);
  }
}

TEST_CASE("Kmesh's daemon flags are read from its one shell-string argument") {
  struct Row {
    const char* file;
    const char* mode;
    bool ipsec;
  };
  for (const Row& row :
       std::vector<Row>{{"pods_kmesh.handwritten.json", "dual-engine", true},
                        {"pods_kmesh_no_ipsec.handwritten.json", "dual-engine", false},
                        {"pods_kmesh_kernel_native.handwritten.json", "kernel-native", false}}) {
    INFO(row.file);
    const auto f = ParseKmeshDaemonFlags(ParsePodList(Load(row.file), row.file).at(0));
    CHECK(f.mode == row.mode);
    CHECK(f.ipsec == row.ipsec);
    CHECK_THAT(f.command_line, Contains("./start_kmesh.sh"));
  }
}

TEST_CASE("a waypoint Gateway is ready when Programmed=True; the conditions seen are reported") {
  std::string why;
  CHECK(GatewayReady(Load("gateway_programmed.handwritten.json"), &why));
  CHECK_FALSE(GatewayReady(Load("gateway_pending.handwritten.json"), &why));
  CHECK_THAT(why, Contains("Programmed=False (AddressNotAssigned)"));
  CHECK_FALSE(GatewayReady(nlohmann::json::object(), &why));
  CHECK(why == "no status conditions yet");
}

TEST_CASE("a service's cluster IP") {
  CHECK(ServiceClusterIp(Load("service_httpbin.handwritten.json"), "svc") == "10.96.143.27");
  CHECK_THROWS_WITH(ServiceClusterIp(nlohmann::json::array(), "svc x"),
                    Contains("svc x: expected a Service"));
}
