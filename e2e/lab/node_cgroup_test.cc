#include "e2e/lab/node_cgroup.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <string>
#include <thread>

#include "base/names.h"
#include "netns/process.h"

using kmesh::lab::CgroupOfPid;
using kmesh::lab::NodeCgroup;
using kmesh::lab::SweepStaleCgroups;

namespace {

bool Contains(const std::vector<pid_t>& v, pid_t p) { return std::find(v.begin(), v.end(), p) != v.end(); }

// True once `pid` is gone or a zombie (a reparented process is reaped by init, not by us).
bool DeadOrZombie(pid_t pid) {
  if (kmesh::ProcessGone(pid)) return true;
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (f == nullptr) return true;
  int p = 0;
  char comm[64] = {};
  char state = '?';
  const int n = fscanf(f, "%d %63s %c", &p, comm, &state);
  fclose(f);
  return n == 3 && (state == 'Z' || state == 'X');
}

bool WaitDead(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (DeadOrZombie(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("a node cgroup holds the processes started in it, and takes them with it when it goes") {
  std::string path;
  pid_t joined = 0, adopted = 0;
  {
    NodeCgroup cg = NodeCgroup::Create("node");
    path = cg.path();
    CHECK(cg.name().rfind("kme2e-" + std::to_string(getpid()) + "-node-", 0) == 0);
    CHECK_FALSE(cg.Populated());

    // Started in it: in the cgroup before exec.
    auto sleeper = kmesh::netns::Process::Start({"sleep", "30"}, cg.Join({}));
    joined = sleeper.pid();
    CHECK(CgroupOfPid(joined) == path);
    // Moved in after it started.
    auto other = kmesh::netns::Process::Start({"sleep", "30"});
    adopted = other.pid();
    CHECK(CgroupOfPid(adopted) != path);
    cg.Adopt(adopted);
    CHECK(CgroupOfPid(adopted) == path);
    CHECK(cg.Populated());
    auto pids = cg.Pids();
    CHECK(pids.size() == 2);
    CHECK(Contains(pids, joined));
    CHECK(Contains(pids, adopted));
    // The harness itself stays where it was.
    CHECK(CgroupOfPid(getpid()) != path);

    // A bad pid is an error naming it.
    CHECK_THROWS_WITH(cg.Adopt(999999999), Catch::Contains("999999999"));
    // (The processes are still running when the cgroup goes: its destructor kills them.)
    sleeper.Stop(std::chrono::milliseconds(0));
    other.Stop(std::chrono::milliseconds(0));
  }
  CHECK(WaitDead(joined));
  CHECK(WaitDead(adopted));
}

TEST_CASE("a node cgroup kills what still runs inside when it goes, and leaves no directory") {
  pid_t pid = 0;
  std::string name;
  {
    NodeCgroup cg = NodeCgroup::Create("node");
    name = cg.name();
    // A process not owned by any Process object (e.g. a daemon's child): only the cgroup can take it.
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      setsid();
      execlp("sleep", "sleep", "30", static_cast<char*>(nullptr));
      _exit(127);
    }
    cg.Adopt(pid);
    REQUIRE(cg.Populated());
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  // Gone from the hierarchy: a sweep (which lists every kme2e- cgroup) does not see it either.
  for (const auto& n : SweepStaleCgroups()) CHECK(n != name);
}

TEST_CASE("SweepStaleCgroups removes the node cgroup of a crashed run with its processes, and only that") {
  NodeCgroup live = NodeCgroup::Create("live");
  auto live_sleeper = kmesh::netns::Process::Start({"sleep", "30"}, live.Join({}));

  // A crashed run: a process makes a node cgroup, starts a server in it that outlives it, and dies
  // without cleaning up.
  int report[2];
  REQUIRE(pipe(report) == 0);
  const pid_t run = fork();
  REQUIRE(run >= 0);
  if (run == 0) {
    close(report[0]);
    NodeCgroup cg = NodeCgroup::Create("crashed");
    const int procs = cg.Join({}).join_cgroup_procs_fd;
    const pid_t server = fork();
    if (server == 0) {
      setsid();
      if (write(procs, "0", 1) != 1) _exit(126);
      execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));
      _exit(127);
    }
    char name[128] = {};
    cg.name().copy(name, sizeof name - 1);
    (void)!write(report[1], &server, sizeof server);
    (void)!write(report[1], name, sizeof name);
    _exit(0);  // no destructors: the cgroup and its server stay behind
  }
  close(report[1]);
  pid_t server = 0;
  char name_buf[128] = {};
  REQUIRE(read(report[0], &server, sizeof server) == sizeof server);
  REQUIRE(read(report[0], name_buf, sizeof name_buf) == sizeof name_buf);
  close(report[0]);
  REQUIRE(waitpid(run, nullptr, 0) == run);
  const std::string crashed = name_buf;
  REQUIRE(kmesh::OwnerPid(crashed) == run);
  REQUIRE(kmesh::ProcessGone(run));

  // The crashed run's server is still running, in its cgroup.
  for (int i = 0; i < 200 && CgroupOfPid(server) != "/" + crashed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(CgroupOfPid(server) == "/" + crashed);
  REQUIRE_FALSE(DeadOrZombie(server));

  const auto removed = SweepStaleCgroups();
  CHECK(std::find(removed.begin(), removed.end(), crashed) != removed.end());
  CHECK(std::find(removed.begin(), removed.end(), live.name()) == removed.end());
  CHECK(WaitDead(server));
  // Ours is untouched: still there, its process still inside.
  CHECK(live.Populated());
  CHECK(CgroupOfPid(live_sleeper.pid()) == live.path());
  // Nothing left to sweep from that run.
  const auto again = SweepStaleCgroups();
  CHECK(std::find(again.begin(), again.end(), crashed) == again.end());
}
