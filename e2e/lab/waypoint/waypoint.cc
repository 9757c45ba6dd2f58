#include "e2e/lab/waypoint/waypoint.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/defaults.h"
#include "base/error.h"
#include "base/unique_fd.h"
#include "e2e/lab/waypoint/http.h"
#include "e2e/policy/evaluate.h"
#include "e2e/policy/support.h"

namespace kmesh::waypoint {
namespace {

using Clock = std::chrono::steady_clock;
// Ordered, so every line reads time first, as written.
using json = nlohmann::ordered_json;

// More concurrent connections than this get a 503: the lab never comes close, a runaway client would.
constexpr int kMaxConnections = 512;
constexpr size_t kIoChunk = 16 * 1024;

const char* kUsage =
    "usage: waypoint --listen IP:PORT --upstream IP:PORT --policies FILE --log FILE\n"
    "                [--namespace-of CIDR=NAMESPACE]...\n";

std::string NowRfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
  return out;
}

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

enum class Io { kOk, kEof, kTimeout, kError };

// One read of at most kIoChunk bytes appended to `buf`, waiting until `deadline`.
Io ReadSome(int fd, std::string& buf, Clock::time_point deadline) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    const int r = poll(&p, 1, MillisLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Io::kError;
    if (r == 0) return Io::kTimeout;
    char tmp[kIoChunk];
    const ssize_t n = recv(fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Io::kError;
    if (n == 0) return Io::kEof;
    buf.append(tmp, static_cast<size_t>(n));
    return Io::kOk;
  }
}

Io WriteAll(int fd, const char* data, size_t len, Clock::time_point deadline) {
  while (len > 0) {
    pollfd p{fd, POLLOUT, 0};
    const int r = poll(&p, 1, MillisLeft(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Io::kError;
    if (r == 0) return Io::kTimeout;
    const ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Io::kError;
    data += n;
    len -= static_cast<size_t>(n);
  }
  return Io::kOk;
}

Io WriteAll(int fd, const std::string& s, Clock::time_point deadline) {
  return WriteAll(fd, s.data(), s.size(), deadline);
}

const char* IoName(Io io) {
  switch (io) {
    case Io::kOk: return "ok";
    case Io::kEof: return "closed";
    case Io::kTimeout: return "timed out";
    case Io::kError: return std::strerror(errno);
  }
  return "?";
}

// Connects within `bound`; returns the socket or -1 with errno set (ETIMEDOUT on expiry).
int ConnectWithin(const net::Endpoint& e, std::chrono::milliseconds bound) {
  sockaddr_storage ss;
  const socklen_t len = e.ToSockaddr(ss);
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int r;
  do {
    r = poll(&p, 1, static_cast<int>(bound.count()));
  } while (r < 0 && errno == EINTR);
  int err = 0;
  socklen_t elen = sizeof err;
  if (r == 0) err = ETIMEDOUT;
  else if (r < 0) err = errno;
  else getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
  if (err != 0) {
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

std::atomic<Waypoint*> g_signal_target{nullptr};

void OnSignal(int sig) {
  Waypoint* w = g_signal_target.load();
  if (!w) return;
  if (sig == SIGHUP) w->RequestReload();
  else w->Stop();
}

// What one request produced, for its log line.
struct Outcome {
  std::string method, host, path;
  policy::Decision decision;
  bool decided = false;
  int status = 0;
  std::string error;  // what went wrong on the way, if anything
};

}  // namespace

net::Endpoint ParseEndpoint(const std::string& text, const std::string& what) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find("]:");
    if (close == std::string::npos) throw Error(what + " \"" + text + "\" is not [IPv6]:PORT");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) throw Error(what + " \"" + text + "\" is not IP:PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  const auto ip = net::IpAddr::Parse(host);
  if (!ip) throw Error(what + " \"" + text + "\": \"" + host + "\" is not an IP address");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535) {
    throw Error(what + " \"" + text + "\": \"" + port + "\" is not a port (1-65535)");
  }
  return net::Endpoint{ip->Unmapped(), static_cast<uint16_t>(std::stoi(port))};
}

Config ParseFlags(int argc, char** argv) {
  Config c;
  bool listen = false, upstream = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    std::string value;
    const size_t eq = flag.find('=');
    std::string name = flag.substr(0, eq);
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw Error(std::string("flag ") + flag + " needs a value\n" + kUsage);
    }
    if (name == "--listen")
      c.listen = ParseEndpoint(value, "--listen"), listen = true;
    else if (name == "--upstream")
      c.upstream = ParseEndpoint(value, "--upstream"), upstream = true;
    else if (name == "--policies") c.policies_path = value;
    else if (name == "--log") c.log_path = value;
    else if (name == "--namespace-of") {
      const size_t sep = value.find('=');
      const auto cidr = net::Cidr::Parse(sep == std::string::npos ? std::string() : value.substr(0, sep));
      if (!cidr || sep + 1 >= value.size()) {
        throw Error("--namespace-of \"" + value + "\" is not CIDR=NAMESPACE (e.g. 10.244.1.0/24=test-ns1)");
      }
      c.namespaces.emplace_back(*cidr, value.substr(sep + 1));
    } else {
      throw Error("unknown flag " + name + "\n" + kUsage);
    }
  }
  std::string missing;
  if (!listen) missing += " --listen";
  if (!upstream) missing += " --upstream";
  if (c.policies_path.empty()) missing += " --policies";
  if (c.log_path.empty()) missing += " --log";
  if (!missing.empty()) throw Error("missing" + missing + "\n" + kUsage);
  return c;
}

Waypoint::Waypoint(Config config) : config_(std::move(config)) {
  log_fd_ = open(config_.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd_ < 0) ThrowErrno("opening the request log " + config_.log_path);

  MaybeReload(true);
  if (!policies_) {
    // MaybeReload logged why; at start that is fatal.
    throw Error("cannot start: the policies in " + config_.policies_path + " were refused (see " +
                config_.log_path + ")");
  }

  sockaddr_storage ss;
  const socklen_t len = config_.listen.ToSockaddr(ss);
  listen_fd_ = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) ThrowErrno("socket for --listen " + config_.listen.ToString());
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ThrowErrno("binding --listen " + config_.listen.ToString() +
               " (is the address on an interface of this namespace?)");
  }
  if (listen(listen_fd_, 128) != 0) ThrowErrno("listen on " + config_.listen.ToString());

  json start = {{"time", NowRfc3339()},
                {"event", "start"},
                {"listen", config_.listen.ToString()},
                {"upstream", config_.upstream.ToString()},
                {"policies_file", config_.policies_path},
                {"policies", json::array()}};
  for (const auto& p : *policies_) start["policies"].push_back(p.IdKey());
  Log(start.dump());
}

Waypoint::~Waypoint() {
  if (g_signal_target.load() == this) g_signal_target = nullptr;
  if (listen_fd_ >= 0) close(listen_fd_);
  if (log_fd_ >= 0) close(log_fd_);
}

void Waypoint::InstallSignalHandlers() {
  g_signal_target = this;
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void Waypoint::Log(const std::string& line) {
  const std::string l = line + "\n";
  // One write per line on an O_APPEND file: lines from concurrent requests never interleave.
  if (write(log_fd_, l.data(), l.size()) < 0) {
    std::fprintf(stderr, "waypoint: writing %s: %s\n", config_.log_path.c_str(), std::strerror(errno));
  }
}

void Waypoint::MaybeReload(bool forced) {
  std::lock_guard<std::mutex> lock(policies_mu_);
  FileStamp stamp;
  struct stat st {};
  const bool readable = stat(config_.policies_path.c_str(), &st) == 0;
  const int stat_errno = errno;
  if (readable) {
    stamp = FileStamp{true, st.st_dev, st.st_ino, st.st_size,
                      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  }
  if (!forced && seen_any_ && stamp == seen_) return;
  seen_ = stamp;
  seen_any_ = true;
  auto refuse = [&](const std::string& why) {
    // The previous policies (if any) stay in force; this file version is not read again until it changes.
    Log(json{
        {"time", NowRfc3339()}, {"event", "reload_failed"}, {"file", config_.policies_path}, {"error", why}}
            .dump());
  };
  if (!readable) return refuse("cannot read " + config_.policies_path + ": " + std::strerror(stat_errno));
  auto fresh = std::make_shared<PolicySet>();
  try {
    *fresh = policy::ParseFile(config_.policies_path);
    for (const auto& p : *fresh) policy::SupportedBy(p).RequireSupported();
  } catch (const std::exception& e) {
    return refuse(e.what());
  }
  json ids = json::array();
  for (const auto& p : *fresh) ids.push_back(p.IdKey());
  if (policies_) Log(json{{"time", NowRfc3339()}, {"event", "reload"}, {"policies", ids}}.dump());
  policies_ = fresh;
}

std::shared_ptr<const Waypoint::PolicySet> Waypoint::Policies() {
  MaybeReload(reload_.exchange(false));
  std::lock_guard<std::mutex> lock(policies_mu_);
  return policies_;
}

std::string Waypoint::NamespaceOf(const net::IpAddr& ip) const {
  for (const auto& [cidr, ns] : config_.namespaces) {
    if (cidr.Contains(ip)) return ns;
  }
  return "";
}

bool Waypoint::Run() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(defaults::PollInterval().count()));
    if (r < 0 && errno != EINTR) ThrowErrno("poll on the listening socket");
    if (r <= 0) {
      MaybeReload(reload_.exchange(false));  // file changes and SIGHUP take effect within a poll interval
      continue;
    }
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    const int fd =
        accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // the client gave up between poll and accept, or EMFILE: try again
    const net::Endpoint client = *net::Endpoint::FromSockaddr(reinterpret_cast<sockaddr*>(&peer), len);
    if (active_.load() >= kMaxConnections) {
      const std::string busy = LocalResponse(503, "Service Unavailable", "waypoint overloaded");
      WriteAll(fd, busy, Clock::now() + defaults::WaypointIo());
      close(fd);
      continue;
    }
    ++active_;
    std::thread([this, fd, client] {
      Serve(fd, client);
      --active_;
    }).detach();
  }
  close(listen_fd_);
  listen_fd_ = -1;
  // Requests in flight finish within their own bounds; wait for them, bounded too.
  const auto deadline = Clock::now() + defaults::ResponseTimeout() + 2 * defaults::WaypointIo();
  while (active_.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(defaults::PollInterval());
  }
  return active_.load() == 0;
}

void Waypoint::Serve(int raw_fd, const net::Endpoint& from) {
  UniqueFd client(raw_fd);
  const std::string client_ip = from.ip.ToString();
  const auto started = Clock::now();
  Outcome out;
  auto log_request = [&] {
    json j = {{"time", NowRfc3339()},
              {"event", "request"},
              {"client", client_ip + ":" + std::to_string(from.port)},
              {"method", out.method},
              {"host", out.host},
              {"path", out.path},
              {"decision", out.decided ? policy::VerdictName(out.decision.verdict) : "none"},
              {"policy", out.decision.policy.empty() ? json(nullptr) : json(out.decision.policy)},
              {"rule", out.decision.rule},
              {"reason", out.decision.reason},
              {"status", out.status},
              {"duration_ms", std::chrono::duration<double, std::milli>(Clock::now() - started).count()}};
    if (!out.error.empty()) j["error"] = out.error;
    Log(j.dump());
  };
  auto reply = [&](int status, const std::string& reason, const std::string& body) {
    out.status = status;
    // Logged before answering, so a client that has its answer finds it in the evidence.
    log_request();
    WriteAll(client.get(), LocalResponse(status, reason, body), Clock::now() + defaults::WaypointIo());
  };

  // 1. The request head.
  std::string buf;
  std::optional<size_t> head_end;
  const auto head_deadline = Clock::now() + defaults::WaypointIo();
  while (!(head_end = HeadEnd(buf))) {
    if (buf.size() > kMaxHeadBytes) {
      out.error = "request head larger than " + std::to_string(kMaxHeadBytes) + " bytes";
      return reply(431, "Request Header Fields Too Large", out.error);
    }
    const Io io = ReadSome(client.get(), buf, head_deadline);
    if (io == Io::kOk) continue;
    if (buf.empty()) return;  // connected and left without a request: a readiness probe, not evidence
    out.error = std::string("client ") + IoName(io) + " before the request head was complete";
    return reply(io == Io::kTimeout ? 408 : 400, io == Io::kTimeout ? "Request Timeout" : "Bad Request",
                 out.error);
  }
  RequestHead head;
  try {
    head = ParseRequestHead(buf.substr(0, *head_end));
  } catch (const std::exception& e) {
    out.error = std::string("malformed request: ") + e.what();
    return reply(400, "Bad Request", out.error);
  }
  out.method = head.method;
  out.host = head.Host();
  out.path = head.Path();

  // 2. The decision, as the waypoint's RBAC filter makes it.
  policy::Request req;
  req.source_ip = from.ip.Unmapped();
  req.source_namespace = NamespaceOf(req.source_ip);
  req.destination_ip = config_.listen.ip;
  req.destination_port = config_.listen.port;
  req.host = out.host;
  req.method = head.method;
  req.path = out.path;
  for (const auto& [k, v] : head.headers) req.headers.Add(k, v);
  try {
    out.decision = policy::Evaluate(*Policies(), req);
    out.decided = true;
  } catch (const std::exception& e) {
    // Policies are checked when loaded, so this is a bug; fail closed and say so.
    out.error = std::string("evaluation failed: ") + e.what();
    return reply(500, "Internal Server Error", out.error);
  }
  if (!out.decision.allowed()) return reply(403, "Forbidden", "RBAC: access denied");

  // 3. Forward: head, the body bytes already read, then the rest of the Content-Length body.
  std::optional<size_t> body_len;
  try {
    body_len = RequestBodyLength(head);
  } catch (const std::exception& e) {
    out.error = e.what();
    return reply(400, "Bad Request", out.error);
  }
  if (!body_len) {
    out.error = "chunked request bodies are not supported by the lab waypoint";
    return reply(501, "Not Implemented", out.error);
  }
  UniqueFd upstream(ConnectWithin(config_.upstream, defaults::ConnectTimeout()));
  if (upstream.get() < 0) {
    out.error = "upstream " + config_.upstream.ToString() + ": " + std::strerror(errno);
    return reply(503, "Service Unavailable",
                 "upstream connect error or disconnect/reset before headers. " + out.error);
  }
  const auto io_deadline = [] { return Clock::now() + defaults::WaypointIo(); };
  if (auto expect = head.Header("expect"); expect && *expect == "100-continue" && buf.size() == *head_end) {
    WriteAll(client.get(), "HTTP/1.1 100 Continue\r\n\r\n", io_deadline());
  }
  std::string body = buf.substr(*head_end);
  Io io = WriteAll(upstream.get(), UpstreamRequestHead(head, client_ip), io_deadline());
  while (io == Io::kOk && body.size() < *body_len) {
    io = ReadSome(client.get(), body, io_deadline());
    if (io != Io::kOk) {
      out.error = std::string("client ") + IoName(io) + " while sending the request body";
      return reply(400, "Bad Request", out.error);
    }
  }
  if (io == Io::kOk)
    io = WriteAll(upstream.get(), body.data(), std::min(body.size(), *body_len), io_deadline());
  if (io != Io::kOk) {
    out.error = std::string("sending to upstream: ") + IoName(io);
    return reply(503, "Service Unavailable",
                 "upstream connect error or disconnect/reset before headers. " + out.error);
  }

  // 4. The response: its head rewritten to Connection: close, then everything until the upstream closes.
  std::string resp;
  std::optional<size_t> resp_head_end;
  const auto resp_deadline = Clock::now() + defaults::ResponseTimeout();
  while (!(resp_head_end = HeadEnd(resp))) {
    io = resp.size() > kMaxHeadBytes ? Io::kError : ReadSome(upstream.get(), resp, resp_deadline);
    if (io != Io::kOk) {
      out.error = std::string("upstream ") + IoName(io) + " before the response head was complete";
      return reply(io == Io::kTimeout ? 504 : 502, io == Io::kTimeout ? "Gateway Timeout" : "Bad Gateway",
                   out.error);
    }
  }
  ResponseHead rhead;
  try {
    rhead = ParseResponseHead(resp.substr(0, *resp_head_end));
  } catch (const std::exception& e) {
    out.error = std::string("malformed upstream response: ") + e.what();
    return reply(502, "Bad Gateway", out.error);
  }
  out.status = rhead.status;
  io = WriteAll(client.get(), ClientResponseHead(rhead) + resp.substr(*resp_head_end), io_deadline());
  while (io == Io::kOk) {
    std::string chunk;
    const Io r = ReadSome(upstream.get(), chunk, io_deadline());
    if (r == Io::kEof) break;
    if (r != Io::kOk) {
      out.error = std::string("upstream ") + IoName(r) + " during the response body";
      break;
    }
    io = WriteAll(client.get(), chunk, io_deadline());
  }
  if (io != Io::kOk && out.error.empty())
    out.error = std::string("client ") + IoName(io) + " during the response";
  log_request();
}

}  // namespace kmesh::waypoint
