// The README's example session, run for real on a live lab node (Kmesh's datapath, policies written by
// Kmesh's deserializer, httpbin and two clients): a developer asks why a client the policy allows is
// dropped, and kmesh-mapdump answers. Every command's output is printed (and written to the test's outputs
// as session.txt, where the README's example comes from), and the facts the README states are checked.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "base/defaults.h"
#include "base/runfiles.h"
#include "e2e/lab/lab.h"
#include "e2e/policy/template.h"
#include "netns/process.h"

using kmesh::e2e::AppKind;
using kmesh::lab::Lab;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Vars;

namespace {

std::string transcript;

// Runs kmesh-mapdump with `args`, records "$ kmesh-mapdump ARGS" and its output.
kmesh::netns::ProcessResult Step(const std::string& pin, std::vector<std::string> args) {
  std::string line = "$ kmesh-mapdump --pin-dir $PIN";
  for (const auto& a : args) line += " " + a;
  args.insert(args.begin(), {kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "--pin-dir", pin});
  const auto r = kmesh::netns::Run(args);
  transcript += line + "\n" + r.out + (r.err.empty() ? "" : "[stderr] " + r.err) + "\n";
  return r;
}

int Curl(Lab& lab, const kmesh::e2e::App& client, const kmesh::e2e::App& server, uint16_t local_port) {
  kmesh::netns::ProcessOptions opts;
  opts.netns = lab.pod_of(client).ns.ref();
  const auto r = kmesh::netns::Run(
      {"curl", "-sS", "-o", "/dev/null", "--local-port", std::to_string(local_port), "--connect-timeout", "1",
       "--max-time", "3", "http://" + server.ip.ToString() + ":" + std::to_string(server.port) + "/get"},
      opts);
  transcript += "$ curl from " + client.name + " (" + client.ip.ToString() + ":" +
                std::to_string(local_port) + ") to " + server.name + ": exit " + std::to_string(r.exit_code) +
                "\n\n";
  return r.exit_code;
}

}  // namespace

TEST_CASE("the README session: why is a client the policy allows dropped?") {
  auto lab = Lab::Up();
  const auto& server = lab->Deploy({"httpbin", AppKind::kServer, 1, "test-ns1", {}, false});
  const auto& a = lab->Deploy({"sleep-a", AppKind::kClient, 0, "test-ns2", {}, false});
  const auto& b = lab->Deploy({"sleep-b", AppKind::kClient, 0, "test-ns3", {}, false});
  const std::string pin = lab->kmesh("node2").pin_dir();
  // ALLOW clients in [a] OR connections to httpbin's port: Istio allows both clients.
  const auto applied =
      lab->Apply(RenderPolicyTemplate("two-rules", Vars()
                                                       .Set("Name", "allow-a-or-port")
                                                       .Set("Namespace", "test-ns1")
                                                       .Set("App", "httpbin")
                                                       .Set("Action", "ALLOW")
                                                       .SetList("Ips", {a.ip.ToString()})
                                                       .SetList("Ports", {std::to_string(server.port)})));
  const std::string sa = a.ip.ToString() + ":43001", sb = b.ip.ToString() + ":43002",
                    dst = server.ip.ToString() + ":" + std::to_string(server.port);

  const auto policies = Step(pin, {"policies", "--name", "test-ns1/allow-a-or-port"});
  REQUIRE(policies.ok());
  CHECK_THAT(policies.out, Catch::Contains("- source_ips: [" + a.ip.ToString() + "/32]"));
  CHECK_THAT(policies.out, Catch::Contains("- destination_ports: [" + std::to_string(server.port) + "]"));

  CHECK(Curl(*lab, a, server, 43001) == 0);
  // The watch starts once a's connection is gone from km_auth_res (Kmesh deletes the ALLOW entry when the
  // connection closes, later under load): otherwise that deletion is the one event it reports.
  const auto a_cached = [&] {  // not in the transcript: the README shows the session, not this wait
    return kmesh::netns::Run({kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "--pin-dir", pin, "auth"})
               .out.find(sa) != std::string::npos;
  };
  const auto quiet_by = std::chrono::steady_clock::now() + kmesh::defaults::ConnectionClosed();
  while (a_cached() && std::chrono::steady_clock::now() < quiet_by)
    std::this_thread::sleep_for(kmesh::defaults::PollInterval());
  CHECK_FALSE(a_cached());  // a closed its connection: Kmesh deleted its verdict (sockops.c:190-194)
  // b's connection, watched as it happens (polling: a km_auth_res entry that lives a few milliseconds, like
  // an allowed connection's, can fall between two reads; b's tail-call context stays).
  kmesh::netns::Process watch = kmesh::netns::Process::Start(
      {kmesh::Runfile("tools/mapdump/kmesh-mapdump"), "--pin-dir", pin, "watch", "--map", "km_auth_res",
       "--map", "km_tcargs", "--count", "1", "--duration", "10000"});
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(Curl(*lab, b, server, 43002) == 28);  // b: connect timeout, though port 8000 is allowed
  const auto watched = watch.Wait(std::chrono::milliseconds(15000));
  transcript +=
      "$ kmesh-mapdump --pin-dir $PIN watch --map km_auth_res --map km_tcargs    # while sleep-b "
      "connects\n" +
      watched.out + "\n";
  CHECK_THAT(watched.out, Catch::Contains("km_tcargs + " + sb + " -> " + dst));
  const auto auth = Step(pin, {"auth"});
  REQUIRE(auth.ok());
  CHECK(auth.out.find(b.ip.ToString()) == std::string::npos);  // an unmatched ALLOW caches nothing
  const auto why_b = Step(pin, {"explain", sb, dst});
  REQUIRE(why_b.ok());
  CHECK_THAT(why_b.out, Catch::Contains("verdict: XDP_DROP"));
  CHECK_THAT(why_b.out, Catch::Contains("[D10]"));
  const auto why_a = Step(pin, {"explain", a.ip.ToString(), dst});
  REQUIRE(why_a.ok());
  CHECK_THAT(why_a.out, Catch::Contains("matched (rule 0)"));

  lab->Remove(applied);
  const auto residue = Step(pin, {"residue"});
  REQUIRE(residue.ok());
  CHECK_THAT(residue.out, Catch::Contains("km_tcargs: "));
  CHECK_THAT(residue.out, Catch::Contains(sb + " -> " + dst));  // b's tail-call context stays (D4)
  CHECK_THAT(residue.out, Catch::Contains("no policy reaches"));

  std::cout << transcript << std::flush;
  if (const char* dir = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR"); dir != nullptr && *dir != '\0') {
    std::ofstream(std::string(dir) + "/session.txt") << transcript;
  }
}
