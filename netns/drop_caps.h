// Tests of "no CAP_NET_ADMIN" errors: run a function on a thread whose effective capabilities lack some
// (Linux capabilities are per thread, and threads it starts, such as netns::RunIn's, inherit them), so a
// root test binary can show what an unprivileged caller would see without giving up root elsewhere.
#pragma once

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <initializer_list>

#include "base/error.h"
#include "netns/netns.h"

namespace kmesh::netns {

template <typename F>
void WithoutCapabilities(std::initializer_list<int> caps, F&& fn) {
  OnFreshThread([&] {
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &hdr, data) != 0) ThrowErrno("capget");
    for (int c : caps) data[c / 32].effective &= ~(1u << (c % 32));
    if (syscall(SYS_capset, &hdr, data) != 0) ThrowErrno("capset");
    fn();
  });
}

}  // namespace kmesh::netns
