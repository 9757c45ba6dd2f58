#include "base/mounts.h"

#include <fstream>
#include <sstream>

namespace kmesh {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::vector<Mount> Mounts() {
  // A line: id parent major:minor root mount-point options [optional fields...] - fstype source ...
  std::vector<Mount> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point, field, fstype;
    f >> id >> parent >> dev >> root >> point;
    while (f >> field && field != "-") {
    }
    f >> fstype;
    out.push_back({Unescape(point), fstype});
  }
  return out;
}

bool HasMountUnder(const std::string& dir) {
  for (const Mount& m : Mounts()) {
    if (m.point == dir || m.point.compare(0, dir.size() + 1, dir + "/") == 0) return true;
  }
  return false;
}

}  // namespace kmesh
