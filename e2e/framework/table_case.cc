#include "e2e/framework/table_case.h"

#include <catch2/catch.hpp>
#include <utility>

namespace kmesh::e2e {
namespace {

class FunctionInvoker : public Catch::ITestInvoker {
 public:
  explicit FunctionInvoker(std::function<void()> body) : body_(std::move(body)) {}
  void invoke() const override { body_(); }

 private:
  std::function<void()> body_;
};

}  // namespace

void RegisterTableCase(const std::string& name, const std::string& tags, std::function<void()> body,
                       const char* file, int line) {
  // Catch2 takes ownership of the invoker (its TestCase holds it in a shared_ptr) and copies the strings.
  const Catch::AutoReg registration(
      new FunctionInvoker(std::move(body)), Catch::SourceLineInfo(file, static_cast<std::size_t>(line)),
      Catch::StringRef(), Catch::NameAndTags(Catch::StringRef(name), Catch::StringRef(tags)));
}

}  // namespace kmesh::e2e
