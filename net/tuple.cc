#include "net/tuple.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cctype>
#include <cstring>

namespace kmesh::net {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// "ip:port" or "[ipv6]:port"; `what` names the part for errors ("source", "endpoint").
Parsed<Endpoint> ParseEndpoint(std::string_view text, const std::string& what) {
  text = Trim(text);
  const std::string quoted = "\"" + std::string(text) + "\"";
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    return Parsed<Endpoint>::Failed(what + " " + quoted + " has no port (expected ip:port, or [ipv6]:port)");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Parsed<Endpoint>::Failed("IPv6 " + what + " " + quoted +
                                    " must be bracketed, like [fd00::1]:8080");
  }
  unsigned long port = 0;
  for (char c : port_text) {
    port =
        std::isdigit(static_cast<unsigned char>(c)) ? port * 10 + static_cast<unsigned long>(c - '0') : 70000;
    if (port > 65535) break;
  }
  if (port > 65535) {
    return Parsed<Endpoint>::Failed(what + " port \"" + std::string(port_text) +
                                    "\" is not a number from 0 to 65535");
  }
  const auto ip = IpAddr::Parse(host);
  if (!ip) {
    return Parsed<Endpoint>::Failed(what + " address \"" + std::string(host) +
                                    "\" is not an IPv4 or IPv6 address");
  }
  return Endpoint{*ip, static_cast<uint16_t>(port)};
}

void PutPort(uint8_t* at, uint16_t port, PortOrder order) {
  if (order == PortOrder::kNetwork) {
    at[0] = static_cast<uint8_t>(port >> 8);
    at[1] = static_cast<uint8_t>(port);
  } else {
    std::memcpy(at, &port, 2);  // the machine's own order, as bpf_ntohs() leaves it
  }
}

uint16_t GetPort(const uint8_t* at, PortOrder order) {
  if (order == PortOrder::kNetwork) return static_cast<uint16_t>(at[0] << 8 | at[1]);
  uint16_t port;
  std::memcpy(&port, at, 2);
  return port;
}

}  // namespace

Parsed<Endpoint> Endpoint::Parse(std::string_view text) { return ParseEndpoint(text, "endpoint"); }

Parsed<Endpoint> Endpoint::FromSockaddr(const sockaddr* sa, socklen_t len) {
  if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    return Endpoint{IpAddr::V4(reinterpret_cast<const uint8_t*>(&in->sin_addr)), ntohs(in->sin_port)};
  }
  if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    return Endpoint{IpAddr::V6(in6->sin6_addr.s6_addr), ntohs(in6->sin6_port)};
  }
  return Parsed<Endpoint>::Failed("socket address of family " + std::to_string(sa->sa_family) + " (" +
                                  std::to_string(len) + " bytes) is not IPv4 or IPv6");
}

socklen_t Endpoint::ToSockaddr(sockaddr_storage& out) const {
  out = sockaddr_storage{};
  if (ip.is_v4()) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip.data(), 4);
    return sizeof *in;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::memcpy(&in6->sin6_addr, ip.data(), 16);
  return sizeof *in6;
}

Parsed<Tuple> Tuple::Parse(std::string_view text) {
  const std::string whole = "tuple \"" + std::string(text) + "\": ";
  const size_t arrow = text.find("->");
  if (arrow == std::string_view::npos) {
    return Parsed<Tuple>::Failed(whole + "expected \"SRC_IP:PORT -> DST_IP:PORT\" (IPv6 as [addr]:port)");
  }
  const auto src = ParseEndpoint(text.substr(0, arrow), "source");
  if (!src) return Parsed<Tuple>::Failed(whole + src.error());
  const auto dst = ParseEndpoint(text.substr(arrow + 2), "destination");
  if (!dst) return Parsed<Tuple>::Failed(whole + dst.error());
  if (src->ip.family() != dst->ip.family()) {
    return Parsed<Tuple>::Failed(whole + "source and destination are of different IP families");
  }
  return Tuple{*src, *dst};
}

const char* ToString(PortOrder order) { return order == PortOrder::kHost ? "host" : "network"; }

Parsed<PortOrder> ParsePortOrder(std::string_view text) {
  std::string t(text);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "host") return PortOrder::kHost;
  if (t == "network" || t == "net") return PortOrder::kNetwork;
  return Parsed<PortOrder>::Failed("port order \"" + std::string(text) +
                                   "\": expected \"host\" (current Kmesh) or \"network\" (Kmesh v1.2.0 and "
                                   "earlier)");
}

TupleKey EncodeTupleKey(const Tuple& t, PortOrder order) {
  if (t.src.ip.family() != t.dst.ip.family()) {
    throw Error("tuple " + t.ToString() + ": source and destination are of different IP families");
  }
  TupleKey key{};
  const size_t n = t.src.ip.size();                // 4 or 16
  const size_t ports = t.src.ip.is_v4() ? 8 : 32;  // where the ports start
  std::memcpy(&key[0], t.src.ip.data(), n);
  std::memcpy(&key[n], t.dst.ip.data(), n);
  PutPort(&key[ports], t.src.port, order);
  PutPort(&key[ports + 2], t.dst.port, order);
  return key;
}

Parsed<Tuple> DecodeTupleKey(const uint8_t* key, size_t size, PortOrder order) {
  if (size != KM_TUPLE_SIZE) {
    return Parsed<Tuple>::Failed("tuple key is " + std::to_string(size) +
                                 " bytes; Kmesh's km_auth_res/km_tcargs key (struct bpf_sock_tuple) is " +
                                 std::to_string(KM_TUPLE_SIZE) + " bytes");
  }
  bool v4 = true;
  for (size_t i = 12; i < KM_TUPLE_SIZE; ++i) v4 = v4 && key[i] == 0;
  if (v4) {
    return Tuple{{IpAddr::V4(&key[0]), GetPort(&key[8], order)},
                 {IpAddr::V4(&key[4]), GetPort(&key[10], order)}};
  }
  return Tuple{{IpAddr::V6(&key[0]), GetPort(&key[32], order)},
               {IpAddr::V6(&key[16]), GetPort(&key[34], order)}};
}

}  // namespace kmesh::net
