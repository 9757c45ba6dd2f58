#include "netns/netlink.h"

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kmesh::netns {
namespace {

using Clock = std::chrono::steady_clock;

size_t Align(size_t n) { return NLMSG_ALIGN(n); }

// Extended ack: the kernel's own sentence ("Requested AEAD algorithm not found").
std::string ExtackOf(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return "";
  const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h));
  // With NETLINK_CAP_ACK unset, the original request follows the error header.
  size_t off = sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += e->msg.nlmsg_len - sizeof(nlmsghdr);
  const size_t total = h->nlmsg_len - NLMSG_HDRLEN;
  if (off >= total) return "";
  std::string text;
  ForEachNested(reinterpret_cast<const uint8_t*>(NLMSG_DATA(h)) + Align(off), total - Align(off),
                [&](uint16_t type, const uint8_t* data, size_t len) {
                  if (type == NLMSGERR_ATTR_MSG && len > 0) text = AttrString(data, len);
                });
  return text;
}

}  // namespace

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "errno " + std::to_string(err);
}

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags) : buf_(NLMSG_HDRLEN, 0) {
  header()->nlmsg_type = type;
  header()->nlmsg_flags = flags;
  header()->nlmsg_len = NLMSG_HDRLEN;
}

void* NetlinkMessage::PutBytes(const void* data, size_t len) {
  const size_t at = buf_.size();
  buf_.resize(at + Align(len), 0);
  std::memcpy(buf_.data() + at, data, len);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
  return buf_.data() + at;
}

void AppendAttr(std::vector<uint8_t>& out, uint16_t type, const void* data, size_t len) {
  nlattr a{};
  a.nla_type = type;
  a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  const size_t at = out.size();
  out.resize(at + NLA_HDRLEN + Align(len), 0);
  std::memcpy(out.data() + at, &a, sizeof a);
  if (len > 0) std::memcpy(out.data() + at + NLA_HDRLEN, data, len);
}

void NetlinkMessage::AddAttr(uint16_t type, const void* data, size_t len) {
  AppendAttr(buf_, type, data, len);
  header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
}

std::string AttrString(const uint8_t* data, size_t len) {
  const auto* text = reinterpret_cast<const char*>(data);
  return std::string(text, strnlen(text, len));
}

void ForEachNested(const uint8_t* data, size_t len,
                   const std::function<void(uint16_t, const uint8_t*, size_t)>& fn) {
  size_t off = 0;
  while (off + NLA_HDRLEN <= len) {
    nlattr a;
    std::memcpy(&a, data + off, sizeof a);
    if (a.nla_len < NLA_HDRLEN || off + a.nla_len > len) break;  // truncated: stop, never overrun
    fn(a.nla_type & NLA_TYPE_MASK, data + off + NLA_HDRLEN, a.nla_len - NLA_HDRLEN);
    off += NLA_ALIGN(a.nla_len);
  }
}

void ForEachAttr(const nlmsghdr* msg, size_t header_len,
                 const std::function<void(uint16_t, const uint8_t*, size_t)>& fn) {
  const size_t start = NLMSG_HDRLEN + Align(header_len);
  if (msg->nlmsg_len <= start) return;
  ForEachNested(reinterpret_cast<const uint8_t*>(msg) + start, msg->nlmsg_len - start, fn);
}

NetlinkSocket NetlinkSocket::Open(const NetnsRef& ns, int protocol) {
  int fd = RunIn(ns, [protocol] {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (s < 0) ThrowErrno("netlink socket (protocol " + std::to_string(protocol) + ")");
    return s;
  });
  NetlinkSocket sock(fd);
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  int rcvbuf = 4 << 20;  // large dumps (10,000 policies) arrive in fewer, fuller reads
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) ThrowErrno("bind netlink socket");
  return sock;
}

NetlinkSocket::~NetlinkSocket() {
  if (fd_ >= 0) close(fd_);
}

NetlinkSocket::NetlinkSocket(NetlinkSocket&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), seq_(o.seq_), rx_(std::move(o.rx_)) {}

NetlinkSocket& NetlinkSocket::operator=(NetlinkSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    seq_ = o.seq_;
    rx_ = std::move(o.rx_);
  }
  return *this;
}

void NetlinkSocket::Request(NetlinkMessage& msg, const std::function<void(const nlmsghdr*)>& on_reply,
                            const std::string& what, std::chrono::milliseconds bound) {
  nlmsghdr* h = msg.header();
  const bool dump = (h->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  h->nlmsg_flags |= NLM_F_REQUEST | (dump ? 0 : NLM_F_ACK);
  h->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_, msg.bytes().data(), msg.bytes().size(), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) < 0) {
    ThrowErrno(what + ": send");
  }
  if (rx_.empty()) rx_.resize(1 << 20);
  const auto deadline = Clock::now() + bound;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      throw Error(what + ": no complete answer from the kernel within " + std::to_string(bound.count()) +
                  " ms (KMESH_E2E_NETLINK_MS raises the bound)");
    }
    pollfd p{fd_, POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) ThrowErrno(what + ": poll");
    if (pr == 0) continue;
    ssize_t n = recv(fd_, rx_.data(), rx_.size(), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == ENOBUFS) throw Error(what + ": the kernel dropped part of the dump (ENOBUFS); retry");
      ThrowErrno(what + ": receive");
    }
    size_t len = static_cast<size_t>(n);
    for (auto* m = reinterpret_cast<const nlmsghdr*>(rx_.data()); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
      if (m->nlmsg_seq != h->nlmsg_seq) continue;  // a late answer to an earlier request
      if (m->nlmsg_type == NLMSG_DONE) return;
      if (m->nlmsg_type == NLMSG_ERROR) {
        const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(m));
        if (e->error == 0) return;  // the ack
        const int err = -e->error;
        std::string extack = ExtackOf(m);
        std::string text = what + ": " + ErrnoName(err) + " (" + (extack.empty() ? strerror(err) : extack) + ")";
        if (err == EPERM || err == EACCES) text += "; needs CAP_NET_ADMIN (run as root)";
        throw NetlinkError(text, err, extack);
      }
      on_reply(m);  // a single answer (RTM_GETROUTE) is followed by the ack asked for above
    }
  }
}

}  // namespace kmesh::netns
