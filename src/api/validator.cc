#include "api/validator.h"

#include <re2/re2.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <string_view>

namespace ty::api {
namespace {

using nlohmann::json;

constexpr char kUnknownMember[] = "Member is not recognized by the SageMaker API model";

std::string JoinPath(const std::string& path, const std::string& leaf) {
  return path.empty() ? leaf : path + "." + leaf;
}

std::string Quote(const json& value) { return "'" + RenderValue(value) + "'"; }

// Strings count Unicode code points, as AWS (Java String.codePointCount) does; nlohmann's
// parser has already rejected ill-formed UTF-8.
int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

int64_t Base64DecodedLength(std::string_view s) {
  int64_t padding = 0;
  for (size_t i = s.size(); i > 0 && s[i - 1] == '='; --i) ++padding;
  return static_cast<int64_t>(s.size() / 4 * 3) - padding;
}

const char* JsonTypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::object:
      return "structure or map";
    case json::value_t::array:
      return "list";
    case json::value_t::string:
      return "string";
    case json::value_t::boolean:
      return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "integer number";
    case json::value_t::number_float:
      return "decimal number";
    default:
      return "null";
  }
}

bool IsIsoTimestamp(const std::string& s) {
  static const RE2 kIso(
      R"(\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?)");
  return RE2::FullMatch(s, kIso);
}

bool TypeMatches(const Shape& shape, const json& v) {
  switch (shape.type) {
    case ShapeType::kStructure:
    case ShapeType::kMap:
      return v.is_object();
    case ShapeType::kList:
      return v.is_array();
    case ShapeType::kString:
    case ShapeType::kBlob:
      return v.is_string();
    case ShapeType::kBoolean:
      return v.is_boolean();
    case ShapeType::kInteger:
      if (v.is_number_unsigned()) return v.get<uint64_t>() <= std::numeric_limits<int32_t>::max();
      if (v.is_number_integer()) {
        int64_t i = v.get<int64_t>();
        return i >= std::numeric_limits<int32_t>::min() && i <= std::numeric_limits<int32_t>::max();
      }
      return false;
    case ShapeType::kLong:
      if (v.is_number_unsigned()) return v.get<uint64_t>() <= std::numeric_limits<int64_t>::max();
      return v.is_number_integer();
    case ShapeType::kFloat:
    case ShapeType::kDouble:
      // Smithy sends non-finite values as strings.
      if (v.is_string()) {
        const auto& s = v.get_ref<const std::string&>();
        return s == "NaN" || s == "Infinity" || s == "-Infinity";
      }
      return v.is_number();
    case ShapeType::kTimestamp:
      return v.is_number() || (v.is_string() && IsIsoTimestamp(v.get_ref<const std::string&>()));
  }
  return false;
}

ApiError SerializationError(const Shape& shape, const json& v, const std::string& path) {
  std::string where = path.empty() ? "the request body" : "'" + path + "'";
  std::string expected = ShapeTypeName(shape.type);
  if (shape.type == ShapeType::kTimestamp) expected += " (epoch seconds or ISO-8601 string)";
  if (shape.type == ShapeType::kInteger || shape.type == ShapeType::kLong) {
    expected +=
        " (" + std::string(shape.type == ShapeType::kInteger ? "32" : "64") + "-bit whole number)";
  }
  return ApiError{"SerializationException",
                  "Cannot deserialize " + std::string(JsonTypeName(v)) + " at " + where +
                      ": expected " + expected,
                  400};
}

bool IsNumeric(ShapeType t) {
  return t == ShapeType::kInteger || t == ShapeType::kLong || t == ShapeType::kFloat ||
         t == ShapeType::kDouble;
}

std::string MaxText(const Shape& s) {
  return std::string(IsNumeric(s.type) ? "Member must have value less than or equal to "
                                       : "Member must have length less than or equal to ") +
         std::to_string(*s.max);
}
std::string MinText(const Shape& s) {
  return std::string(IsNumeric(s.type) ? "Member must have value greater than or equal to "
                                       : "Member must have length greater than or equal to ") +
         std::to_string(*s.min);
}
std::string PatternText(const Shape& s) {
  return "Member must satisfy regular expression pattern: " + s.pattern;
}
std::string EnumText(const Shape& s) {
  std::string text = "Member must satisfy enum value set: [";
  for (size_t i = 0; i < s.enum_values.size(); ++i) {
    if (i > 0) text += ", ";
    text += s.enum_values[i];
  }
  return text + "]";
}

// Every constraint of a scalar shape, in the order AWS lists them
// ("[Member must have length less than or equal to 2500, ... greater than ..., ... pattern: .*]").
std::vector<std::string> AllConstraints(const Shape& s) {
  std::vector<std::string> out;
  if (s.max) out.push_back(MaxText(s));
  if (s.min) out.push_back(MinText(s));
  if (!s.pattern.empty()) out.push_back(PatternText(s));
  if (!s.enum_values.empty()) out.push_back(EnumText(s));
  return out;
}

// The constraints a well-typed scalar value breaks.
std::vector<std::string> ScalarFailures(const Shape& s, const json& v) {
  std::vector<std::string> out;
  if (IsNumeric(s.type)) {
    if (!v.is_number()) return out;  // NaN/Infinity strings: no comparable value
    double d = v.get<double>();
    bool integral = v.is_number_integer();
    auto above = [&](int64_t bound) {
      if (!integral) return d > static_cast<double>(bound);
      return v.is_number_unsigned()
                 ? (bound < 0 || v.get<uint64_t>() > static_cast<uint64_t>(bound))
                 : v.get<int64_t>() > bound;
    };
    auto below = [&](int64_t bound) {
      if (!integral) return d < static_cast<double>(bound);
      return v.is_number_unsigned()
                 ? (bound >= 0 && v.get<uint64_t>() < static_cast<uint64_t>(bound))
                 : v.get<int64_t>() < bound;
    };
    if (s.max && above(*s.max)) out.push_back(MaxText(s));
    if (s.min && below(*s.min)) out.push_back(MinText(s));
    return out;
  }
  if (s.type != ShapeType::kString && s.type != ShapeType::kBlob) return out;
  const auto& str = v.get_ref<const std::string&>();
  int64_t length = s.type == ShapeType::kBlob ? Base64DecodedLength(str) : CodePoints(str);
  if (s.max && length > *s.max) out.push_back(MaxText(s));
  if (s.min && length < *s.min) out.push_back(MinText(s));
  if (s.type == ShapeType::kString) {
    if (!s.MatchesPattern(str)) out.push_back(PatternText(s));
    if (!s.enum_values.empty()) {
      bool found = false;
      for (const auto& e : s.enum_values) found = found || e == str;
      if (!found) out.push_back(EnumText(s));
    }
  }
  return out;
}

std::string Bracketed(const std::vector<std::string>& items) {
  std::string text = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) text += ", ";
    text += items[i];
  }
  return text + "]";
}

void CheckCount(const Shape& s, const json& v, const std::string& path,
                std::vector<Violation>& out) {
  auto count = static_cast<int64_t>(v.size());
  if (s.max && count > *s.max) out.push_back({Quote(v), path, MaxText(s)});
  if (s.min && count < *s.min) out.push_back({Quote(v), path, MinText(s)});
}

// Checks scalar elements (list members, map keys or values) as AWS does: one violation for the
// whole collection, "<prefix> must satisfy constraint: [<all constraints of the element>]".
// Returns a SerializationException for an element of the wrong type.
std::optional<ApiError> CheckScalarElements(const Shape& element, const json& collection, bool keys,
                                            const std::string& path, const std::string& prefix,
                                            std::vector<Violation>& out) {
  bool failed = false;
  for (const auto& [key, item] : collection.items()) {
    json key_value = key;
    const json& v = keys ? key_value : item;
    if (v.is_null()) {
      failed = true;  // AWS rejects null elements ("Member must not be null")
      continue;
    }
    if (!TypeMatches(element, v)) {
      return SerializationError(element, v, collection.is_array() ? path + "." + key : path);
    }
    failed = failed || !ScalarFailures(element, v).empty();
  }
  if (failed) {
    out.push_back({Quote(collection), path,
                   prefix + " must satisfy constraint: " + Bracketed(AllConstraints(element))});
  }
  return std::nullopt;
}

}  // namespace

std::string Violation::ToString() const {
  return "Value " + value + " at '" + path + "' failed to satisfy constraint: " + constraint;
}

std::string LowerCamel(const std::string& name) {
  std::string out = name;
  if (!out.empty()) out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  return out;
}

std::string RenderValue(const json& value) {
  switch (value.type()) {
    case json::value_t::string:
      return value.get<std::string>();
    case json::value_t::null:
      return "null";
    case json::value_t::array: {
      std::string text = "[";
      bool first = true;
      for (const auto& item : value) {
        if (!first) text += ", ";
        first = false;
        text += RenderValue(item);
      }
      return text + "]";
    }
    case json::value_t::object: {
      std::string text = "{";
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        if (!first) text += ", ";
        first = false;
        text += k + "=" + RenderValue(v);
      }
      return text + "}";
    }
    default:
      return value.dump();
  }
}

std::optional<ApiError> ValidateValue(const Shape& shape, const json& value,
                                      const std::string& path, std::vector<Violation>& out) {
  if (value.is_null()) return std::nullopt;  // absence is the parent's concern
  if (!TypeMatches(shape, value)) return SerializationError(shape, value, path);

  switch (shape.type) {
    case ShapeType::kStructure: {
      for (const Member& m : shape.members) {
        std::string member_path = JoinPath(path, LowerCamel(m.name));
        auto it = value.find(m.name);
        if (it == value.end() || it->is_null()) {
          if (m.required) out.push_back({"null", member_path, "Member must not be null"});
          continue;
        }
        if (auto err = ValidateValue(*m.shape, *it, member_path, out)) return err;
      }
      // AWS drops unknown members silently; Trainyard reports them so typos are not lost.
      for (const auto& [key, v] : value.items()) {
        if (shape.FindMember(key) == nullptr) {
          out.push_back({Quote(v), JoinPath(path, LowerCamel(key)), kUnknownMember});
        }
      }
      return std::nullopt;
    }
    case ShapeType::kList: {
      CheckCount(shape, value, path, out);
      const Shape& element = *shape.list_member;
      if (element.IsScalar()) {
        return CheckScalarElements(element, value, /*keys=*/false, path, "Member", out);
      }
      for (size_t i = 0; i < value.size(); ++i) {
        std::string item_path = path + "." + std::to_string(i + 1) + ".member";
        if (value[i].is_null()) {
          out.push_back({"null", item_path, "Member must not be null"});
          continue;
        }
        if (auto err = ValidateValue(element, value[i], item_path, out)) return err;
      }
      return std::nullopt;
    }
    case ShapeType::kMap: {
      CheckCount(shape, value, path, out);
      if (auto err =
              CheckScalarElements(*shape.map_key, value, /*keys=*/true, path, "Map keys", out)) {
        return err;
      }
      const Shape& element = *shape.map_value;
      if (element.IsScalar()) {
        return CheckScalarElements(element, value, /*keys=*/false, path, "Map value", out);
      }
      for (const auto& [key, v] : value.items()) {
        if (auto err = ValidateValue(element, v, path + "." + key, out)) return err;
      }
      return std::nullopt;
    }
    default:
      for (std::string& constraint : ScalarFailures(shape, value)) {
        out.push_back({Quote(value), path, std::move(constraint)});
      }
      return std::nullopt;
  }
}

std::string FormatValidationMessage(const std::vector<Violation>& violations) {
  std::string text =
      std::to_string(violations.size()) +
      (violations.size() == 1 ? " validation error detected: " : " validation errors detected: ");
  for (size_t i = 0; i < violations.size() && i < kMaxReportedViolations; ++i) {
    if (i > 0) text += "; ";
    text += violations[i].ToString();
  }
  return text;
}

ApiError ValidationError(const std::vector<Violation>& violations) {
  return ApiError{"ValidationException", FormatValidationMessage(violations), 400};
}

std::optional<ApiError> ValidateRequest(const ServiceModel& model, const std::string& operation,
                                        const json& body) {
  const Operation* op = model.FindOperation(operation);
  if (op == nullptr) {
    return ApiError{"UnknownOperationException", "Unknown operation: " + operation, 400};
  }
  static const Shape kNoInput = [] {
    Shape s;
    s.name = "NoInput";
    s.type = ShapeType::kStructure;
    return s;
  }();
  const Shape& input = op->input != nullptr ? *op->input : kNoInput;
  const json empty = json::object();
  const json& request = body.is_null() || body.is_discarded() ? empty : body;

  std::vector<Violation> violations;
  if (auto err = ValidateValue(input, request, "", violations)) return err;
  if (!violations.empty()) return ValidationError(violations);
  return std::nullopt;
}

}  // namespace ty::api
