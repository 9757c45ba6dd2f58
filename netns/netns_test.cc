#include <catch2/catch.hpp>

#include <net/if.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "netns/netns.h"
#include "netns/process.h"

using kmesh::netns::Netns;
using kmesh::netns::NetnsRef;
using kmesh::netns::RunChecked;
using kmesh::netns::RunIn;

namespace {

bool HasLink(const NetnsRef& ns, const std::string& ifname) {
  return kmesh::netns::RunIn(ns, [&] { return if_nametoindex(ifname.c_str()) != 0; });
}

bool NamespaceListed(const std::string& name) {
  auto r = RunChecked({"ip", "netns", "list"});
  return r.out.find(name) != std::string::npos;
}

}  // namespace

TEST_CASE("a netns and a veth pair are made, seen by iproute2, and removed without leftovers") {
  std::string a_name, b_name;
  {
    Netns a = Netns::Create("a");
    Netns b = Netns::Create("b");
    a_name = a.name();
    b_name = b.name();
    CHECK(NamespaceListed(a_name));
    CHECK(a.ref().inode() != b.ref().inode());
    CHECK(a.ref().inode() != NetnsRef::Self().inode());

    RunChecked({"ip", "-n", a.name(), "link", "add", "veth-a", "type", "veth", "peer", "name",
                "veth-b", "netns", b.name()});
    RunChecked({"ip", "-n", a.name(), "addr", "add", "10.99.0.1/30", "dev", "veth-a"});
    RunChecked({"ip", "-n", b.name(), "addr", "add", "10.99.0.2/30", "dev", "veth-b"});
    RunChecked({"ip", "-n", a.name(), "link", "set", "veth-a", "up"});
    RunChecked({"ip", "-n", b.name(), "link", "set", "veth-b", "up"});

    CHECK(HasLink(a.ref(), "veth-a"));
    CHECK(HasLink(b.ref(), "veth-b"));
    CHECK_FALSE(HasLink(a.ref(), "veth-b"));
    // The machine's own namespace never sees the pair.
    CHECK_FALSE(HasLink(NetnsRef::Self(), "veth-a"));
    CHECK_FALSE(HasLink(NetnsRef::Self(), "veth-b"));

    // Traffic crosses the pair, from a process started inside namespace a.
    auto ping = RunIn(a.ref(), {"ping", "-c", "1", "-W", "2", "10.99.0.2"});
    CHECK(ping.ok());
  }
  CHECK_FALSE(NamespaceListed(a_name));
  CHECK_FALSE(NamespaceListed(b_name));
}

TEST_CASE("an unknown namespace is an error that names it") {
  CHECK_THROWS_WITH(NetnsRef::Resolve("kme2e-does-not-exist"),
                    Catch::Contains("kme2e-does-not-exist") && Catch::Contains("not found"));
}

TEST_CASE("namespaces left by a dead run are swept; a live run's are not") {
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // `child` is now a pid that no longer runs
  const std::string stale = "kme2e-" + std::to_string(child) + "-crashed-0";
  RunChecked({"ip", "netns", "add", stale});
  Netns live = Netns::Create("live");

  auto removed = kmesh::netns::SweepStale();
  CHECK(std::find(removed.begin(), removed.end(), stale) != removed.end());
  CHECK_FALSE(NamespaceListed(stale));
  CHECK(NamespaceListed(live.name()));
}
