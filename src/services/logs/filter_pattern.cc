#include "services/logs/filter_pattern.h"

#include <re2/re2.h>

#include <cctype>
#include <charconv>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace ty::services {

namespace {

using nlohmann::json;

constexpr size_t kMaxRegexTerms = 2;
constexpr size_t kMaxJsonDepth = 64;        // deeper messages are not parsed (never match)
constexpr size_t kMaxMessageFields = 4096;  // space-delimited messages split at most this far

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// '*' matches any run of characters; everything else literally.
bool Glob(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

std::optional<double> ParseNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  const char* b = s.data();
  if (*b == '+') ++b;
  auto [end, ec] = std::from_chars(b, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// A scanner over the pattern text.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : t_(text) {}
  void SkipSpace() {
    while (i_ < t_.size() && IsSpace(t_[i_])) ++i_;
  }
  bool AtEnd() {
    SkipSpace();
    return i_ >= t_.size();
  }
  char Peek() {
    SkipSpace();
    return i_ < t_.size() ? t_[i_] : '\0';
  }
  bool Eat(std::string_view token) {
    SkipSpace();
    if (t_.substr(i_, token.size()) == token) {
      i_ += token.size();
      return true;
    }
    return false;
  }
  // Case-insensitive keyword followed by a non-word character.
  bool EatWord(std::string_view word) {
    SkipSpace();
    if (t_.size() - i_ < word.size()) return false;
    for (size_t k = 0; k < word.size(); ++k) {
      if (std::toupper(static_cast<unsigned char>(t_[i_ + k])) != word[k]) return false;
    }
    size_t after = i_ + word.size();
    if (after < t_.size() &&
        (std::isalnum(static_cast<unsigned char>(t_[after])) || t_[after] == '_'))
      return false;
    i_ = after;
    return true;
  }
  // A "quoted" string (\" and \\ escapes); REQUIRES Peek() == '"'.
  Result<std::string> Quoted() {
    SkipSpace();
    ++i_;
    std::string out;
    while (i_ < t_.size() && t_[i_] != '"') {
      if (t_[i_] == '\\' && i_ + 1 < t_.size()) ++i_;
      out += t_[i_++];
    }
    if (i_ >= t_.size()) return InvalidArgument("Invalid filter pattern: unterminated quote");
    ++i_;
    return out;
  }
  // Characters up to whitespace or one of `stops`.
  std::string Bare(std::string_view stops) {
    SkipSpace();
    size_t b = i_;
    while (i_ < t_.size() && !IsSpace(t_[i_]) && stops.find(t_[i_]) == std::string_view::npos) {
      if ((t_[i_] == '&' || t_[i_] == '|') && i_ + 1 < t_.size() && t_[i_ + 1] == t_[i_]) break;
      ++i_;
    }
    return std::string(t_.substr(b, i_ - b));
  }
  size_t pos() const { return i_; }

 private:
  std::string_view t_;
  size_t i_ = 0;
};

Status Bad(const std::string& why) { return InvalidArgument("Invalid filter pattern: " + why); }

// ---- terms ----------------------------------------------------------------------------------

struct Term {
  enum Kind { kRequired, kOptional, kExcluded } kind = kRequired;
  std::string text;
  std::shared_ptr<RE2> regex;  // %...% terms
  bool Found(std::string_view m) const {
    if (regex) return RE2::PartialMatch(re2::StringPiece(m.data(), m.size()), *regex);
    return m.find(text) != std::string_view::npos;
  }
};

class TermPattern final : public FilterPattern {
 public:
  explicit TermPattern(std::vector<Term> terms) : terms_(std::move(terms)) {}
  bool Matches(std::string_view m) const override {
    bool any_optional = false, optional_found = false;
    for (const Term& t : terms_) {
      switch (t.kind) {
        case Term::kRequired:
          if (!t.Found(m)) return false;
          break;
        case Term::kExcluded:
          if (t.Found(m)) return false;
          break;
        case Term::kOptional:
          any_optional = true;
          if (!optional_found && t.Found(m)) optional_found = true;
          break;
      }
    }
    return !any_optional || optional_found;
  }

 private:
  std::vector<Term> terms_;
};

Result<std::shared_ptr<const FilterPattern>> CompileTerms(std::string_view text) {
  Scanner sc(text);
  std::vector<Term> terms;
  size_t regexes = 0;
  while (!sc.AtEnd()) {
    Term t;
    if (sc.Eat("?")) {
      t.kind = Term::kOptional;
    } else if (sc.Eat("-")) {
      t.kind = Term::kExcluded;
    }
    if (sc.Peek() == '"') {
      TY_ASSIGN_OR_RETURN(t.text, sc.Quoted());
    } else if (sc.Peek() == '%') {
      std::string raw = sc.Bare("");
      if (raw.size() < 3 || raw.back() != '%') return Bad("a regular expression ends with %");
      if (++regexes > kMaxRegexTerms) return Bad("at most 2 regular expressions");
      t.regex = std::make_shared<RE2>(raw.substr(1, raw.size() - 2), RE2::Quiet);
      if (!t.regex->ok()) return Bad("bad regular expression: " + t.regex->error());
    } else {
      t.text = sc.Bare("");
    }
    if (t.text.empty() && !t.regex) return Bad("empty term");
    terms.push_back(std::move(t));
  }
  return std::shared_ptr<const FilterPattern>(std::make_shared<TermPattern>(std::move(terms)));
}

// ---- comparisons shared by JSON and space-delimited patterns -------------------------------

enum class Op { kEq, kNe, kLt, kGt, kLe, kGe, kIsNull, kIsTrue, kIsFalse, kNotExists, kExists };

struct Value {
  std::string text;
  bool quoted = false;
  std::optional<double> number;  // unquoted numeric literal
};

Result<Op> ParseOp(Scanner& sc) {
  if (sc.Eat("!=")) return Op::kNe;
  if (sc.Eat("<=")) return Op::kLe;
  if (sc.Eat(">=")) return Op::kGe;
  if (sc.Eat("=")) return Op::kEq;
  if (sc.Eat("<")) return Op::kLt;
  if (sc.Eat(">")) return Op::kGt;
  if (sc.EatWord("IS")) {
    if (sc.EatWord("NULL")) return Op::kIsNull;
    if (sc.EatWord("TRUE")) return Op::kIsTrue;
    if (sc.EatWord("FALSE")) return Op::kIsFalse;
    return Bad("IS takes NULL, TRUE or FALSE");
  }
  if (sc.EatWord("NOT")) {
    if (sc.EatWord("EXISTS")) return Op::kNotExists;
    return Bad("NOT takes EXISTS");
  }
  if (sc.EatWord("EXISTS")) return Op::kExists;
  return Bad("expected a comparison operator");
}

bool TakesValue(Op op) { return op <= Op::kGe; }

Result<Value> ParseValue(Scanner& sc, std::string_view stops) {
  Value v;
  if (sc.Peek() == '"') {
    TY_ASSIGN_OR_RETURN(v.text, sc.Quoted());
    v.quoted = true;
  } else {
    v.text = sc.Bare(stops);
    if (v.text.empty()) return Bad("expected a value");
    v.number = ParseNumber(v.text);
  }
  return v;
}

// Compares a string field (from a space-delimited message, or a JSON string).
bool CompareText(std::string_view field, Op op, const Value& v) {
  if (v.number && op != Op::kEq && op != Op::kNe) {
    auto n = ParseNumber(field);
    if (!n) return false;
    switch (op) {
      case Op::kLt:
        return *n < *v.number;
      case Op::kGt:
        return *n > *v.number;
      case Op::kLe:
        return *n <= *v.number;
      case Op::kGe:
        return *n >= *v.number;
      default:
        return false;
    }
  }
  bool eq = false;
  if (v.number) {
    auto n = ParseNumber(field);
    eq = n ? *n == *v.number : field == v.text;
  } else {
    eq = Glob(v.text, field);
  }
  if (op == Op::kEq) return eq;
  if (op == Op::kNe) return !eq;
  return false;
}

// ---- JSON patterns -------------------------------------------------------------------------

struct Step {
  std::string key;     // object member, or
  int64_t index = -1;  // array element
};

struct JsonNode {
  enum Kind { kAnd, kOr, kCompare } kind = kCompare;
  std::vector<JsonNode> children;
  std::vector<Step> path;
  Op op = Op::kEq;
  Value value;
};

Result<std::vector<Step>> ParseSelector(Scanner& sc) {
  if (!sc.Eat("$")) return Bad("a JSON selector starts with $");
  std::vector<Step> path;
  for (;;) {
    if (sc.Eat(".")) {
      std::string key = sc.Bare(".[]=!<>()&|}");
      if (key.empty()) return Bad("empty selector member");
      path.push_back({key, -1});
    } else if (sc.Eat("[")) {
      std::string idx = sc.Bare("]");
      auto n = ParseNumber(idx);
      if (!n || *n < 0 || *n > 1e6 || !sc.Eat("]")) return Bad("bad array index in selector");
      path.push_back({"", static_cast<int64_t>(*n)});
    } else {
      break;
    }
    if (path.size() > kMaxJsonDepth) return Bad("selector too deep");
  }
  return path;
}

Result<JsonNode> ParseJsonOr(Scanner& sc, int depth);

Result<JsonNode> ParseJsonUnary(Scanner& sc, int depth) {
  if (depth > 32) return Bad("too many parentheses");
  if (sc.Eat("(")) {
    TY_ASSIGN_OR_RETURN(JsonNode inner, ParseJsonOr(sc, depth + 1));
    if (!sc.Eat(")")) return Bad("missing )");
    return inner;
  }
  JsonNode n;
  TY_ASSIGN_OR_RETURN(n.path, ParseSelector(sc));
  TY_ASSIGN_OR_RETURN(n.op, ParseOp(sc));
  if (TakesValue(n.op)) {
    TY_ASSIGN_OR_RETURN(n.value, ParseValue(sc, ")}"));
  }
  return n;
}

Result<JsonNode> ParseJsonAnd(Scanner& sc, int depth) {
  JsonNode node{JsonNode::kAnd, {}, {}, Op::kEq, {}};
  do {
    TY_ASSIGN_OR_RETURN(JsonNode c, ParseJsonUnary(sc, depth));
    node.children.push_back(std::move(c));
  } while (sc.Eat("&&"));
  if (node.children.size() == 1) return std::move(node.children[0]);
  return node;
}

Result<JsonNode> ParseJsonOr(Scanner& sc, int depth) {
  JsonNode node{JsonNode::kOr, {}, {}, Op::kEq, {}};
  do {
    TY_ASSIGN_OR_RETURN(JsonNode c, ParseJsonAnd(sc, depth));
    node.children.push_back(std::move(c));
  } while (sc.Eat("||"));
  if (node.children.size() == 1) return std::move(node.children[0]);
  return node;
}

const json* Select(const json& doc, const std::vector<Step>& path) {
  const json* cur = &doc;
  for (const Step& s : path) {
    if (s.index >= 0) {
      if (!cur->is_array() || static_cast<size_t>(s.index) >= cur->size()) return nullptr;
      cur = &(*cur)[static_cast<size_t>(s.index)];
    } else {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(s.key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
  }
  return cur;
}

bool EvalJson(const JsonNode& n, const json& doc) {
  switch (n.kind) {
    case JsonNode::kAnd:
      for (const auto& c : n.children)
        if (!EvalJson(c, doc)) return false;
      return true;
    case JsonNode::kOr:
      for (const auto& c : n.children)
        if (EvalJson(c, doc)) return true;
      return false;
    case JsonNode::kCompare:
      break;
  }
  const json* v = Select(doc, n.path);
  switch (n.op) {
    case Op::kNotExists:
      return v == nullptr;
    case Op::kExists:
      return v != nullptr;
    case Op::kIsNull:
      return v != nullptr && v->is_null();
    case Op::kIsTrue:
      return v != nullptr && v->is_boolean() && v->get<bool>();
    case Op::kIsFalse:
      return v != nullptr && v->is_boolean() && !v->get<bool>();
    default:
      break;
  }
  if (v == nullptr) return false;
  if (v->is_number()) {
    if (!n.value.number) return n.op == Op::kNe;
    double x = v->get<double>(), y = *n.value.number;
    switch (n.op) {
      case Op::kEq:
        return x == y;
      case Op::kNe:
        return x != y;
      case Op::kLt:
        return x < y;
      case Op::kGt:
        return x > y;
      case Op::kLe:
        return x <= y;
      case Op::kGe:
        return x >= y;
      default:
        return false;
    }
  }
  if (v->is_string()) {
    Value as_text = n.value;
    as_text.number.reset();  // "5" the string equals the pattern's 5 textually
    if (n.op != Op::kEq && n.op != Op::kNe) return false;
    return CompareText(v->get_ref<const std::string&>(), n.op, as_text);
  }
  if (v->is_boolean() && !n.value.quoted) {
    bool want = n.value.text == "true" || n.value.text == "TRUE";
    bool is =
        v->get<bool>() == want && (want || n.value.text == "false" || n.value.text == "FALSE");
    return n.op == Op::kEq ? is : n.op == Op::kNe ? !is : false;
  }
  if (v->is_null() && !n.value.quoted && (n.value.text == "null" || n.value.text == "NULL")) {
    return n.op == Op::kEq;
  }
  return n.op == Op::kNe;
}

// Nesting depth of a JSON text, without parsing it (nlohmann recurses on destruction).
bool ShallowEnough(std::string_view m) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth) return false;
    } else if (c == '}' || c == ']') {
      if (depth > 0) --depth;
    }
  }
  return true;
}

class JsonPattern final : public FilterPattern {
 public:
  explicit JsonPattern(JsonNode root) : root_(std::move(root)) {}
  bool Matches(std::string_view m) const override {
    size_t b = m.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos || m[b] != '{' || !ShallowEnough(m)) return false;
    json doc = json::parse(m, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return false;
    return EvalJson(root_, doc);
  }

 private:
  JsonNode root_;
};

// ---- space-delimited patterns --------------------------------------------------------------

struct Field {
  bool ellipsis = false;
  bool has_condition = false;
  Op op = Op::kEq;
  Value value;
};

std::vector<std::string_view> SplitFields(std::string_view m) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < m.size() && out.size() < kMaxMessageFields) {
    while (i < m.size() && IsSpace(m[i])) ++i;
    if (i >= m.size()) break;
    char close = m[i] == '"' ? '"' : m[i] == '[' ? ']' : '\0';
    if (close != '\0') {
      size_t end = m.find(close, i + 1);
      if (end != std::string_view::npos) {
        out.push_back(m.substr(i + 1, end - i - 1));
        i = end + 1;
        continue;
      }
    }
    size_t b = i;
    while (i < m.size() && !IsSpace(m[i])) ++i;
    out.push_back(m.substr(b, i - b));
  }
  return out;
}

class DelimitedPattern final : public FilterPattern {
 public:
  explicit DelimitedPattern(std::vector<Field> fields) : fields_(std::move(fields)) {}
  bool Matches(std::string_view m) const override {
    auto got = SplitFields(m);
    size_t ell = fields_.size();
    for (size_t k = 0; k < fields_.size(); ++k)
      if (fields_[k].ellipsis) ell = k;
    if (ell == fields_.size()) {
      if (got.size() != fields_.size()) return false;
      for (size_t k = 0; k < got.size(); ++k)
        if (!Check(fields_[k], got[k])) return false;
      return true;
    }
    size_t tail = fields_.size() - ell - 1;
    if (got.size() < ell + tail) return false;
    for (size_t k = 0; k < ell; ++k)
      if (!Check(fields_[k], got[k])) return false;
    for (size_t k = 0; k < tail; ++k)
      if (!Check(fields_[ell + 1 + k], got[got.size() - tail + k])) return false;
    return true;
  }

 private:
  static bool Check(const Field& f, std::string_view got) {
    return !f.has_condition || CompareText(got, f.op, f.value);
  }
  std::vector<Field> fields_;
};

Result<std::shared_ptr<const FilterPattern>> CompileDelimited(std::string_view text) {
  Scanner sc(text);
  sc.Eat("[");
  std::vector<Field> fields;
  bool seen_ellipsis = false;
  for (;;) {
    Field f;
    if (sc.Eat("...")) {
      if (seen_ellipsis) return Bad("at most one ... field");
      f.ellipsis = seen_ellipsis = true;
    } else {
      std::string name = sc.Bare(",]=!<>");
      if (name.empty()) return Bad("empty field name");
      char c = sc.Peek();
      if (c == '=' || c == '!' || c == '<' || c == '>') {
        f.has_condition = true;
        TY_ASSIGN_OR_RETURN(f.op, ParseOp(sc));
        TY_ASSIGN_OR_RETURN(f.value, ParseValue(sc, ",]"));
      }
    }
    fields.push_back(std::move(f));
    if (sc.Eat(",")) continue;
    if (sc.Eat("]")) break;
    return Bad("expected , or ] in a space-delimited pattern");
  }
  if (!sc.AtEnd()) return Bad("text after ]");
  return std::shared_ptr<const FilterPattern>(
      std::make_shared<DelimitedPattern>(std::move(fields)));
}

class MatchAll final : public FilterPattern {
 public:
  bool Matches(std::string_view) const override { return true; }
};

}  // namespace

Result<std::shared_ptr<const FilterPattern>> FilterPattern::Compile(std::string_view pattern) {
  if (pattern.size() > kMaxPatternBytes) return Bad("longer than 1024 characters");
  Scanner sc(pattern);
  if (sc.AtEnd()) return std::shared_ptr<const FilterPattern>(std::make_shared<MatchAll>());
  if (sc.Peek() == '{') {
    sc.Eat("{");
    TY_ASSIGN_OR_RETURN(JsonNode root, ParseJsonOr(sc, 0));
    if (!sc.Eat("}") || !sc.AtEnd()) return Bad("a JSON pattern ends with }");
    return std::shared_ptr<const FilterPattern>(std::make_shared<JsonPattern>(std::move(root)));
  }
  if (sc.Peek() == '[') return CompileDelimited(pattern);
  return CompileTerms(pattern);
}

}  // namespace ty::services
