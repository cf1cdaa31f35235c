#include "api/query_codec.h"

#include <cmath>
#include <map>

#include "api/json_codec.h"
#include "api/wire_format.h"

namespace ty::api {

using nlohmann::json;

namespace {

// Deeper keys than any model needs ("A.member.1.B.entry.2.value.C...") are refused rather than
// followed through a recursive shape.
constexpr int kMaxDepth = 32;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool HasActionParam(std::string_view query) {
  return StartsWith(query, "Action=") || query.find("&Action=") != std::string_view::npos;
}

class FromParams {
 public:
  explicit FromParams(const std::vector<std::pair<std::string, std::string>>& params) {
    // The first occurrence of a key wins.
    for (const auto& [k, v] : params) params_.emplace(k, v);
  }

  std::string Convert(const Shape& shape, json* out) {
    *out = json::object();
    if (!Structure("", shape, out, 0)) return error_;
    return "";
  }

 private:
  bool Fail(std::string what) {
    error_ = std::move(what);
    return false;
  }

  const std::string* Exact(const std::string& key) const {
    auto it = params_.find(key);
    return it == params_.end() ? nullptr : &it->second;
  }
  bool HasChildren(const std::string& prefix) const {
    std::string p = prefix + ".";
    auto it = params_.lower_bound(p);
    return it != params_.end() && StartsWith(it->first, p);
  }
  bool Has(const std::string& prefix) const {
    return Exact(prefix) != nullptr || HasChildren(prefix);
  }

  static std::string Join(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
  }

  // Fills `out` (an object) with the members present under `prefix`.
  bool Structure(const std::string& prefix, const Shape& shape, json* out, int depth) {
    if (depth > kMaxDepth) return Fail("parameter '" + prefix + "' is nested too deeply");
    for (const Member& m : shape.members) {
      const std::string& wire = !m.location_name.empty() ? m.location_name : m.name;
      json v;
      bool present = false;
      if (!Value(Join(prefix, wire), &m, *m.shape, &v, &present, depth + 1)) return false;
      if (present) (*out)[m.name] = std::move(v);
    }
    return true;
  }

  bool Value(const std::string& key, const Member* member, const Shape& shape, json* out,
             bool* present, int depth) {
    *present = false;
    if (depth > kMaxDepth) return Fail("parameter '" + key + "' is nested too deeply");
    switch (shape.type) {
      case ShapeType::kStructure: {
        if (!HasChildren(key)) return true;
        *out = json::object();
        *present = true;
        return Structure(key, shape, out, depth);
      }
      case ShapeType::kList:
        return List(key, member, shape, out, present, depth);
      case ShapeType::kMap:
        return Map(key, member, shape, out, present, depth);
      default:
        break;
    }
    const std::string* text = Exact(key);
    if (text == nullptr) return true;
    *present = true;
    return Scalar(key, *text, member, shape, out);
  }

  bool List(const std::string& key, const Member* member, const Shape& shape, json* out,
            bool* present, int depth) {
    bool flattened = shape.flattened || (member != nullptr && member->flattened);
    std::string base;
    if (flattened) {
      // A flattened list with a member name replaces the member's own name with it.
      base = key;
      if (!shape.list_member_name.empty()) {
        size_t dot = key.rfind('.');
        base = (dot == std::string::npos ? "" : key.substr(0, dot + 1)) + shape.list_member_name;
      }
    } else {
      base = key + "." + (shape.list_member_name.empty() ? "member" : shape.list_member_name);
    }
    *out = json::array();
    for (size_t i = 1; i <= params_.size(); ++i) {
      std::string elem = base + "." + std::to_string(i);
      if (!Has(elem)) break;
      json v;
      bool here = false;
      if (!Value(elem, nullptr, *shape.list_member, &v, &here, depth + 1)) return false;
      out->push_back(here ? std::move(v) : json());
    }
    // "Name=" (no elements) is how the protocol sends an empty list.
    const std::string* exact = Exact(key);
    *present = !out->empty() || (exact != nullptr && exact->empty());
    return true;
  }

  bool Map(const std::string& key, const Member* member, const Shape& shape, json* out,
           bool* present, int depth) {
    bool flattened = shape.flattened || (member != nullptr && member->flattened);
    std::string base = flattened ? key : key + ".entry";
    const std::string& key_name = shape.map_key_name.empty() ? "key" : shape.map_key_name;
    const std::string& value_name = shape.map_value_name.empty() ? "value" : shape.map_value_name;
    *out = json::object();
    for (size_t i = 1; i <= params_.size(); ++i) {
      std::string entry = base + "." + std::to_string(i);
      if (!HasChildren(entry)) break;
      const std::string* k = Exact(entry + "." + key_name);
      if (k == nullptr) return Fail("map entry '" + entry + "' has no " + key_name);
      json v;
      bool here = false;
      if (!Value(entry + "." + value_name, nullptr, *shape.map_value, &v, &here, depth + 1)) {
        return false;
      }
      if (here) (*out)[*k] = std::move(v);
    }
    const std::string* exact = Exact(key);
    *present = !out->empty() || (exact != nullptr && exact->empty());
    return true;
  }

  bool Scalar(const std::string& key, const std::string& text, const Member* member,
              const Shape& shape, json* out) {
    auto bad = [&](const char* what) {
      return Fail("Value '" + text.substr(0, 128) + "' for parameter " + key + " is not " + what +
                  ".");
    };
    switch (shape.type) {
      case ShapeType::kString:
      case ShapeType::kBlob:
        *out = text;
        return true;
      case ShapeType::kBoolean:
        if (text == "true") {
          *out = true;
        } else if (text == "false") {
          *out = false;
        } else {
          return bad("a boolean (true or false)");
        }
        return true;
      case ShapeType::kInteger:
      case ShapeType::kLong: {
        int64_t v;
        if (!ParseInt64(text, &v)) return bad("a whole number");
        *out = v;
        return true;
      }
      case ShapeType::kFloat:
      case ShapeType::kDouble: {
        double d;
        if (!ParseDouble(text, &d)) return bad("a number");
        if (std::isnan(d)) {
          *out = "NaN";
        } else if (std::isinf(d)) {
          *out = d > 0 ? "Infinity" : "-Infinity";
        } else {
          *out = d;
        }
        return true;
      }
      case ShapeType::kTimestamp: {
        std::string format = member != nullptr && !member->timestamp_format.empty()
                                 ? member->timestamp_format
                                 : shape.timestamp_format;
        int64_t secs = 0;
        int64_t micros = 0;
        if (ParseIsoTimestamp(text, &secs, &micros)) {
          *out = EpochNumber(secs, micros);
          return true;
        }
        double d;
        if ((format == "unixTimestamp" || format.empty()) && ParseDouble(text, &d) &&
            std::isfinite(d)) {
          *out = d;
          return true;
        }
        return bad("an ISO-8601 timestamp");
      }
      default:
        return bad("a scalar");
    }
  }

  std::map<std::string, std::string> params_;
  std::string error_;
};

// --- document -> XML --------------------------------------------------------------------------

class ToXml {
 public:
  std::string Take() { return std::move(out_); }

  void Members(const json& doc, const Shape& shape) {
    if (!doc.is_object()) return;
    for (const Member& m : shape.members) {
      auto it = doc.find(m.name);
      if (it == doc.end() || it->is_null()) continue;
      Element(!m.location_name.empty() ? m.location_name : m.name, *it, &m, *m.shape);
    }
  }

 private:
  void Open(const std::string& name) { out_ += "<" + name + ">"; }
  void Close(const std::string& name) { out_ += "</" + name + ">"; }

  void Element(const std::string& name, const json& v, const Member* member, const Shape& shape) {
    bool flattened = shape.flattened || (member != nullptr && member->flattened);
    if (shape.type == ShapeType::kList && v.is_array()) {
      const std::string& item =
          shape.list_member_name.empty() ? std::string("member") : shape.list_member_name;
      if (flattened) {
        const std::string& each = shape.list_member_name.empty() ? name : shape.list_member_name;
        for (const auto& e : v) Element(each, e, nullptr, *shape.list_member);
        return;
      }
      Open(name);
      for (const auto& e : v) Element(item, e, nullptr, *shape.list_member);
      Close(name);
      return;
    }
    if (shape.type == ShapeType::kMap && v.is_object()) {
      const std::string key_name = shape.map_key_name.empty() ? "key" : shape.map_key_name;
      const std::string value_name = shape.map_value_name.empty() ? "value" : shape.map_value_name;
      if (!flattened) Open(name);
      for (const auto& [k, e] : v.items()) {
        Open(flattened ? name : "entry");
        Open(key_name);
        out_ += XmlEscape(k);
        Close(key_name);
        Element(value_name, e, nullptr, *shape.map_value);
        Close(flattened ? name : "entry");
      }
      if (!flattened) Close(name);
      return;
    }
    Open(name);
    if (shape.type == ShapeType::kStructure) {
      Members(v, shape);
    } else {
      Scalar(v, member, shape);
    }
    Close(name);
  }

  void Scalar(const json& v, const Member* member, const Shape& shape) {
    if (v.is_string()) {
      if (shape.type == ShapeType::kTimestamp) {
        double secs;
        if (DocumentEpoch(v, &secs)) return Timestamp(secs, member, shape);
      }
      out_ += XmlEscape(v.get_ref<const std::string&>());
      return;
    }
    if (v.is_boolean()) {
      out_ += v.get<bool>() ? "true" : "false";
      return;
    }
    if (v.is_number()) {
      if (shape.type == ShapeType::kTimestamp) return Timestamp(v.get<double>(), member, shape);
      if (v.is_number_float()) {
        out_ += FormatDouble(v.get<double>());
      } else {
        out_ += v.dump();
      }
      return;
    }
    // Objects or arrays where the model has a scalar: never produced by a validated service;
    // written as escaped JSON rather than dropped.
    out_ += XmlEscape(v.dump(-1, ' ', false, json::error_handler_t::replace));
  }

  void Timestamp(double secs, const Member* member, const Shape& shape) {
    const std::string& format = member != nullptr && !member->timestamp_format.empty()
                                    ? member->timestamp_format
                                    : shape.timestamp_format;
    if (format == "unixTimestamp") {
      out_ += FormatDouble(secs);
    } else if (format == "rfc822") {
      out_ += FormatRfc822(secs);
    } else {
      out_ += FormatIsoMillis(secs);
    }
  }

  std::string out_;
};

std::string Namespace(const ServiceModel* model) {
  if (model == nullptr || model->metadata().xml_namespace.empty()) return "";
  return " xmlns=\"" + XmlEscape(model->metadata().xml_namespace) + "\"";
}

}  // namespace

std::string QueryParamsToDocument(const std::vector<std::pair<std::string, std::string>>& params,
                                  const Shape& shape, json* out) {
  return FromParams(params).Convert(shape, out);
}

std::string DocumentToQueryXml(const json& doc, const Shape& shape) {
  ToXml x;
  x.Members(doc, shape);
  return x.Take();
}

bool QueryCodec::Recognizes(const HttpRequestParts& req) const {
  if (HasActionParam(req.query) && (req.method == "GET" || req.method == "POST")) return true;
  const std::string* ct = FindHeader(req, "content-type");
  return req.method == "POST" && ct != nullptr &&
         MediaTypeOf(*ct) == "application/x-www-form-urlencoded";
}

std::variant<DecodedCall, ApiError> QueryCodec::Decode(const HttpRequestParts& req,
                                                       const ServiceModel& model) const {
  std::vector<std::pair<std::string, std::string>> params;
  FormLimits limits;
  std::string err = ParseForm(req.query, limits, &params);
  if (err.empty() && req.method == "POST" && !req.body.empty()) {
    std::vector<std::pair<std::string, std::string>> body;
    err = ParseForm(req.body, limits, &body);
    if (params.size() + body.size() > limits.max_pairs) {
      err = "the request has more than " + std::to_string(limits.max_pairs) + " parameters";
    }
    params.insert(params.end(), std::make_move_iterator(body.begin()),
                  std::make_move_iterator(body.end()));
  }
  if (!err.empty()) {
    return ApiError{"MalformedQueryString", "The request is not a valid form: " + err + ".", 400};
  }
  const std::string* action = nullptr;
  const std::string* version = nullptr;
  for (const auto& [k, v] : params) {
    if (k == "Action" && action == nullptr) action = &v;
    if (k == "Version" && version == nullptr) version = &v;
  }
  if (action == nullptr || action->empty()) {
    return ApiError{"MissingAction", "The request must contain the parameter Action.", 400};
  }
  const std::string& api_version = model.metadata().api_version;
  if (version != nullptr && !api_version.empty() && *version != api_version) {
    return ApiError{"NoSuchVersion",
                    "The requested version (" + version->substr(0, 64) + ") of service " +
                        model.metadata().service_id + " does not exist; this endpoint serves " +
                        api_version + ".",
                    400};
  }
  const Operation* op = model.FindOperation(*action);
  if (op == nullptr) {
    return ApiError{"InvalidAction",
                    "The action " + action->substr(0, 128) +
                        " is not valid for this web service (" + model.metadata().service_id + ").",
                    400};
  }
  DecodedCall call;
  call.operation = *action;
  if (op->input == nullptr) return call;
  std::erase_if(params, [](const auto& p) { return p.first == "Action" || p.first == "Version"; });
  err = QueryParamsToDocument(params, *op->input, &call.input);
  if (!err.empty()) return ApiError{"InvalidParameterValue", err, 400};
  return call;
}

WireResponse QueryCodec::Encode(const ServiceModel& model, const Operation& op, const json& output,
                                const std::string& request_id) const {
  WireResponse r;
  r.content_type = "text/xml";
  std::string& b = r.body;
  b = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<" + op.name + "Response" + Namespace(&model) +
      ">";
  if (op.output != nullptr) {
    std::string wrapper = op.result_wrapper.empty() ? op.name + "Result" : op.result_wrapper;
    b += "<" + wrapper + ">";
    b += DocumentToQueryXml(output, *op.output);
    b += "</" + wrapper + ">";
  }
  b += "<ResponseMetadata><RequestId>" + XmlEscape(request_id) +
       "</RequestId></ResponseMetadata></" + op.name + "Response>\n";
  return r;
}

WireResponse QueryCodec::EncodeError(const ServiceModel* model, const ApiError& error,
                                     const std::string& request_id) const {
  QueryErrorCode q = QueryCodeOf(model, error);
  WireResponse r;
  r.status = error.http_status;
  r.content_type = "text/xml";
  r.body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse" + Namespace(model) +
           "><Error><Type>" + (q.sender ? "Sender" : "Receiver") + "</Type><Code>" +
           XmlEscape(q.code) + "</Code><Message>" + XmlEscape(error.message) +
           "</Message></Error><RequestId>" + XmlEscape(request_id) +
           "</RequestId></ErrorResponse>\n";
  return r;
}

}  // namespace ty::api
