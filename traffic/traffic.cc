#include "traffic/traffic.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "base/error.h"
#include "base/unique_fd.h"
#include "netns/process.h"

namespace kmesh::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// Bad input, named before anything runs: a spec whose destination was never set.
void RequireDestination(const ProbeSpec& spec) {
  if (spec.dst.ip.unspecified())
    throw Error("probe: no destination (ProbeSpec.dst is " + spec.dst.ToString() + ")");
}

void FillLocal(int fd, net::Tuple& t) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return;
  const auto local = net::Endpoint::FromSockaddr(reinterpret_cast<const sockaddr*>(&ss), len);
  if (!local) return;
  t.src.port = local->port;
  if (!local->ip.unspecified()) t.src.ip = local->ip;
}

// An address the client could not tell ("" in the JSON, as curl reports it).
std::string JsonIp(const net::IpAddr& ip) { return ip.unspecified() ? "" : ip.ToString(); }

std::string ErrText(int err) {
  const char* name = strerrorname_np(err);
  return std::string(name ? name : "errno") + " (" + std::strerror(err) + ")";
}

int MillisLeft(Clock::time_point deadline) {
  auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// How long one poll() may sleep: to the deadline, or a proof-poll slice when the spec can end the wait early.
int WaitSlice(const ProbeSpec& spec, Clock::time_point deadline) {
  const int left = MillisLeft(deadline);
  if (!spec.proven) return left;
  return std::min(left, static_cast<int>(std::max<long long>(1, defaults::DropProofPoll().count())));
}

std::string Millis(microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", us.count() / 1000.0);
  return buf;
}

std::string Printable(const std::string& s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 32 && c < 127) ? c : '.';
  return out;
}

// Parsed state of an HTTP/1.x response being read.
struct Response {
  std::string data;
  int status = 0;
  bool headers_done = false;
  long long content_length = -1;
  bool chunked = false;
  size_t body_start = 0;

  // True once the response is complete by its own framing.
  bool Complete() {
    if (!headers_done) {
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string::npos) return false;
      headers_done = true;
      body_start = end + 4;
      std::string head = data.substr(0, end);
      for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (auto p = head.find("\r\ncontent-length:"); p != std::string::npos) {
        content_length = std::atoll(head.c_str() + p + 17);
      }
      chunked = head.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    }
    if (content_length >= 0) return data.size() - body_start >= static_cast<size_t>(content_length);
    if (chunked) return data.find("\r\n0\r\n\r\n", body_start - 2) != std::string::npos;
    return false;  // delimited by close
  }

  // "HTTP/1.1 403 Forbidden" -> 403; 0 when not HTTP.
  int ParseStatus() const {
    if (data.compare(0, 5, "HTTP/") != 0) return 0;
    const size_t sp = data.find(' ');
    if (sp == std::string::npos || sp + 4 > data.size()) return 0;
    int code = std::atoi(data.c_str() + sp + 1);
    return code >= 100 && code <= 999 ? code : 0;
  }
};

OutcomeKind FromStatus(int status) { return status >= 400 ? OutcomeKind::kHttpError : OutcomeKind::kOk; }

}  // namespace

std::string ToString(OutcomeKind k) {
  switch (k) {
    case OutcomeKind::kOk:
      return "ok";
    case OutcomeKind::kHttpError:
      return "http_error";
    case OutcomeKind::kConnectTimeout:
      return "connect_timeout";
    case OutcomeKind::kReset:
      return "reset";
    case OutcomeKind::kRefused:
      return "refused";
    case OutcomeKind::kReadTimeout:
      return "read_timeout";
    case OutcomeKind::kError:
      return "error";
  }
  return "?";
}

std::string ProbeOutcome::Summary() const {
  std::string s = e2e::ToString(kind);
  if ((kind == OutcomeKind::kOk || kind == OutcomeKind::kHttpError) && http_status != 0) {
    s += "(" + std::to_string(http_status) + ")";
  }
  return s;
}

std::string ProbeOutcome::ToString() const {
  auto ms = [](microseconds us) { return std::to_string(us.count() / 1000.0).substr(0, 6) + " ms"; };
  std::string s = Summary() + " " + tuple.ToString() + " via " + via + " (connect " + ms(timings.connect);
  if (timings.first_byte.count() > 0) s += ", first byte " + ms(timings.first_byte);
  s += ", total " + ms(timings.total) + ")";
  if (!detail.empty()) s += ": " + detail;
  return s;
}

nlohmann::json ProbeOutcome::ToJson() const {
  return {{"outcome", e2e::ToString(kind)},
          {"summary", Summary()},
          {"http_status", http_status},
          {"detail", detail},
          {"ended_early", ended_early},
          {"via", via},
          {"tuple",
           {{"src_ip", JsonIp(tuple.src.ip)},
            {"src_port", tuple.src.port},
            {"dst_ip", JsonIp(tuple.dst.ip)},
            {"dst_port", tuple.dst.port}}},
          {"timings_us",
           {{"connect", timings.connect.count()},
            {"first_byte", timings.first_byte.count()},
            {"total", timings.total.count()}}}};
}

ProbeOutcome ProbeOnThisThread(const ProbeSpec& spec) {
  RequireDestination(spec);
  sockaddr_storage dst{};
  const socklen_t dst_len = spec.dst.ToSockaddr(dst);
  ProbeOutcome out;
  out.via = "socket";
  out.tuple.dst = spec.dst;
  out.tuple.src.port = spec.src_port;
  const auto start = Clock::now();
  auto finish = [&](OutcomeKind kind, std::string detail) {
    out.kind = kind;
    out.detail = std::move(detail);
    out.timings.total = duration_cast<microseconds>(Clock::now() - start);
    return out;
  };

  UniqueFd fd(socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) ThrowErrno("probe socket");
  if (spec.src_ip || spec.src_port != 0) {
    // Unspecified (0.0.0.0 or ::) in the destination's family when only the port is chosen.
    const net::Endpoint src{spec.src_ip.value_or(spec.dst.ip.Masked(0)), spec.src_port};
    sockaddr_storage ss{};
    const socklen_t len = src.ToSockaddr(ss);
    int one = 1;
    // A chosen port may still be in TIME_WAIT from an earlier probe to another destination.
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
      ThrowErrno("probe: bind to source " + src.ToString());
    }
    if (spec.src_ip) out.tuple.src.ip = *spec.src_ip;
  }

  // ---- connect, bounded ----
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&dst), dst_len) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    FillLocal(fd.get(), out.tuple);
    out.timings.connect = duration_cast<microseconds>(Clock::now() - start);
    if (err == ECONNREFUSED) return finish(OutcomeKind::kRefused, ErrText(err));
    return finish(OutcomeKind::kError, "connect failed at once: " + ErrText(err));
  }
  FillLocal(fd.get(), out.tuple);  // the kernel picked the source port at connect()
  const auto connect_deadline = start + spec.connect_timeout;
  while (true) {
    pollfd p{fd.get(), POLLOUT, 0};
    const int pr = poll(&p, 1, WaitSlice(spec, connect_deadline));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) ThrowErrno("probe: poll");
    out.timings.connect = duration_cast<microseconds>(Clock::now() - start);
    if (pr == 0 && Clock::now() < connect_deadline && spec.proven) {
      out.ended_early = spec.proven(ProbeSpec::Phase::kConnect);
      if (out.ended_early.empty()) continue;
      return finish(OutcomeKind::kConnectTimeout, "no answer to the SYN after " +
                                                      Millis(out.timings.connect) +
                                                      "; the wait ended there, the kernel having proven it "
                                                      "dropped (bound " +
                                                      std::to_string(spec.connect_timeout.count()) + " ms)");
    }
    if (pr == 0) {
      return finish(OutcomeKind::kConnectTimeout,
                    "no answer to the SYN within " + std::to_string(spec.connect_timeout.count()) + " ms");
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) break;
    if (err == ECONNREFUSED) return finish(OutcomeKind::kRefused, ErrText(err));
    if (err == ECONNRESET) return finish(OutcomeKind::kReset, "during connect: " + ErrText(err));
    if (err == ETIMEDOUT) return finish(OutcomeKind::kConnectTimeout, ErrText(err));
    return finish(OutcomeKind::kError, "connect: " + ErrText(err));
  }
  FillLocal(fd.get(), out.tuple);
  if (spec.while_open) spec.while_open(out.tuple);
  if (!spec.http) {
    out.http_status = 0;
    return finish(OutcomeKind::kOk, "connected (TCP probe)");
  }

  // ---- request ----
  // Kmesh's userspace verdict arrives after the handshake (sockops -> km_auth_req -> RBAC -> km_auth_res);
  // a probe that asks for it waits before sending, so the verdict decides the request, not the race.
  if (spec.request_delay.count() > 0) std::this_thread::sleep_for(spec.request_delay);
  const std::string host = spec.host.empty() ? spec.dst.ToString() : spec.host;
  std::string req = spec.method + " " + spec.path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: kmesh-e2e\r\nAccept: */*\r\nConnection: close\r\n";
  for (const auto& [k, v] : spec.headers) req += k + ": " + v + "\r\n";
  req += "\r\n";
  const auto sent_at = Clock::now();
  const auto deadline = sent_at + spec.response_timeout;
  size_t off = 0;
  while (off < req.size()) {
    ssize_t n = send(fd.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{fd.get(), POLLOUT, 0};
      if (poll(&p, 1, MillisLeft(deadline)) == 0) {
        return finish(OutcomeKind::kReadTimeout, "request not accepted by the peer within " +
                                                     std::to_string(spec.response_timeout.count()) + " ms");
      }
      continue;
    }
    const int err = errno;
    if (err == ECONNRESET || err == EPIPE)
      return finish(OutcomeKind::kReset, "while sending the request: " + ErrText(err));
    return finish(OutcomeKind::kError, "send: " + ErrText(err));
  }

  // ---- response, bounded ----
  Response resp;
  char buf[16384];
  while (true) {
    pollfd p{fd.get(), POLLIN, 0};
    const int pr = poll(&p, 1, WaitSlice(spec, deadline));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) ThrowErrno("probe: poll");
    if (pr == 0 && Clock::now() < deadline && spec.proven && resp.data.empty()) {
      out.ended_early = spec.proven(ProbeSpec::Phase::kResponse);
      if (out.ended_early.empty()) continue;
      return finish(OutcomeKind::kReadTimeout,
                    "connected, but no response after " +
                        Millis(duration_cast<microseconds>(Clock::now() - sent_at)) +
                        "; the wait ended there, the kernel having proven the request dropped (bound " +
                        std::to_string(spec.response_timeout.count()) + " ms)");
    }
    if (pr == 0 && Clock::now() < deadline) continue;
    if (pr == 0) {
      resp.status = resp.ParseStatus();
      return finish(
          OutcomeKind::kReadTimeout,
          resp.data.empty()
              ? "connected, but no response within " + std::to_string(spec.response_timeout.count()) + " ms"
              : "response incomplete after " + std::to_string(spec.response_timeout.count()) + " ms (" +
                    std::to_string(resp.data.size()) + " bytes: \"" + Printable(resp.data, 40) + "\")");
    }
    ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) {
      const int err = errno;
      if (err == ECONNRESET) {
        return finish(
            OutcomeKind::kReset,
            (resp.data.empty() ? "before any response: " : "in the middle of the response: ") + ErrText(err));
      }
      return finish(OutcomeKind::kError, "recv: " + ErrText(err));
    }
    if (n > 0 && resp.data.empty())
      out.timings.first_byte = duration_cast<microseconds>(Clock::now() - sent_at);
    resp.data.append(buf, static_cast<size_t>(n));
    const bool eof = n == 0;
    if (eof || resp.Complete()) {
      if (resp.data.empty())
        return finish(OutcomeKind::kError, "empty reply: the server closed the connection without answering");
      const int status = resp.ParseStatus();
      if (status == 0)
        return finish(OutcomeKind::kError, "response is not HTTP: \"" + Printable(resp.data, 40) + "\"");
      if (eof && !resp.Complete() && (resp.content_length >= 0 || resp.chunked)) {
        return finish(OutcomeKind::kError, "connection closed before the response body was complete");
      }
      out.http_status = status;
      return finish(FromStatus(status), "");
    }
  }
}

ProbeOutcome Probe(const netns::NetnsRef& source, const ProbeSpec& spec) {
  return netns::RunIn(source, [&] { return ProbeOnThisThread(spec); });
}

// ---- curl ----

namespace {

std::string Seconds(milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", ms.count() / 1000.0);
  return buf;
}

microseconds FromSeconds(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return microseconds(0);
  return microseconds(static_cast<long long>(std::llround(it->get<double>() * 1e6)));
}

// Case-insensitive: curl capitalizes the kernel's words ("Network is unreachable").
bool Mentions(const std::string& text, const std::string& word) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  return lower(text).find(lower(word)) != std::string::npos;
}

// "curl: (7) Failed to connect ..." out of the verbose stderr.
std::string CurlErrorLine(const std::string& err) {
  const size_t at = err.rfind("curl: (");
  if (at == std::string::npos) return "";
  return err.substr(at, err.find('\n', at) - at);
}

}  // namespace

std::vector<std::string> CurlArgv(const ProbeSpec& spec) {
  RequireDestination(spec);
  const std::string url = "http://" + spec.dst.ToString() + spec.path;
  // -v: curl 7.88's errormsg for exit 7 says only "Couldn't connect to server"; the verbose lines on
  // stderr say why ("connect to ... failed: Connection refused").
  std::vector<std::string> argv = {"curl",
                                   "-sS",
                                   "-v",
                                   "-o",
                                   "/dev/null",
                                   "-w",
                                   "%{json}",
                                   "--noproxy",
                                   "*",
                                   "--connect-timeout",
                                   Seconds(spec.connect_timeout),
                                   "--max-time",
                                   Seconds(spec.connect_timeout + spec.response_timeout)};
  if (spec.src_port != 0) argv.insert(argv.end(), {"--local-port", std::to_string(spec.src_port)});
  if (spec.src_ip) argv.insert(argv.end(), {"--interface", spec.src_ip->ToString()});
  if (spec.method != "GET") argv.insert(argv.end(), {"-X", spec.method});
  if (!spec.host.empty()) argv.insert(argv.end(), {"-H", "Host: " + spec.host});
  for (const auto& [k, v] : spec.headers) argv.insert(argv.end(), {"-H", k + ": " + v});
  argv.push_back("--globoff");
  argv.push_back(url);
  return argv;
}

ProbeOutcome ParseCurlResult(int exit_code, const std::string& json_stdout, const std::string& stderr_text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_stdout);
  } catch (const nlohmann::json::parse_error&) {
    throw Error("curl output is not the JSON of -w '%{json}' (exit " + std::to_string(exit_code) +
                "): found \"" + Printable(json_stdout, 80) + "\"" +
                (stderr_text.empty() ? "" : ", stderr \"" + Printable(stderr_text, 120) + "\"") +
                " (curl 7.70 or newer is needed)");
  }
  if (!j.is_object() || !j.contains("http_code")) {
    throw Error("curl -w '%{json}' output lacks http_code: found " + Printable(json_stdout, 80));
  }
  ProbeOutcome out;
  out.via = "curl";
  const std::string errormsg =
      j.value("errormsg", nlohmann::json()).is_string() ? j["errormsg"].get<std::string>() : "";
  out.detail = errormsg.empty() ? CurlErrorLine(stderr_text) : errormsg;
  while (!out.detail.empty() && (out.detail.back() == '\n' || out.detail.back() == ' '))
    out.detail.pop_back();
  // curl reports no address when it never connected: the tuple keeps an unspecified one there.
  auto endpoint = [&](const char* ip_key, const char* port_key) {
    net::Endpoint e;
    if (const auto ip = net::IpAddr::Parse(j.value(ip_key, std::string()))) e.ip = *ip;
    e.port = static_cast<uint16_t>(j.value(port_key, 0));
    return e;
  };
  out.tuple = {endpoint("local_ip", "local_port"), endpoint("remote_ip", "remote_port")};
  const microseconds connect = FromSeconds(j, "time_connect");
  const microseconds pretransfer = FromSeconds(j, "time_pretransfer");
  const microseconds starttransfer = FromSeconds(j, "time_starttransfer");
  out.timings.connect = connect;
  out.timings.first_byte = starttransfer.count() > 0 ? starttransfer - pretransfer : microseconds(0);
  out.timings.total = FromSeconds(j, "time_total");
  const int status = j["http_code"].is_number() ? j["http_code"].get<int>() : 0;
  switch (exit_code) {
    case 0:
      out.http_status = status;
      out.kind = status == 0 ? OutcomeKind::kError : FromStatus(status);
      if (status == 0) out.detail = "curl succeeded without an HTTP status";
      break;
    case 7:  // couldn't connect: refused, or no route; only the verbose stderr tells which
      if (Mentions(out.detail, "refused") || Mentions(stderr_text, "connection refused")) {
        out.kind = OutcomeKind::kRefused;
        out.detail = "connection refused";
      } else {
        out.kind = OutcomeKind::kError;
        for (const char* why :
             {"No route to host", "Network is unreachable", "Cannot assign requested address"}) {
          if (Mentions(stderr_text, why)) out.detail += std::string(" (") + why + ")";
        }
      }
      break;
    case 28:  // timeout: before or after the handshake
      out.kind = connect.count() == 0 ? OutcomeKind::kConnectTimeout : OutcomeKind::kReadTimeout;
      break;
    case 56:  // failure receiving network data
    case 55:  // failure sending network data
      out.kind = (Mentions(out.detail, "reset") || Mentions(out.detail, "broken pipe") || exit_code == 56)
                     ? OutcomeKind::kReset
                     : OutcomeKind::kError;
      break;
    case 52:
      out.kind = OutcomeKind::kError;
      out.detail = "empty reply: the server closed the connection without answering" +
                   (out.detail.empty() ? "" : " (" + out.detail + ")");
      break;
    default:
      out.kind = OutcomeKind::kError;
      out.detail = "curl exit " + std::to_string(exit_code) + (out.detail.empty() ? "" : ": " + out.detail);
      break;
  }
  // curl reports time_connect 0 when the handshake never completed; the socket path reports how long it
  // tried, so do the same.
  if (out.timings.connect.count() == 0 && out.kind != OutcomeKind::kOk &&
      out.kind != OutcomeKind::kHttpError && out.kind != OutcomeKind::kReadTimeout &&
      out.kind != OutcomeKind::kReset) {
    out.timings.connect = out.timings.total;
  }
  return out;
}

ProbeOutcome ProbeWithCurl(const netns::NetnsRef& source, const ProbeSpec& spec) {
  netns::ProcessOptions opts;
  opts.netns = source;
  // curl bounds itself (--max-time); the process bound only catches a curl that hangs anyway.
  const auto r =
      netns::Run(CurlArgv(spec), opts, spec.connect_timeout + spec.response_timeout + defaults::Command());
  if (r.timed_out) throw Error("curl outlived its own --max-time: " + r.Describe());
  ProbeOutcome out = ParseCurlResult(r.exit_code, r.out, r.err);
  if (out.tuple.dst.ip.unspecified()) out.tuple.dst.ip = spec.dst.ip;
  if (out.tuple.dst.port == 0) out.tuple.dst.port = spec.dst.port;
  if (out.tuple.src.port == 0) out.tuple.src.port = spec.src_port;
  if (out.tuple.src.ip.unspecified() && spec.src_ip) out.tuple.src.ip = *spec.src_ip;
  return out;
}

}  // namespace kmesh::e2e
