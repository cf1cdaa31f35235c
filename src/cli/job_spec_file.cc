#include "cli/job_spec_file.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "server/bounded_yaml.h"

namespace ty::cli {

using nlohmann::json;

namespace {

// A job spec is a few hundred values; aliases can make a small document expand to billions
// ("a: &a [x, x]", "b: &b [*a, *a]", ...), so the conversion counts what it builds.
constexpr size_t kMaxYamlValues = 100000;

// LoadYaml bounds the depth of the text, but an alias may point at a node that contains it
// ("a: &a {b: *a}"): the node graph then has a cycle, and only a bound on the depth of the
// conversion stops the recursion. Found by fuzz_job_spec (a stack overflow).
constexpr int kMaxYamlDepth = 64;

struct TooManyValues {};
struct TooDeep {};

json YamlToJson(const YAML::Node& node, bool strings_only, size_t* budget, int depth = 0) {
  if (*budget == 0) throw TooManyValues{};
  if (depth > kMaxYamlDepth) throw TooDeep{};
  --*budget;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      // Plain (unquoted) scalars carry YAML's types; quoted ones are strings.
      if (strings_only || node.Tag() != "?") return s;
      if (s == "true" || s == "True") return true;
      if (s == "false" || s == "False") return false;
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (...) {
      }
      return s;
    }
    case YAML::NodeType::Sequence: {
      json arr = json::array();
      for (const auto& e : node) arr.push_back(YamlToJson(e, strings_only, budget, depth + 1));
      return arr;
    }
    case YAML::NodeType::Map: {
      json obj = json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.as<std::string>();
        bool strings = strings_only || key == "HyperParameters" || key == "Environment" ||
                       key == "Value" || key == "Key";
        obj[key] = YamlToJson(kv.second, strings, budget, depth + 1);
      }
      return obj;
    }
  }
  return nullptr;
}

void ResolveAll(json* node, const std::string& base) {
  if (node->is_string()) {
    *node = ResolveFileUri(node->get<std::string>(), base);
  } else if (node->is_array() || node->is_object()) {
    for (auto& child : *node) ResolveAll(&child, base);
  }
}

}  // namespace

std::string ResolveFileUri(const std::string& value, const std::string& base_dir) {
  // The SageMaker SDK JSON-encodes hyperparameter values: "\"file://./code\"".
  if (value.size() > 2 && value.front() == '"' && value.back() == '"') {
    auto decoded = ParseJson(value);
    if (decoded.ok() && decoded->is_string()) {
      std::string inner = decoded->get<std::string>();
      std::string resolved = ResolveFileUri(inner, base_dir);
      return resolved == inner ? value : json(resolved).dump();
    }
    return value;
  }
  const std::string prefix = "file://";
  if (value.rfind(prefix, 0) != 0) return value;
  std::string rest = value.substr(prefix.size());
  if (!rest.empty() && rest[0] == '/') return value;  // already absolute
  std::string abs = Absolutize(rest.empty() ? "." : rest, base_dir);
  // Keep a trailing slash: it can matter for prefixes.
  if (!rest.empty() && rest.back() == '/' && abs.back() != '/') abs += "/";
  return prefix + abs;
}

std::string UniqueJobName(const std::string& base) {
  auto now = std::chrono::system_clock::now();
  std::string stamp = FormatHuman(now);  // "YYYY-MM-DD HH:MM:SS"
  for (char& c : stamp) {
    if (c == ' ' || c == ':') c = '-';
  }
  char ms[8];
  std::snprintf(ms, sizeof(ms), "-%03d", static_cast<int>(ToEpochMillis(now) % 1000));
  // Keep only what the TrainingJobName pattern allows, starting with an alnum.
  std::string b;
  for (char c : base) {
    bool alnum = std::isalnum(static_cast<unsigned char>(c)) != 0;
    if (alnum || (!b.empty() && c == '-'))
      b += alnum ? c : '-';
    else if (!b.empty())
      b += '-';
  }
  if (b.empty()) b = "job";
  b = b.substr(0, 63 - stamp.size() - 5);
  return b + "-" + stamp + ms;
}

Result<json> ParseJobSpec(std::string_view text, bool is_json, const std::string& where,
                          const std::string& base_dir) {
  json spec;
  if (is_json) {
    auto parsed = ParseJson(text);
    if (!parsed.ok()) return InvalidArgument(where + " is " + parsed.status().message());
    spec = std::move(parsed).value();
  } else {
    auto node = server::LoadYaml(text);
    if (!node.ok()) return node.status().WithPrefix(where);
    size_t budget = kMaxYamlValues;
    try {
      spec = YamlToJson(*node, false, &budget);
    } catch (const YAML::Exception& e) {
      return InvalidArgument(where + ": " + e.what());
    } catch (const TooManyValues&) {
      return InvalidArgument(where + ": the YAML expands to more than " +
                             std::to_string(kMaxYamlValues) + " values (through aliases?)");
    } catch (const TooDeep&) {
      return InvalidArgument(where + ": the YAML nests deeper than " +
                             std::to_string(kMaxYamlDepth) + " levels (a recursive alias?)");
    }
    // yaml-cpp passes scalar bytes through: a file that is not UTF-8 yields strings the JSON
    // serialiser throws on when the request is sent. Found by fuzz_job_spec.
    try {
      (void)spec.dump();
    } catch (const json::type_error& e) {
      return InvalidArgument(where + " is not valid UTF-8: " + e.what());
    }
  }
  if (!spec.is_object()) return InvalidArgument(where + " must hold a mapping of request members");
  ResolveAll(&spec, base_dir);
  return spec;
}

Result<json> LoadJobSpec(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto dir = RealPath(std::filesystem::path(path).parent_path().empty()
                          ? "."
                          : std::filesystem::path(path).parent_path().string());
  if (!dir.ok()) return dir.status();
  return ParseJobSpec(*text, std::filesystem::path(path).extension() == ".json", path, *dir);
}

}  // namespace ty::cli
