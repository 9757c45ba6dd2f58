#include "bpf_probe/tuple.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstring>
#include <tuple>

#include "base/error.h"

namespace kmesh::bpf_probe {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// "ip:port" or "[ipv6]:port" -> (ip, port). `side` names the part for errors.
std::pair<IpAddr, uint16_t> ParseEndpoint(std::string_view text, const char* side,
                                          std::string_view whole) {
  text = Trim(text);
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size()) {
    throw Error("tuple \"" + std::string(whole) + "\": " + side + " \"" + std::string(text) +
                "\" has no port (expected ip:port, or [ipv6]:port)");
  }
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.find(':') != std::string_view::npos && host.front() != '[') {
    throw Error("tuple \"" + std::string(whole) + "\": IPv6 " + side + " \"" + std::string(text) +
                "\" must be bracketed, like [fd00::1]:8080");
  }
  unsigned long port = 0;
  for (char c : port_text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) port = 70000;  // forces the error below
    else port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) break;
  }
  if (port > 65535) {
    throw Error("tuple \"" + std::string(whole) + "\": " + side + " port \"" + std::string(port_text) +
                "\" is not a number from 0 to 65535");
  }
  auto ip = IpAddr::TryParse(host);
  if (!ip) {
    throw Error("tuple \"" + std::string(whole) + "\": " + side + " address \"" + std::string(host) +
                "\" is not an IPv4 or IPv6 address");
  }
  return {*ip, static_cast<uint16_t>(port)};
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

const char* ToString(PortOrder order) { return order == PortOrder::kHost ? "host" : "network"; }

PortOrder ParsePortOrder(std::string_view text) {
  const std::string t = Lower(text);
  if (t == "host") return PortOrder::kHost;
  if (t == "network" || t == "net") return PortOrder::kNetwork;
  throw Error("port order \"" + std::string(text) +
              "\": expected \"host\" (current Kmesh) or \"network\" (Kmesh v1.2.0 and earlier)");
}

std::optional<IpAddr> IpAddr::TryParse(std::string_view text) {
  text = Trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  const std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::kIPv4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes_.data()) == 1) {
    a.family_ = Family::kIPv6;
    return a;
  }
  return std::nullopt;
}

IpAddr IpAddr::Parse(std::string_view text) {
  auto a = TryParse(text);
  if (!a) throw Error("\"" + std::string(text) + "\" is not an IPv4 or IPv6 address");
  return *a;
}

IpAddr IpAddr::V4(const uint8_t bytes[4]) {
  IpAddr a;
  a.family_ = Family::kIPv4;
  std::memcpy(a.bytes_.data(), bytes, 4);
  return a;
}

IpAddr IpAddr::V6(const uint8_t bytes[16]) {
  IpAddr a;
  a.family_ = Family::kIPv6;
  std::memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

std::string Tuple::ToString() const {
  auto ep = [](const IpAddr& ip, uint16_t port) {
    return (ip.is_v4() ? ip.ToString() : "[" + ip.ToString() + "]") + ":" + std::to_string(port);
  };
  return ep(src, sport) + " -> " + ep(dst, dport);
}

Tuple Tuple::Parse(std::string_view text) {
  const size_t arrow = text.find("->");
  if (arrow == std::string_view::npos) {
    throw Error("tuple \"" + std::string(text) +
                "\": expected \"SRC_IP:PORT -> DST_IP:PORT\" (IPv6 as [addr]:port)");
  }
  Tuple t;
  std::tie(t.src, t.sport) = ParseEndpoint(text.substr(0, arrow), "source", text);
  std::tie(t.dst, t.dport) = ParseEndpoint(text.substr(arrow + 2), "destination", text);
  if (t.src.family() != t.dst.family()) {
    throw Error("tuple \"" + std::string(text) + "\": source and destination are of different IP families");
  }
  return t;
}

bool Tuple::operator<(const Tuple& o) const {
  return std::tie(src, sport, dst, dport) < std::tie(o.src, o.sport, o.dst, o.dport);
}

TupleKey EncodeTupleKey(const Tuple& t, PortOrder order) {
  if (t.src.family() != t.dst.family()) {
    throw Error("tuple " + t.ToString() + ": source and destination are of different IP families");
  }
  TupleKey key{};
  if (t.src.is_v4()) {
    std::memcpy(&key[0], t.src.bytes().data, 4);
    std::memcpy(&key[4], t.dst.bytes().data, 4);
    PutPort(&key[8], t.sport, order);
    PutPort(&key[10], t.dport, order);
  } else {
    std::memcpy(&key[0], t.src.bytes().data, 16);
    std::memcpy(&key[16], t.dst.bytes().data, 16);
    PutPort(&key[32], t.sport, order);
    PutPort(&key[34], t.dport, order);
  }
  return key;
}

Tuple DecodeTupleKey(ByteView key, PortOrder order) {
  if (key.size != KM_TUPLE_SIZE) {
    throw Error("tuple key is " + std::to_string(key.size) + " bytes; Kmesh's km_auth_res/km_tcargs key "
                "(struct bpf_sock_tuple) is " + std::to_string(KM_TUPLE_SIZE) + " bytes");
  }
  bool v4 = true;
  for (size_t i = 12; i < KM_TUPLE_SIZE; ++i) v4 = v4 && key[i] == 0;
  Tuple t;
  if (v4) {
    t.src = IpAddr::V4(&key[0]);
    t.dst = IpAddr::V4(&key[4]);
    t.sport = GetPort(&key[8], order);
    t.dport = GetPort(&key[10], order);
  } else {
    t.src = IpAddr::V6(&key[0]);
    t.dst = IpAddr::V6(&key[16]);
    t.sport = GetPort(&key[32], order);
    t.dport = GetPort(&key[34], order);
  }
  return t;
}

std::string ToString(Verdict v) {
  switch (v) {
    case Verdict::kAllow: return "ALLOW";
    case Verdict::kDeny: return "DENY";
  }
  return "UNKNOWN(" + std::to_string(static_cast<uint32_t>(v)) + ")";
}

Verdict ParseVerdict(std::string_view text) {
  const std::string t = Lower(text);
  if (t == "allow") return Verdict::kAllow;
  if (t == "deny") return Verdict::kDeny;
  throw Error("verdict \"" + std::string(text) + "\": expected allow or deny");
}

}  // namespace kmesh::bpf_probe
