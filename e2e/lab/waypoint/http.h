// The HTTP/1.1 the waypoint needs: parsing a request head and a response head, and writing them back
// with `Connection: close` (the waypoint serves one request per connection and relays the response until
// the upstream closes, which is correct for Content-Length, chunked and close-delimited bodies alike).
// Pure functions over strings, so the unit tier tests them without sockets.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kmesh::waypoint {

// Largest request or response head the waypoint reads (Envoy's default max_request_headers_kb is 60).
inline constexpr size_t kMaxHeadBytes = 64 * 1024;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct RequestHead {
  std::string method;
  std::string target;   // as sent: origin-form "/path?q" or absolute-form "http://host/path"
  std::string version;  // "HTTP/1.1"
  HeaderList headers;   // in order, names as sent

  std::optional<std::string> Header(
      const std::string& name) const;  // case-insensitive; repeats joined by ","
  // The Host header, else the authority of an absolute-form target.
  std::string Host() const;
  // The path part of the target (absolute-form reduced to its path), query kept.
  std::string Path() const;
};

struct ResponseHead {
  std::string version;
  int status = 0;
  std::string reason;
  HeaderList headers;
};

// Position just after the blank line ending the head in `buf`, or nullopt when it is not complete yet.
std::optional<size_t> HeadEnd(const std::string& buf);

// Parses a complete request head (up to and including the blank line). Throws kmesh::Error saying what
// is malformed (the waypoint answers 400 with it).
RequestHead ParseRequestHead(const std::string& head);
ResponseHead ParseResponseHead(const std::string& head);

// How many body bytes follow the head: Content-Length, 0 without a body. Throws kmesh::Error for an
// invalid Content-Length; returns nullopt for Transfer-Encoding: chunked.
std::optional<size_t> RequestBodyLength(const RequestHead& head);

// The head to send upstream: the request line and headers as received, minus hop-by-hop headers
// (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade, Expect) and the names Connection lists, plus
// `Connection: close` and `X-Forwarded-For: <client ip>` (appended to any existing value).
std::string UpstreamRequestHead(const RequestHead& head, const std::string& client_ip);

// The response head for the client: as received, with Connection/Keep-Alive replaced by
// `Connection: close`.
std::string ClientResponseHead(const ResponseHead& head);

// A complete response the waypoint writes itself (403, 400, 503, ...): Content-Length and close.
std::string LocalResponse(int status, const std::string& reason, const std::string& body);

}  // namespace kmesh::waypoint
