// A second, independent reader of xfrm policies: libnl-xfrm's cache, converted to the same types. The
// kernel tests cross-check xfrm.h's decoder against it (and against `ip xfrm policy`), and bench_xfrm
// times it. Not used for evidence: libnl-xfrm 3.7 cannot read a state's output-mark.
#pragma once

#include <vector>

#include "xfrm/xfrm.h"
#include "netns/netns.h"

namespace kmesh::xfrm {

std::vector<XfrmPolicy> DumpPoliciesWithLibnl(const netns::NetnsRef& ns);

}  // namespace kmesh::xfrm
