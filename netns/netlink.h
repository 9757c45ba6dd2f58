// A netlink socket opened inside a network namespace (a socket keeps the namespace it was created in, so
// it is created on a RunIn thread and then used from any thread), with bounded request/reply and dump
// loops. Errors carry the errno and the kernel's extended-ack message. Used by the xfrm collector and the
// route lookup; no libnl needed for these few messages.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <linux/netlink.h>
#include <string>
#include <vector>

#include "base/defaults.h"
#include "base/error.h"
#include "netns/netns.h"

namespace kmesh::netns {

// A failed netlink request: the errno the kernel returned and its extended-ack text, if any.
class NetlinkError : public Error {
 public:
  NetlinkError(const std::string& what, int err, std::string extack)
      : Error(what), err_(err), extack_(std::move(extack)) {}
  int err() const { return err_; }
  const std::string& extack() const { return extack_; }

 private:
  int err_;
  std::string extack_;
};

// "ENOENT" for 2, etc. (the symbolic name people grep for).
std::string ErrnoName(int err);

// A netlink message under construction: header plus payload plus attributes.
class NetlinkMessage {
 public:
  NetlinkMessage(uint16_t type, uint16_t flags);
  // Appends a fixed struct right after the header (the family header, e.g. struct rtmsg).
  template <typename T>
  T* Put(const T& value) {
    return reinterpret_cast<T*>(PutBytes(&value, sizeof value));
  }
  void AddAttr(uint16_t type, const void* data, size_t len);
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  const std::vector<uint8_t>& bytes() const { return buf_; }

 private:
  void* PutBytes(const void* data, size_t len);
  std::vector<uint8_t> buf_;
};

// Walks the attributes that follow a family header of `header_len` bytes in `msg`; calls fn(type, data, len)
// (type with NLA_F_NESTED etc. masked off).
void ForEachAttr(const nlmsghdr* msg, size_t header_len,
                 const std::function<void(uint16_t, const uint8_t*, size_t)>& fn);
void ForEachNested(const uint8_t* data, size_t len,
                   const std::function<void(uint16_t, const uint8_t*, size_t)>& fn);
// A string attribute's text (up to its NUL, never past `len`).
std::string AttrString(const uint8_t* data, size_t len);
// Appends one attribute to `out` (a message, or the payload of a nested attribute).
void AppendAttr(std::vector<uint8_t>& out, uint16_t type, const void* data, size_t len);

class NetlinkSocket {
 public:
  // NETLINK_<protocol> socket created inside `ns`. `what` names the reader in errors ("xfrm dump").
  static NetlinkSocket Open(const NetnsRef& ns, int protocol);
  ~NetlinkSocket();
  NetlinkSocket(NetlinkSocket&& o) noexcept;
  NetlinkSocket& operator=(NetlinkSocket&& o) noexcept;
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  // Sends `msg` (NLM_F_REQUEST is added; NLM_F_ACK too unless it is a dump) and feeds every reply
  // message to on_reply until NLMSG_DONE (dump) or the ack. Throws NetlinkError on an error reply and
  // kmesh::Error when `bound` runs out. `what` prefixes every message ("xfrm policy dump in ns X").
  void Request(NetlinkMessage& msg, const std::function<void(const nlmsghdr*)>& on_reply,
               const std::string& what, std::chrono::milliseconds bound = defaults::Netlink());
  // The same for a request whose only answer is the ack.
  void Request(NetlinkMessage& msg, const std::string& what) {
    Request(
        msg, [](const nlmsghdr*) {}, what);
  }

  int fd() const { return fd_; }

 private:
  explicit NetlinkSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
  uint32_t seq_ = 1;
  std::vector<uint8_t> rx_;
};

}  // namespace kmesh::netns
