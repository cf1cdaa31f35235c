#include "events/event_pattern.h"

#include <arpa/inet.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "common/json.h"

namespace ty::events {

namespace {

using nlohmann::json;

constexpr std::string_view kReasonPrefix = "Event pattern is not valid. Reason: ";
// event-ruler's ComparableNumber range; values are compared in millionths.
constexpr double kNumericLimit = 5.0e9;
// An event deeper than this (arrays of arrays ...) is treated as absent below it.
constexpr int kMaxEventDepth = 128;

Status Invalid(std::string_view reason) {
  return InvalidArgument(std::string(kReasonPrefix) + std::string(reason));
}

// A number scaled to millionths (event-ruler compares with six decimal places), or nothing
// outside the numeric range.
std::optional<int64_t> Micros(double v) {
  if (!std::isfinite(v) || v < -kNumericLimit || v > kNumericLimit) return std::nullopt;
  return static_cast<int64_t>(std::llround(v * 1e6));
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != lower_b[i]) return false;
  }
  return true;
}

// An IPv4 or IPv6 address as 16 bytes (IPv4 in the first 4), with its family.
struct IpAddress {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
};

std::optional<IpAddress> ParseIp(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  std::string s(text);
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (s.find(':') != std::string::npos && inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

bool SameNetwork(const IpAddress& a, const IpAddress& net, int bits) {
  if (a.family != net.family) return false;
  int full = bits / 8;
  if (std::memcmp(a.bytes.data(), net.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  auto mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (a.bytes[full] & mask) == (net.bytes[full] & mask);
}

// Knuth-Morris-Pratt: the first occurrence of `needle` in `hay` at or after `from`, in
// O(|hay| + |needle|), so that a wildcard never costs more than one pass over the value.
size_t FindLinear(std::string_view hay, std::string_view needle, size_t from,
                  const std::vector<size_t>& failure) {
  if (needle.empty()) return from;
  size_t k = 0;
  for (size_t i = from; i < hay.size(); ++i) {
    while (k > 0 && hay[i] != needle[k]) k = failure[k - 1];
    if (hay[i] == needle[k]) ++k;
    if (k == needle.size()) return i + 1 - needle.size();
  }
  return std::string_view::npos;
}

std::vector<size_t> FailureTable(std::string_view needle) {
  std::vector<size_t> f(needle.size(), 0);
  size_t k = 0;
  for (size_t i = 1; i < needle.size(); ++i) {
    while (k > 0 && needle[i] != needle[k]) k = f[k - 1];
    if (needle[i] == needle[k]) ++k;
    f[i] = k;
  }
  return f;
}

// A wildcard operand split at its unescaped '*': literal pieces p0 * p1 * ... * pn.
struct Wildcard {
  std::vector<std::string> pieces;
  std::vector<std::vector<size_t>> failures;  // KMP tables of the middle pieces

  // '*' matches any run of characters, so placing every middle piece at its leftmost
  // occurrence after the previous one is optimal: no backtracking is ever needed.
  bool Matches(std::string_view s) const {
    const std::string& first = pieces.front();
    if (pieces.size() == 1) return s == first;
    const std::string& last = pieces.back();
    if (s.size() < first.size() + last.size()) return false;
    if (s.substr(0, first.size()) != first) return false;
    if (s.substr(s.size() - last.size()) != last) return false;
    std::string_view middle = s.substr(first.size(), s.size() - first.size() - last.size());
    size_t pos = 0;
    for (size_t i = 1; i + 1 < pieces.size(); ++i) {
      size_t at = FindLinear(middle, pieces[i], pos, failures[i]);
      if (at == std::string_view::npos) return false;
      pos = at + pieces[i].size();
    }
    return true;
  }
};

enum class Kind {
  kString,   // exact string (also the same IP address, when text is one)
  kNumber,   // exact number
  kLiteral,  // true, false or null
  kPrefix,
  kSuffix,
  kEqualsIgnoreCase,
  kPrefixIgnoreCase,
  kSuffixIgnoreCase,
  kWildcard,
  kNumeric,
  kCidr,
  kExists,
  kAnythingBut,  // none of `inner` matches
};

struct Matcher {
  Kind kind = Kind::kString;
  std::string text;  // lower-cased for the ignore-case kinds
  // kNumber: the value, exactly when it is an integer; kLiteral: null, or a boolean.
  double number = 0;
  std::optional<int64_t> integer;
  bool is_null = false;
  bool boolean = false;
  std::optional<int64_t> micros;  // kNumber
  std::optional<IpAddress> ip;    // kString that is an address; kCidr's network
  int mask_bits = 0;              // kCidr
  // kNumeric: lower and upper bounds in millionths, each optional and open or closed.
  std::optional<int64_t> low, high;
  bool low_open = false, high_open = false;
  bool exists = false;  // kExists
  std::optional<Wildcard> wildcard;
  std::vector<Matcher> inner;  // kAnythingBut
};

// Exact equality beyond the numeric range (account ids, epoch milliseconds): integers compare
// as integers, anything else as doubles. REQUIRES: v.is_number().
bool SameNumber(const Matcher& m, const json& v) {
  if (m.integer && v.is_number_unsigned()) {
    return *m.integer >= 0 && static_cast<uint64_t>(*m.integer) == v.get<uint64_t>();
  }
  if (m.integer && v.is_number_integer()) return *m.integer == v.get<int64_t>();
  return v.get<double>() == m.number;
}

bool MatchesValue(const Matcher& m, const json& v) {
  switch (m.kind) {
    case Kind::kString:
      if (!v.is_string()) return false;
      if (v.get_ref<const std::string&>() == m.text) return true;
      if (m.ip) {
        auto ip = ParseIp(v.get_ref<const std::string&>());
        return ip && SameNetwork(*ip, *m.ip, ip->family == AF_INET ? 32 : 128);
      }
      return false;
    case Kind::kNumber: {
      if (!v.is_number()) return false;
      if (m.micros) {
        auto mv = Micros(v.get<double>());
        if (mv && *mv == *m.micros) return true;
      }
      return SameNumber(m, v);
    }
    case Kind::kLiteral:
      return m.is_null ? v.is_null() : (v.is_boolean() && v.get<bool>() == m.boolean);
    case Kind::kPrefix:
      return v.is_string() && v.get_ref<const std::string&>().starts_with(m.text);
    case Kind::kSuffix:
      return v.is_string() && v.get_ref<const std::string&>().ends_with(m.text);
    case Kind::kEqualsIgnoreCase:
      return v.is_string() && EqualsIgnoreCase(v.get_ref<const std::string&>(), m.text);
    case Kind::kPrefixIgnoreCase: {
      if (!v.is_string()) return false;
      std::string_view s = v.get_ref<const std::string&>();
      return s.size() >= m.text.size() && EqualsIgnoreCase(s.substr(0, m.text.size()), m.text);
    }
    case Kind::kSuffixIgnoreCase: {
      if (!v.is_string()) return false;
      std::string_view s = v.get_ref<const std::string&>();
      return s.size() >= m.text.size() &&
             EqualsIgnoreCase(s.substr(s.size() - m.text.size()), m.text);
    }
    case Kind::kWildcard:
      return v.is_string() && m.wildcard->Matches(v.get_ref<const std::string&>());
    case Kind::kNumeric: {
      if (!v.is_number()) return false;
      auto x = Micros(v.get<double>());
      if (!x) return false;
      if (m.low && (m.low_open ? *x <= *m.low : *x < *m.low)) return false;
      if (m.high && (m.high_open ? *x >= *m.high : *x > *m.high)) return false;
      return true;
    }
    case Kind::kCidr: {
      if (!v.is_string()) return false;
      auto ip = ParseIp(v.get_ref<const std::string&>());
      return ip && SameNetwork(*ip, *m.ip, m.mask_bits);
    }
    case Kind::kExists:
      return false;  // decided on the leaf as a whole
    case Kind::kAnythingBut:
      for (const Matcher& i : m.inner) {
        if (MatchesValue(i, v)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace

// One object of the pattern: every field must match, and one branch of every $or.
struct EventPattern::Node {
  struct Field {
    std::string key;
    std::unique_ptr<Node> object;  // a nested pattern object, or
    std::vector<Matcher> leaf;     // the alternatives of a leaf
  };
  std::vector<Field> fields;
  std::vector<std::vector<std::unique_ptr<Node>>> ors;
};

namespace {

using Node = EventPattern::Node;

// Calls `fn` on each leaf value of `v` (a scalar, or the scalars of an array, flattened)
// until it returns true.
template <typename Fn>
bool AnyLeafValue(const json& v, const Fn& fn, int depth) {
  if (v.is_array()) {
    if (depth > kMaxEventDepth) return false;
    for (const json& e : v) {
      if (AnyLeafValue(e, fn, depth + 1)) return true;
    }
    return false;
  }
  if (v.is_object()) return false;
  return fn(v);
}

bool MatchesLeaf(const std::vector<Matcher>& alternatives, const json* v, int depth) {
  bool has_value = v != nullptr && AnyLeafValue(
                                       *v, [](const json&) { return true; }, depth);
  for (const Matcher& m : alternatives) {
    if (m.kind == Kind::kExists) {
      if (m.exists == has_value) return true;
      continue;
    }
    if (has_value && AnyLeafValue(
                         *v, [&m](const json& x) { return MatchesValue(m, x); }, depth)) {
      return true;
    }
  }
  return false;
}

bool MatchesNode(const Node& node, const json* v, int depth);

// `v` is not an array: a missing key, a scalar or an object.
bool MatchesNodeAt(const Node& node, const json* v, int depth) {
  const json* object = (v != nullptr && v->is_object()) ? v : nullptr;
  for (const Node::Field& f : node.fields) {
    const json* child = nullptr;
    if (object != nullptr) {
      auto it = object->find(f.key);
      if (it != object->end()) child = &*it;
    }
    bool ok =
        f.object ? MatchesNode(*f.object, child, depth + 1) : MatchesLeaf(f.leaf, child, depth + 1);
    if (!ok) return false;
  }
  for (const auto& branches : node.ors) {
    bool any = false;
    for (const auto& b : branches) {
      if (MatchesNodeAt(*b, v, depth)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

// A pattern object against an array matches when one element matches all of it, so fields
// matched together come from the same element (event-ruler's array consistency).
bool MatchesNode(const Node& node, const json* v, int depth) {
  if (v == nullptr || !v->is_array()) return MatchesNodeAt(node, v, depth);
  if (depth > kMaxEventDepth || v->empty()) return MatchesNodeAt(node, nullptr, depth);
  for (const json& e : *v) {
    if (MatchesNode(node, &e, depth + 1)) return true;
  }
  return false;
}

// ---- parsing ----

class Compiler {
 public:
  Result<std::unique_ptr<Node>> Object(const json& obj, bool in_or) {
    if (obj.empty()) return Invalid("Empty objects are not allowed");
    auto node = std::make_unique<Node>();
    for (const auto& [key, value] : obj.items()) {
      TY_RETURN_IF_ERROR(Count(1));
      // event-ruler keeps "$or" with an object value a plain field name (its README's
      // backward compatibility); only an array is an Or.
      if (key == "$or" && !value.is_object()) {
        TY_ASSIGN_OR_RETURN(auto branches, Or(value));
        node->ors.push_back(std::move(branches));
        continue;
      }
      if (in_or && IsReserved(key)) {
        return Invalid(key + " is Ruler reserved fieldName which cannot be used inside $or.");
      }
      Node::Field field;
      field.key = key;
      if (value.is_object()) {
        TY_ASSIGN_OR_RETURN(field.object, Object(value, in_or));
      } else if (value.is_array()) {
        TY_ASSIGN_OR_RETURN(field.leaf, Leaf(value));
      } else {
        return Invalid("\"" + key + "\" must be an object or an array");
      }
      node->fields.push_back(std::move(field));
    }
    return node;
  }

 private:
  static bool IsReserved(std::string_view key) {
    for (std::string_view r : {"anything-but", "exists", "prefix", "suffix", "numeric", "cidr",
                               "equals-ignore-case", "wildcard"}) {
      if (key == r) return true;
    }
    return false;
  }

  Status Count(size_t n) {
    values_ += n;
    if (values_ > kMaxPatternValues) {
      return Invalid("Pattern has more than " + std::to_string(kMaxPatternValues) + " values");
    }
    return Status::Ok();
  }

  Result<std::vector<std::unique_ptr<Node>>> Or(const json& value) {
    if (!value.is_array()) return Invalid("It must be an Array followed with $or.");
    std::vector<std::unique_ptr<Node>> branches;
    for (const json& b : value) {
      if (!b.is_object()) {
        return Invalid("Only JSON object is allowed in array of $or relationship.");
      }
      TY_ASSIGN_OR_RETURN(auto node, Object(b, true));
      branches.push_back(std::move(node));
    }
    if (branches.size() < 2) {
      return Invalid("There must have at least 2 Objects in $or relationship.");
    }
    return branches;
  }

  Result<std::vector<Matcher>> Leaf(const json& list) {
    if (list.empty()) return Invalid("Empty arrays are not allowed");
    std::vector<Matcher> out;
    for (const json& v : list) {
      TY_RETURN_IF_ERROR(Count(1));
      if (v.is_object()) {
        TY_ASSIGN_OR_RETURN(Matcher m, Expression(v));
        out.push_back(std::move(m));
      } else if (v.is_string() || v.is_number() || v.is_boolean() || v.is_null()) {
        out.push_back(Exact(v));
      } else {
        return Invalid("Match value must be String, number, true, false, or null");
      }
    }
    return out;
  }

  static Matcher Exact(const json& v) {
    Matcher m;
    if (v.is_string()) {
      m.kind = Kind::kString;
      m.text = v.get<std::string>();
      m.ip = ParseIp(m.text);
    } else if (v.is_number()) {
      m.kind = Kind::kNumber;
      m.number = v.get<double>();
      if (v.is_number_integer() && !v.is_number_unsigned()) {
        m.integer = v.get<int64_t>();
      } else if (v.is_number_unsigned() && v.get<uint64_t>() <= INT64_MAX) {
        m.integer = static_cast<int64_t>(v.get<uint64_t>());
      }
      m.micros = Micros(m.number);
    } else {
      m.kind = Kind::kLiteral;
      m.is_null = v.is_null();
      m.boolean = v.is_boolean() && v.get<bool>();
    }
    return m;
  }

  static Matcher Text(Kind kind, std::string text) {
    Matcher m;
    m.kind = kind;
    m.text = std::move(text);
    return m;
  }

  // {"prefix": "x"} or {"prefix": {"equals-ignore-case": "x"}} (likewise suffix).
  static Result<Matcher> Affix(std::string_view name, const json& v, Kind plain, Kind folded) {
    std::string must = std::string(name) + " match pattern must be a string";
    if (v.is_string()) return Text(plain, v.get<std::string>());
    if (!v.is_object()) return Invalid(must);
    if (v.size() != 1) return Invalid("Only one key allowed in match expression");
    auto it = v.begin();
    if (it.key() != "equals-ignore-case") {
      return Invalid("Unsupported " + std::string(name) + " pattern: " + it.key());
    }
    if (!it.value().is_string()) {
      return Invalid("equals-ignore-case match pattern must be a string");
    }
    return Text(folded, LowerAscii(it.value().get<std::string>()));
  }

  Result<Matcher> Expression(const json& expr) {
    if (expr.empty()) return Invalid("Match expression name not found");
    if (expr.size() != 1) return Invalid("Only one key allowed in match expression");
    const std::string& name = expr.begin().key();
    const json& v = expr.begin().value();
    if (name == "prefix") return Affix(name, v, Kind::kPrefix, Kind::kPrefixIgnoreCase);
    if (name == "suffix") return Affix(name, v, Kind::kSuffix, Kind::kSuffixIgnoreCase);
    if (name == "equals-ignore-case") {
      if (!v.is_string()) return Invalid("equals-ignore-case match pattern must be a string");
      return Text(Kind::kEqualsIgnoreCase, LowerAscii(v.get<std::string>()));
    }
    if (name == "wildcard") {
      if (!v.is_string()) return Invalid("wildcard match pattern must be a string");
      return WildcardMatcher(v.get<std::string>());
    }
    if (name == "numeric") {
      if (!v.is_array()) return Invalid("Value of numeric must be an array.");
      return Numeric(v);
    }
    if (name == "exists") {
      if (!v.is_boolean()) return Invalid("exists match pattern must be either true or false.");
      Matcher m;
      m.kind = Kind::kExists;
      m.exists = v.get<bool>();
      return m;
    }
    if (name == "cidr") {
      if (!v.is_string()) return Invalid("prefix match pattern must be a string");
      return Cidr(v.get<std::string>());
    }
    if (name == "anything-but") return AnythingBut(v);
    return Invalid("Unrecognized match type " + name);
  }

  Result<Matcher> WildcardMatcher(const std::string& text) {
    Wildcard w;
    std::string piece;
    size_t stars = 0;
    // Positions count from 1, as event-ruler's do (it sees the operand with its opening quote).
    for (size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c == '*') {
        if (i + 1 < text.size() && text[i + 1] == '*') {
          return Invalid("Consecutive wildcard characters at pos " + std::to_string(i + 1));
        }
        w.pieces.push_back(std::move(piece));
        piece.clear();
        ++stars;
      } else if (c == '\\') {
        if (i + 1 < text.size() && (text[i + 1] == '*' || text[i + 1] == '\\')) {
          piece.push_back(text[++i]);
        } else {
          return Invalid("Invalid escape character at pos " + std::to_string(i + 1));
        }
      } else {
        piece.push_back(c);
      }
    }
    w.pieces.push_back(std::move(piece));
    wildcards_ += stars;
    if (wildcards_ > kMaxPatternWildcards) {
      return Invalid(
          "Rule is too complex - try using fewer wildcard characters or fewer repeating "
          "character sequences after a wildcard character");
    }
    for (const std::string& p : w.pieces) w.failures.push_back(FailureTable(p));
    Matcher m;
    m.kind = Kind::kWildcard;
    m.text = text;
    m.wildcard = std::move(w);
    return m;
  }

  static Result<int64_t> Bound(const json& v, const std::string& op) {
    if (!v.is_number()) return Invalid("Value of " + op + " must be numeric");
    auto micros = Micros(v.get<double>());
    if (!micros) return Invalid("Value of " + op + " must be between -5.0E9 and 5.0E9, inclusive");
    return *micros;
  }

  static Result<Matcher> Numeric(const json& terms) {
    Matcher m;
    m.kind = Kind::kNumeric;
    if (terms.empty() || !terms[0].is_string()) {
      return Invalid("Invalid member in numeric match: " +
                     (terms.empty() ? std::string("]") : terms[0].dump()));
    }
    std::string op = terms[0].get<std::string>();
    if (terms.size() < 2) return Invalid("Value of " + op + " must be numeric");
    if (op == "=") {
      TY_ASSIGN_OR_RETURN(int64_t x, Bound(terms[1], op));
      if (terms.size() != 2) return Invalid("Too many elements in numeric expression");
      m.low = m.high = x;
      return m;
    }
    if (op == "<" || op == "<=") {
      TY_ASSIGN_OR_RETURN(m.high, Bound(terms[1], op));
      m.high_open = op == "<";
      if (terms.size() != 2) return Invalid("Too many elements in numeric expression");
      return m;
    }
    if (op != ">" && op != ">=") return Invalid("Unrecognized numeric range operator: " + op);
    TY_ASSIGN_OR_RETURN(m.low, Bound(terms[1], op));
    m.low_open = op == ">";
    if (terms.size() == 2) return m;
    if (!terms[2].is_string()) return Invalid("Bad value in numeric range: " + terms[2].dump());
    std::string top = terms[2].get<std::string>();
    if (top != "<" && top != "<=") return Invalid("Bad numeric range operator: " + top);
    if (terms.size() < 4) return Invalid("Value of " + top + " must be numeric");
    TY_ASSIGN_OR_RETURN(m.high, Bound(terms[3], top));
    m.high_open = top == "<";
    if (terms.size() != 4) return Invalid("Too many terms in numeric range expression");
    if (*m.low > *m.high || (*m.low == *m.high && (m.low_open || m.high_open))) {
      return Invalid("Bottom must be less than top");
    }
    return m;
  }

  static Result<Matcher> Cidr(const std::string& text) {
    size_t slash = text.find('/');
    if (slash == std::string::npos || text.find('/', slash + 1) != std::string::npos) {
      return Invalid("Malformed CIDR, one '/' required");
    }
    auto ip = ParseIp(std::string_view(text).substr(0, slash));
    if (!ip) return Invalid("Nonstandard IP address: " + text.substr(0, slash));
    std::string bits = text.substr(slash + 1);
    int max_bits = ip->family == AF_INET ? 32 : 128;
    int n = 0;
    if (bits.empty() || bits.size() > 3)
      return Invalid("Malformed CIDR, mask bits must be an integer");
    for (char c : bits) {
      if (c < '0' || c > '9') return Invalid("Malformed CIDR, mask bits must be an integer");
      n = n * 10 + (c - '0');
    }
    if (n > max_bits) {
      return Invalid("Malformed CIDR, mask bits must be between 0 and " + std::to_string(max_bits));
    }
    Matcher m;
    m.kind = Kind::kCidr;
    m.text = text;
    m.ip = ip;
    m.mask_bits = n;
    return m;
  }

  // anything-but: a string, a number, a list of strings or of numbers, or an object of prefix,
  // suffix, equals-ignore-case or wildcard (each a string or a list of strings).
  Result<Matcher> AnythingBut(const json& v) {
    Matcher m;
    m.kind = Kind::kAnythingBut;
    if (v.is_string() || v.is_number()) {
      m.inner.push_back(Exact(v));
      m.inner.back().ip.reset();
      return m;
    }
    if (v.is_array()) {
      bool strings = false, numbers = false;
      for (const json& e : v) {
        TY_RETURN_IF_ERROR(Count(1));
        if (e.is_string()) {
          strings = true;
        } else if (e.is_number()) {
          numbers = true;
        } else {
          return Invalid("Inside anything but list, start|null|boolean is not supported.");
        }
        m.inner.push_back(Exact(e));
        m.inner.back().ip.reset();
      }
      if (strings == numbers) {
        return Invalid(
            "Inside anything but list, either all values are number or string, mixed type is "
            "not supported");
      }
      return m;
    }
    if (!v.is_object()) {
      return Invalid("Value of anything-but must be an array or single string/number value.");
    }
    if (v.empty()) return Invalid("Anything-But expression name not found");
    if (v.size() != 1) return Invalid("Only one key allowed in match expression");
    const std::string& op = v.begin().key();
    const json& operand = v.begin().value();
    std::vector<const json*> items;
    if (operand.is_array() && !operand.empty()) {
      for (const json& e : operand) items.push_back(&e);
    } else {
      items.push_back(&operand);
    }
    for (const json* e : items) {
      TY_RETURN_IF_ERROR(Count(1));
      if (op == "equals-ignore-case") {
        if (!e->is_string()) {
          return Invalid(
              "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not "
              "supported.");
        }
        m.inner.push_back(Text(Kind::kEqualsIgnoreCase, LowerAscii(e->get<std::string>())));
      } else if (op == "prefix" || op == "suffix") {
        if (!e->is_string()) return Invalid("prefix/suffix match pattern must be a string");
        if (e->get_ref<const std::string&>().empty()) {
          return Invalid("Null prefix/suffix not allowed");
        }
        m.inner.push_back(
            Text(op == "prefix" ? Kind::kPrefix : Kind::kSuffix, e->get<std::string>()));
      } else if (op == "wildcard") {
        if (!e->is_string()) return Invalid("wildcard match pattern must be a string");
        TY_ASSIGN_OR_RETURN(Matcher w, WildcardMatcher(e->get<std::string>()));
        m.inner.push_back(std::move(w));
      } else {
        return Invalid("Unsupported anything-but pattern: " + op);
      }
    }
    return m;
  }

  size_t values_ = 0;
  size_t wildcards_ = 0;
};

}  // namespace

Result<EventPattern> EventPattern::Parse(std::string_view text) {
  if (text.size() > kMaxPatternBytes) {
    return Invalid("Event pattern is longer than " + std::to_string(kMaxPatternBytes) +
                   " characters");
  }
  auto doc = ParseJson(text, kMaxPatternDepth);
  if (!doc.ok()) return Invalid(doc.status().message());
  if (!doc->is_object()) return Invalid("Filter is not an object");
  Compiler compiler;
  TY_ASSIGN_OR_RETURN(auto root, compiler.Object(*doc, false));
  return EventPattern(std::move(root));
}

bool EventPattern::Matches(const json& event) const {
  return root_ != nullptr && MatchesNode(*root_, &event, 0);
}

EventPattern::EventPattern(std::unique_ptr<Node> root) : root_(std::move(root)) {}
EventPattern::EventPattern(EventPattern&&) noexcept = default;
EventPattern& EventPattern::operator=(EventPattern&&) noexcept = default;
EventPattern::~EventPattern() = default;

// ---- InputPath and InputTransformer ----

namespace {

constexpr size_t kMaxInputPath = 256;
constexpr size_t kMaxPathsMap = 100;
constexpr size_t kMaxTemplate = 8192;

// One step of a path: a member name or an array index.
struct Step {
  std::string name;
  std::optional<size_t> index;
};

Result<std::vector<Step>> ParsePath(std::string_view path) {
  auto bad = [&path](std::string_view why) {
    return InvalidArgument("InputPath " + std::string(path) + " is not valid: " + std::string(why));
  };
  if (path.size() > kMaxInputPath) return bad("longer than 256 characters");
  if (path.empty() || path[0] != '$') return bad("it must start with $");
  std::vector<Step> steps;
  size_t i = 1;
  while (i < path.size()) {
    if (path[i] == '.') {
      size_t end = i + 1;
      while (end < path.size() && path[end] != '.' && path[end] != '[' && path[end] != ']') ++end;
      if (end == i + 1) return bad("empty member name");
      steps.push_back({std::string(path.substr(i + 1, end - i - 1)), std::nullopt});
      i = end;
    } else if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) return bad("unclosed [");
      std::string_view inside = path.substr(i + 1, close - i - 1);
      if (inside.size() >= 2 && (inside[0] == '\'' || inside[0] == '"') &&
          inside.back() == inside[0]) {
        steps.push_back({std::string(inside.substr(1, inside.size() - 2)), std::nullopt});
      } else {
        if (inside.empty() || inside.size() > 9) return bad("index must be a number");
        size_t n = 0;
        for (char c : inside) {
          if (c < '0' || c > '9') return bad("only member names and array indexes are supported");
          n = n * 10 + static_cast<size_t>(c - '0');
        }
        steps.push_back({"", n});
      }
      i = close + 1;
    } else {
      return bad("expected . or [");
    }
  }
  return steps;
}

// The value `steps` select in `event`, or nullptr.
const json* Select(const json& event, const std::vector<Step>& steps) {
  const json* at = &event;
  for (const Step& s : steps) {
    if (s.index) {
      if (!at->is_array() || *s.index >= at->size()) return nullptr;
      at = &(*at)[*s.index];
    } else {
      if (!at->is_object()) return nullptr;
      auto it = at->find(s.name);
      if (it == at->end()) return nullptr;
      at = &*it;
    }
  }
  return at;
}

bool IsVariableChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

std::string Dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// `v` as text: a string's characters, anything else as JSON.
std::string AsText(const json& v) { return v.is_string() ? v.get<std::string>() : Dump(v); }

// `text` escaped for the inside of a JSON string (without the quotes).
std::string EscapeInString(const std::string& text) {
  std::string quoted = Dump(json(text));
  return quoted.substr(1, quoted.size() - 2);
}

// Valid JSON without the blanks between tokens; members keep the template's order.
std::string Minify(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < text.size()) {
        out.push_back(text[++i]);
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
      out.push_back(c);
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

Status ValidateInputPath(std::string_view path) { return ParsePath(path).status(); }

Result<json> SelectInputPath(const json& event, std::string_view path) {
  TY_ASSIGN_OR_RETURN(auto steps, ParsePath(path));
  const json* v = Select(event, steps);
  return v != nullptr ? *v : json(nullptr);
}

Status ValidateInputTransformer(const json& input_paths_map, std::string_view template_text) {
  if (template_text.empty() || template_text.size() > kMaxTemplate) {
    return InvalidArgument("InputTemplate must be 1 to 8192 characters");
  }
  if (input_paths_map.is_null()) return Status::Ok();
  if (!input_paths_map.is_object()) return InvalidArgument("InputPathsMap must be an object");
  if (input_paths_map.size() > kMaxPathsMap) {
    return InvalidArgument("InputPathsMap has more than 100 entries");
  }
  for (const auto& [name, path] : input_paths_map.items()) {
    if (name.empty() || name.size() > 256) {
      return InvalidArgument("InputPathsMap key must be 1 to 256 characters");
    }
    for (char c : name) {
      if (!IsVariableChar(c) || c == '.') {
        return InvalidArgument("InputPathsMap key " + name +
                               " is not valid: use letters, digits, '_' and '-'");
      }
    }
    if (!path.is_string()) {
      return InvalidArgument("InputPathsMap value for " + name + " must be a string");
    }
    TY_RETURN_IF_ERROR(ValidateInputPath(path.get_ref<const std::string&>()));
  }
  return Status::Ok();
}

Result<std::string> TransformInput(const json& event, const json& input_paths_map,
                                   std::string_view template_text, const InputContext& context) {
  TY_RETURN_IF_ERROR(ValidateInputTransformer(input_paths_map, template_text));

  // What each variable stands for: a value, or nullptr when its path is not in the event.
  struct Variable {
    std::string name;
    const json* value = nullptr;
    bool is_event_json = false;  // <aws.events.event.json>: text of the event inside a string
  };
  std::vector<Variable> vars;
  std::vector<json> owned;  // reserved values that are not part of the event
  owned.reserve(3);
  if (input_paths_map.is_object()) {
    for (const auto& [name, path] : input_paths_map.items()) {
      TY_ASSIGN_OR_RETURN(auto steps, ParsePath(path.get_ref<const std::string&>()));
      vars.push_back({name, Select(event, steps), false});
    }
  }
  vars.push_back({"aws.events.event", &event, false});
  vars.push_back({"aws.events.event.json", &event, true});
  auto add_reserved = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    owned.emplace_back(value);
    vars.push_back({name, &owned.back(), false});
  };
  add_reserved("aws.events.rule-name", context.rule_name);
  add_reserved("aws.events.rule-arn", context.rule_arn);
  add_reserved("aws.events.event.ingestion-time", context.ingestion_time);

  size_t first = template_text.find_first_not_of(" \t\r\n");
  bool json_template =
      first != std::string_view::npos &&
      (template_text[first] == '{' || template_text[first] == '[' || template_text[first] == '"');
  std::string out;
  out.reserve(template_text.size());
  bool in_string = false;
  for (size_t i = 0; i < template_text.size(); ++i) {
    char c = template_text[i];
    if (json_template && in_string && c == '\\' && i + 1 < template_text.size()) {
      out.push_back(c);
      out.push_back(template_text[++i]);
      continue;
    }
    if (c == '"') in_string = !in_string;
    if (c != '<') {
      out.push_back(c);
      continue;
    }
    size_t end = i + 1;
    while (end < template_text.size() && IsVariableChar(template_text[end])) ++end;
    const Variable* var = nullptr;
    if (end < template_text.size() && template_text[end] == '>' && end > i + 1) {
      std::string_view name = template_text.substr(i + 1, end - i - 1);
      for (const Variable& v : vars) {
        if (v.name == name) {
          var = &v;
          break;
        }
      }
    }
    if (var == nullptr) {
      out.push_back(c);
      continue;
    }
    i = end;
    if (!json_template) {
      if (var->value != nullptr) out += AsText(*var->value);
    } else if (in_string) {
      if (var->value != nullptr) {
        out += EscapeInString(var->is_event_json ? Dump(*var->value) : AsText(*var->value));
      }
    } else {
      out += var->value != nullptr ? Dump(*var->value) : "null";
    }
    // A short template can repeat a large event hundreds of times.
    if (out.size() > kMaxTransformedBytes) {
      return ResourceExhausted("The transformed input is larger than " +
                               std::to_string(kMaxTransformedBytes) + " bytes");
    }
  }
  if (json_template && json::accept(out)) return Minify(out);
  return out;
}

}  // namespace ty::events
