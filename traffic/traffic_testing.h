// Test fixtures shared by the traffic, capture and load tests: a client/server namespace pair joined by a
// veth, and small in-process TCP servers with one behaviour each (HTTP status, reset, silence) that record
// the peers they accepted. testonly.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/runfiles.h"
#include "traffic/traffic.h"
#include "netns/netns.h"
#include "netns/process.h"
#include "netns/route.h"

namespace kmesh::e2e::testing {

using netns::Netns;
using netns::NetnsRef;
using netns::RunIn;

inline constexpr const char* kClientIp = "10.77.0.1";
inline constexpr const char* kServerIp = "10.77.0.2";

// A tuple from test constants (addresses as text).
inline net::Tuple TupleOf(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  return net::Tuple{{*net::IpAddr::Parse(src), sport}, {*net::IpAddr::Parse(dst), dport}};
}

// A TCP server inside a namespace with one behaviour; records the peers it accepted.
class TestServer {
 public:
  enum class Behaviour { kHttp, kReset, kSilent };

  TestServer(const NetnsRef& ns, uint16_t port, Behaviour b, int status = 200)
      : behaviour_(b), status_(status) {
    fd_ = RunIn(ns, [&] {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0) {
        kmesh::ThrowErrno("test server on port " + std::to_string(port));
      }
      return fd;
    });
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestServer() {
    stop_ = true;
    thread_.join();
    for (int c : held_) close(c);
    close(fd_);
  }

  std::vector<net::Tuple> Accepted() {
    std::lock_guard<std::mutex> l(mu_);
    return accepted_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
      if (c < 0) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        accepted_.push_back({*net::Endpoint::FromSockaddr(reinterpret_cast<const sockaddr*>(&peer), sizeof peer),
                             {*net::IpAddr::Parse(kServerIp), 0}});
      }
      if (behaviour_ == Behaviour::kSilent) {
        held_.push_back(c);  // accept and never answer
        continue;
      }
      char buf[4096];
      pollfd q{c, POLLIN, 0};
      if (poll(&q, 1, 2000) > 0) (void)!recv(c, buf, sizeof buf, 0);
      if (behaviour_ == Behaviour::kReset) {
        linger l{1, 0};  // close with RST
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      } else {
        const std::string body = "{\"status\": " + std::to_string(status_) + "}\n";
        const std::string resp =
            "HTTP/1.1 " + std::to_string(status_) +
            " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nConnection: close\r\n\r\n" + body;
        (void)!send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      }
      close(c);
    }
  }

  Behaviour behaviour_;
  int status_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<net::Tuple> accepted_;
  std::vector<int> held_;
};

// Client namespace (c0, 10.77.0.1/24) and server namespace (s0, 10.77.0.2/24), joined by a veth pair.
struct Pair {
  Netns client = Netns::Create("tcli");
  Netns server = Netns::Create("tsrv");
  Pair() {
    RunIn(client.ref(),
          {"ip", "link", "add", "c0", "type", "veth", "peer", "name", "s0", "netns", server.name()});
    RunIn(client.ref(), {"ip", "addr", "add", std::string(kClientIp) + "/24", "dev", "c0"});
    RunIn(server.ref(), {"ip", "addr", "add", std::string(kServerIp) + "/24", "dev", "s0"});
    RunIn(client.ref(), {"ip", "link", "set", "c0", "up"});
    RunIn(server.ref(), {"ip", "link", "set", "s0", "up"});
    RunIn(server.ref(), {"ip", "link", "set", "lo", "up"});
    netns::WaitOperUp(client.ref(), "c0");  // no carrier yet drops the first ARP (netns/route.h)
    netns::WaitOperUp(server.ref(), "s0");
  }
};

// XDP program (traffic_drop_syn.bpf.c, a data dependency) attached natively in `ns`: drops SYNs to
// `syn_port` and, when `data_port` is not 0, segments carrying data to `data_port`. Detached on destruction.
class SynDropper {
 public:
  SynDropper(const NetnsRef& ns, const std::string& ifname, uint16_t syn_port, uint16_t data_port = 0)
      : ns_(ns) {
    obj_ = bpf_object__open_file(kmesh::Runfile("traffic/traffic_drop_syn.o").c_str(), nullptr);
    if (obj_ == nullptr) throw kmesh::Error("open traffic_drop_syn.o");
    if (bpf_object__load(obj_) != 0) throw kmesh::Error("load traffic_drop_syn.o");
    map_fd_ = bpf_object__find_map_fd_by_name(obj_, "drop_syn_cfg");
    for (const auto& [k, v] : {std::pair<uint32_t, uint64_t>{0, syn_port}, {2, data_port}}) {
      bpf_map_update_elem(map_fd_, &k, &v, BPF_ANY);
    }
    ifindex_ = kmesh::netns::FindInterface(ns, ifname).index;
    const int prog = bpf_program__fd(bpf_object__find_program_by_name(obj_, "drop_syn"));
    const int rc = RunIn(ns, [&] { return bpf_xdp_attach(ifindex_, prog, XDP_FLAGS_DRV_MODE, nullptr); });
    if (rc != 0) throw kmesh::Error("attach XDP drop_syn to " + ifname + ": " + std::to_string(rc));
  }
  ~SynDropper() {
    RunIn(ns_, [&] { bpf_xdp_detach(ifindex_, XDP_FLAGS_DRV_MODE, nullptr); });
    bpf_object__close(obj_);
  }
  SynDropper(const SynDropper&) = delete;
  SynDropper& operator=(const SynDropper&) = delete;
  uint64_t Dropped() const {
    uint32_t k = 1;
    uint64_t v = 0;
    bpf_map_lookup_elem(map_fd_, &k, &v);
    return v;
  }

 private:
  NetnsRef ns_;
  bpf_object* obj_ = nullptr;
  int map_fd_ = -1;
  int ifindex_ = 0;
};

}  // namespace kmesh::e2e::testing
