#include "e2e/policy/template.h"

#include <algorithm>
#include <catch2/catch.hpp>

#include "base/error.h"

using Catch::Contains;
using kmesh::policy::Render;
using kmesh::policy::RenderPolicyTemplate;
using kmesh::policy::Vars;

namespace {

std::string ErrorOf(const std::string& text, const Vars& vars) {
  try {
    Render(text, "t.yaml", vars);
  } catch (const kmesh::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("strings are inserted verbatim and lists render as flow sequences") {
  const std::string text =
      "ns: {{.Namespace}}\n"
      "ip: \"{{.Ip}}\"\n"
      "ports: {{.Ports}}\n"
      "none: {{ .Empty }}\n";
  const std::string out = Render(text, "t.yaml",
                                 Vars()
                                     .Set("Namespace", "test-ns1")
                                     .Set("Ip", "10.244.1.5/32")
                                     .SetList("Ports", {"8000", "9090"})
                                     .SetList("Empty", {}));
  CHECK(out ==
        "ns: test-ns1\n"
        "ip: \"10.244.1.5/32\"\n"
        "ports: [\"8000\", \"9090\"]\n"
        "none: []\n");
  // Values never add lines, so a parse error in the output points at the template's line.
  CHECK(std::count(out.begin(), out.end(), '\n') == std::count(text.begin(), text.end(), '\n'));
}

TEST_CASE("rendering is strict; each error names the place and the variable") {
  struct Row {
    const char* what;
    std::string text;
    Vars vars;
    std::vector<std::string> expected;  // fragments of the error
  };
  const std::vector<Row> rows = {
      {"a variable used but not given",
       "a: 1\nip: \"{{.Ip}}\"\n",
       Vars(),
       {"t.yaml:2:6", "{{.Ip}} is used but no value was given for Ip", "given: none"}},
      {"a variable given but not used",
       "a: {{.App}}\n",
       Vars().Set("App", "httpbin").Set("Ports", "80"),
       {"t.yaml: Ports was given but the template never uses {{.Ports}}", "it uses: App"}},
      {"an unterminated {{",
       "a: 1\nb: 2\nc: {{.App\n",
       Vars().Set("App", "x"),
       {"t.yaml:3: '{{' at column 4 is not closed by '}}' on the same line"}},
      {"a Go pipeline",
       "a: {{ .App | quote }}\n",
       Vars().Set("App", "x"),
       {"t.yaml:1:4", "'{{ .App | quote }}' is not a variable reference"}},
      {"a reference without the dot", "a: {{App}}\n", Vars(), {"t.yaml:1:4", "only {{.Name}} is supported"}},
      {"a newline in a value",
       "a: \"{{.V}}\"\n",
       Vars().Set("V", "x\ny"),
       {"t.yaml:1:5", "V = ", "contains a newline"}},
      {"a double quote inside double quotes",
       "a: \"{{.V}}\"\n",
       Vars().Set("V", "x\"y"),
       {"t.yaml:1:5", "contains '\"'", "double-quoted"}},
      {"a single quote inside single quotes", "a: '{{.V}}'\n", Vars().Set("V", "it's"), {"contains \"'\""}},
      {"a mapping indicator in a plain value", "a: {{.V}}\n", Vars().Set("V", "x: y"), {"contains ': '"}},
      {"a comment marker in a plain value", "a: {{.V}}\n", Vars().Set("V", "x #y"), {"contains '#'"}},
      {"an alias indicator starting a plain value",
       "a: {{.V}}\n",
       Vars().Set("V", "*.example.com"),
       {"starts with the YAML indicator '*'"}},
      {"an empty value", "a: {{.V}}\n", Vars().Set("V", ""), {"V = \"\" is empty"}},
      {"a list inside quotes",
       "a: \"{{.V}}\"\n",
       Vars().SetList("V", {"1"}),
       {"t.yaml:1:5", "V is a list", "must stand unquoted"}},
      {"a list item with a quote", "a: {{.V}}\n", Vars().SetList("V", {"1", "2\""}), {"V[1] = "}},
  };
  for (const auto& row : rows) {
    SECTION(row.what) {
      const std::string err = ErrorOf(row.text, row.vars);
      INFO(err);
      CHECK_THAT(err, Contains("rendering t.yaml failed"));
      for (const auto& frag : row.expected) CHECK_THAT(err, Contains(frag));
    }
  }
}

TEST_CASE("every problem of a rendering is reported at once") {
  const std::string err = ErrorOf("a: {{.A}}\nb: {{.B}}\n", Vars().Set("C", "x"));
  CHECK_THAT(err, Contains("t.yaml:1:4: {{.A}}"));
  CHECK_THAT(err, Contains("t.yaml:2:4: {{.B}}"));
  CHECK_THAT(err, Contains("C was given"));
}

TEST_CASE("values safe in quotes are accepted there and plain where YAML allows") {
  CHECK(Render("h: \"{{.H}}\"\n", "t", Vars().Set("H", "*.example.com")) == "h: \"*.example.com\"\n");
  CHECK(Render("h: '{{.H}}'\n", "t", Vars().Set("H", "say \"hi\"")) == "h: 'say \"hi\"'\n");
  CHECK(Render("k: request.headers[{{.N}}]\n", "t", Vars().Set("N", "x-user")) ==
        "k: request.headers[x-user]\n");
  CHECK(Render("ip: {{.Ip}}\n", "t", Vars().Set("Ip", "fd00::1/128")) == "ip: fd00::1/128\n");
}

TEST_CASE("variable names are identifiers") {
  CHECK_THROWS_WITH(Vars().Set("Ip}}", "x"), Contains("\"Ip}}\" is not an identifier"));
  CHECK_THROWS_WITH(Vars().SetList(".Ports", {}), Contains("not an identifier"));
}

TEST_CASE("the seed templates list their variables when rendered with none") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"ip-allow", {"Namespace", "App", "Ip"}},
      {"ip-deny", {"Namespace", "App", "Ip"}},
      {"port-allow", {"Namespace", "App", "Ports"}},
      {"port-deny", {"Namespace", "App", "Ports"}},
      {"namespace-allow", {"Namespace", "App", "SourceNamespace"}},
      {"namespace-deny", {"Namespace", "App", "SourceNamespace"}},
      {"header-allow", {"Namespace", "Service", "HeaderName", "HeaderValue"}},
      {"header-deny", {"Namespace", "Service", "HeaderName", "HeaderValue"}},
      {"host-allow", {"Namespace", "Service", "TargetHost"}},
      {"host-deny", {"Namespace", "Service", "TargetHost"}},
  };
  REQUIRE(expected.size() == kmesh::policy::PolicyTemplateNames().size());
  for (const auto& [name, vars] : expected) {
    SECTION(name) {
      std::string err;
      try {
        RenderPolicyTemplate(name, Vars());
      } catch (const kmesh::Error& e) {
        err = e.what();
      }
      INFO(err);
      CHECK_THAT(err, Contains("rendering " + name + ".yaml failed"));
      for (const auto& v : vars) CHECK_THAT(err, Contains("{{." + v + "}} is used but no value was given"));
      // Exactly these variables, no others.
      size_t count = 0;
      for (size_t at = err.find("is used but"); at != std::string::npos; at = err.find("is used but", at + 1))
        ++count;
      CHECK(count == vars.size());
    }
  }
}

TEST_CASE("an unknown template name lists the known ones") {
  CHECK_THROWS_WITH(RenderPolicyTemplate("ip-alow", Vars()),
                    Contains("no policy template \"ip-alow\"") && Contains("ip-allow"));
}
