#include "netns/process.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <set>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace kmesh::netns {
namespace {

using Clock = std::chrono::steady_clock;

std::string Join(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Everything the child needs, prepared before fork (only async-signal-safe calls after it).
struct ChildPlan {
  std::vector<char*> argv;
  std::vector<std::string> env_storage;
  std::vector<char*> envp;
  int netns_fd = -1;
  int cgroup_procs_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int devnull = -1;
  const char* cwd = nullptr;
  pid_t parent = 0;
};

// Reports which step failed (and its errno) to the parent over status_fd, then exits the child.
[[noreturn]] void ChildFail(int status_fd, int code) {
  int e = errno;
  (void)!write(status_fd, &code, sizeof code);
  (void)!write(status_fd, &e, sizeof e);
  _exit(127);
}

[[noreturn]] void ChildMain(const ChildPlan& p, int status_fd) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != p.parent) _exit(127);  // the harness died before the prctl took effect
  if (p.cgroup_procs_fd >= 0 && write(p.cgroup_procs_fd, "0", 1) != 1) ChildFail(status_fd, 4);
  if (p.netns_fd >= 0 && setns(p.netns_fd, CLONE_NEWNET) != 0) ChildFail(status_fd, 1);
  if (p.cwd != nullptr && chdir(p.cwd) != 0) ChildFail(status_fd, 2);
  dup2(p.devnull, 0);
  if (p.stdout_fd >= 0) dup2(p.stdout_fd, 1);
  if (p.stderr_fd >= 0) dup2(p.stderr_fd, 2);
  execvpe(p.argv[0], p.argv.data(), const_cast<char**>(p.envp.data()));
  ChildFail(status_fd, 3);
}

}  // namespace

std::string ProcessResult::Describe() const {
  std::string s = "`" + Join(argv) + "`";
  if (timed_out) {
    s += " timed out after " + std::to_string(elapsed.count()) + " ms";
  } else if (signal != 0) {
    s += " was killed by signal " + std::to_string(signal);
  } else {
    s += " exited " + std::to_string(exit_code);
  }
  std::string e = err.empty() ? out : err;
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  if (!e.empty()) s += ": " + e;
  return s;
}

Process Process::Start(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  if (argv.empty()) throw Error("Process::Start: empty command");
  ChildPlan plan;
  for (const auto& a : argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  // opts.env overrides: an inherited entry with the same name is dropped (getenv takes the first).
  auto key_of = [](const std::string& e) { return e.substr(0, e.find('=')); };
  std::set<std::string> overridden;
  for (const auto& e : opts.env) overridden.insert(key_of(e));
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden.count(key_of(*e))) plan.env_storage.emplace_back(*e);
  }
  for (const auto& e : opts.env) plan.env_storage.push_back(e);
  for (auto& e : plan.env_storage) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);
  plan.parent = getpid();
  if (!opts.cwd.empty()) plan.cwd = opts.cwd.c_str();
  plan.cgroup_procs_fd = opts.join_cgroup_procs_fd;

  std::vector<int> to_close;
  auto cleanup = [&] {
    for (int fd : to_close) close(fd);
  };
  plan.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  to_close.push_back(plan.devnull);
  if (opts.netns) {
    plan.netns_fd = open(opts.netns->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (plan.netns_fd < 0) {
      int e = errno;
      cleanup();
      ThrowErrno("open network namespace " + opts.netns->path() + " for `" + Join(argv) + "`", e);
    }
    to_close.push_back(plan.netns_fd);
  }
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  switch (opts.output) {
    case ProcessOptions::Output::kCapture:
      if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        cleanup();
        ThrowErrno("pipe");
      }
      plan.stdout_fd = out_pipe[1];
      plan.stderr_fd = err_pipe[1];
      to_close.push_back(out_pipe[1]);
      to_close.push_back(err_pipe[1]);
      break;
    case ProcessOptions::Output::kFile: {
      int fd = open(opts.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd < 0) {
        int e = errno;
        cleanup();
        ThrowErrno("open log file " + opts.output_file, e);
      }
      plan.stdout_fd = plan.stderr_fd = fd;
      to_close.push_back(fd);
      break;
    }
    case ProcessOptions::Output::kDiscard:
      plan.stdout_fd = plan.stderr_fd = plan.devnull;
      break;
    case ProcessOptions::Output::kInherit:
      break;
  }
  int status_pipe[2];
  if (pipe2(status_pipe, O_CLOEXEC) != 0) {
    cleanup();
    ThrowErrno("pipe");
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    cleanup();
    close(status_pipe[0]);
    close(status_pipe[1]);
    ThrowErrno("fork for `" + Join(argv) + "`", e);
  }
  if (pid == 0) {
    close(status_pipe[0]);
    ChildMain(plan, status_pipe[1]);
  }
  setpgid(pid, pid);  // also from the parent, so a kill right after Start reaches the group
  close(status_pipe[1]);
  cleanup();
  // The status pipe closes on a successful exec; otherwise it carries what failed.
  int code = 0, child_errno = 0;
  ssize_t n = read(status_pipe[0], &code, sizeof code);
  if (n == sizeof code) (void)!read(status_pipe[0], &child_errno, sizeof child_errno);
  close(status_pipe[0]);
  if (n == sizeof code) {
    waitpid(pid, nullptr, 0);
    if (out_pipe[0] >= 0) close(out_pipe[0]);
    if (err_pipe[0] >= 0) close(err_pipe[0]);
    const char* step = code == 1   ? "enter the network namespace"
                       : code == 2 ? "chdir"
                       : code == 4 ? "join the cgroup"
                                   : "exec";
    ThrowErrno(std::string("cannot ") + step + " for `" + Join(argv) + "`", child_errno);
  }
  Process p;
  p.pid_ = pid;
  p.out_fd_ = out_pipe[0];
  p.err_fd_ = err_pipe[0];
  p.argv_ = argv;
  p.started_ = Clock::now();
  return p;
}

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      out_fd_(std::exchange(o.out_fd_, -1)),
      err_fd_(std::exchange(o.err_fd_, -1)),
      argv_(std::move(o.argv_)),
      started_(o.started_),
      done_(std::move(o.done_)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0 && !done_) Stop();
    pid_ = std::exchange(o.pid_, -1);
    out_fd_ = std::exchange(o.out_fd_, -1);
    err_fd_ = std::exchange(o.err_fd_, -1);
    argv_ = std::move(o.argv_);
    started_ = o.started_;
    done_ = std::move(o.done_);
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !done_) Stop();
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

bool Process::Running() {
  if (pid_ <= 0 || done_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  ProcessResult res;
  res.argv = argv_;
  if (r == pid_) {
    if (WIFEXITED(status)) res.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) res.signal = WTERMSIG(status);
  }
  Collect(Clock::now() + std::chrono::milliseconds(100), res);
  res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
  killpg(pid_, SIGKILL);  // anything the child left in its group
  done_ = res;
  return false;
}

// Drains the capture pipes until both close or the deadline passes.
void Process::Collect(Clock::time_point deadline, ProcessResult& r) {
  char buf[65536];
  while (out_fd_ >= 0 || err_fd_ >= 0) {
    pollfd fds[2];
    int n = 0;
    if (out_fd_ >= 0) fds[n++] = {out_fd_, POLLIN, 0};
    if (err_fd_ >= 0) fds[n++] = {err_fd_, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return;
    int pr = poll(fds, n, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) return;
    for (int i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      std::string& dst = fds[i].fd == out_fd_ ? r.out : r.err;
      if (got > 0) {
        dst.append(buf, got);
      } else {
        close(fds[i].fd);
        (fds[i].fd == out_fd_ ? out_fd_ : err_fd_) = -1;
      }
    }
  }
}

ProcessResult Process::Wait(std::chrono::milliseconds bound) {
  if (done_) return *done_;
  if (pid_ <= 0) throw Error("Process::Wait on a moved-from process");
  const auto deadline = Clock::now() + bound;
  ProcessResult r;
  r.argv = argv_;
  Collect(deadline, r);  // returns when the pipes close (the child exited) or at the deadline
  int status = 0;
  while (true) {
    pid_t w = waitpid(pid_, &status, WNOHANG);
    if (w == pid_) break;
    if (w < 0 && errno != EINTR) break;
    if (Clock::now() >= deadline) {
      r.timed_out = true;
      killpg(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    usleep(2000);
  }
  if (!r.timed_out) {
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  }
  killpg(pid_, SIGKILL);  // grandchildren left in the group
  Collect(Clock::now() + std::chrono::milliseconds(50), r);
  r.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_);
  done_ = r;
  return r;
}

ProcessResult Process::Stop(std::chrono::milliseconds grace) {
  if (done_) return *done_;
  if (pid_ <= 0) return {};
  killpg(pid_, SIGTERM);
  ProcessResult r = Wait(grace);
  return r;
}

ProcessResult Run(const std::vector<std::string>& argv, const ProcessOptions& opts,
                  std::chrono::milliseconds bound) {
  return Process::Start(argv, opts).Wait(bound);
}

ProcessResult RunChecked(const std::vector<std::string>& argv, const ProcessOptions& opts,
                         std::chrono::milliseconds bound) {
  ProcessResult r = Run(argv, opts, bound);
  if (!r.ok()) throw Error(r.Describe());
  return r;
}

ProcessResult RunIn(const NetnsRef& ns, const std::vector<std::string>& argv) {
  ProcessOptions opts;
  opts.netns = ns;
  return RunChecked(argv, opts);
}

}  // namespace kmesh::netns
