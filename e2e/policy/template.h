// Strict rendering of the policy templates in testdata/policies: Go-template-style `{{.Name}}`
// references, and nothing else of Go templates (no pipelines, functions or trim markers), so a template
// means the same thing here and in a Go harness. Strict in both directions: a variable the template uses
// but the caller did not give is an error (with file:line:col), and so is a variable given but never
// used (a typo in a suite must not silently leave a policy half-aimed).
//
// Values are inserted verbatim, never re-quoted, and never contain a newline, so a rendered manifest has
// the template's line numbers: a parse error in the rendered text points at the template's line.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace kmesh::policy {

// The values for one rendering: each name is a string or a list of strings.
class Vars {
 public:
  // `name` is the bare variable name ("Ip" for {{.Ip}}). Setting a name again replaces its value.
  Vars& Set(const std::string& name, const std::string& value);
  // A list renders as a YAML flow sequence of double-quoted strings: ["8000", "9090"] (or []).
  Vars& SetList(const std::string& name, const std::vector<std::string>& values);

  bool Has(const std::string& name) const { return values_.count(name) != 0; }
  std::vector<std::string> Names() const;

  struct Value {
    bool is_list = false;
    std::string text;                // when !is_list
    std::vector<std::string> items;  // when is_list
  };
  const Value& Get(const std::string& name) const;  // throws kmesh::Error when absent

 private:
  std::map<std::string, Value> values_;
};

// Renders `template_text`; `origin` (usually the file name) prefixes every error. Throws kmesh::Error
// listing every problem found: unknown/malformed `{{ }}`, variables used but not given, given but not
// used, and values that would break the YAML where they land (quotes, newlines, flow indicators).
std::string Render(const std::string& template_text, const std::string& origin, const Vars& vars);

// A rendered manifest and where it came from (the origin error messages name).
struct Manifest {
  std::string origin;
  std::string text;
};

// Reads and renders a template file; origin is the file's base name.
Manifest RenderFile(const std::string& path, const Vars& vars);

// Renders testdata/policies/<name>.yaml ("ip-deny", "header-allow", ...) found through runfiles; the
// target needs data = ["//testdata:policies"].
Manifest RenderPolicyTemplate(const std::string& name, const Vars& vars);

// The names of the seed proposal's templates, for tables that walk all of them.
const std::vector<std::string>& PolicyTemplateNames();

}  // namespace kmesh::policy
