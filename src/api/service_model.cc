#include "api/service_model.h"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include <nlohmann/json.hpp>

namespace ty::api {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<std::string_view, ShapeType>, 11> kTypeNames = {{
    {"structure", ShapeType::kStructure},
    {"list", ShapeType::kList},
    {"map", ShapeType::kMap},
    {"string", ShapeType::kString},
    {"integer", ShapeType::kInteger},
    {"long", ShapeType::kLong},
    {"float", ShapeType::kFloat},
    {"double", ShapeType::kDouble},
    {"boolean", ShapeType::kBoolean},
    {"timestamp", ShapeType::kTimestamp},
    {"blob", ShapeType::kBlob},
}};

std::optional<ShapeType> ParseType(const json& j) {
  if (!j.is_string()) return std::nullopt;
  const auto& name = j.get_ref<const std::string&>();
  for (const auto& [text, type] : kTypeNames) {
    if (text == name) return type;
  }
  return std::nullopt;
}

Result<std::optional<int64_t>> Bound(const json& shape, const char* key, const std::string& name) {
  auto it = shape.find(key);
  if (it == shape.end()) return std::optional<int64_t>();
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  // Fractional bounds (Lambda's ExecutionEnvironmentMemoryGiBPerVCpu: min 1.0 as a float, or
  // 0.5) are widened to the nearest integers outside them: never refuse a valid value.
  if (it->is_number_float() && std::isfinite(it->get<double>()) &&
      std::abs(it->get<double>()) < 9e18) {
    double d = it->get<double>();
    return std::optional<int64_t>(
        static_cast<int64_t>(std::string_view(key) == "min" ? std::floor(d) : std::ceil(d)));
  }
  return InvalidArgument("shape " + name + ": '" + key + "' is not an integer");
}

// Reads {"shape": "<name>"} from parent[key].
Result<std::string> ShapeRef(const json& parent, const char* key, const std::string& owner) {
  auto it = parent.find(key);
  if (it == parent.end() || !it->is_object()) {
    return InvalidArgument("shape " + owner + ": missing '" + key + "'");
  }
  auto ref = it->find("shape");
  if (ref == it->end() || !ref->is_string()) {
    return InvalidArgument("shape " + owner + ": '" + key + "' has no shape name");
  }
  return ref->get<std::string>();
}

constexpr std::string_view kSurrogatePairRange = R"(\uD800\uDC00-\uDBFF\uDFFF)";
constexpr int kRe2MaxRepeat = 1000;

// Rewrites the Java regex features SageMaker's patterns use into RE2 syntax: \uXXXX escapes
// (including the UTF-16 surrogate-pair range, meaning all supplementary code points),
// \p{Alnum}, repetition bounds above RE2's limit of 1000 (loosened to {m,}; the shape's max
// length still applies) and a leading length-only lookahead "(?=.{a,b}$)" (dropped for the same
// reason). Lookbehinds have no RE2 equivalent and stay uncompilable.
std::string JavaPatternToRe2(std::string_view p) {
  static const RE2 kLengthLookahead(R"(\(\?=\.\{\d+,\d+\}\$\))");
  re2::StringPiece rest(p.data(), p.size());
  RE2::Consume(&rest, kLengthLookahead);
  p = std::string_view(rest.data(), rest.size());

  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      if (p.substr(i, kSurrogatePairRange.size()) == kSurrogatePairRange) {
        out += R"(\x{10000}-\x{10FFFF})";
        i += kSurrogatePairRange.size() - 1;
      } else if (p[i + 1] == 'u' && i + 5 < p.size()) {
        out += "\\x{" + std::string(p.substr(i + 2, 4)) + "}";
        i += 5;
      } else if (p.substr(i, 9) == R"(\p{Alnum})") {
        out += in_class ? "0-9A-Za-z" : "[0-9A-Za-z]";
        i += 8;
      } else {
        out += c;
        out += p[++i];
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];  // literal ']' first in a class
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    if (c == '{' && !in_class) {
      size_t close = p.find('}', i);
      size_t comma = p.find(',', i);
      if (close != std::string_view::npos && comma != std::string_view::npos && comma < close) {
        std::string_view upper = p.substr(comma + 1, close - comma - 1);
        if (!upper.empty() && upper.size() <= 9 &&
            upper.find_first_not_of("0123456789") == std::string_view::npos &&
            std::stoi(std::string(upper)) > kRe2MaxRepeat) {
          out += p.substr(i, comma - i + 1);
          out += '}';
          i = close;
          continue;
        }
      }
    }
    out += c;
  }
  return out;
}

}  // namespace

const char* ShapeTypeName(ShapeType type) {
  for (const auto& [text, t] : kTypeNames) {
    if (t == type) return text.data();
  }
  return "unknown";
}

const Member* Shape::FindMember(std::string_view member_name) const {
  for (const Member& m : members) {
    if (m.name == member_name) return &m;
  }
  return nullptr;
}

bool Shape::MatchesPattern(std::string_view value) const {
  return regex == nullptr || RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *regex);
}

Result<std::shared_ptr<const ServiceModel>> ServiceModel::Load(std::string_view json_text) {
  json root = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) {
    return InvalidArgument("service model is not a JSON object");
  }
  auto shapes_it = root.find("shapes");
  auto ops_it = root.find("operations");
  if (shapes_it == root.end() || !shapes_it->is_object() || ops_it == root.end() ||
      !ops_it->is_object()) {
    return InvalidArgument("service model lacks 'shapes' or 'operations'");
  }

  std::shared_ptr<ServiceModel> model(new ServiceModel());  // private constructor
  auto& shapes = model->shapes_;
  if (auto md = root.find("metadata"); md != root.end() && md->is_object()) {
    ServiceMetadata& m = model->metadata_;
    auto str = [&md](const char* key) {
      auto it = md->find(key);
      return it != md->end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    m.api_version = str("apiVersion");
    m.endpoint_prefix = str("endpointPrefix");
    m.signing_name = str("signingName");
    m.target_prefix = str("targetPrefix");
    m.json_version = str("jsonVersion");
    m.protocol = str("protocol");
    m.service_id = str("serviceId");
    m.xml_namespace = str("xmlNamespace");
    m.aws_query_compatible = md->contains("awsQueryCompatible");
    if (auto ps = md->find("protocols"); ps != md->end() && ps->is_array()) {
      for (const auto& p : *ps) {
        if (p.is_string()) m.protocols.push_back(p.get<std::string>());
      }
    }
    if (m.protocols.empty() && !m.protocol.empty()) m.protocols.push_back(m.protocol);
  }
  auto text = [](const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };

  // Pass 1: create every shape so that pass 2 can resolve references to stable pointers.
  for (const auto& [name, j] : shapes_it->items()) {
    if (!j.is_object()) return InvalidArgument("shape " + name + " is not an object");
    auto type = ParseType(j.value("type", json()));
    if (!type) return InvalidArgument("shape " + name + " has an unknown type");
    Shape& shape = shapes[name];
    shape.name = name;
    shape.type = *type;
  }

  auto resolve = [&shapes](const std::string& target,
                           const std::string& owner) -> Result<const Shape*> {
    auto it = shapes.find(target);
    if (it == shapes.end()) {
      return InvalidArgument("shape " + owner + " refers to unknown shape " + target);
    }
    return &it->second;
  };

  for (const auto& [name, j] : shapes_it->items()) {
    Shape& shape = shapes[name];
    TY_ASSIGN_OR_RETURN(shape.min, Bound(j, "min", name));
    TY_ASSIGN_OR_RETURN(shape.max, Bound(j, "max", name));
    shape.is_union = j.value("union", false);
    shape.payload = text(j, "payload");
    shape.flattened = j.value("flattened", false);
    shape.timestamp_format = text(j, "timestampFormat");
    shape.exception = j.value("exception", false);
    if (auto e = j.find("error"); e != j.end() && e->is_object()) {
      shape.error_code = text(*e, "code");
      shape.error_http_status = e->value("httpStatusCode", 0);
      // Without senderFault, a 5xx code or "fault" marks the server's fault (CloudWatch's
      // InternalServiceFault has only httpStatusCode 500).
      shape.sender_fault =
          e->value("senderFault", !j.value("fault", false) && shape.error_http_status < 500);
    } else if (j.value("fault", false)) {
      shape.sender_fault = false;
    }
    if (auto e = j.find("enum"); e != j.end() && e->is_array()) {
      for (const auto& v : *e) {
        if (v.is_string()) shape.enum_values.push_back(v.get<std::string>());
      }
    }
    if (auto p = j.find("pattern"); p != j.end() && p->is_string()) {
      shape.pattern = p->get<std::string>();
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_shared<const RE2>(shape.pattern, options);
      if (!re->ok()) re = std::make_shared<const RE2>(JavaPatternToRe2(shape.pattern), options);
      if (re->ok()) {
        shape.regex = std::move(re);
      } else {
        model->uncompilable_patterns_.push_back(name);
      }
    }
    switch (shape.type) {
      case ShapeType::kStructure: {
        auto members = j.find("members");
        if (members == j.end() || !members->is_object()) break;
        for (const auto& [member_name, m] : members->items()) {
          Member member;
          member.name = member_name;
          auto ref = m.find("shape");
          if (ref == m.end() || !ref->is_string()) {
            return InvalidArgument("shape " + name + ": member " + member_name + " has no shape");
          }
          member.shape_name = ref->get<std::string>();
          TY_ASSIGN_OR_RETURN(member.shape, resolve(member.shape_name, name));
          member.location = text(m, "location");
          member.location_name = text(m, "locationName");
          member.query_name = text(m, "queryName");
          member.timestamp_format = text(m, "timestampFormat");
          member.flattened = m.value("flattened", false);
          member.jsonvalue = m.value("jsonvalue", false);
          if (!member.location_name.empty() && member.location_name != member.name) {
            model->has_wire_names_ = true;
          }
          shape.members.push_back(std::move(member));
        }
        if (auto req = j.find("required"); req != j.end() && req->is_array()) {
          for (const auto& r : *req) {
            if (!r.is_string()) continue;
            auto it = std::find_if(shape.members.begin(), shape.members.end(),
                                   [&r](const Member& m) { return m.name == r; });
            if (it == shape.members.end()) {
              return InvalidArgument("shape " + name + " requires unknown member " +
                                     r.get<std::string>());
            }
            it->required = true;
          }
        }
        break;
      }
      case ShapeType::kList: {
        TY_ASSIGN_OR_RETURN(std::string member, ShapeRef(j, "member", name));
        TY_ASSIGN_OR_RETURN(shape.list_member, resolve(member, name));
        shape.list_member_name = text(j["member"], "locationName");
        break;
      }
      case ShapeType::kMap: {
        TY_ASSIGN_OR_RETURN(std::string key, ShapeRef(j, "key", name));
        TY_ASSIGN_OR_RETURN(std::string value, ShapeRef(j, "value", name));
        TY_ASSIGN_OR_RETURN(shape.map_key, resolve(key, name));
        TY_ASSIGN_OR_RETURN(shape.map_value, resolve(value, name));
        shape.map_key_name = text(j["key"], "locationName");
        shape.map_value_name = text(j["value"], "locationName");
        break;
      }
      default:
        break;
    }
  }

  for (const auto& [name, j] : ops_it->items()) {
    if (!j.is_object()) return InvalidArgument("operation " + name + " is not an object");
    Operation op;
    op.name = name;
    if (j.contains("input")) {
      TY_ASSIGN_OR_RETURN(std::string input, ShapeRef(j, "input", name));
      TY_ASSIGN_OR_RETURN(op.input, resolve(input, name));
    }
    if (j.contains("output")) {
      TY_ASSIGN_OR_RETURN(std::string output, ShapeRef(j, "output", name));
      TY_ASSIGN_OR_RETURN(op.output, resolve(output, name));
      op.result_wrapper = text(j["output"], "resultWrapper");
    }
    if (auto http = j.find("http"); http != j.end() && http->is_object()) {
      if (auto m = text(*http, "method"); !m.empty()) op.http_method = m;
      if (auto u = text(*http, "requestUri"); !u.empty()) op.request_uri = u;
      op.response_code = http->value("responseCode", 200);
    }
    if (auto errors = j.find("errors"); errors != j.end() && errors->is_array()) {
      for (const auto& e : *errors) {
        if (e.is_object() && e.contains("shape") && e["shape"].is_string()) {
          op.errors.push_back(e["shape"].get<std::string>());
        }
      }
    }
    model->operations_.emplace(name, std::move(op));
  }
  std::sort(model->uncompilable_patterns_.begin(), model->uncompilable_patterns_.end());
  return std::shared_ptr<const ServiceModel>(std::move(model));
}

std::shared_ptr<const ServiceModel> ServiceModel::Embedded() { return Embedded("sagemaker"); }

std::shared_ptr<const ServiceModel> ServiceModel::Embedded(std::string_view service) {
  static const auto* const kModels = [] {
    auto* models = new std::map<std::string, std::shared_ptr<const ServiceModel>, std::less<>>();
    for (const char* name :
         {"sagemaker", "logs", "cloudwatch", "sns", "events", "trainyard", "lambda"}) {
      auto loaded = Load(EmbeddedModelText(name));
      (*models)[name] = loaded.ok() ? std::move(loaded).value() : nullptr;
    }
    return models;
  }();
  auto it = kModels->find(service);
  return it == kModels->end() ? nullptr : it->second;
}

bool ServiceMetadata::Speaks(std::string_view p) const {
  return std::find(protocols.begin(), protocols.end(), p) != protocols.end();
}

const Operation* ServiceModel::FindOperation(std::string_view name) const {
  auto it = operations_.find(name);
  return it == operations_.end() ? nullptr : &it->second;
}

const Shape* ServiceModel::FindShape(std::string_view name) const {
  auto it = shapes_.find(name);
  return it == shapes_.end() ? nullptr : &it->second;
}

}  // namespace ty::api
