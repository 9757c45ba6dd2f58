// tools/vm/run from the outside: what a caller gets back (exit code, stdout, stderr, files), what the
// guest can do (ESP, XDP, BTF), and that it stays bounded (timeout, interrupt, no QEMU left behind).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/defaults.h"
#include "base/names.h"
#include "base/runfiles.h"
#include "netns/process.h"

namespace {

using kmesh::netns::Process;
using kmesh::netns::ProcessOptions;
using kmesh::netns::ProcessResult;

std::string Runner() { return kmesh::Runfile("tools/vm/run"); }
std::string EspCheck() { return kmesh::Runfile("tools/vm/esp_tunnel_check"); }

// The release tools/vm/fetch-kernel cached: the kernel the VM boots.
std::string VmRelease() {
  const char* cache = std::getenv("KMESH_E2E_VM_CACHE");
  const std::string dir =
      cache && *cache ? cache : std::string(getpwuid(getuid())->pw_dir) + "/.cache/kmesh-e2e/vm";
  std::ifstream f(dir + "/current");
  std::string release;
  std::getline(f, release);
  return release;
}

std::string HostRelease() {
  utsname u{};
  uname(&u);
  return u.release;
}

// The bound for one call: the runner's own timeout is what should fire; this only keeps a broken runner
// from hanging the test.
std::chrono::milliseconds CallBound() { return kmesh::defaults::VmRun() + std::chrono::seconds(30); }

ProcessResult Call(const std::vector<std::string>& args, std::vector<std::string> env = {}) {
  std::vector<std::string> argv = {Runner()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions opts;
  opts.env = std::move(env);
  return kmesh::netns::Run(argv, opts, CallBound());
}

// Pids of QEMU processes started by the runner with pid `runner`: it names them kmesh-vm-<pid>.
std::vector<int> QemuOf(int runner) {
  std::vector<int> found;
  const std::string needle = "kmesh-vm-" + std::to_string(runner);
  DIR* d = opendir("/proc");
  if (!d) return found;
  while (dirent* e = readdir(d)) {
    int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    // read(2), not ifstream: a process that exits mid-read makes libstdc++'s filebuf throw (ESRCH).
    int fd = open(("/proc/" + std::string(e->d_name) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::string cmdline;
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) cmdline.append(buf, n);
    close(fd);
    for (auto& c : cmdline) c = c == '\0' ? ' ' : c;
    if (cmdline.find("qemu-system") != std::string::npos && cmdline.find(needle + " ") != std::string::npos) {
      found.push_back(pid);
    }
  }
  closedir(d);
  return found;
}

bool HostHasEsp() {
  ProcessResult r = Call({"--probe"});
  INFO(r.out << r.err);
  REQUIRE((r.exit_code == 0 || r.exit_code == 1));
  return r.exit_code == 0;
}

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.timed_out ? " (timed out)" : "") + "\n--- stdout:\n" +
         r.out + "\n--- stderr:\n" + r.err;
}

// A case is a call and what must come back.
struct RunCase {
  const char* what;
  std::function<std::vector<std::string>()> args;
  int exit_code;
  std::vector<std::string> out_has;
  std::vector<std::string> err_has;
};

}  // namespace

TEST_CASE("what the guest can do, and what a failing command returns") {
  const std::string host = HostRelease();
  const std::vector<RunCase> cases = {
      {"the guest has everything the lab needs (netns, BPF, BTF, bpffs, cgroup v2, veth, XDP on veth, xfrm, "
       "ESP, GCM)",
       [] { return std::vector<std::string>{"--kernel", "vm", "--", Runner(), "--probe"}; },
       0, {"has everything the lab needs", "has   XDP native on veth", "has   ESP", "has   GCM",
           "has   cgroup v2"}, {}},
      {"an ESP tunnel carries TCP in the guest, and its states count it",
       [] { return std::vector<std::string>{"--kernel", "vm", "--", EspCheck(), "--round-trips", "8"}; },
       0, {"rfc4106(gcm(aes))", "8 TCP round trips", "packets"}, {}},
      {"a failing command fails the call: ESP bypassed without policies",
       [] { return std::vector<std::string>{"--kernel", "vm", "--", EspCheck(), "--without-policy",
                                            "--round-trips", "3"}; },
       1, {}, {"bypassed ESP", "counted 0 packets"}},
      {"--kernel host runs CMD on this machine's kernel",
       [] { return std::vector<std::string>{"--kernel", "host", "--", "uname", "-r"}; },
       0, {host}, {}},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      ProcessResult r = Call(c.args());
      INFO(Describe(r));
      CHECK(r.exit_code == c.exit_code);
      for (const auto& s : c.out_has) CHECK_THAT(r.out, Catch::Contains(s));
      for (const auto& s : c.err_has) CHECK_THAT(r.err, Catch::Contains(s));
    }
  }
}

// One boot for everything a plain call must carry both ways.
TEST_CASE("CMD's exit code, stdout, stderr and files come back; it ran under the cached kernel, in our cwd, "
          "with our environment") {
  const char* tmp = std::getenv("TEST_TMPDIR");
  REQUIRE(tmp != nullptr);
  const std::string outputs = std::string(tmp) + "/" + kmesh::UniqueName("outputs");
  REQUIRE(kmesh::netns::Run({"mkdir", "-p", outputs}).ok());
  const std::string mark = kmesh::UniqueName("env-mark");
  const std::string content = kmesh::UniqueName("written-in-guest");
  char cwd[4096];
  REQUIRE(getcwd(cwd, sizeof(cwd)) != nullptr);

  ProcessResult r = Call({"--kernel", "vm", "--", "sh", "-c",
                          "uname -r; pwd; echo \"mark=$KMESH_E2E_VM_TEST_MARK\"; "
                          "echo " + content + " > \"$TEST_UNDECLARED_OUTPUTS_DIR/from-guest.txt\"; "
                          "echo to-stderr >&2; exit 7"},
                         {"KMESH_E2E_VM_TEST_MARK=" + mark, "TEST_UNDECLARED_OUTPUTS_DIR=" + outputs});
  INFO(Describe(r));
  CHECK(r.exit_code == 7);
  CHECK_THAT(r.err, Catch::Contains("to-stderr"));
  std::istringstream lines(r.out);
  std::string release, guest_cwd, guest_mark;
  std::getline(lines, release);
  std::getline(lines, guest_cwd);
  std::getline(lines, guest_mark);
  REQUIRE_FALSE(VmRelease().empty());
  CHECK(release == VmRelease());
  CHECK(guest_cwd == cwd);
  CHECK(guest_mark == "mark=" + mark);
  std::ifstream f(outputs + "/from-guest.txt");
  std::string got;
  std::getline(f, got);
  CHECK(got == content);
}

TEST_CASE("where the host lacks ESP, auto runs in the VM; the host alone fails clearly, never passes") {
  const bool host_has_esp = HostHasEsp();
  ProcessResult on_host = Call({"--kernel", "host", "--", EspCheck(), "--round-trips", "3"});
  ProcessResult automatic = Call({"--", EspCheck(), "--round-trips", "3"});
  INFO("host:\n" << Describe(on_host) << "\nauto:\n" << Describe(automatic));
  CHECK(automatic.exit_code == 0);
  CHECK_THAT(automatic.out, Catch::Contains("3 TCP round trips"));
  if (host_has_esp) {
    CHECK(on_host.exit_code == 0);
  } else {
    CHECK(on_host.exit_code == 1);
    CHECK_THAT(on_host.err, Catch::Contains("this kernel cannot build the ESP tunnel"));
    CHECK_THAT(automatic.err, Catch::Contains("running in a VM"));
  }
}

TEST_CASE("a guest that never exits is killed at the timeout, the call says so, and no QEMU is left") {
  // Long enough to boot on an idle machine (~5 s), so usually "CMD was still running"; a loaded one may
  // still be booting, and that is a kill at the timeout too.
  std::vector<std::string> argv = {Runner(), "--kernel", "vm", "--timeout", "30", "--", "sleep", "3600"};
  Process p = Process::Start(argv);
  const int runner = p.pid();
  ProcessResult r = p.Wait(CallBound());
  INFO(Describe(r));
  CHECK(r.exit_code == 124);
  CHECK_THAT(r.err, Catch::Contains("timed out after 30 s") && Catch::Contains("killed QEMU") &&
                        (Catch::Contains("CMD was still running") || Catch::Contains("had not even booted")));
  CHECK(r.elapsed < std::chrono::seconds(50));
  CHECK(QemuOf(runner).empty());
}

TEST_CASE("interrupting the call (SIGTERM, as Bazel does on its timeout) kills QEMU with it") {
  Process p = Process::Start({Runner(), "--kernel", "vm", "--", "sleep", "3600"});
  const int runner = p.pid();
  // Wait until QEMU runs, then interrupt the runner alone (not its process group).
  auto deadline = std::chrono::steady_clock::now() + kmesh::defaults::VmBoot();
  while (QemuOf(runner).empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(kmesh::defaults::PollInterval());
  }
  REQUIRE_FALSE(QemuOf(runner).empty());
  REQUIRE(kill(runner, SIGTERM) == 0);
  ProcessResult r = p.Wait(std::chrono::seconds(30));
  INFO(Describe(r));
  CHECK(r.exit_code == 128 + SIGTERM);
  CHECK_THAT(r.err, Catch::Contains("interrupted by SIGTERM"));
  CHECK(QemuOf(runner).empty());
}

TEST_CASE("bad usage is named, with exit code 2") {
  struct Bad {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Bad> bad = {
      {{"--kernel", "nope", "--", "true"}, "--kernel must be auto, host or vm (got 'nope')"},
      {{"--kernel", "vm"}, "no command: put it after '--'"},
      {{"--timeout", "-3", "--", "true"}, "--timeout takes a positive number of seconds (got '-3')"},
      {{"--kernel", "vm", "--rw", "/nonexistent/kme2e-dir", "--", "true"},
       "writable share /nonexistent/kme2e-dir (from --rw) is not a directory"},
      {{"--kernel", "vm", "--rw", "/proc", "--", "true"}, "the guest keeps its own /proc"},
  };
  for (const auto& b : bad) {
    ProcessResult r = Call(b.args);
    INFO(Describe(r));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(b.says));
  }
}
