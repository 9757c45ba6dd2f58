// Kernel tier: a lab run killed with SIGKILL (no destructor runs) leaves its namespaces, node bpffs mounts,
// node cgroups with their servers, and its work folder (which holds secrets); its kmesh-lab-daemon
// processes die with it (PR_SET_PDEATHSIG). The next run's sweep (Lab::SweepStale, what Lab::Up does first)
// removes all of it, after which the kernel frees the run's BPF programs and maps; a live run's objects
// are never touched.
#include <bpf/bpf.h>
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "base/defaults.h"
#include "base/mounts.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "e2e/framework/case_output.h"
#include "e2e/lab/lab.h"
#include "netns/netns.h"
#include "netns/process.h"

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::set<std::string> MountPoints() {
  std::set<std::string> out;
  for (const kmesh::Mount& m : kmesh::Mounts()) out.insert(m.point);
  return out;
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0 && !kmesh::ProcessGone(pid); }

// Waits (bounded) until `done` holds.
template <typename F>
bool Eventually(F done, std::chrono::milliseconds bound) {
  const auto until = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool BpfIdGone(uint32_t id, bool prog) {
  const int fd = prog ? bpf_prog_get_fd_by_id(id) : bpf_map_get_fd_by_id(id);
  if (fd >= 0) {
    close(fd);
    return false;
  }
  return errno == ENOENT;
}

}  // namespace

TEST_CASE("a lab killed with SIGKILL leaves state that the next run's sweep removes, and only that") {
  kmesh::netns::ProcessOptions o;
  o.output = kmesh::netns::ProcessOptions::Output::kFile;
  o.output_file = kmesh::e2e::CaseOutputDir() + "/crashed-run.log";
  auto child = kmesh::netns::Process::Start({kmesh::Runfile("e2e/lab/lab_crash_child")}, o);

  // Its inventory, once the lab is up and has judged one probe.
  json inv;
  const bool up = Eventually(
      [&] {
        std::ifstream log(o.output_file);
        for (std::string line; std::getline(log, line);) {
          if (line.rfind("INVENTORY ", 0) == 0) inv = json::parse(line.substr(10));
        }
        return !inv.is_null() || !child.Running();
      },
      kmesh::defaults::AppReady());
  INFO("the crashed run's log: " << o.output_file);
  REQUIRE(up);
  REQUIRE_FALSE(inv.is_null());
  const pid_t pid = inv["pid"].get<pid_t>();
  REQUIRE(pid == child.pid());
  CHECK(inv["namespaces"].size() >= 4);  // two nodes, two pods
  CHECK(inv["bpffs"].size() == 2);
  CHECK(inv["cgroups"].size() == 2);
  CHECK(inv["daemons"].size() == 2);
  CHECK(inv["cgroup_pids"].size() >= 1);  // httpbin
  CHECK(inv["programs"].size() == 8);     // Kmesh's four XDP programs per node
  CHECK(inv["maps"].size() == 2);

  // A live run's namespace, made before the sweep: it must survive it.
  kmesh::netns::Netns mine = kmesh::netns::Netns::Create("crash-live");

  REQUIRE(kill(pid, SIGKILL) == 0);
  const auto result = child.Wait(kmesh::defaults::Command());
  CHECK(result.signal == SIGKILL);

  // What the crash left: nothing ran its destructors.
  const auto mounts = MountPoints();
  for (const auto& ns : inv["namespaces"]) CHECK(Exists("/run/netns/" + ns.get<std::string>()));
  for (const auto& b : inv["bpffs"]) CHECK(mounts.count(b.get<std::string>()) == 1);
  CHECK(Exists(inv["workdir"].get<std::string>()));
  // The daemons die with the run that started them.
  for (const auto& d : inv["daemons"]) {
    INFO("kmesh-lab-daemon pid " << d);
    CHECK(Eventually([&] { return !Alive(d.get<pid_t>()); }, kmesh::defaults::CgroupDrained()));
  }

  // Another run starting meanwhile may sweep some of it first (its own Lab::Up); what is still there now
  // must be in this sweep's list, and everything must be gone after it.
  std::set<std::string> present;
  for (const auto& ns : inv["namespaces"]) {
    if (Exists("/run/netns/" + ns.get<std::string>())) present.insert("netns " + ns.get<std::string>());
  }
  for (const auto& b : inv["bpffs"]) {
    if (MountPoints().count(b.get<std::string>())) present.insert("bpffs " + b.get<std::string>());
  }
  for (const auto& c : inv["cgroups"]) present.insert("cgroup " + c.get<std::string>());
  if (Exists(inv["workdir"].get<std::string>()))
    present.insert("workdir " + inv["workdir"].get<std::string>());

  const std::vector<std::string> removed = kmesh::lab::Lab::SweepStale();
  const std::set<std::string> swept(removed.begin(), removed.end());
  std::string list;
  for (const auto& r : removed) list += "\n  " + r;
  INFO("swept:" << list);
  for (const auto& p : present) {
    // A cgroup cannot be seen from here without the sweep's own mount: another run may have taken it.
    if (p.rfind("cgroup ", 0) == 0 && swept.count(p) == 0) {
      WARN(p << " was not in this sweep (another run's sweep took it?)");
      continue;
    }
    CHECK(swept.count(p) == 1);
  }
  const auto after = MountPoints();
  for (const auto& ns : inv["namespaces"]) CHECK_FALSE(Exists("/run/netns/" + ns.get<std::string>()));
  for (const auto& b : inv["bpffs"]) CHECK(after.count(b.get<std::string>()) == 0);
  CHECK_FALSE(Exists(inv["workdir"].get<std::string>()));
  // The servers that were in the node cgroups went with them.
  for (const auto& p : inv["cgroup_pids"]) {
    INFO("server pid " << p);
    CHECK(Eventually([&] { return !Alive(p.get<pid_t>()); }, kmesh::defaults::CgroupDrained()));
  }
  // With pins, attachments and fds gone, the kernel frees the run's programs and maps.
  for (const auto& id : inv["programs"]) {
    INFO("program id " << id);
    CHECK(Eventually([&] { return BpfIdGone(id.get<uint32_t>(), true); }, kmesh::defaults::CgroupDrained()));
  }
  for (const auto& id : inv["maps"]) {
    INFO("map id " << id);
    CHECK(Eventually([&] { return BpfIdGone(id.get<uint32_t>(), false); }, kmesh::defaults::CgroupDrained()));
  }
  // Only the dead run's: this live process's namespace stays.
  CHECK(Exists("/run/netns/" + mine.name()));
  for (const auto& r : removed) CHECK(r.find(std::to_string(getpid())) == std::string::npos);
}
