#include "e2e/lab/waypoint/http.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <set>

#include "base/error.h"

namespace kmesh::waypoint {
namespace {

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool IsToken(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!(std::isalnum(c) || std::string("!#$%&'*+-.^_`|~").find(c) != std::string::npos)) return false;
  }
  return true;
}

// Splits a head into lines (CRLF, tolerating bare LF as RFC 9112 permits) up to the blank line.
std::vector<std::string> Lines(const std::string& head) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < head.size()) {
    size_t nl = head.find('\n', pos);
    if (nl == std::string::npos) nl = head.size();
    std::string line = head.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = nl + 1;
    if (line.empty()) break;
    out.push_back(line);
  }
  return out;
}

HeaderList ParseHeaders(const std::vector<std::string>& lines) {
  HeaderList headers;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l[0] == ' ' || l[0] == '\t')
      throw Error("obsolete header line folding at line " + std::to_string(i + 1));
    const size_t colon = l.find(':');
    if (colon == std::string::npos)
      throw Error("header line " + std::to_string(i + 1) + " has no ':': \"" + l + "\"");
    const std::string name = l.substr(0, colon);
    if (!IsToken(name)) throw Error("header name \"" + name + "\" is not a token");
    headers.emplace_back(name, Trim(l.substr(colon + 1)));
  }
  return headers;
}

std::optional<std::string> Find(const HeaderList& headers, const std::string& name) {
  std::optional<std::string> out;
  const std::string want = Lower(name);
  for (const auto& [k, v] : headers) {
    if (Lower(k) == want) out = out ? *out + "," + v : v;
  }
  return out;
}

std::string HttpDate() {
  char buf[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

}  // namespace

std::optional<std::string> RequestHead::Header(const std::string& name) const { return Find(headers, name); }

std::string RequestHead::Host() const {
  if (auto h = Header("host")) return *h;
  const size_t scheme = target.find("://");
  if (scheme == std::string::npos) return "";
  const size_t start = scheme + 3;
  return target.substr(start, target.find('/', start) - start);
}

std::string RequestHead::Path() const {
  const size_t scheme = target.find("://");
  if (scheme == std::string::npos) return target;
  const size_t slash = target.find('/', scheme + 3);
  return slash == std::string::npos ? "/" : target.substr(slash);
}

std::optional<size_t> HeadEnd(const std::string& buf) {
  // RFC 9112 allows a bare LF; accept both, whichever ends first.
  const size_t crlf = buf.find("\r\n\r\n");
  const size_t lf = buf.find("\n\n");
  size_t end = std::string::npos;
  if (crlf != std::string::npos) end = crlf + 4;
  if (lf != std::string::npos && lf + 2 < end) end = lf + 2;
  if (end == std::string::npos) return std::nullopt;
  return end;
}

RequestHead ParseRequestHead(const std::string& head) {
  const auto lines = Lines(head);
  if (lines.empty()) throw Error("empty request");
  RequestHead r;
  const std::string& rl = lines[0];
  const size_t sp1 = rl.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : rl.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || rl.find(' ', sp2 + 1) != std::string::npos) {
    throw Error("request line \"" + rl + "\" is not METHOD TARGET VERSION");
  }
  r.method = rl.substr(0, sp1);
  r.target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
  r.version = rl.substr(sp2 + 1);
  if (!IsToken(r.method)) throw Error("method \"" + r.method + "\" is not a token");
  if (r.target.empty() ||
      (r.target[0] != '/' && r.target.find("://") == std::string::npos && r.target != "*")) {
    throw Error("request target \"" + r.target + "\" is neither a path nor an absolute URI");
  }
  if (r.version != "HTTP/1.1" && r.version != "HTTP/1.0") {
    throw Error("version \"" + r.version + "\" is not HTTP/1.1 or HTTP/1.0");
  }
  r.headers = ParseHeaders(lines);
  if (r.version == "HTTP/1.1" && !r.Header("host")) throw Error("HTTP/1.1 request without a Host header");
  return r;
}

ResponseHead ParseResponseHead(const std::string& head) {
  const auto lines = Lines(head);
  if (lines.empty()) throw Error("empty response");
  ResponseHead r;
  const std::string& sl = lines[0];
  const size_t sp1 = sl.find(' ');
  if (sp1 == std::string::npos || sl.compare(0, 5, "HTTP/") != 0 || sl.size() < sp1 + 4) {
    throw Error("status line \"" + sl + "\" is not HTTP/x.y NNN reason");
  }
  r.version = sl.substr(0, sp1);
  const std::string code = sl.substr(sp1 + 1, 3);
  if (code.find_first_not_of("0123456789") != std::string::npos)
    throw Error("status \"" + code + "\" is not a number");
  r.status = std::stoi(code);
  r.reason = sl.size() > sp1 + 5 ? sl.substr(sp1 + 5) : "";
  r.headers = ParseHeaders(lines);
  return r;
}

std::optional<size_t> RequestBodyLength(const RequestHead& head) {
  if (auto te = head.Header("transfer-encoding")) {
    if (Lower(*te).find("chunked") != std::string::npos) return std::nullopt;
  }
  auto cl = head.Header("content-length");
  if (!cl) return 0;
  if (cl->empty() || cl->size() > 15 || cl->find_first_not_of("0123456789") != std::string::npos) {
    throw Error("Content-Length \"" + *cl + "\" is not a number");
  }
  return static_cast<size_t>(std::stoull(*cl));
}

std::string UpstreamRequestHead(const RequestHead& head, const std::string& client_ip) {
  std::set<std::string> hop = {"connection", "keep-alive", "proxy-connection", "te", "upgrade", "expect"};
  if (auto c = head.Header("connection")) {
    size_t pos = 0;
    while (pos <= c->size()) {
      size_t comma = c->find(',', pos);
      if (comma == std::string::npos) comma = c->size();
      hop.insert(Lower(Trim(c->substr(pos, comma - pos))));
      pos = comma + 1;
    }
  }
  std::string out = head.method + " " + head.target + " " + head.version + "\r\n";
  std::string xff;
  for (const auto& [k, v] : head.headers) {
    const std::string lk = Lower(k);
    if (hop.count(lk)) continue;
    if (lk == "x-forwarded-for") {
      xff += (xff.empty() ? "" : ", ") + v;
      continue;
    }
    out += k + ": " + v + "\r\n";
  }
  out += "X-Forwarded-For: " + (xff.empty() ? "" : xff + ", ") + client_ip + "\r\n";
  out += "Connection: close\r\n\r\n";
  return out;
}

std::string ClientResponseHead(const ResponseHead& head) {
  std::string out = head.version + " " + std::to_string(head.status) +
                    (head.reason.empty() ? "" : " " + head.reason) + "\r\n";
  for (const auto& [k, v] : head.headers) {
    const std::string lk = Lower(k);
    if (lk == "connection" || lk == "keep-alive") continue;
    out += k + ": " + v + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  return out;
}

std::string LocalResponse(int status, const std::string& reason, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n" +
         "content-length: " + std::to_string(body.size()) + "\r\n" + "content-type: text/plain\r\n" +
         "date: " + HttpDate() + "\r\n" + "server: kmesh-e2e-waypoint\r\n" + "connection: close\r\n\r\n" +
         body;
}

}  // namespace kmesh::waypoint
