// Prints the evidence schema (evidence_schema.h) as JSON: what e2e/framework/evidence_schema.json must hold.
//   bazel run //e2e/framework:evidence_schema > e2e/framework/evidence_schema.json
#include <iostream>

#include "e2e/framework/evidence_schema.h"

int main() {
  std::cout << kmesh::e2e::evidence::SchemaJson();
  return 0;
}
