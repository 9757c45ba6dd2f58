#include "e2e/framework/table_case.h"

#include <catch2/catch.hpp>

#include <deque>
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
  // Catch2 keeps the invoker pointer and copies the strings; the invokers live as long as the binary.
  static auto* invokers = new std::deque<FunctionInvoker>();
  invokers->emplace_back(std::move(body));
  const Catch::AutoReg registration(&invokers->back(), Catch::SourceLineInfo(file, static_cast<std::size_t>(line)),
                 Catch::StringRef(), Catch::NameAndTags(Catch::StringRef(name), Catch::StringRef(tags)));
}

}  // namespace kmesh::e2e
