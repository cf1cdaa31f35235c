#include "services/sagemaker/search.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "common/clock.h"

namespace ty::services {

using nlohmann::json;

namespace {

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : path) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  parts.push_back(cur);
  return parts;
}

void Walk(const json& node, const std::vector<std::string>& parts, size_t i,
          std::vector<const json*>* out) {
  if (node.is_array()) {
    for (const auto& e : node) Walk(e, parts, i, out);
    return;
  }
  if (i == parts.size()) {
    out->push_back(&node);
    return;
  }
  if (!node.is_object()) return;
  auto it = node.find(parts[i]);
  if (it == node.end()) return;
  Walk(*it, parts, i + 1, out);
}

bool ParseDouble(const std::string& s, double* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end != s.c_str() && *end == '\0';
}

// A property's comparable form: numbers and timestamps (epoch seconds) as
// doubles, everything else as text.
struct Comparable {
  bool numeric = false;
  double number = 0;
  std::string text;
};

Comparable ToComparable(const json& v) {
  Comparable c;
  if (v.is_number()) {
    c.numeric = true;
    c.number = v.get<double>();
  } else if (v.is_string()) {
    c.text = v.get<std::string>();
  } else if (v.is_boolean()) {
    c.text = v.get<bool>() ? "true" : "false";
  } else {
    c.text = v.dump();
  }
  return c;
}

bool ValueAsNumber(const std::string& value, double* out) {
  if (ParseDouble(value, out)) return true;
  TimePoint t;
  if (ParseIso8601(value, &t)) {
    *out = static_cast<double>(ToEpochMillis(t)) / 1000.0;
    return true;
  }
  return false;
}

bool MatchOne(const json& prop, const std::string& op, const std::string& value) {
  Comparable c = ToComparable(prop);
  if (op == "Equals" || op == "NotEquals") {
    bool eq;
    double num;
    if (c.numeric && ValueAsNumber(value, &num)) {
      eq = c.number == num;
    } else {
      eq = c.text == value;
    }
    return op == "Equals" ? eq : !eq;
  }
  if (op == "Contains") return !c.numeric && c.text.find(value) != std::string::npos;
  if (op == "In") {
    std::stringstream ss(value);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (c.text == item) return true;
    }
    return false;
  }
  double num;
  if (!c.numeric || !ValueAsNumber(value, &num)) return false;
  if (op == "GreaterThan") return c.number > num;
  if (op == "GreaterThanOrEqualTo") return c.number >= num;
  if (op == "LessThan") return c.number < num;
  if (op == "LessThanOrEqualTo") return c.number <= num;
  return false;
}

bool MatchFilter(const json& record, const json& filter) {
  std::string name = filter.value("Name", "");
  std::string op = filter.value("Operator", "Equals");
  std::string value = filter.value("Value", "");
  auto props = ResolveProperty(record, name);
  if (op == "Exists") return !props.empty();
  if (op == "NotExists") return props.empty();
  if (op == "NotEquals") {
    // NotEquals holds when no value of the property equals the filter value.
    for (const json* p : props) {
      if (!MatchOne(*p, "NotEquals", value)) return false;
    }
    return true;
  }
  for (const json* p : props) {
    if (MatchOne(*p, op, value)) return true;
  }
  return false;
}

bool MatchNested(const json& record, const json& nested) {
  // All filters must hold on one element of the nested list.
  std::string path = nested.value("NestedPropertyName", "");
  const json* node = &record;
  for (const auto& part : SplitPath(path)) {
    if (!node->is_object() || !node->contains(part)) return false;
    node = &node->at(part);
  }
  if (!node->is_array()) return false;
  std::string prefix = path + ".";
  for (const auto& element : *node) {
    bool all = true;
    for (const auto& f : nested.value("Filters", json::array())) {
      json local = f;
      std::string fname = f.value("Name", "");
      if (fname.rfind(prefix, 0) == 0) local["Name"] = fname.substr(prefix.size());
      if (!MatchFilter(element, local)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

int CountNodes(const json& e, int* contains) {
  int n = 0;
  for (const auto& f : e.value("Filters", json::array())) {
    ++n;
    if (f.value("Operator", "") == "Contains") ++*contains;
  }
  for (const auto& nf : e.value("NestedFilters", json::array())) {
    ++n;
    for (const auto& f : nf.value("Filters", json::array())) {
      if (f.value("Operator", "") == "Contains") ++*contains;
    }
  }
  for (const auto& sub : e.value("SubExpressions", json::array()))
    n += 1 + CountNodes(sub, contains);
  return n;
}

Status CheckFilterList(const json& filters) {
  static const char* const kNumericOps[] = {"GreaterThan", "GreaterThanOrEqualTo", "LessThan",
                                            "LessThanOrEqualTo"};
  for (const auto& f : filters) {
    std::string op = f.value("Operator", "Equals");
    bool needs_value = op != "Exists" && op != "NotExists";
    if (needs_value && !f.contains("Value")) {
      return InvalidArgument("Filter on '" + f.value("Name", "") + "' with operator " + op +
                             " requires a Value.");
    }
    for (const char* nop : kNumericOps) {
      double num;
      if (op == nop && !ValueAsNumber(f.value("Value", ""), &num)) {
        return InvalidArgument("The " + op +
                               " operator is only supported for numeric and "
                               "timestamp values; '" +
                               f.value("Value", "") + "' is text.");
      }
    }
  }
  return Status::Ok();
}

Status CheckFilters(const json& e) {
  TY_RETURN_IF_ERROR(CheckFilterList(e.value("Filters", json::array())));
  for (const auto& nf : e.value("NestedFilters", json::array())) {
    TY_RETURN_IF_ERROR(CheckFilterList(nf.value("Filters", json::array())));
  }
  for (const auto& sub : e.value("SubExpressions", json::array())) {
    TY_RETURN_IF_ERROR(CheckFilters(sub));
  }
  return Status::Ok();
}

}  // namespace

std::vector<const json*> ResolveProperty(const json& record, const std::string& path) {
  std::vector<const json*> out;
  auto dot = path.find('.');
  std::string head = path.substr(0, dot);
  std::string rest = dot == std::string::npos ? "" : path.substr(dot + 1);
  if (head == "Tags" && !rest.empty()) {
    if (record.contains("Tags"))
      for (const auto& t : record.at("Tags")) {
        if (t.value("Key", "") == rest) out.push_back(&t.at("Value"));
      }
    return out;
  }
  if (head == "Metrics" && !rest.empty()) {
    if (record.contains("FinalMetricDataList")) {
      for (const auto& m : record.at("FinalMetricDataList")) {
        if (m.value("MetricName", "") == rest) out.push_back(&m.at("Value"));
      }
    }
    return out;
  }
  if (head == "HyperParameters" && !rest.empty()) {
    // Keys may contain dots: never split them.
    if (record.contains("HyperParameters") && record.at("HyperParameters").contains(rest)) {
      out.push_back(&record.at("HyperParameters").at(rest));
    }
    return out;
  }
  Walk(record, SplitPath(path), 0, &out);
  return out;
}

Status CheckSearchExpression(const json& expression) {
  if (expression.is_null()) return Status::Ok();
  int contains = 0;
  int nodes = CountNodes(expression, &contains);
  if (nodes > 50) return InvalidArgument("A SearchExpression can have at most 50 nodes.");
  if (contains > 1) return InvalidArgument("'CONTAINS' operator usage limit of 1 exceeded.");
  return CheckFilters(expression);
}

bool MatchesSearchExpression(const json& record, const json& e) {
  if (e.is_null() || e.empty()) return true;
  bool is_or = e.value("Operator", "And") == "Or";
  std::vector<bool> results;
  for (const auto& f : e.value("Filters", json::array())) results.push_back(MatchFilter(record, f));
  for (const auto& nf : e.value("NestedFilters", json::array())) {
    results.push_back(MatchNested(record, nf));
  }
  for (const auto& sub : e.value("SubExpressions", json::array())) {
    results.push_back(MatchesSearchExpression(record, sub));
  }
  if (results.empty()) return true;
  if (is_or) return std::any_of(results.begin(), results.end(), [](bool b) { return b; });
  return std::all_of(results.begin(), results.end(), [](bool b) { return b; });
}

void SortSearchRecords(std::vector<json>* records, const std::string& sort_by, bool ascending) {
  auto key = [&](const json& r) -> std::optional<Comparable> {
    auto props = ResolveProperty(r, sort_by);
    if (props.empty()) return std::nullopt;
    return ToComparable(*props.front());
  };
  std::stable_sort(records->begin(), records->end(), [&](const json& a, const json& b) {
    auto ka = key(a), kb = key(b);
    if (!ka || !kb) return ka.has_value() && !kb.has_value();  // missing last
    bool less;
    if (ka->numeric && kb->numeric) {
      if (ka->number == kb->number) return false;
      less = ka->number < kb->number;
    } else {
      if (ka->text == kb->text) return false;
      less = ka->text < kb->text;
    }
    return ascending ? less : !less;
  });
}

}  // namespace ty::services
