// What a run created in the cluster, undone in reverse order when the env ends, pass or fail: namespaces,
// policies, the IPsec secret, the kmesh-probe copies. Each step is bounded by its own command's bound;
// a step that fails is reported and the others still run. A step can be cancelled by key when the suite
// removes the object itself (Env::Remove).
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace kmesh::kube {

class CleanupStack {
 public:
  CleanupStack() = default;
  ~CleanupStack();  // runs what is left
  CleanupStack(const CleanupStack&) = delete;
  CleanupStack& operator=(const CleanupStack&) = delete;

  // `key` identifies the object ("namespace/test-ns1", "authorizationpolicy/test-ns1/ip-deny"); pushing a
  // key that is already there keeps the first step (the object is undone once).
  void Push(const std::string& key, const std::string& description, std::function<void()> undo);
  bool Has(const std::string& key) const;
  // Forgets the step (the object was removed by other means). False when there was none.
  bool Cancel(const std::string& key);
  // Runs every step, last pushed first. Returns one line per failed step ("delete namespace test-ns1: ...").
  std::vector<std::string> RunAll();
  std::vector<std::string> Pending() const;  // descriptions, last pushed first

 private:
  struct Step {
    std::string key, description;
    std::function<void()> undo;
  };
  mutable std::mutex mu_;
  std::vector<Step> steps_;
};

}  // namespace kmesh::kube
