// Test fixtures shared by the traffic, capture and load tests: a client/server namespace pair joined by a
// veth, and small in-process TCP servers with one behaviour each (HTTP status, reset, silence) that record
// the peers they accepted. testonly.
#pragma once

#include <arpa/inet.h>
#include <atomic>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "base/error.h"
#include "e2e/framework/traffic.h"
#include "netns/netns.h"
#include "netns/process.h"

namespace kmesh::e2e::testing {

using netns::Netns;
using netns::NetnsRef;
using netns::RunIn;

inline constexpr const char* kClientIp = "10.77.0.1";
inline constexpr const char* kServerIp = "10.77.0.2";

// A TCP server inside a namespace with one behaviour; records the peers it accepted.
class TestServer {
 public:
  enum class Behaviour { kHttp, kReset, kSilent };

  TestServer(const NetnsRef& ns, uint16_t port, Behaviour b, int status = 200) : behaviour_(b), status_(status) {
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

  std::vector<Tuple> Accepted() {
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
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        std::lock_guard<std::mutex> l(mu_);
        accepted_.push_back({ip, ntohs(peer.sin_port), kServerIp, 0});
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
        const std::string resp = "HTTP/1.1 " + std::to_string(status_) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
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
  std::vector<Tuple> accepted_;
  std::vector<int> held_;
};

// Client namespace (c0, 10.77.0.1/24) and server namespace (s0, 10.77.0.2/24), joined by a veth pair.
struct Pair {
  Netns client = Netns::Create("tcli");
  Netns server = Netns::Create("tsrv");
  Pair() {
    RunIn(client.ref(), {"ip", "link", "add", "c0", "type", "veth", "peer", "name", "s0", "netns", server.name()});
    RunIn(client.ref(), {"ip", "addr", "add", std::string(kClientIp) + "/24", "dev", "c0"});
    RunIn(server.ref(), {"ip", "addr", "add", std::string(kServerIp) + "/24", "dev", "s0"});
    RunIn(client.ref(), {"ip", "link", "set", "c0", "up"});
    RunIn(server.ref(), {"ip", "link", "set", "s0", "up"});
    RunIn(server.ref(), {"ip", "link", "set", "lo", "up"});
  }
};

}  // namespace kmesh::e2e::testing
