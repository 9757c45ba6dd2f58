// What the kernel tiers need from the process, checked up front so a run without root fails with a
// message that says so rather than with a pile of EPERMs (or, worse, a silent pass).
#pragma once

#include <string>

namespace kmesh {

// Empty when the effective capability set has CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_BPF (or, on kernels
// before 5.8, CAP_SYS_ADMIN alone for BPF); otherwise a sentence naming what is missing.
std::string MissingKernelPrivileges();

}  // namespace kmesh
