#include "e2e/lab/kmesh_policy_writer.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/defaults.h"
#include "base/error.h"
#include "base/hex.h"
#include "base/runfiles.h"
#include "bpf_probe/dump.h"
#include "bpf_probe/maps.h"
#include "e2e/lab/kmesh_daemon_protocol.h"

extern char** environ;

namespace kmesh::lab {

using nlohmann::json;
namespace proto = daemon_protocol;
using Clock = std::chrono::steady_clock;

namespace {

// The proto3 bytes as the protocol's wire_hex.
std::string WireHex(const std::string& bytes) {
  return HexBytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

std::optional<workloadapi::Authorization> FoundAuthorization(const json& reply) {
  if (!reply.at("found").get<bool>()) return std::nullopt;
  return workloadapi::FromJson(reply.at("authorization"));
}

void WriteAll(int fd, const std::string& s, const std::string& what) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(what);
    }
    off += static_cast<size_t>(n);
  }
}

}  // namespace

KmeshPolicyWriter::KmeshPolicyWriter(const PolicyWriterOptions& options) : options_(options) {
  if (options_.node_name.empty()) throw Error("KmeshPolicyWriter: node_name is empty");
  if (options_.state_dir.empty()) throw Error("KmeshPolicyWriter: state_dir is empty");
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  if (ec) throw Error("create folder " + options_.state_dir + ": " + ec.message());
  log_path_ = options_.state_dir + "/kmesh-lab-daemon.log";
  const std::string binary =
      options_.daemon_binary.empty() ? Runfile("e2e/lab/kmesh-lab-daemon") : options_.daemon_binary;

  // The map ids, from the node's pins (the daemon opens them by id, so it needs no bpffs of its own).
  std::vector<std::string> args = {binary, "--node", options_.node_name, "--state-dir", options_.state_dir};
  if (options_.run_authorizer) {
    args.push_back("--pin-dir");
    args.push_back(options_.pin_dir);
  }
  for (const char* name : proto::kDaemonMaps) {
    const auto m = bpf_probe::Map::OpenPinned(options_.pin_dir + "/" + name);
    args.push_back("--map");
    args.push_back(std::string(name) + "=" + std::to_string(m.info().id));
  }

  // Everything the child needs, prepared before fork (only async-signal-safe calls after it).
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int in_pipe[2], reply_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) ThrowErrno("pipe for kmesh-lab-daemon's input");
  if (pipe2(reply_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    ThrowErrno("pipe for kmesh-lab-daemon's replies");
  }
  const int log_fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int saved_errno = errno;
  auto close_all = [&] {
    for (int fd : {in_pipe[0], in_pipe[1], reply_pipe[0], reply_pipe[1], log_fd}) {
      if (fd >= 0) close(fd);
    }
  };
  if (log_fd < 0) {
    close_all();
    ThrowErrno("open " + log_path_, saved_errno);
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close_all();
    ThrowErrno("fork kmesh-lab-daemon", e);
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    // fd 3 first (the other pipes may sit there), then stdin, stdout, stderr.
    const int reply = fcntl(reply_pipe[1], F_DUPFD_CLOEXEC, 10);
    const int input = fcntl(in_pipe[0], F_DUPFD_CLOEXEC, 10);
    const int log = fcntl(log_fd, F_DUPFD_CLOEXEC, 10);
    if (reply < 0 || input < 0 || log < 0) _exit(126);
    if (dup2(reply, proto::kReplyFd) < 0 || dup2(input, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
      _exit(126);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  pid_ = pid;
  close(in_pipe[0]);
  close(reply_pipe[1]);
  close(log_fd);
  to_daemon_ = in_pipe[1];
  from_daemon_ = reply_pipe[0];

  json ready;
  try {
    ready = ReadReply("kmesh-lab-daemon start (node " + options_.node_name + ")");
  } catch (...) {
    Stop();
    throw;
  }
  if (!ready.value("ok", false)) {
    Stop();
    throw Error("kmesh-lab-daemon for node " + options_.node_name +
                " did not start: " + ready.value("error", ready.dump()) + " (log: " + log_path_ + ")");
  }
}

KmeshPolicyWriter::~KmeshPolicyWriter() { Stop(); }

void KmeshPolicyWriter::Stop() {
  if (to_daemon_ >= 0) close(to_daemon_);  // end of input: the daemon uninitializes and exits
  to_daemon_ = -1;
  if (pid_ > 0) {
    const auto deadline = Clock::now() + defaults::LabDaemonReply();
    int status = 0;
    pid_t r = 0;
    while ((r = waitpid(pid_, &status, WNOHANG)) == 0 && Clock::now() < deadline) usleep(2000);
    if (r == 0) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);  // in case it had not made its own group yet
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
  }
  if (from_daemon_ >= 0) close(from_daemon_);
  from_daemon_ = -1;
}

std::string KmeshPolicyWriter::DaemonTrouble() const {
  std::ifstream in(log_path_);
  std::vector<std::string> lines;
  std::string l;
  while (std::getline(in, l)) lines.push_back(l);
  std::string tail;
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) tail += "\n  " + lines[i];
  return " (log " + log_path_ + (tail.empty() ? ", empty)" : ", last lines:" + tail + ")");
}

json KmeshPolicyWriter::ReadReply(const std::string& what) {
  const auto deadline = Clock::now() + defaults::LabDaemonReply();
  while (true) {
    const auto nl = pending_.find('\n');
    if (nl != std::string::npos) {
      const std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      try {
        return json::parse(line);
      } catch (const json::exception& e) {
        throw Error(what + ": kmesh-lab-daemon answered with something that is not JSON: \"" + line + "\"");
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      throw Error(what + ": kmesh-lab-daemon (pid " + std::to_string(pid_) + ") gave no answer within " +
                  std::to_string(defaults::LabDaemonReply().count()) + " ms (KMESH_E2E_LAB_DAEMON_REPLY_MS)" +
                  DaemonTrouble());
    }
    pollfd p{from_daemon_, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno != EINTR) ThrowErrno(what + ": poll kmesh-lab-daemon");
    if (n <= 0) continue;
    char buf[4096];
    const ssize_t got = read(from_daemon_, buf, sizeof buf);
    if (got < 0 && errno != EINTR) ThrowErrno(what + ": read from kmesh-lab-daemon");
    if (got == 0) {
      throw Error(what + ": kmesh-lab-daemon (pid " + std::to_string(pid_) +
                  ") closed its reply pipe: it exited" + DaemonTrouble());
    }
    if (got > 0) pending_.append(buf, static_cast<size_t>(got));
  }
}

json KmeshPolicyWriter::Request(const json& req) { return Requests({req}).at(0); }

std::vector<json> KmeshPolicyWriter::Requests(const std::vector<json>& reqs) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool one = reqs.size() == 1;
  const std::string what =
      "kmesh-lab-daemon (node " + options_.node_name + ") " +
      (one ? reqs[0].value("op", "?") : std::to_string(reqs.size()) + " pipelined requests");
  if (to_daemon_ < 0) throw Error(what + ": the daemon is stopped");
  // The daemon answers each request before it reads the next and its replies are small, so it never
  // blocks on its reply pipe while this side is still writing.
  std::string all;
  for (const auto& r : reqs) all += r.dump() + "\n";
  WriteAll(to_daemon_, all, what + ": write requests");
  std::vector<json> replies;
  for (const auto& r : reqs) {
    json reply = ReadReply(what);
    if (!reply.value("ok", false)) {
      throw Error(what + ": " + (one ? "" : r.value("op", "?") + ": ") + reply.value("error", reply.dump()) +
                  DaemonTrouble());
    }
    replies.push_back(std::move(reply));
  }
  return replies;
}

std::vector<PolicyWrite> KmeshPolicyWriter::ApplyAuthorizations(
    const std::vector<workloadapi::Authorization>& all) {
  std::vector<json> reqs;
  for (const auto& a : all)
    reqs.push_back({{"op", proto::kApplyAuthorization}, {"wire_hex", WireHex(workloadapi::Marshal(a))}});
  std::vector<PolicyWrite> out;
  for (const json& r : Requests(reqs))
    out.push_back(PolicyWrite{r.at("resource"), r.at("policy_id"), r.at("stored_key"), r.at("ret")});
  return out;
}

std::vector<PolicyWrite> KmeshPolicyWriter::RemoveAuthorizations(
    const std::vector<std::string>& resource_names) {
  std::vector<json> reqs;
  for (const auto& n : resource_names) reqs.push_back({{"op", proto::kRemoveAuthorization}, {"resource", n}});
  const std::vector<json> replies = Requests(reqs);
  std::vector<PolicyWrite> out;
  for (size_t i = 0; i < replies.size(); ++i) {
    out.push_back(PolicyWrite{resource_names[i], replies[i].at("policy_id"), 0, replies[i].at("ret")});
  }
  return out;
}

PolicyWrite KmeshPolicyWriter::ApplyAuthorization(const workloadapi::Authorization& a) {
  return ApplyAuthorizations({a}).at(0);
}

PolicyWrite KmeshPolicyWriter::RemoveAuthorization(const std::string& resource_name) {
  return RemoveAuthorizations({resource_name}).at(0);
}

std::optional<workloadapi::Authorization> KmeshPolicyWriter::LookupAuthorization(
    const std::string& resource_name) {
  return FoundAuthorization(Request({{"op", proto::kLookupAuthorization}, {"resource", resource_name}}));
}

std::optional<workloadapi::Authorization> KmeshPolicyWriter::LookupAuthorizationById(uint32_t policy_id) {
  return FoundAuthorization(Request({{"op", proto::kLookupAuthorization}, {"policy_id", policy_id}}));
}

WorkloadWrite KmeshPolicyWriter::StoreWorkload(const WorkloadSpec& w) {
  const json r = Request({{"op", proto::kStoreWorkload},
                          {"uid", w.uid},
                          {"node", w.node},
                          {"addresses", w.addresses},
                          {"policies", w.policies},
                          {"host_network", w.host_network},
                          {"name", w.name},
                          {"namespace", w.ns},
                          {"service_account", w.service_account},
                          {"trust_domain", w.trust_domain},
                          {"network", w.network}});
  WorkloadWrite out;
  out.workload_id = r.at("workload_id");
  out.wlpolicy_written = r.at("wlpolicy").at("written");
  out.policy_ids = r.at("wlpolicy").at("policy_ids").get<std::vector<uint32_t>>();
  out.dropped = r.at("wlpolicy").at("dropped").get<std::vector<std::string>>();
  out.frontends = r.at("frontends").get<std::vector<std::string>>();
  out.removed_frontends = r.at("removed_frontends").get<std::vector<std::string>>();
  return out;
}

std::vector<nlohmann::json> KmeshPolicyWriter::Decisions() {
  return Request({{"op", proto::kDecisions}}).at("decisions").get<std::vector<json>>();
}

bool KmeshPolicyWriter::RemoveWorkload(const std::string& uid) {
  return Request({{"op", proto::kRemoveWorkload}, {"uid", uid}}).at("known").get<bool>();
}

std::optional<uint32_t> KmeshPolicyWriter::IdOf(const std::string& name) {
  const json r = Request({{"op", proto::kIds}, {"names", {name}}});
  const json& id = r.at("ids").at(name);
  if (id.is_null()) return std::nullopt;
  return id.get<uint32_t>();
}

// --- residue -------------------------------------------------------------------------------------------

std::map<std::string, MapEntryCount> CountMapEntries(const std::string& pin_dir) {
  return bpf_probe::CountMapEntries(bpf_probe::MapCatalog::FromPinDir(pin_dir));
}

std::vector<std::string> ResidueAgainst(const std::map<std::string, MapEntryCount>& baseline,
                                        const std::map<std::string, MapEntryCount>& now) {
  std::vector<std::string> out;
  for (const auto& c : bpf_probe::CompareEntryCounts(baseline, now)) out.push_back(c.ToString());
  return out;
}

}  // namespace kmesh::lab
