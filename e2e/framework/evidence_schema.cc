#include "e2e/framework/evidence_schema.h"

#include <nlohmann/json.hpp>

#include "base/disagreement.h"

namespace kmesh::e2e::evidence {
namespace {

template <size_t N>
nlohmann::json Sections(const Section (&sections)[N]) {
  nlohmann::json out = nlohmann::json::array();
  for (const Section& s : sections) {
    nlohmann::json fields = nlohmann::json::array();
    for (const char* f : s.fields) {
      if (f == nullptr || *f == '\0') break;
      fields.push_back(f);
    }
    out.push_back({{"name", s.name},
                   {"shape", s.shape},
                   {"required", s.required},
                   {"written_by", s.written_by},
                   {"what", s.what},
                   {"fields", fields}});
  }
  return out;
}

}  // namespace

std::string SchemaJson() {
  nlohmann::json identity = nlohmann::json::array();
  for (const char* f : kIdentity) identity.push_back(f);
  nlohmann::json codes = nlohmann::json::array();
  for (const char* c : disagreement::kAll) codes.push_back(c);
  const nlohmann::json j = {
      {"about",
       "kmesh-e2e evidence schema: generated from e2e/framework/evidence_schema.h by "
       "//e2e/framework:evidence_schema; tools/report reads it, its test checks it against the header"},
      {"evidence.json", Sections(kBundle)},
      {"bundle_identity", identity},
      {"mutation.json", Sections(kMutation)},
      {"mutation_kind", kMutationKind},
      {"disagreement_codes", codes}};
  return j.dump(2) + "\n";
}

}  // namespace kmesh::e2e::evidence
