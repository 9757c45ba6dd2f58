// Network namespaces: RAII ownership of the ones the harness creates, references to any namespace (by
// name, /var/run/netns path or /proc/PID/ns/net), and running code inside one. A thread never stays in a
// foreign namespace: RunIn() uses a fresh thread that ends when the function returns.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/error.h"

namespace kmesh::netns {

inline constexpr const char* kNetnsDir = "/run/netns";

// A namespace someone else owns (or one of ours), by path. Resolving checks it exists.
class NetnsRef {
 public:
  // Accepts a name under /run/netns ("kme2e-12-node1-0"), an absolute path to a bind-mounted
  // namespace ("/var/run/netns/x"), or "/proc/<pid>/ns/net". Throws kmesh::Error when it does not exist.
  static NetnsRef Resolve(const std::string& name_or_path);
  static NetnsRef OfPid(int pid);
  // The namespace of the calling process (the machine's own, for the harness).
  static NetnsRef Self();

  const std::string& path() const { return path_; }
  // The name under /run/netns, or "" for a /proc path.
  std::string name() const;
  // Inode of the namespace file: two refs with the same inode are the same namespace.
  unsigned long inode() const;

 private:
  explicit NetnsRef(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// A namespace created and owned by the harness: "kme2e-<pid>-<label>-<n>" under /run/netns, the same
// place `ip netns add` uses, so `ip netns exec NAME ...` works on it. Destroyed (unmounted and unlinked)
// when the object dies; processes the harness started inside must be stopped first (Process does).
class Netns {
 public:
  static Netns Create(const std::string& label);
  ~Netns();
  Netns(Netns&& other) noexcept : name_(std::exchange(other.name_, "")) {}
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  std::string path() const { return std::string(kNetnsDir) + "/" + name_; }
  NetnsRef ref() const { return NetnsRef::Resolve(path()); }

 private:
  explicit Netns(std::string name) : name_(std::move(name)) {}
  std::string name_;
};

// Removes namespaces named by UniqueName() whose owning process is gone (left by a crashed run).
// Returns the names removed. Namespaces of live runs are never touched.
std::vector<std::string> SweepStale();

// Enters `ns` on the calling thread; used only by RunIn() on its own thread.
void EnterOnThisThread(const NetnsRef& ns);

// Runs fn() on a fresh thread and returns its result; exceptions propagate to the caller. What fn changes
// about its thread (namespace, capabilities) ends with the thread.
template <typename F>
auto OnFreshThread(F&& fn) -> std::invoke_result_t<F> {
  using R = std::invoke_result_t<F>;
  if constexpr (std::is_void_v<R>) {
    OnFreshThread([&] {
      fn();
      return true;
    });
  } else {
    std::optional<R> result;
    std::exception_ptr error;
    std::thread t([&] {
      try {
        result.emplace(fn());
      } catch (...) {
        error = std::current_exception();
      }
    });
    t.join();
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }
}

// Runs fn() inside `ns` on a fresh thread and returns its result; exceptions propagate to the caller.
template <typename F>
auto RunIn(const NetnsRef& ns, F&& fn) -> std::invoke_result_t<F> {
  return OnFreshThread([&]() -> std::invoke_result_t<F> {
    EnterOnThisThread(ns);
    return fn();
  });
}

}  // namespace kmesh::netns
