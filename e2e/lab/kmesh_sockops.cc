#include "e2e/lab/kmesh_sockops.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <mutex>

#include "base/defaults.h"
#include "base/error.h"
#include "base/hex.h"
#include "bpf_probe/bpf_error.h"

namespace kmesh::lab {
namespace {

using bpf_probe::BpfNeeds;
using bpf_probe::Bytes;
using bpf_probe::ThrowBpf;
using net::IpAddr;

constexpr const char* kSockopsProg = "sockops_prog";         // sockops.c:153
constexpr const char* kLinkPinName = "cgroup_sockops_prog";  // sock_ops.go:113
// pkg/constants/constants.go:56-60: the CNI's control connection.
constexpr const char* kControlCommandIp4 = "0.0.0.2";
constexpr uint16_t kOperEnableControl = 929;
constexpr uint16_t kOperDisableControl = 930;

// os.MkdirAll(path, S_IRUSR|S_IWUSR|S_IXUSR|S_IRGRP|S_IXGRP) (sock_ops.go:48-58).
void MkdirAll(const std::string& path) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string part = path.substr(0, pos);
    if (mkdir(part.c_str(), 0750) != 0 && errno != EEXIST) ThrowErrno("mkdir " + part);
  }
}

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string LastLines(const std::string& log, int n) {
  size_t end = log.find_last_not_of("\n\0 ");
  if (end == std::string::npos) return "";
  size_t pos = end + 1;
  for (int i = 0; i < n && pos > 0; ++i) {
    pos = log.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  return log.substr(pos == 0 ? 0 : pos + 1, end + 1 - (pos == 0 ? 0 : pos + 1));
}

// The offset of global `var` in datasec `sec` (".bss") of the object's BTF.
size_t GlobalOffset(bpf_object* obj, const char* sec, const char* var, const std::string& object) {
  const btf* b = bpf_object__btf(obj);
  const int sec_id = b == nullptr ? -1 : btf__find_by_name_kind(b, sec, BTF_KIND_DATASEC);
  if (sec_id < 0)
    throw Error(object + " has no BTF datasec " + sec + " (was it built with -g, like bpf2go does?)");
  const btf_type* t = btf__type_by_id(b, static_cast<__u32>(sec_id));
  const btf_var_secinfo* vi = btf_var_secinfos(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++vi) {
    const btf_type* v = btf__type_by_id(b, vi->type);
    if (std::strcmp(btf__name_by_offset(b, v->name_off), var) == 0) return vi->offset;
  }
  throw Error(object + ": no global `" + var + "` in " + sec + " (is this Kmesh's workload sockops.c?)");
}

// What Kmesh's ebpf.Variable.Set([16]byte) stores: netip.Addr.As16(), IPv4 as ::ffff:a.b.c.d.
std::array<uint8_t, 16> As16(const IpAddr& ip) {
  std::array<uint8_t, 16> out{};
  if (ip.is_v4()) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, ip.data(), 4);
  } else {
    std::memcpy(out.data(), ip.data(), 16);
  }
  return out;
}

}  // namespace

std::string KmeshSockopsDir(const std::string& bpffs) { return bpffs + "/bpf_kmesh_workload/sockops"; }

KmeshSockops KmeshSockops::Load(const std::string& object, const NodeBpffs& bpffs, const NodeCgroup& cgroup,
                                const SockopsGlobals& globals) {
  KmeshSockops s;
  s.map_dir_ = bpffs.KmeshMapDir();
  s.sockops_dir_ = KmeshSockopsDir(bpffs.path());
  s.link_pin_ = s.sockops_dir_ + "/" + kLinkPinName;
  MkdirAll(s.map_dir_);
  MkdirAll(s.sockops_dir_);

  s.obj_ = bpf_object__open_file(object.c_str(), nullptr);
  if (s.obj_ == nullptr) ThrowErrno("open Kmesh's sockops object " + object);

  // utils.SetMapPinType(spec, ebpf.PinByName) + opts.Maps.PinPath (sock_ops.go:70, 84; pin.go:74-82):
  // every map but .rodata*/.data/.bss is pinned by name; libbpf, like cilium/ebpf, reuses an existing pin
  // when it is compatible and fails the load when it is not.
  bpf_map* m = nullptr;
  bpf_object__for_each_map(m, s.obj_) {
    if (bpf_map__is_internal(m)) continue;
    const std::string pin = s.map_dir_ + "/" + bpf_map__name(m);
    s.pinned_.push_back(PinnedMap{bpf_map__name(m), Exists(pin)});
    if (bpf_map__set_pin_path(m, pin.c_str()) != 0) ThrowErrno("set pin path " + pin);
  }

  // The daemon's globals (bpf.go:299-311): node_ip and pod_gateway in .bss, as 16-byte addresses.
  bpf_map* bss = bpf_object__find_map_by_name(s.obj_, ".bss");
  if (bss == nullptr)
    throw Error(object + " has no .bss (node_ip, pod_gateway): is this Kmesh's workload sockops.c?");
  size_t bss_size = 0;
  const void* initial = bpf_map__initial_value(bss, &bss_size);
  Bytes data(static_cast<const uint8_t*>(initial), static_cast<const uint8_t*>(initial) + bss_size);
  auto put = [&](const char* var, const std::array<uint8_t, 16>& v) {
    const size_t off = GlobalOffset(s.obj_, ".bss", var, object);
    if (off + v.size() > data.size()) throw Error(object + ": global " + var + " lies outside .bss");
    std::memcpy(data.data() + off, v.data(), v.size());
  };
  put("node_ip", As16(globals.node_ip));
  auto gateway = As16(globals.pod_cidr_base);
  gateway[15] = static_cast<uint8_t>(gateway[15] + 1);  // podGateway[15] + 1, bpf.go:351
  put("pod_gateway", gateway);
  if (bpf_map__set_initial_value(bss, data.data(), data.size()) != 0) ThrowErrno("set sockops .bss");

  bpf_program* prog = bpf_object__find_program_by_name(s.obj_, kSockopsProg);
  if (prog == nullptr)
    throw Error(object + " has no program " + kSockopsProg + " (is this Kmesh's sockops.c?)");
  std::string log(1 << 20, '\0');
  bpf_program__set_log_buf(prog, log.data(), log.size());
  if (int err = bpf_object__load(s.obj_); err != 0) {
    std::string pins;
    for (const auto& p : s.pinned_) {
      if (p.reused) pins += " " + p.name;
    }
    throw Error("load Kmesh's sockops object " + object + ": " + std::strerror(-err) +
                (pins.empty() ? ""
                              : "; pins reused from " + s.map_dir_ + ":" + pins +
                                    " (an incompatible pin fails the load: compare them with `bpftool map "
                                    "show pinned <pin>`)") +
                "; verifier:\n" + LastLines(log.c_str(), 8));
  }

  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) ThrowErrno("read sockops_prog info");
  s.prog_id_ = info.id;
  s.prog_tag_ = HexBytes(info.tag, sizeof info.tag);

  // link.AttachCgroup with the program's attach type, BPF_CGROUP_SOCK_OPS (sock_ops.go:99-130): a bpf_link,
  // pinned so that it outlives the loader like Kmesh's.
  s.link_ = bpf_program__attach_cgroup(prog, cgroup.dir_fd());
  if (s.link_ == nullptr)
    ThrowBpf("attach sockops_prog to node cgroup " + cgroup.name(), errno, BpfNeeds::kBpf);
  if (bpf_link__pin(s.link_, s.link_pin_.c_str()) != 0) ThrowErrno("pin the sockops link at " + s.link_pin_);
  return s;
}

KmeshSockops::KmeshSockops(KmeshSockops&& o) noexcept
    : obj_(std::exchange(o.obj_, nullptr)),
      link_(std::exchange(o.link_, nullptr)),
      map_dir_(std::move(o.map_dir_)),
      sockops_dir_(std::move(o.sockops_dir_)),
      link_pin_(std::move(o.link_pin_)),
      prog_id_(o.prog_id_),
      prog_tag_(std::move(o.prog_tag_)),
      pinned_(std::move(o.pinned_)) {}

KmeshSockops& KmeshSockops::operator=(KmeshSockops&& o) noexcept {
  if (this != &o) {
    Release();
    obj_ = std::exchange(o.obj_, nullptr);
    link_ = std::exchange(o.link_, nullptr);
    map_dir_ = std::move(o.map_dir_);
    sockops_dir_ = std::move(o.sockops_dir_);
    link_pin_ = std::move(o.link_pin_);
    prog_id_ = o.prog_id_;
    prog_tag_ = std::move(o.prog_tag_);
    pinned_ = std::move(o.pinned_);
  }
  return *this;
}

KmeshSockops::~KmeshSockops() { Release(); }

void KmeshSockops::Release() noexcept {
  if (link_ != nullptr) {
    bpf_link__unpin(link_);
    bpf_link__destroy(link_);
    link_ = nullptr;
  }
  if (obj_ != nullptr) {
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, obj_) {
      if (bpf_map__is_pinned(m)) bpf_map__unpin(m, nullptr);  // another loader may have unpinned it first
    }
    bpf_object__close(obj_);
    obj_ = nullptr;
  }
  if (!sockops_dir_.empty()) rmdir(sockops_dir_.c_str());
}

bpf_probe::Map KmeshSockops::map(const std::string& name) const {
  bpf_map* m = obj_ == nullptr ? nullptr : bpf_object__find_map_by_name(obj_, name.c_str());
  if (m == nullptr) throw Error("Kmesh's sockops object has no map " + name);
  return bpf_probe::Map::Borrow(bpf_map__fd(m));
}

std::vector<uint32_t> KmeshSockops::AttachedPrograms(const NodeCgroup& cgroup) {
  __u32 ids[64] = {};
  __u32 count = 64;
  __u32 flags = 0;
  if (bpf_prog_query(cgroup.dir_fd(), BPF_CGROUP_SOCK_OPS, 0, &flags, ids, &count) != 0) {
    ThrowBpf("query the sockops programs of node cgroup " + cgroup.name(), errno, BpfNeeds::kBpf);
  }
  return std::vector<uint32_t>(ids, ids + count);
}

Bytes ManagerKey(const IpAddr& ip) {
  Bytes key(16, 0);
  std::memcpy(key.data(), ip.data(), ip.size());
  return key;
}

namespace {

// The child's report: which step failed (0 = none), its errno, and the source address of the connect.
struct TriggerReport {
  int step = 0;
  int err = 0;
  uint8_t source[4] = {};
};

// triggerControlCommandWithPortInV4 (pkg/nets/nets.go:159-182), run in a child that joined `cgroup`
// and entered `pod` (HandleKmeshManage's netns.WithNetNSPath, enroll.go:93).
IpAddr TriggerControlCommand(const NodeCgroup& cgroup, const netns::NetnsRef& pod, uint16_t port) {
  UniqueFd ns_fd(open(pod.path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns_fd.valid()) ThrowErrno("open pod namespace " + pod.path());
  const int procs_fd = cgroup.Join({}).join_cgroup_procs_fd;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) ThrowErrno("pipe");
  UniqueFd rd(fds[0]), wr(fds[1]);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  inet_pton(AF_INET, kControlCommandIp4, &dst.sin_addr);

  const pid_t pid = fork();
  if (pid < 0) ThrowErrno("fork for Kmesh's enrolment trigger");
  if (pid == 0) {  // only async-signal-safe calls from here
    TriggerReport r;
    int s = -1;
    sockaddr_in src{};
    socklen_t len = sizeof src;
    if (write(procs_fd, "0", 1) != 1) {
      r.step = 1;
    } else if (setns(ns_fd.get(), CLONE_NEWNET) != 0) {
      r.step = 2;
    } else if ((s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
      r.step = 3;
    } else if (connect(s, reinterpret_cast<const sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
      r.step = 4;
    } else if (getsockname(s, reinterpret_cast<sockaddr*>(&src), &len) != 0) {
      r.step = 5;
    } else {
      std::memcpy(r.source, &src.sin_addr, 4);
    }
    r.err = r.step != 0 ? errno : 0;
    (void)!write(wr.get(), &r, sizeof r);
    _exit(0);
  }
  wr.Reset();
  TriggerReport r;
  pollfd p{rd.get(), POLLIN, 0};
  const int ready = poll(&p, 1, static_cast<int>(defaults::Command().count()));
  const ssize_t n = ready > 0 ? read(rd.get(), &r, sizeof r) : -1;
  if (n != static_cast<ssize_t>(sizeof r)) kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  const std::string what = "Kmesh's enrolment trigger (connect to " + std::string(kControlCommandIp4) + ":" +
                           std::to_string(port) + " from pod namespace " + pod.path() + ")";
  if (n != static_cast<ssize_t>(sizeof r)) throw Error(what + " gave no report within the command bound");
  switch (r.step) {
    case 0:
      return IpAddr::V4(r.source);
    case 1:
      ThrowErrno(what + ": join node cgroup " + cgroup.name(), r.err);
    case 2:
      ThrowErrno(what + ": enter the pod namespace", r.err);
    case 4:
      if (r.err == ENETUNREACH) {
        throw Error(what + ": no route to " + kControlCommandIp4 +
                    " in the pod (a Kubernetes pod has a default route; give the lab pod one, e.g. "
                    "`default via <gateway> dev eth0`, or sockops_prog never sees the connect)");
      }
      ThrowErrno(what + ": connect", r.err);
    default:
      ThrowErrno(what + ": socket", r.err);
  }
}

}  // namespace

IpAddr EnrollPod(const NodeCgroup& cgroup, const netns::NetnsRef& pod) {
  return TriggerControlCommand(cgroup, pod, kOperEnableControl);
}

IpAddr UnenrollPod(const NodeCgroup& cgroup, const netns::NetnsRef& pod) {
  return TriggerControlCommand(cgroup, pod, kOperDisableControl);
}

std::optional<uint32_t> ManagedValue(const bpf_probe::Map& km_manage, const IpAddr& ip) {
  auto v = km_manage.Lookup(ManagerKey(ip));
  if (!v) return std::nullopt;
  if (v->size() != 4) throw Error("km_manage value is 4 bytes, got " + std::to_string(v->size()));
  uint32_t out = 0;
  std::memcpy(&out, v->data(), 4);
  return out;
}

std::string AuthDecision::Describe() const {
  std::string s = verdict.ToString();
  if (tuple) s += " for " + tuple->ToString();
  if (written) s += "; km_auth_res[key] = 1 written";
  if (!write_error.empty()) s += "; km_auth_res update failed: " + write_error;
  return s;
}

Authorizer::Authorizer(const std::string& pin_dir, const Rbac& rbac, Observer observer)
    : rbac_(rbac), observer_(std::move(observer)), pin_dir_(pin_dir) {
  const std::string req = pin_dir + "/km_auth_req";
  const std::string res = pin_dir + "/km_auth_res";
  req_fd_ = UniqueFd(bpf_obj_get(req.c_str()));
  if (!req_fd_.valid())
    ThrowBpf("open " + req + " (is Kmesh's sockops loaded on this node?)", errno, BpfNeeds::kFile);
  res_fd_ = UniqueFd(bpf_obj_get(res.c_str()));
  if (!res_fd_.valid()) ThrowBpf("open " + res, errno, BpfNeeds::kFile);
  ring_ = ring_buffer__new(req_fd_.get(), &Authorizer::OnSample, this, nullptr);
  if (ring_ == nullptr)
    ThrowBpf("open ring buffer " + req + " (is it Kmesh's km_auth_req?)", errno, BpfNeeds::kBpf);
}

Authorizer::~Authorizer() {
  if (ring_ != nullptr) ring_buffer__free(ring_);
}

namespace {
thread_local std::exception_ptr g_callback_error;
}  // namespace

int Authorizer::OnSample(void* ctx, void* data, size_t size) {
  try {
    static_cast<Authorizer*>(ctx)->Handle(static_cast<const uint8_t*>(data), size);
    return 0;
  } catch (...) {
    g_callback_error = std::current_exception();
    return -ECANCELED;  // stops ring_buffer__poll; Poll rethrows
  }
}

// The loop body of Rbac.Run (rbac.go:138-169) with xdpNotifyConnRst (xdp_auth_handler.go:29-43).
void Authorizer::Handle(const uint8_t* data, size_t size) {
  AuthDecision d;
  d.received = AuthDecision::Clock::now();
  ++records_;
  RecordDecision rd = rbac_.Decide(bpf_probe::ByteView(data, size));
  d.verdict = rd.verdict;
  d.tuple = rd.tuple;
  if (rd.deny_key) {
    d.key = *rd.deny_key;
    const uint32_t deny = 1;
    if (bpf_map_update_elem(res_fd_.get(), d.key.data(), &deny, BPF_ANY) != 0) {
      d.write_error = std::strerror(errno);
    } else {
      d.written = AuthDecision::Clock::now();
    }
  }
  if (observer_) observer_(d);
}

int Authorizer::Poll(std::chrono::milliseconds timeout) {
  const uint64_t before = records_;
  g_callback_error = nullptr;
  const int n = ring_buffer__poll(ring_, static_cast<int>(timeout.count()));
  if (g_callback_error) std::rethrow_exception(std::exchange(g_callback_error, nullptr));
  if (n < 0 && n != -EINTR) ThrowBpf("poll " + pin_dir_ + "/km_auth_req", -n, BpfNeeds::kBpf);
  return static_cast<int>(records_ - before);
}

void Authorizer::Run(const std::atomic<bool>& stop) {
  while (!stop.load()) Poll(defaults::PollInterval());
}

AuthorizerThread::AuthorizerThread(const std::string& pin_dir, const Rbac& rbac,
                                   Authorizer::Observer observer)
    : authorizer_(pin_dir, rbac, std::move(observer)) {
  thread_ = std::thread([this] {
    try {
      authorizer_.Run(stop_);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = e.what();
    }
  });
}

AuthorizerThread::~AuthorizerThread() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::string AuthorizerThread::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

}  // namespace kmesh::lab
