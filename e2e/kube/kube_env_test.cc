// Unit tier: the kube Env against recorded kubectl, curl and kmesh-probe outputs. What it deploys, how
// probes map to outcomes and tuples, the policy-realized barrier through kmesh-probe's maps, the IPsec
// secret (never in a command or a message), the Kmesh pod restart, and the cleanup of everything it
// created, also when a step fails.
#include "e2e/kube/kube_env.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "bpf_probe/fnv.h"
#include "e2e/kube/replay_testing.h"
#include "e2e/policy/template.h"

using namespace kmesh;
using namespace kmesh::kube;
using namespace kmesh::kube::testing;
using Catch::Matchers::Contains;

namespace {

struct Fixture {
  ReplayRunner* replay;
  std::shared_ptr<std::vector<std::string>> journal;
  std::unique_ptr<KubeEnv> env;

  std::string Commands() const {
    std::string s;
    for (const auto& c : *journal) s += c + "\n";
    return s;
  }
  size_t Count(const std::string& part) const {
    size_t n = 0;
    for (const auto& c : *journal) n += c.find(part) != std::string::npos ? 1 : 0;
    return n;
  }
};

std::string TmpDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

// A healthy two-node kind cluster (Kmesh with IPsec unless `kmesh_pods` says otherwise), plus `more` rules.
Fixture Make(const std::function<void(ReplayRunner&)>& more,
             const std::string& kmesh_pods = "pods_kmesh.handwritten.json") {
  setenv("KMESH_E2E_KUBE_POLL_MS", "5", 1);
  setenv("KMESH_E2E_KUBE_NODE_ACCESS", "probe", 1);
  auto r = std::make_unique<ReplayRunner>();
  ReplayRunner* raw = r.get();
  auto journal = r->journal;
  more(*r);
  // Kmesh has attached xdp_authz (Deploy waits for it on each pod), and IPsec state as kmeshctl leaves it.
  r->On({"exec", "xdp"}, File("probe_xdp.handwritten.json"));
  r->On({"get", "kmeshnodeinfos.kmesh.net"}, File("kmeshnodeinfos.handwritten.json"));
  r->On({"create"}, Text("secret/kmesh-ipsec created\n"));
  r->On({"replace"}, Text("secret/kmesh-ipsec replaced\n"));
  r->On({"version"}, File("version.handwritten.json"));
  r->On({"get", "pods", "kmesh-system", "spec.nodeName=kmesh-testing-worker"},
        File("pods_kmesh_worker.handwritten.json"));
  r->On({"get", "pods", "kmesh-system"}, File(kmesh_pods));
  r->On({"get", "nodes"}, File("nodes.handwritten.json"));
  r->On({"get", "namespace"}, Text(""));  // absent (also after deletion)
  r->On({"apply"}, Text("applied\n"));
  r->On({"delete"}, Text("deleted\n"));
  r->On({"cp"}, Text(""));
  r->On({"exec", "chmod"}, Text(""));
  r->On({"exec", "rm"}, Text(""));
  static int n = 0;
  const std::string kubeconfig = TmpDir() + "/kubeconfig";
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\n";
  KubeOptions o;
  o.run_id = "rtest";
  o.workdir = TmpDir() + "/kube-work-" + std::to_string(++n);
  o.node_access.run_id = "rtest";
  o.node_access.local_probe = "/opt/kmesh-probe";
  auto env = std::make_unique<KubeEnv>(
      std::make_unique<Kubectl>(KubectlConfig{"/bin/true", kubeconfig, "", false, ""}, std::move(r)), o);
  return Fixture{raw, journal, std::move(env)};
}

e2e::AppSpec Server() { return {"httpbin", e2e::AppKind::kServer, 1, "test-ns1", {}, false}; }
e2e::AppSpec Client() { return {"sleep-a", e2e::AppKind::kClient, 0, "test-ns2", {}, false}; }

void Apps(ReplayRunner& r) {
  r.On({"get", "pods", "app=httpbin"}, File("pods_httpbin_ready.handwritten.json"));
  r.On({"get", "pods", "app=sleep-a"}, std::vector<Answer>{File("pods_sleep_creating.handwritten.json"),
                                                           File("pods_sleep_ready.handwritten.json")});
  r.On({"get", "service", "httpbin"}, File("service_httpbin.handwritten.json"));
}

}  // namespace

TEST_CASE("kube env: deploy pins apps to nodes; probes run curl through kubectl exec; the tuple is known") {
  Fixture f = Make([](ReplayRunner& r) {
    Apps(r);
    r.On({"exec", "curl"}, std::vector<Answer>{CurlThroughExec("ok"), CurlThroughExec("connect_timeout"),
                                               CurlThroughExec("reset"), CurlThroughExec("refused"),
                                               CurlThroughExec("read_timeout"),
                                               Text("", 1, Recorded("exec_pod_not_found.handwritten.stderr")),
                                               Text("", 1, Recorded("exec_unreachable.stderr"))});
  });
  const e2e::App server = f.env->Deploy(Server());
  const e2e::App client = f.env->Deploy(Client());
  CHECK(server.node == "kmesh-testing-worker");
  CHECK(server.ip.ToString() == "10.244.1.7");
  CHECK(server.port == kServerPort);
  CHECK(server.alt_port == kServerAltPort);
  CHECK(server.workload_id == bpf_probe::Fnv32a("Kubernetes//Pod/test-ns1/httpbin-5d9c7b6f48-k2x9q"));
  CHECK(client.node == "kmesh-testing-control-plane");
  CHECK(client.ip.ToString() == "10.244.0.12");  // after ContainerCreating, then Ready
  CHECK(f.env->ServiceAddress(server).ToString() == "10.244.1.7:8080");
  CHECK(f.Count("apply -f") == 4);                 // two namespaces, two apps
  CHECK(f.env->Deploy(Server()).ip == server.ip);  // deployed once

  struct Row {
    e2e::OutcomeKind kind;
    int status;
    uint16_t recorded_port;  // curl's local_port (0: curl reports none, the harness's --local-port holds)
  };
  // The recorded runs (testdata/curl/captures.json): curl bound the ports capture.py chose.
  const std::vector<Row> rows = {{e2e::OutcomeKind::kOk, 200, 42001},
                                 {e2e::OutcomeKind::kConnectTimeout, 0, 0},
                                 {e2e::OutcomeKind::kReset, 0, 42006},
                                 {e2e::OutcomeKind::kRefused, 0, 0},
                                 {e2e::OutcomeKind::kReadTimeout, 0, 42008}};
  for (const auto& row : rows) {
    const e2e::ProbeOutcome o = f.env->Probe(client, server, e2e::ProbeSpec{});
    INFO(o.ToString());
    CHECK(o.kind == row.kind);
    CHECK(o.http_status == row.status);
    CHECK(o.via == "kubectl exec curl");
    CHECK(o.tuple.src.ip.ToString() == "10.244.0.12");
    CHECK(o.tuple.dst.ip.ToString() == "10.244.1.7");
    const std::string last = f.journal->back();
    CHECK_THAT(last, Contains("exec -n test-ns2 sleep-a-7f6d9c8b5-p4w8n -c sleep -- curl"));
    if (row.recorded_port != 0) {
      CHECK(o.tuple.src.port == row.recorded_port);
    } else {
      CHECK_THAT(last, Contains("--local-port " + std::to_string(o.tuple.src.port)));
    }
  }
  // kubectl itself failing is not a probe outcome: it is an error naming the command and kubectl's words.
  CHECK_THROWS_WITH(
      f.env->Probe(client, server, e2e::ProbeSpec{}),
      Contains("no curl result came back") && Contains("pods \"sleep-a-7f6d9c8b5-gone\" not found"));
  CHECK_THROWS_WITH(f.env->Probe(client, server, e2e::ProbeSpec{}),
                    Contains("no curl result came back") &&
                        Contains("The connection to the server 127.0.0.1:1 was refused"));
  CHECK_THROWS_WITH(f.env->Probe(server, client, e2e::ProbeSpec{}), Contains("httpbin is a server"));
  CHECK(f.replay->unmatched().empty());

  f.env.reset();  // the destructor undoes everything
  CHECK(f.Count("delete namespace test-ns2 --ignore-not-found --wait=false") == 1);
  CHECK(f.Count("delete namespace test-ns1 --ignore-not-found --wait=false") == 1);
}

TEST_CASE("kube env: an image that cannot be pulled stops Deploy at once, and its namespace is removed") {
  setenv("KMESH_E2E_POD_READY_MS", "60000", 1);
  Fixture f = Make([](ReplayRunner& r) {
    r.On({"get", "pods", "app=httpbin"}, File("pods_httpbin_image_pull.handwritten.json"));
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(f.env->Deploy(Server()),
                    Contains("deploy test-ns1/httpbin: pod test-ns1/httpbin-5d9c7b6f48-k2x9q") &&
                        Contains("image gcr.io/istio-testing/app:no-such-tag of container server "
                                 "cannot be pulled (ErrImagePull)"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));  // not the readiness bound
  CHECK(f.env->CleanupNow().empty());
  CHECK(f.Count("delete namespace test-ns1") == 1);
  unsetenv("KMESH_E2E_POD_READY_MS");
}

TEST_CASE("kube env: a namespace someone else made is never used (nor deleted)") {
  Fixture f = Make([](ReplayRunner& r) {
    r.On({"get", "namespace", "test-ns1"}, File("namespace_existing.handwritten.json"));
  });
  CHECK_THROWS_WITH(f.env->Deploy(Server()),
                    Contains("namespace test-ns1 already exists and this run did not create it") &&
                        Contains("run r977-1787100000 did") && Contains("kubectl delete namespace test-ns1"));
  f.env.reset();
  CHECK(f.Count(" apply ") == 0);
  CHECK(f.Count(" delete namespace ") == 0);
}

TEST_CASE(
    "kube env: policies are applied whole or not at all; what the suite does not remove is removed at the "
    "end") {
  Fixture f = Make([](ReplayRunner&) {});
  const policy::Manifest bad{
      "typo.yaml",
      "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  namespace: "
      "test-ns1\n"
      "spec:\n  action: DENY\n  rules:\n  - from:\n    - source:\n        ipBlok: [\"10.0.0.1\"]\n"};
  CHECK_THROWS_WITH(f.env->Apply(bad), Contains("typo.yaml"));
  CHECK(f.Count(" apply ") == 0);
  const auto vars =
      policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", "10.244.0.12");
  const auto deny = f.env->Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  const auto allow = f.env->Apply(policy::RenderPolicyTemplate("ip-allow", vars));
  REQUIRE(deny.size() == 1);
  CHECK(deny[0].IdKey() == "test-ns1/ip-deny-policy");
  CHECK(f.env->MechanismOf(deny[0]) == e2e::Mechanism::kXdp);
  f.env->Remove(deny);
  CHECK(f.Count(
            "delete authorizationpolicies.security.istio.io ip-deny-policy -n test-ns1 --ignore-not-found") ==
        1);
  CHECK(f.env->CleanupNow().empty());
  CHECK(f.Count("delete authorizationpolicies.security.istio.io ip-deny-policy") ==
        1);  // removed once, not twice
  CHECK(f.Count("delete authorizationpolicies.security.istio.io ip-allow-policy -n test-ns1") == 1);
}

TEST_CASE("kube env: mechanisms per policy kind (kmesh-facts.md §1.6)") {
  Fixture f = Make([](ReplayRunner&) {});
  struct Row {
    const char* tmpl;
    policy::Vars vars;
    e2e::Mechanism mechanism;
  };
  auto sel = [] { return policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin"); };
  auto tgt = [] { return policy::Vars().Set("Namespace", "test-ns1").Set("Service", "httpbin-wp"); };
  const std::vector<Row> rows = {
      {"ip-allow", sel().Set("Ip", "10.244.0.12"), e2e::Mechanism::kXdp},
      {"port-deny", sel().SetList("Ports", {"9090"}), e2e::Mechanism::kXdp},
      {"namespace-allow", sel().Set("SourceNamespace", "test-ns2"), e2e::Mechanism::kUserspace},
      {"namespace-deny", sel().Set("SourceNamespace", "test-ns2"), e2e::Mechanism::kUserspace},
      {"header-deny", tgt().Set("HeaderName", "x-kmesh-e2e").Set("HeaderValue", "yes"),
       e2e::Mechanism::kWaypoint},
      {"host-allow", tgt().Set("TargetHost", "httpbin-wp.test-ns1.svc.cluster.local"),
       e2e::Mechanism::kWaypoint},
  };
  for (const auto& row : rows) {
    INFO(row.tmpl);
    const auto m = policy::RenderPolicyTemplate(row.tmpl, row.vars);
    CHECK(f.env->MechanismOf(policy::ParseManifests(m.text, m.origin).at(0)) == row.mechanism);
  }
}

TEST_CASE("kube env: the policy-realized barrier reads km_authz_policy and km_wlpolicy through kmesh-probe") {
  Fixture f = Make([](ReplayRunner& r) {
    Apps(r);
    r.On({"exec", "maps"}, std::vector<Answer>{File("probe_maps_not_yet.handwritten.json"),
                                               File("probe_maps.handwritten.json")});
    r.On({"exec", "auth"}, File("probe_auth_deny.handwritten.json"));
    r.On({"exec", "xdp"}, File("probe_xdp.handwritten.json"));
    r.On({"exec", "xfrm"}, File("probe_xfrm_worker.handwritten.json"));
  });
  const e2e::App server = f.env->Deploy(Server());
  const auto vars =
      policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", "10.244.0.12");
  const auto deny = f.env->Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  const e2e::Realized r = f.env->WaitRealized(deny.at(0), server);
  INFO(r.evidence);
  CHECK(r.policy_id == 2471187720u);
  CHECK(r.mechanism == e2e::Mechanism::kXdp);
  CHECK_THAT(r.evidence, Contains("km_authz_policy (pin folder /sys/fs/bpf/bpf_kmesh_workload/map) holds "
                                  "0x934b5508 (test-ns1/ip-deny-policy)"));
  CHECK_THAT(r.evidence, Contains("km_wlpolicy[0xe46f2695] = {0x934b5508}"));
  CHECK_THAT(r.evidence, !Contains("not FNV-32a"));  // the inferred UID matches Kmesh's id here
  CHECK(f.Count("exec -n kmesh-system kmesh-9fm2k -c kmesh -- /tmp/kmesh-probe-rtest --proc /host/proc maps "
                "--workload-ip 10.244.1.7") == 2);

  const auto verdict =
      f.env->AuthVerdict(server, *kmesh::net::Tuple::Parse("10.244.0.12:42019 -> 10.244.1.7:8080"));
  REQUIRE(verdict.has_value());
  CHECK(*verdict == bpf_probe::Verdict::kDeny);
  CHECK(f.env->XdpOf(server).program()->name == "xdp_authz");
  const auto snap = f.env->Xfrm("kmesh-testing-worker");
  REQUIRE(snap.states.size() == 2);
  CHECK_FALSE(snap.states[0].aead_key.empty());  // raw keys crossed the pipe, for the layout check
  CHECK(f.Count("cp /opt/kmesh-probe kmesh-system/kmesh-9fm2k:/tmp/kmesh-probe-rtest -c kmesh") ==
        1);  // copied once
  CHECK_THROWS_WITH(f.env->Xfrm("no-such-node"), Contains("no node named \"no-such-node\""));

  f.env.reset();
  CHECK(f.Count("exec -n kmesh-system kmesh-9fm2k -c kmesh -- rm -f /tmp/kmesh-probe-rtest") == 1);
  CHECK(f.Count("delete authorizationpolicies.security.istio.io ip-deny-policy") == 1);
}

TEST_CASE("kube env: a policy that never reaches the maps fails the barrier with what the maps held") {
  setenv("KMESH_E2E_POLICY_REALIZED_MS", "200", 1);
  Fixture f = Make([](ReplayRunner& r) {
    Apps(r);
    r.On({"exec", "maps"}, File("probe_maps_not_yet.handwritten.json"));
  });
  const e2e::App server = f.env->Deploy(Server());
  const auto vars =
      policy::Vars().Set("Namespace", "test-ns1").Set("App", "httpbin").Set("Ip", "10.244.0.12");
  const auto deny = f.env->Apply(policy::RenderPolicyTemplate("ip-deny", vars));
  CHECK_THROWS_WITH(f.env->WaitRealized(deny.at(0), server),
                    Contains("policy test-ns1/ip-deny-policy was not realized for httpbin within 200 ms") &&
                        Contains("lacks 0x934b5508") && Contains("km_wlpolicy[0xe46f2695] = absent") &&
                        Contains("kmesh-probe in kmesh-system/kmesh-9fm2k"));
  unsetenv("KMESH_E2E_POLICY_REALIZED_MS");
}

namespace {

const char* kNoNodeInfos =
    R"({"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}})";

// The ipSec data of an applied manifest, parsed.
ipsec::IpsecSecret AppliedSecret(const std::string& text) {
  const auto at = text.find("ipSec: ") + 7;
  const auto bytes = ipsec::Base64Decode(text.substr(at, text.find('\n', at) - at), "applied secret");
  return ipsec::IpsecSecret::Parse(std::string(bytes.begin(), bytes.end()), "applied secret");
}

}  // namespace

TEST_CASE("kube env: the IPsec secret is written like kmeshctl's, never shown, and restored at the end") {
  std::string key_b64;
  {
    // No secret before the run: it is created (SPI 1, kmeshctl's Create) and deleted at the end.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, Text(""));
      r.On({"get", "kmeshnodeinfos.kmesh.net"}, Text(kNoNodeInfos));
    });
    const auto key = ipsec::KeyMaterial::FromHex(std::string(72, 'c'));
    const auto s = f.env->RotateSecret(key);
    CHECK(s.spi == 1);
    key_b64 = ipsec::Base64Encode(key.bytes());
    const auto applied = f.replay->applied();
    REQUIRE(applied.size() == 1);
    CHECK_THAT(applied[0],
               Contains("name: kmesh-ipsec") && Contains("namespace: kmesh-system") && Contains("ipSec: "));
    CHECK_THAT(applied[0], !Contains("annotations"));
    for (const auto& c : *f.journal) CHECK(c.find(key_b64) == std::string::npos);
    CHECK(f.Count(" create -f ") == 1);
    CHECK(f.Count(" replace ") == 0);
    CHECK(f.Count(" apply ") == 0);  // apply would copy the key into the last-applied annotation
    for (const auto& e : std::filesystem::directory_iterator(f.env->options().workdir)) {
      CHECK(e.path().filename().string().find("secret") == std::string::npos);  // the key file is gone
    }
    CHECK(f.env->secrets().Find(1) != nullptr);
    f.env.reset();
    CHECK(f.Count("delete secret kmesh-ipsec -n kmesh-system --ignore-not-found") == 1);
  }
  {
    // A secret before the run (SPI 1): replaced by SPI 2 (kmeshctl's Update); at the end its key comes
    // back as SPI 3, replaced again.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, File("secret_kmesh_ipsec.handwritten.json"));
    });
    const auto s = f.env->RotateSecret();
    CHECK(s.spi == 2);
    CHECK(s.aead_key.size() == 36);
    CHECK(f.env->secrets().Find(1) != nullptr);  // the original, which the daemons keep
    CHECK(f.env->CleanupNow().empty());
    const auto applied = f.replay->applied();
    REQUIRE(applied.size() == 2);
    CHECK(AppliedSecret(applied[0]).spi == 2);
    const auto restored = AppliedSecret(applied[1]);
    CHECK(restored.spi == 3);
    CHECK(restored.aead_key.RevealHex() ==
          "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223");
    CHECK(f.Count(" replace -f ") == 2);
    CHECK(f.Count(" create ") == 0);
    CHECK(f.Count(" apply ") == 0);
  }
  {
    // Created behind the run's back between its read and its write: AlreadyExists, so it is replaced.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, Text(""));
      r.On({"get", "kmeshnodeinfos.kmesh.net"}, Text(kNoNodeInfos));
      r.On({"create"}, Text("", 1,
                            "Error from server (AlreadyExists): error when creating \"x.yaml\": secrets "
                            "\"kmesh-ipsec\" already exists\n"));
    });
    f.env->RotateSecret();
    CHECK(f.Count(" create -f ") == 1);
    CHECK(f.Count(" replace -f ") == 1);
  }
  {
    // Any other failure names the command and kubectl's words, never the key.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, Text(""));
      r.On({"get", "kmeshnodeinfos.kmesh.net"}, Text(kNoNodeInfos));
      r.On({"create"}, Text("", 1, "Error from server (Forbidden): secrets is forbidden\n"));
    });
    const auto key = ipsec::KeyMaterial::FromHex(std::string(72, 'd'));
    try {
      f.env->RotateSecret(key);
      FAIL("expected an error");
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Contains("apply the IPsec secret (SPI 1, key sha256:") && Contains("(Forbidden)"));
      CHECK_THAT(e.what(), !Contains(ipsec::Base64Encode(key.bytes())) && !Contains(std::string(72, 'd')));
    }
  }
}

TEST_CASE("kube env: the first SPI is above the cluster's secret and every KmeshNodeInfo") {
  {
    // As Kmesh's Go e2e leaves a cluster: secret SPI 1 here, nodes at 1: the run starts at 2.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, File("secret_kmesh_ipsec.handwritten.json"));
    });
    CHECK(f.env->FirstSpi() == 2);
    const size_t reads = f.journal->size();
    CHECK(f.env->FirstSpi() == 2);  // once per env
    CHECK(f.journal->size() == reads);
  }
  {
    // A node ahead of the secret (the secret was deleted and made again): above the node.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, Text(""));
      std::string infos = Recorded("kmeshnodeinfos.handwritten.json");
      infos.replace(infos.find("\"spi\": 1"), 9, "\"spi\": 7");
      r.On({"get", "kmeshnodeinfos.kmesh.net"}, Text(infos));
    });
    CHECK(f.env->FirstSpi() == 8);
  }
  {
    // A fresh cluster: SPI 1, as kmeshctl's first secret.
    Fixture f = Make([](ReplayRunner& r) {
      r.On({"get", "secret", "kmesh-ipsec"}, Text(""));
      r.On({"get", "kmeshnodeinfos.kmesh.net"}, Text(kNoNodeInfos));
    });
    CHECK(f.env->FirstSpi() == 1);
  }
  {
    // Without IPsec the question is refused like any IPsec step.
    Fixture f = Make([](ReplayRunner&) {}, "pods_kmesh_no_ipsec.handwritten.json");
    CHECK_THROWS_WITH(f.env->FirstSpi(), Contains("IPsec is not enabled"));
  }
}

TEST_CASE("kube env: Deploy returns once Kmesh's xdp_authz is attached to the pod, bounded") {
  const std::string none =
      R"({"probe": "kmesh-probe", "version": 1, "command": "xdp", "netns": "/host/proc/8812/ns/net",
          "ifname": "eth0", "ifindex": 2, "mode": "none", "programs": []})";
  {
    // Not yet, then attached: Deploy waited for it, on the server's node, and on the client's pod too.
    Fixture f = Make([&](ReplayRunner& r) {
      Apps(r);
      r.On({"exec", "xdp", "10.244.1.7"},
           std::vector<Answer>{Text(none), Text(none), File("probe_xdp.handwritten.json")});
    });
    const e2e::App server = f.env->Deploy(Server());
    CHECK(server.ip.ToString() == "10.244.1.7");
    CHECK(f.Count("xdp --pod-ip 10.244.1.7") == 3);
    f.env->Deploy(Client());
    CHECK(f.Count("xdp --pod-ip 10.244.0.12") == 1);
    CHECK(f.env->DatapathIdentity().at("images").dump().find("gcr.io/istio-testing/app@sha256:7a7a") !=
          std::string::npos);
  }
  setenv("KMESH_E2E_XDP_ATTACHED_MS", "300", 1);
  {
    // Never: the deploy fails after the bound, saying what it saw and where to look.
    Fixture f = Make([&](ReplayRunner& r) {
      Apps(r);
      r.On({"exec", "xdp"}, Text(none));
    });
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_WITH(f.env->Deploy(Server()),
                      Contains("deploy test-ns1/httpbin: Kmesh did not attach xdp_authz to pod "
                               "test-ns1/httpbin-5d9c7b6f48-k2x9q "
                               "(10.244.1.7) on kmesh-testing-worker within 300 ms") &&
                          Contains("no XDP program on eth0") && Contains("KMESH_E2E_XDP_ATTACHED_MS") &&
                          Contains("istio.io/dataplane-mode=Kmesh"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    CHECK(f.env->CleanupNow().empty());  // its namespace goes
    CHECK(f.Count("delete namespace test-ns1") == 1);
  }
  {
    // Some other XDP program is not Kmesh's.
    std::string other = Recorded("probe_xdp.handwritten.json");
    other.replace(other.find("\"xdp_authz\""), 11, "\"xdp_other\"");
    Fixture f = Make([&](ReplayRunner& r) {
      Apps(r);
      r.On({"exec", "xdp"}, Text(other));
    });
    CHECK_THROWS_WITH(f.env->Deploy(Server()),
                      Contains("XDP program xdp_other (id 412) on eth0, not Kmesh's xdp_authz"));
  }
  unsetenv("KMESH_E2E_XDP_ATTACHED_MS");
}

TEST_CASE("kube env: IPsec steps stop at once when Kmesh runs without --enable-ipsec=true") {
  Fixture f = Make([](ReplayRunner&) {}, "pods_kmesh_no_ipsec.handwritten.json");
  CHECK_THROWS_WITH(f.env->ApplySecret(NextSecret(std::nullopt)), Contains("IPsec is not enabled"));
  CHECK_THROWS_WITH(f.env->IpsecNodes(), Contains("lacks --enable-ipsec=true"));
  CHECK(f.Count(" apply ") == 0);
  CHECK(f.Count(" create ") == 0);
  CHECK(f.Count(" replace ") == 0);
  CHECK(f.Count(" secret ") == 0);
}

TEST_CASE("kube env: KmeshNodeInfo feeds the layout checker") {
  Fixture f = Make([](ReplayRunner& r) {
    r.On({"get", "kmeshnodeinfos.kmesh.net"}, File("kmeshnodeinfos.handwritten.json"));
  });
  const auto nodes = f.env->IpsecNodes();
  REQUIRE(nodes.size() == 2);
  CHECK(nodes[1].name == "kmesh-testing-worker");
  CHECK(nodes[1].spi == 1);
}

TEST_CASE(
    "kube env: restarting Kmesh on a node waits for a different, ready pod, then re-copies kmesh-probe") {
  Fixture f = Make([](ReplayRunner& r) {
    r.On({"get", "pods", "kmesh-system", "spec.nodeName=kmesh-testing-worker"},
         std::vector<Answer>{File("pods_kmesh_worker.handwritten.json"),
                             File("pods_kmesh_worker.handwritten.json"),
                             File("pods_kmesh_worker.handwritten.json"),
                             File("pods_kmesh_worker_restarting.handwritten.json"),
                             File("pods_kmesh_worker_replaced.handwritten.json")});
    r.On({"exec", "xdp"}, File("probe_xdp.handwritten.json"));
  });
  f.env->node("kmesh-testing-worker").XdpOfPod("10.244.1.7");  // copies kmesh-probe into kmesh-9fm2k
  f.env->RestartDataplane("kmesh-testing-worker");
  CHECK(f.Count("delete pod kmesh-9fm2k -n kmesh-system --wait=false") == 1);
  f.env->node("kmesh-testing-worker").XdpOfPod("10.244.1.7");
  CHECK(f.Count("cp /opt/kmesh-probe kmesh-system/kmesh-w7c4d:/tmp/kmesh-probe-rtest") ==
        1);  // the new pod got its copy
  CHECK(f.replay->unmatched().empty());
}

TEST_CASE("kube env: logs of Kmesh on a node and of an app, bounded by --tail") {
  Fixture f = Make([](ReplayRunner& r) {
    Apps(r);
    r.On({"logs", "kmesh-9fm2k"}, Text("time=\"2026-08-20T10:06:01Z\" level=info msg=\"auth denied\"\n"));
    r.On({"logs", "httpbin-5d9c7b6f48-k2x9q"}, Text("GET / 200\n"));
  });
  CHECK_THAT(f.env->KmeshLogs("kmesh-testing-worker", 50), Contains("auth denied"));
  CHECK(f.Count("logs -n kmesh-system kmesh-9fm2k --tail=50") == 1);
  const e2e::App server = f.env->Deploy(Server());
  CHECK(f.env->AppLogs(server) == "GET / 200\n");
  CHECK(f.Count("logs -n test-ns1 httpbin-5d9c7b6f48-k2x9q --tail=200 --all-containers") == 1);
}

TEST_CASE(
    "kube env: continuity load runs in a fortio pod next to the client and comes back as a LoadReport") {
  Fixture f = Make([](ReplayRunner& r) {
    Apps(r);
    r.On({"get", "pods", "app=sleep-a-fortio"}, File("pods_sleep_ready.handwritten.json"));
    r.On({"exec", "fortio"}, File("fortio_rotation_errors.handwritten.json"));
  });
  const e2e::App server = f.env->Deploy(Server());
  const e2e::App client = f.env->Deploy(Client());
  e2e::LoadSpec spec;
  spec.requests_per_second = 10;
  spec.duration = std::chrono::milliseconds(10000);
  spec.workers = 4;
  FortioRun run = f.env->StartFortioLoad(client, server, spec);
  const e2e::LoadReport rep = run.Wait();
  CHECK(rep.records.size() == 100);
  CHECK(rep.Failures() == 3);
  CHECK(run.result().sockets == 100);
  CHECK(f.Count("apply -f") == 5);  // two namespaces, two apps, and fortio once
  CHECK_THAT(f.Commands(), Contains("-- fortio load -qps 10 -t 10.000s -c 4 -keepalive=false"));
  CHECK_THAT(f.Commands(), Contains("-json - http://10.244.1.7:8080/"));
  // Env::StartLoad (what the IPsec suite calls) is the same fortio run behind the Env interface.
  CHECK(f.env->StartLoad(client, server, spec)->Wait().Failures() == 3);
  CHECK(f.Count("apply -f") == 5);  // the same fortio pod again
  spec.probe.src_port = 40000;
  CHECK_THROWS_WITH(f.env->StartFortioLoad(client, server, spec), Contains("src_port must be 0"));
}

TEST_CASE("kube env: a Kmesh image without tar cannot take kmesh-probe, and the error says so") {
  Fixture f =
      Make([](ReplayRunner& r) { r.On({"cp"}, Text("", 1, Recorded("cp_no_tar.handwritten.stderr"))); });
  CHECK_THROWS_WITH(
      f.env->node("kmesh-testing-worker").XdpOfPod("10.244.1.7"),
      Contains("copy kmesh-probe into kmesh-system/kmesh-9fm2k (kubectl cp needs tar in the container)") &&
          Contains("exec: \"tar\": executable file not found"));
  CHECK(f.Count(" exec ") == 0);  // nothing ran in the pod
}
