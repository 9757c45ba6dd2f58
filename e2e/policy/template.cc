#include "e2e/policy/template.h"

#include <unistd.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/runfiles.h"

namespace kmesh::policy {
namespace {

bool IsIdentifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

std::string Join(const std::set<std::string>& names) {
  if (names.empty()) return "none";
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Where a reference sits in the YAML line decides which characters would break it.
enum class Context { kPlain, kDoubleQuoted, kSingleQuoted };

const char* ContextName(Context c) {
  switch (c) {
    case Context::kPlain:
      return "an unquoted scalar";
    case Context::kDoubleQuoted:
      return "a double-quoted scalar";
    case Context::kSingleQuoted:
      return "a single-quoted scalar";
  }
  return "?";
}

// Quote state at `pos`, scanning the line from its start (escapes: \" in double, '' in single quotes).
Context ContextAt(const std::string& text, size_t line_start, size_t pos) {
  Context c = Context::kPlain;
  for (size_t i = line_start; i < pos; ++i) {
    const char ch = text[i];
    if (c == Context::kPlain) {
      if (ch == '"')
        c = Context::kDoubleQuoted;
      else if (ch == '\'')
        c = Context::kSingleQuoted;
    } else if (c == Context::kDoubleQuoted) {
      if (ch == '\\')
        ++i;
      else if (ch == '"')
        c = Context::kPlain;
    } else if (ch == '\'') {
      if (i + 1 < pos && text[i + 1] == '\'')
        ++i;
      else
        c = Context::kPlain;
    }
  }
  return c;
}

// Empty when `value` is safe in context `c`; else why not.
std::string Unsafe(const std::string& value, Context c) {
  if (value.empty()) return "is empty";
  for (char ch : value) {
    if (ch == '\n' || ch == '\r') return "contains a newline";
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return "contains a control character";
  }
  switch (c) {
    case Context::kDoubleQuoted:
      if (value.find('"') != std::string::npos) return "contains '\"'";
      if (value.find('\\') != std::string::npos) return "contains '\\' (a YAML escape)";
      return "";
    case Context::kSingleQuoted:
      if (value.find('\'') != std::string::npos) return "contains \"'\"";
      return "";
    case Context::kPlain:
      break;
  }
  for (char ch : std::string("\"'#,[]{}")) {
    if (value.find(ch) != std::string::npos) return std::string("contains '") + ch + "'";
  }
  if (value.find(": ") != std::string::npos || value.back() == ':') return "contains ': ' (a YAML mapping)";
  if (value.front() == ' ' || value.back() == ' ' || value.front() == '\t' || value.back() == '\t') {
    return "has leading or trailing whitespace";
  }
  if (std::string("&*!|>%@`").find(value.front()) != std::string::npos) {
    return std::string("starts with the YAML indicator '") + value.front() + "'";
  }
  if (std::string("-?:").find(value.front()) != std::string::npos && (value.size() == 1 || value[1] == ' ')) {
    return std::string("starts with the YAML indicator '") + value.front() + " '";
  }
  return "";
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

Vars& Vars::Set(const std::string& name, const std::string& value) {
  if (!IsIdentifier(name))
    throw Error("template variable name \"" + name + "\" is not an identifier (use \"Ip\" for {{.Ip}})");
  values_[name] = Value{false, value, {}};
  return *this;
}

Vars& Vars::SetList(const std::string& name, const std::vector<std::string>& values) {
  if (!IsIdentifier(name))
    throw Error("template variable name \"" + name +
                "\" is not an identifier (use \"Ports\" for {{.Ports}})");
  values_[name] = Value{true, "", values};
  return *this;
}

std::vector<std::string> Vars::Names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_) out.push_back(k);
  return out;
}

const Vars::Value& Vars::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw Error("template variable " + name + " was not given");
  return it->second;
}

std::string Render(const std::string& text, const std::string& origin, const Vars& vars) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::set<std::string> given;
  for (const auto& n : vars.Names()) given.insert(n);

  std::string out;
  out.reserve(text.size());
  size_t line = 1;
  size_t line_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 2, "{{") != 0) {
      if (text[i] == '\n') {
        ++line;
        line_start = i + 1;
      }
      out += text[i++];
      continue;
    }
    const size_t col = i - line_start + 1;
    const std::string where = origin + ":" + std::to_string(line) + ":" + std::to_string(col);
    const size_t eol = text.find('\n', i);
    const size_t close = text.find("}}", i + 2);
    if (close == std::string::npos || (eol != std::string::npos && close > eol)) {
      problems.push_back(origin + ":" + std::to_string(line) + ": '{{' at column " + std::to_string(col) +
                         " is not closed by '}}' on the same line");
      // Keep the rest of the line verbatim and go on, so one run reports every problem.
      const size_t stop = eol == std::string::npos ? text.size() : eol;
      out.append(text, i, stop - i);
      i = stop;
      continue;
    }
    const std::string inner = text.substr(i + 2, close - i - 2);
    size_t b = inner.find_first_not_of(' ');
    size_t e = inner.find_last_not_of(' ');
    const std::string ref = b == std::string::npos ? "" : inner.substr(b, e - b + 1);
    const std::string name = ref.size() > 1 && ref[0] == '.' ? ref.substr(1) : "";
    if (!IsIdentifier(name)) {
      problems.push_back(where + ": '{{" + inner +
                         "}}' is not a variable reference; only {{.Name}} is supported");
    } else if (!vars.Has(name)) {
      used.insert(name);
      problems.push_back(where + ": {{." + name + "}} is used but no value was given for " + name +
                         " (given: " + Join(given) + ")");
    } else {
      used.insert(name);
      const Vars::Value& v = vars.Get(name);
      const Context ctx = ContextAt(text, line_start, i);
      if (v.is_list) {
        if (ctx != Context::kPlain) {
          problems.push_back(where + ": " + name + " is a list, but {{." + name + "}} sits inside " +
                             ContextName(ctx) +
                             "; a list renders as a flow sequence and must stand unquoted");
        }
        std::string seq = "[";
        for (size_t k = 0; k < v.items.size(); ++k) {
          if (std::string why = Unsafe(v.items[k], Context::kDoubleQuoted); !why.empty()) {
            problems.push_back(where + ": " + name + "[" + std::to_string(k) + "] = " + Quote(v.items[k]) +
                               " " + why + ", which would break the YAML it lands in");
          }
          seq += (k ? ", " : "") + Quote(v.items[k]);
        }
        out += seq + "]";
      } else {
        if (std::string why = Unsafe(v.text, ctx); !why.empty()) {
          problems.push_back(where + ": " + name + " = " + Quote(v.text) + " " + why +
                             ", which would break " + ContextName(ctx) + " in the YAML");
        }
        out += v.text;
      }
    }
    i = close + 2;
  }

  for (const auto& n : given) {
    if (!used.count(n)) {
      std::set<std::string> refs;
      for (const auto& u : used) refs.insert(u);
      problems.push_back(origin + ": " + n + " was given but the template never uses {{." + n +
                         "}} (it uses: " + Join(refs) + ")");
    }
  }
  if (!problems.empty()) {
    std::string msg = "rendering " + origin + " failed:";
    for (const auto& p : problems) msg += "\n  " + p;
    throw Error(msg);
  }
  return out;
}

Manifest RenderFile(const std::string& path, const Vars& vars) {
  std::ifstream in(path);
  if (!in) ThrowErrno("reading policy template " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const size_t slash = path.rfind('/');
  const std::string origin = slash == std::string::npos ? path : path.substr(slash + 1);
  return Manifest{origin, Render(ss.str(), origin, vars)};
}

const std::vector<std::string>& PolicyTemplateNames() {
  static const std::vector<std::string> names = {
      "ip-allow",       "ip-deny",      "port-allow",  "port-deny",  "namespace-allow",
      "namespace-deny", "header-allow", "header-deny", "host-allow", "host-deny",
  };
  return names;
}

Manifest RenderPolicyTemplate(const std::string& name, const Vars& vars) {
  const bool plain =
      !name.empty() && name.find('/') == std::string::npos && name.find("..") == std::string::npos;
  std::string path;
  if (plain) {
    try {
      path = Runfile("testdata/policies/" + name + ".yaml");
    } catch (const Error&) {
      path.clear();  // not a template: say which ones exist below
    }
  }
  if (path.empty() || access(path.c_str(), R_OK) != 0) {
    std::string all;
    for (const auto& n : PolicyTemplateNames()) all += (all.empty() ? "" : ", ") + n;
    throw Error("no policy template \"" + name + "\" in testdata/policies (the seed's: " + all +
                "; the authz table's: ip-blocks, not-ip-blocks, ip-blocks-except, namespace-and-ip, not-ports, two-rules, from-and-to, "
                "destination-ip, principals)");
  }
  return RenderFile(path, vars);
}

}  // namespace kmesh::policy
