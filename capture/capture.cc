#include "capture/capture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/disagreement.h"
#include "base/hex.h"
#include "netns/route.h"

namespace kmesh::capture {
namespace {

// A packet's end (address as the packet printed it) against a wanted one: an unspecified address or port 0
// matches any.
bool Same(const std::string& ip, uint16_t port, const net::Endpoint& want) {
  return (want.ip.unspecified() || ip == want.ip.ToString()) && (want.port == 0 || port == want.port);
}

using Clock = std::chrono::steady_clock;

std::string Where(const netns::NetnsRef& ns) { return ns.name().empty() ? ns.path() : ns.name(); }

std::string Ip(int family, const uint8_t* p) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, p, buf, sizeof buf);
  return buf;
}

double Seconds(const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

std::string TcpFlags(uint8_t f) {
  std::string s;
  if (f & 0x02) s += 'S';
  if (f & 0x10) s += '.';
  if (f & 0x08) s += 'P';
  if (f & 0x01) s += 'F';
  if (f & 0x04) s += 'R';
  return s;
}

// The inner IPv4/IPv6 + TCP packet of a decrypted ESP payload: its 5-tuple and TCP payload.
struct InnerTcp {
  std::string src, dst;
  uint16_t sport = 0, dport = 0;
  uint8_t flags = 0;
  const uint8_t* payload = nullptr;
  size_t payload_len = 0;
};

std::optional<InnerTcp> ParseInnerTcp(const std::vector<uint8_t>& p) {
  if (p.empty()) return std::nullopt;
  InnerTcp t;
  size_t l4 = 0, end = 0;
  uint8_t proto = 0;
  if ((p[0] >> 4) == 4 && p.size() >= 20) {
    l4 = (p[0] & 0x0fu) * 4u;
    end = std::min<size_t>(p.size(), static_cast<size_t>(p[2] << 8 | p[3]));
    proto = p[9];
    t.src = Ip(AF_INET, p.data() + 12);
    t.dst = Ip(AF_INET, p.data() + 16);
  } else if ((p[0] >> 4) == 6 && p.size() >= 40) {
    l4 = 40;
    end = std::min<size_t>(p.size(), 40u + static_cast<size_t>(p[4] << 8 | p[5]));
    proto = p[6];
    t.src = Ip(AF_INET6, p.data() + 8);
    t.dst = Ip(AF_INET6, p.data() + 24);
  } else {
    return std::nullopt;
  }
  if (proto != IPPROTO_TCP || end < l4 + 20) return std::nullopt;
  const uint8_t* tcp = p.data() + l4;
  t.sport = static_cast<uint16_t>(tcp[0] << 8 | tcp[1]);
  t.dport = static_cast<uint16_t>(tcp[2] << 8 | tcp[3]);
  t.flags = tcp[13];
  const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
  if (l4 + doff <= end) {
    t.payload = tcp + doff;
    t.payload_len = end - l4 - doff;
  }
  return t;
}

}  // namespace

std::optional<std::vector<uint8_t>> OpenEsp(const uint8_t* esp, size_t len, const ipsec::KeyMaterial& key) {
  constexpr size_t kHeader = 8, kIv = 8, kIcv = 16, kSalt = 4, kAesKey = 32;
  if (key.size() != kAesKey + kSalt || len < kHeader + kIv + 2 + kIcv) return std::nullopt;
  const uint8_t* iv = esp + kHeader;
  const uint8_t* ct = iv + kIv;
  const size_t ct_len = len - kHeader - kIv - kIcv;
  uint8_t nonce[kSalt + kIv];
  std::memcpy(nonce, key.bytes().data() + kAesKey, kSalt);
  std::memcpy(nonce + kSalt, iv, kIv);
  std::vector<uint8_t> out(ct_len + 16);
  uint8_t tag[kIcv];
  std::memcpy(tag, esp + len - kIcv, kIcv);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int n = 0, m = 0;
  const bool ok = ctx != nullptr && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, sizeof nonce, nullptr) == 1 &&
                  EVP_DecryptInit_ex(ctx, nullptr, nullptr, key.bytes().data(), nonce) == 1 &&
                  EVP_DecryptUpdate(ctx, nullptr, &n, esp, kHeader) == 1 &&  // AAD: SPI, sequence number
                  EVP_DecryptUpdate(ctx, out.data(), &n, ct, static_cast<int>(ct_len)) == 1 &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kIcv, tag) == 1 &&
                  EVP_DecryptFinal_ex(ctx, out.data() + n, &m) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return std::nullopt;
  out.resize(static_cast<size_t>(n + m));
  // ESP trailer: padding, pad length, next header.
  if (out.size() < 2) return std::nullopt;
  const size_t pad = out[out.size() - 2];
  if (pad + 2 > out.size()) return std::nullopt;
  out.resize(out.size() - pad - 2);
  return out;
}

struct Capture::State {
  netns::NetnsRef ns = netns::NetnsRef::Self();
  CaptureSpec spec;
  pcap_t* handle = nullptr;
  pcap_dumper_t* dumper = nullptr;
  int link = DLT_EN10MB;
  std::thread worker;
  int wake_fd = -1;  // written to stop the worker at once (it sleeps in poll)
  std::atomic<bool> stop{false};
  bool finished = false;
  std::mutex mu;
  Clock::time_point deadline;  // max_duration from the start
  CaptureSummary summary;
  std::string worker_error;

  ~State() { Close(); }

  void Close() {
    stop = true;
    if (wake_fd >= 0) {
      const uint64_t one = 1;
      (void)!write(wake_fd, &one, sizeof one);
    }
    if (worker.joinable()) worker.join();
    if (dumper != nullptr) {
      pcap_dump_close(dumper);
      dumper = nullptr;
    }
    if (handle != nullptr) {
      pcap_stat st{};
      if (pcap_stats(handle, &st) == 0) summary.kernel_dropped = st.ps_drop;
      pcap_close(handle);
      handle = nullptr;
    }
    if (wake_fd >= 0) {
      close(wake_fd);
      wake_fd = -1;
    }
  }

  // Reads what the kernel has delivered so far, up to the packet bound (non-blocking handle).
  void DispatchPending() {
    while (true) {
      int budget;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (summary.packets >= spec.max_packets) {
          summary.hit_count_bound = true;
          return;
        }
        budget = static_cast<int>(spec.max_packets - summary.packets);
      }
      const int n = pcap_dispatch(
          handle, budget,
          [](u_char* user, const pcap_pkthdr* h, const u_char* b) {
            reinterpret_cast<State*>(user)->OnPacket(h, b);
          },
          reinterpret_cast<u_char*>(this));
      if (n == PCAP_ERROR) {
        worker_error = pcap_geterr(handle);
        return;
      }
      if (n <= 0) return;
    }
  }

  void OnPacket(const pcap_pkthdr* h, const uint8_t* bytes) {
    if (dumper != nullptr) pcap_dump(reinterpret_cast<u_char*>(dumper), h, bytes);
    std::lock_guard<std::mutex> lock(mu);
    CaptureSummary& s = summary;
    const double t = Seconds(h->ts);
    if (s.packets == 0) s.first_time = t;
    s.last_time = t;
    ++s.packets;
    const size_t len = h->caplen;
    if (!spec.marker.empty() && len >= spec.marker.size()) {
      const void* at = memmem(bytes, len, spec.marker.data(), spec.marker.size());
      if (at != nullptr) {
        s.marker_hits.push_back({t, "payload marker \"" + spec.marker + "\" in clear at offset " +
                                        std::to_string(static_cast<const uint8_t*>(at) - bytes)});
      }
    }
    // Link layer -> network layer.
    size_t off = 0;
    uint16_t proto = 0;
    if (link == DLT_EN10MB) {
      if (len < 14) return;
      proto = static_cast<uint16_t>(bytes[12] << 8 | bytes[13]);
      off = 14;
      while ((proto == 0x8100 || proto == 0x88a8) && len >= off + 4) {
        proto = static_cast<uint16_t>(bytes[off + 2] << 8 | bytes[off + 3]);
        off += 4;
      }
    } else if (link == DLT_LINUX_SLL) {
      if (len < 16) return;
      proto = static_cast<uint16_t>(bytes[14] << 8 | bytes[15]);
      off = 16;
    } else if (link == DLT_LINUX_SLL2) {
      if (len < 20) return;
      proto = static_cast<uint16_t>(bytes[0] << 8 | bytes[1]);
      off = 20;
    } else if (link == DLT_RAW) {
      if (len < 1) return;
      proto = (bytes[0] >> 4) == 6 ? 0x86dd : 0x0800;
    } else {
      return;
    }
    int family = 0;
    uint8_t l4 = 0;
    std::string src, dst;
    size_t l4off = 0;
    if (proto == 0x0800 && len >= off + 20) {
      const uint8_t* ip = bytes + off;
      family = AF_INET;
      l4 = ip[9];
      src = Ip(AF_INET, ip + 12);
      dst = Ip(AF_INET, ip + 16);
      l4off = off + (ip[0] & 0x0f) * 4;
    } else if (proto == 0x86dd && len >= off + 40) {
      const uint8_t* ip = bytes + off;
      family = AF_INET6;
      l4 = ip[6];
      src = Ip(AF_INET6, ip + 8);
      dst = Ip(AF_INET6, ip + 24);
      l4off = off + 40;
    } else {
      return;
    }
    (void)family;
    if (l4 == IPPROTO_ESP) {
      ++s.esp_packets;
      if (len >= l4off + 8) {
        const uint8_t* e = bytes + l4off;
        const uint32_t spi = static_cast<uint32_t>(e[0]) << 24 | e[1] << 16 | e[2] << 8 | e[3];
        const uint32_t seq = static_cast<uint32_t>(e[4]) << 24 | e[5] << 16 | e[6] << 8 | e[7];
        s.esp_spis[spi]++;
        if (!spec.esp_keys.empty()) OpenProbeEsp(s, t, src, dst, spi, seq, e, h->len - l4off, len - l4off);
      }
      return;
    }
    if (l4 != IPPROTO_TCP || spec.inner.dst.ip.unspecified() || len < l4off + 14) return;
    const uint8_t* tcp = bytes + l4off;
    const uint16_t sport = static_cast<uint16_t>(tcp[0] << 8 | tcp[1]);
    const uint16_t dport = static_cast<uint16_t>(tcp[2] << 8 | tcp[3]);
    const net::Tuple& in = spec.inner;
    const bool forward = Same(src, sport, in.src) && Same(dst, dport, in.dst);
    const bool reverse = Same(src, sport, in.dst) && Same(dst, dport, in.src);
    if (forward || reverse) {
      const size_t ip_total = h->len - l4off;
      const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
      const uint32_t payload = static_cast<uint32_t>(ip_total > doff ? ip_total - doff : 0);
      s.plaintext.push_back({t,
                             src + ":" + std::to_string(sport) + " -> " + dst + ":" + std::to_string(dport) +
                                 " TCP [" + TcpFlags(tcp[13]) + "] len " + std::to_string(payload),
                             forward, tcp[13], payload});
    }
  }

  // One ESP packet of a keyed SA: authenticated, decrypted, and kept when it carries the probe's connection.
  void OpenProbeEsp(CaptureSummary& s, double t, const std::string& src, const std::string& dst, uint32_t spi,
                    uint32_t seq, const uint8_t* esp, size_t wire_len, size_t captured) {
    const EspKey* key = nullptr;
    for (const auto& k : spec.esp_keys) {
      if (k.spi == spi && k.src == src && k.dst == dst) key = &k;
    }
    if (key == nullptr) {
      ++s.esp_no_key;
      return;
    }
    if (captured < wire_len) {
      ++s.esp_truncated;
      return;
    }
    const auto inner = OpenEsp(esp, wire_len, key->key);
    if (!inner) {
      ++s.esp_auth_failed;
      return;
    }
    ++s.esp_decrypted;
    const auto tcp = ParseInnerTcp(*inner);
    if (!tcp || spec.inner.dst.ip.unspecified()) return;
    const net::Tuple& in = spec.inner;
    const bool forward = Same(tcp->src, tcp->sport, in.src) && Same(tcp->dst, tcp->dport, in.dst);
    const bool reverse = Same(tcp->src, tcp->sport, in.dst) && Same(tcp->dst, tcp->dport, in.src);
    if (!forward && !reverse) return;
    EspProbePacket p;
    p.time = t;
    p.spi = spi;
    p.seq = seq;
    p.inner = tcp->src + ":" + std::to_string(tcp->sport) + " -> " + tcp->dst + ":" + std::to_string(tcp->dport) +
              " TCP [" + TcpFlags(tcp->flags) + "] len " + std::to_string(tcp->payload_len);
    p.marker = !spec.marker.empty() && tcp->payload_len >= spec.marker.size() &&
               memmem(tcp->payload, tcp->payload_len, spec.marker.data(), spec.marker.size()) != nullptr;
    s.esp_probe.push_back(p);
  }

  void Run(Clock::time_point deadline) {
    const int fd = pcap_get_selectable_fd(handle);
    while (!stop && Clock::now() < deadline) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (summary.packets >= spec.max_packets) {
          summary.hit_count_bound = true;
          break;
        }
      }
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (poll(p, 2, static_cast<int>(std::max<long long>(1, std::min<long long>(left, 1000)))) <= 0)
        continue;
      if (p[1].revents != 0) break;
      DispatchPending();
      if (!worker_error.empty()) break;
    }
    if (dumper != nullptr) pcap_dump_flush(dumper);
  }
};

void ValidateFilter(const std::string& filter) {
  pcap_t* dead = pcap_open_dead(DLT_EN10MB, 512);
  bpf_program prog{};
  const int rc = pcap_compile(dead, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN);
  const std::string msg = rc != 0 ? pcap_geterr(dead) : "";
  if (rc == 0) pcap_freecode(&prog);
  pcap_close(dead);
  if (rc != 0) throw Error("capture filter '" + filter + "' does not compile: " + msg);
}

std::string PlaintextFilter(const net::Tuple& t) {
  std::string f = "tcp";
  if (!t.src.ip.unspecified()) f += " and host " + t.src.ip.ToString();
  if (!t.dst.ip.unspecified()) f += " and host " + t.dst.ip.ToString();
  if (t.dst.port != 0) f += " and port " + std::to_string(t.dst.port);
  return f;
}

std::string AssertFilter(const std::string& a, const std::string& b, const net::Tuple& inner) {
  return "(esp and host " + a + " and host " + b + ") or (" + PlaintextFilter(inner) + ")";
}

Capture::Capture(std::unique_ptr<State> s) : state_(std::move(s)) {}
Capture::~Capture() = default;
Capture::Capture(Capture&&) noexcept = default;
Capture& Capture::operator=(Capture&&) noexcept = default;

Capture Capture::Start(const netns::NetnsRef& ns, const CaptureSpec& spec) {
  const std::string what = "capture on " + spec.interface + " in network namespace " + Where(ns);
  ValidateFilter(spec.filter);               // before anything is opened
  netns::FindInterface(ns, spec.interface);  // names the namespace and what it has
  auto st = std::make_unique<State>();
  st->ns = ns;
  st->spec = spec;
  // The packet socket is created inside the namespace; the worker thread then uses it from outside.
  st->handle = netns::RunIn(ns, [&]() -> pcap_t* {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* h = pcap_create(spec.interface.c_str(), err);
    if (h == nullptr) throw Error(what + ": " + err);
    pcap_set_snaplen(h, spec.esp_keys.empty() ? spec.snaplen : 65535);  // ESP is opened whole
    pcap_set_immediate_mode(h, 1);
    pcap_set_buffer_size(h, 4 << 20);
    const int rc = pcap_activate(h);
    if (rc < 0) {
      std::string msg = pcap_geterr(h);
      pcap_close(h);
      if (rc == PCAP_ERROR_PERM_DENIED)
        throw Error(what + ": permission denied (" + msg + "); needs CAP_NET_RAW (run as root)");
      if (rc == PCAP_ERROR_NO_SUCH_DEVICE) throw Error(what + ": no such interface (" + msg + ")");
      throw Error(what + ": " + pcap_statustostr(rc) + " (" + msg + ")");
    }
    return h;
  });
  st->link = pcap_datalink(st->handle);
  bpf_program prog{};
  if (pcap_compile(st->handle, &prog, spec.filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    throw Error("capture filter '" + spec.filter + "' does not compile for " + spec.interface + ": " +
                pcap_geterr(st->handle));
  }
  const int frc = pcap_setfilter(st->handle, &prog);
  pcap_freecode(&prog);
  if (frc != 0) throw Error(what + ": cannot set filter '" + spec.filter + "': " + pcap_geterr(st->handle));
  using Direction = CaptureSpec::Direction;
  if (spec.direction != Direction::kBoth &&
      pcap_setdirection(st->handle, spec.direction == Direction::kOut ? PCAP_D_OUT : PCAP_D_IN) != 0) {
    throw Error(what + ": cannot restrict the capture direction: " + pcap_geterr(st->handle));
  }
  st->summary.direction = spec.direction == Direction::kBoth  ? "both"
                          : spec.direction == Direction::kOut ? "out"
                                                              : "in";
  char err[PCAP_ERRBUF_SIZE] = {};
  if (pcap_setnonblock(st->handle, 1, err) != 0) throw Error(what + ": " + err);
  if (!spec.save_dir.empty()) {
    const std::string path = spec.save_dir + "/" + spec.label + ".pcap";
    st->dumper = pcap_dump_open(st->handle, path.c_str());
    if (st->dumper == nullptr) throw Error(what + ": cannot write " + path + ": " + pcap_geterr(st->handle));
    st->summary.pcap_path = path;
  }
  st->summary.netns = ns.path();
  st->summary.interface = spec.interface;
  st->summary.filter = spec.filter;
  st->summary.marker_checked = !spec.marker.empty();
  st->summary.esp_keys_given = spec.esp_keys.size();
  const char* ln = pcap_datalink_val_to_name(st->link);
  st->summary.link_type = ln ? ln : std::to_string(st->link);
  st->deadline = Clock::now() + spec.max_duration;
  st->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (st->wake_fd < 0) ThrowErrno(what + ": eventfd");
  State* raw = st.get();
  st->worker = std::thread([raw] { raw->Run(raw->deadline); });
  return Capture(std::move(st));
}

CaptureSummary Capture::Finish(std::chrono::milliseconds settle) {
  if (!state_) throw Error("Capture::Finish on a moved-from capture");
  if (!state_->finished) {
    // Trailing packets (the server's FIN, a last ESP) still count; the bound also ends it.
    const auto until = Clock::now() + settle;
    while (Clock::now() < until && state_->worker.joinable() && !state_->stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    state_->Close();
    state_->finished = true;
  }
  if (!state_->worker_error.empty())
    throw Error("capture on " + state_->spec.interface + " failed: " + state_->worker_error);
  return state_->summary;
}

CaptureSummary Capture::Wait() {
  if (!state_) throw Error("Capture::Wait on a moved-from capture");
  if (state_->worker.joinable()) state_->worker.join();
  return Finish(std::chrono::milliseconds(0));
}

// ---- Summary and verdicts ----

nlohmann::json CaptureSummary::ToJson() const {
  nlohmann::json spis = nlohmann::json::object();
  for (const auto& [spi, n] : esp_spis) spis[Hex32(spi)] = n;
  auto hits = [](const std::vector<PlaintextHit>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& h : v) a.push_back({{"time", h.time}, {"packet", h.description}});
    return a;
  };
  auto tuple_hits = [](const std::vector<PlaintextHit>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& h : v) {
      a.push_back({{"time", h.time},
                   {"packet", h.description},
                   {"toward_dst", h.toward_dst},
                   {"tcp_flags", h.tcp_flags},
                   {"payload", h.payload}});
    }
    return a;
  };
  return {{"netns", netns},
          {"interface", interface},
          {"filter", filter},
          {"link_type", link_type},
          {"direction", direction},
          {"packets", packets},
          {"esp_packets", esp_packets},
          {"esp_spis", spis},
          {"plaintext", tuple_hits(plaintext)},
          {"marker_hits", hits(marker_hits)},
          {"first_time", first_time},
          {"last_time", last_time},
          {"hit_count_bound", hit_count_bound},
          {"kernel_dropped", kernel_dropped},
          {"pcap", pcap_path},
          {"esp_opened", EspJson()}};
}

nlohmann::json CaptureSummary::EspJson() const {
  nlohmann::json probe = nlohmann::json::array();
  for (const auto& p : esp_probe) {
    probe.push_back(
        {{"time", p.time}, {"spi", Hex32(p.spi)}, {"seq", p.seq}, {"inner", p.inner}, {"marker", p.marker}});
  }
  return {{"keys_given", esp_keys_given}, {"decrypted", esp_decrypted}, {"auth_failed", esp_auth_failed},
          {"no_key", esp_no_key},         {"truncated", esp_truncated}, {"probe_packets", probe}};
}

std::string CaptureSummary::DescribeProbeEsp() const {
  if (esp_keys_given == 0) return "no ESP key given: ESP not opened";
  std::map<uint32_t, std::pair<uint32_t, uint32_t>> seqs;  // spi -> first, last sequence number
  size_t with_marker = 0;
  for (const auto& p : esp_probe) {
    auto it = seqs.find(p.spi);
    if (it == seqs.end()) {
      seqs[p.spi] = {p.seq, p.seq};
    } else {
      it->second.first = std::min(it->second.first, p.seq);
      it->second.second = std::max(it->second.second, p.seq);
    }
    with_marker += p.marker ? 1 : 0;
  }
  std::string s = "ESP of the probe's connection: " + std::to_string(esp_probe.size()) + " packets";
  for (const auto& [spi, r] : seqs) {
    s += " (spi " + Hex32(spi) + " seq " + std::to_string(r.first) + ".." + std::to_string(r.second) + ")";
  }
  s += ", marker inside " + std::to_string(with_marker) + "; ESP opened: " + std::to_string(esp_decrypted) +
       " decrypted, " + std::to_string(esp_auth_failed) + " failed authentication, " +
       std::to_string(esp_no_key) + " without a key" +
       (esp_truncated ? ", " + std::to_string(esp_truncated) + " truncated" : "");
  return s;
}

std::string CaptureSummary::Describe() const {
  std::string s = interface + (direction == "both" || direction.empty() ? "" : " (" + direction + ")") +
                  " in " + netns + ", filter '" + filter + "': " + std::to_string(packets) + " packets, " +
                  std::to_string(esp_packets) + " ESP";
  if (!esp_spis.empty()) {
    s += " (";
    bool first = true;
    for (const auto& [spi, n] : esp_spis) {
      s += (first ? "" : ", ") + std::string("spi ") + Hex32(spi) + " x" + std::to_string(n);
      first = false;
    }
    s += ")";
  }
  s += ", " + std::to_string(plaintext.size()) + " plaintext of the probe, " +
       std::to_string(marker_hits.size()) + " marker hits";
  if (packets > 0) {
    char span[64];
    std::snprintf(span, sizeof span, ", over %.3f s", last_time - first_time);
    s += span;
  }
  if (esp_keys_given) s += "; " + DescribeProbeEsp();
  if (!pcap_path.empty()) s += "; saved " + pcap_path;
  return s;
}

std::string Verdict::Describe() const {
  if (pass) return "pass";
  std::string s = "fail";
  for (const auto& r : reasons) s += "\n  " + r;
  return s;
}

namespace {
void Reason(Verdict& v, const char* code, std::string reason) {
  v.reasons.push_back(std::move(reason));
  if (std::find(v.codes.begin(), v.codes.end(), code) == v.codes.end()) v.codes.push_back(code);
}
}  // namespace

Verdict JudgeEncrypted(const CaptureSummary& s, uint32_t expected_spi) {
  namespace code = e2e::disagreement;
  Verdict v;
  if (s.esp_packets == 0)
    Reason(v, code::kEspNotSeen, "no ESP packet seen on " + s.interface + " (" + s.Describe() + ")");
  if (expected_spi != 0 && s.esp_spis.count(expected_spi) == 0) {
    Reason(v, code::kEspNotSeen, "no ESP with spi " + Hex32(expected_spi) + " (" + s.Describe() + ")");
  }
  for (const auto& h : s.plaintext)
    Reason(v, code::kPlaintextOnWire, "plaintext packet of the probe on the wire: " + h.description);
  for (const auto& h : s.marker_hits) Reason(v, code::kPlaintextOnWire, h.description);
  // Not a finding about the datapath: the capture itself was too small. Still a failure, without a code.
  if (s.hit_count_bound) v.reasons.push_back("the capture stopped at its packet bound; raise max_packets");
  if (s.esp_keys_given > 0) {
    // The ESP must be the probe's own, not the tunnel's other traffic.
    bool own = false, marker = false;
    for (const auto& p : s.esp_probe) {
      if (expected_spi != 0 && p.spi != expected_spi) continue;
      own = true;
      marker = marker || p.marker;
    }
    if (!own) {
      Reason(v, code::kEspNotSeen,
             "none of the " + std::to_string(s.esp_packets) + " ESP packets" +
                 (expected_spi ? " with spi " + Hex32(expected_spi) : std::string()) +
                 " carried the probe's own connection when decrypted (" + s.DescribeProbeEsp() + ")");
    } else if (s.marker_checked && !marker) {
      Reason(v, code::kEspNotSeen,
             "the probe's payload marker was in none of its decrypted ESP packets (" + s.DescribeProbeEsp() +
                 ")");
    }
    if (s.esp_auth_failed > 0) {
      Reason(v, code::kEspAuthFailed,
             std::to_string(s.esp_auth_failed) +
                 " ESP packet(s) of a keyed SA did not authenticate with the key derived for it");
    }
    if (s.esp_truncated > 0) {
      v.reasons.push_back(std::to_string(s.esp_truncated) + " ESP packet(s) were not captured whole");
    }
  }
  v.pass = v.reasons.empty();
  return v;
}

Verdict JudgePlaintextVisible(const CaptureSummary& s) {
  namespace code = e2e::disagreement;
  Verdict v;
  if (s.marker_checked && s.marker_hits.empty()) {
    Reason(v, code::kSanityCaptureBlind,
           "the payload marker was not seen in clear, so its absence under encryption would prove nothing");
  }
  if (s.plaintext.empty()) {
    Reason(v, code::kSanityCaptureBlind,
           "the plaintext filter saw none of the probe's packets, so a clean encrypted capture would prove "
           "nothing (" +
               s.Describe() + ")");
  }
  v.pass = v.reasons.empty();
  return v;
}

}  // namespace kmesh::capture
