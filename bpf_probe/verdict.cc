#include "bpf_probe/verdict.h"

#include <cctype>

#include "base/error.h"

namespace kmesh::bpf_probe {

std::string ToString(Verdict v) {
  switch (v) {
    case Verdict::kAllow:
      return "ALLOW";
    case Verdict::kDeny:
      return "DENY";
  }
  return "UNKNOWN(" + std::to_string(static_cast<uint32_t>(v)) + ")";
}

Verdict ParseVerdict(std::string_view text) {
  std::string t(text);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "allow") return Verdict::kAllow;
  if (t == "deny") return Verdict::kDeny;
  throw Error("verdict \"" + std::string(text) + "\": expected allow or deny");
}

}  // namespace kmesh::bpf_probe
