// kmesh::Error: the project's one exception type. Its message says what was expected, what was found and
// where to look next.
#pragma once

#include <stdexcept>
#include <string>

namespace kmesh {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// "<what>: <strerror(err)>" for a failed system call.
[[noreturn]] void ThrowErrno(const std::string& what, int err);
[[noreturn]] void ThrowErrno(const std::string& what);  // uses errno

}  // namespace kmesh
