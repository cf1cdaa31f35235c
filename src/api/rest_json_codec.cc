#include "api/rest_json_codec.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "api/json_codec.h"
#include "api/sigv4_verifier.h"
#include "api/wire_format.h"
#include "common/json.h"
#include "common/text.h"

namespace ty::api {

using nlohmann::json;

namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    if (!seg.empty()) out.push_back(seg);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

const std::string& WireName(const Member& m) {
  return m.location_name.empty() ? m.name : m.location_name;
}

std::string TimestampFormat(const Member& m, const std::string& location_default) {
  if (!m.timestamp_format.empty()) return m.timestamp_format;
  if (!m.shape->timestamp_format.empty()) return m.shape->timestamp_format;
  return location_default;
}

// A scalar from text (a label, query value or header), typed by the model.
bool ScalarFromText(const std::string& text, const Member& m, const Shape& shape,
                    const std::string& ts_default, json* out) {
  switch (shape.type) {
    case ShapeType::kString:
      if (m.jsonvalue) {
        // A JSON value header: base64 of the JSON text; the document holds the JSON text.
        std::string raw;
        if (!Base64Decode(text, &raw)) return false;
        *out = raw;
        return true;
      }
      *out = text;
      return true;
    case ShapeType::kBlob:
      *out = text;
      return true;
    case ShapeType::kBoolean:
      if (text != "true" && text != "false") return false;
      *out = text == "true";
      return true;
    case ShapeType::kInteger:
    case ShapeType::kLong: {
      int64_t v;
      if (!ParseInt64(text, &v)) return false;
      *out = v;
      return true;
    }
    case ShapeType::kFloat:
    case ShapeType::kDouble: {
      double d;
      if (!ParseDouble(text, &d)) return false;
      *out = std::isfinite(d) ? json(d) : json(text);
      return true;
    }
    case ShapeType::kTimestamp: {
      std::string format = TimestampFormat(m, ts_default);
      int64_t secs = 0;
      int64_t micros = 0;
      double d;
      if (format == "rfc822" && ParseRfc822(text, &secs)) {
        *out = secs;
        return true;
      }
      if (ParseIsoTimestamp(text, &secs, &micros)) {
        *out = EpochNumber(secs, micros);
        return true;
      }
      if (ParseDouble(text, &d) && std::isfinite(d)) {
        *out = d;
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

std::string ScalarToText(const json& v, const Member& m, const Shape& shape,
                         const std::string& ts_default) {
  if (shape.type == ShapeType::kTimestamp) {
    double secs;
    if (DocumentEpoch(v, &secs)) {
      std::string format = TimestampFormat(m, ts_default);
      if (format == "rfc822") return FormatRfc822(secs);
      if (format == "unixTimestamp") return FormatDouble(secs);
      return FormatIsoMillis(secs);
    }
  }
  if (v.is_string()) {
    if (m.jsonvalue) return Base64Encode(v.get_ref<const std::string&>());
    return v.get<std::string>();
  }
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_float()) return FormatDouble(v.get<double>());
  return DumpJson(v);
}

ApiError Serialization(std::string message) {
  return {"SerializationException", std::move(message), 400};
}

}  // namespace

const Operation* MatchRestRoute(const ServiceModel& model, const std::string& method,
                                const std::string& path, const std::string& query,
                                std::vector<std::pair<std::string, std::string>>* labels) {
  std::vector<std::string_view> req_segs = Segments(path);
  std::vector<std::pair<std::string, std::string>> query_params;
  ParseForm(query, FormLimits(), &query_params);
  const Operation* best = nullptr;
  int best_score = -1;
  for (const auto& [name, op] : model.operations()) {
    if (op.http_method != method) continue;
    std::string_view uri = op.request_uri;
    std::string_view literal_query;
    if (size_t q = uri.find('?'); q != std::string_view::npos) {
      literal_query = uri.substr(q + 1);
      uri = uri.substr(0, q);
    }
    std::vector<std::string_view> tmpl = Segments(uri);
    std::vector<std::pair<std::string, std::string>> found;
    int score = 0;
    bool ok = true;
    size_t i = 0;
    for (size_t t = 0; ok && t < tmpl.size(); ++t) {
      std::string_view seg = tmpl[t];
      if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
        std::string_view label = seg.substr(1, seg.size() - 2);
        if (label.back() == '+') {
          // Greedy: the rest of the path, slashes included; at least one segment.
          if (i >= req_segs.size() || t + 1 != tmpl.size()) {
            ok = false;
            break;
          }
          std::string joined;
          for (; i < req_segs.size(); ++i) {
            std::string decoded;
            if (!PercentDecode(req_segs[i], false, &decoded)) ok = false;
            joined += (joined.empty() ? "" : "/") + decoded;
          }
          found.emplace_back(std::string(label.substr(0, label.size() - 1)), joined);
          continue;
        }
        std::string decoded;
        if (i >= req_segs.size() || !PercentDecode(req_segs[i], false, &decoded)) {
          ok = false;
          break;
        }
        found.emplace_back(std::string(label), std::move(decoded));
        ++i;
        continue;
      }
      if (i >= req_segs.size() || req_segs[i] != seg) {
        ok = false;
        break;
      }
      ++score;
      ++i;
    }
    if (!ok || i != req_segs.size()) continue;
    // A literal query part ("?versions", "?x-id=Op"): each key (and value) must be present.
    if (!literal_query.empty()) {
      size_t pos = 0;
      while (ok && pos <= literal_query.size()) {
        size_t amp = literal_query.find('&', pos);
        if (amp == std::string_view::npos) amp = literal_query.size();
        std::string_view kv = literal_query.substr(pos, amp - pos);
        pos = amp + 1;
        if (kv.empty()) continue;
        size_t eq = kv.find('=');
        std::string k(kv.substr(0, eq));
        bool any = false;
        for (const auto& [qk, qv] : query_params) {
          if (qk == k && (eq == std::string_view::npos || qv == kv.substr(eq + 1))) any = true;
        }
        ok = any;
        ++score;
      }
      if (!ok) continue;
    }
    if (score > best_score) {
      best = &op;
      best_score = score;
      *labels = std::move(found);
    }
  }
  return best;
}

bool RestJsonCodec::Recognizes(const HttpRequestParts& req) const {
  std::string scope = SigV4Verifier::ScopeService(req);
  return !scope.empty() && scope_services_.count(scope) > 0;
}

std::variant<DecodedCall, ApiError> RestJsonCodec::Decode(const HttpRequestParts& req,
                                                          const ServiceModel& model) const {
  std::vector<std::pair<std::string, std::string>> labels;
  const Operation* op = MatchRestRoute(model, req.method, req.path, req.query, &labels);
  if (op == nullptr) {
    return ApiError{"UnknownOperationException",
                    "No " + model.metadata().service_id + " operation takes " + req.method + " " +
                        req.path + ".",
                    404};
  }
  DecodedCall call;
  call.operation = op->name;
  if (op->input == nullptr) return call;
  const Shape& input = *op->input;

  std::vector<std::pair<std::string, std::string>> query;
  if (std::string err = ParseForm(req.query, FormLimits(), &query); !err.empty()) {
    return Serialization("The query string is malformed: " + err + ".");
  }
  auto bad = [](const Member& m, const std::string& where, const std::string& text) {
    return Serialization("Cannot deserialize " + where + " '" + WireName(m) + "' (value '" +
                         text.substr(0, 128) + "') as " + ShapeTypeName(m.shape->type) + ".");
  };

  json& doc = call.input;
  std::vector<std::string> claimed_query;
  // The route's literal query keys ("?versions") are not members.
  if (size_t q = op->request_uri.find('?'); q != std::string::npos) {
    std::vector<std::pair<std::string, std::string>> literal;
    ParseForm(std::string_view(op->request_uri).substr(q + 1), FormLimits(), &literal);
    for (auto& [k, v] : literal) claimed_query.push_back(k);
  }
  for (const Member& m : input.members) {
    if (m.location == "querystring" && m.shape->type != ShapeType::kMap) {
      claimed_query.push_back(WireName(m));
    }
  }
  const Member* payload = input.payload.empty() ? nullptr : input.FindMember(input.payload);
  bool body_members = false;
  for (const Member& m : input.members) {
    const Shape& shape = *m.shape;
    if (m.location == "uri") {
      for (const auto& [label, value] : labels) {
        if (label != WireName(m)) continue;
        json v;
        if (!ScalarFromText(value, m, shape, "iso8601", &v)) return bad(m, "the path label", value);
        doc[m.name] = std::move(v);
      }
    } else if (m.location == "querystring") {
      if (shape.type == ShapeType::kMap) {
        // The map takes every query parameter no other member names.
        json map = json::object();
        for (const auto& [k, v] : query) {
          if (std::find(claimed_query.begin(), claimed_query.end(), k) != claimed_query.end()) {
            continue;
          }
          if (shape.map_value->type == ShapeType::kList) {
            map[k].push_back(v);
          } else if (!map.contains(k)) {
            map[k] = v;
          }
        }
        if (!map.empty()) doc[m.name] = std::move(map);
        continue;
      }
      json list = json::array();
      for (const auto& [k, text] : query) {
        if (k != WireName(m)) continue;
        const Shape& elem = shape.type == ShapeType::kList ? *shape.list_member : shape;
        json v;
        if (!ScalarFromText(text, m, elem, "iso8601", &v))
          return bad(m, "the query parameter", text);
        list.push_back(std::move(v));
      }
      if (list.empty()) continue;
      doc[m.name] = shape.type == ShapeType::kList ? std::move(list) : std::move(list[0]);
    } else if (m.location == "header") {
      const std::string* text = FindHeader(req, WireName(m));
      if (text == nullptr) continue;
      if (shape.type == ShapeType::kList) {
        json list = json::array();
        for (const std::string& part : SplitNonEmpty(*text, ',')) {
          std::string item = part;
          while (!item.empty() && item.front() == ' ') item.erase(0, 1);
          while (!item.empty() && item.back() == ' ') item.pop_back();
          json v;
          if (!ScalarFromText(item, m, *shape.list_member, "rfc822", &v)) {
            return bad(m, "the header", *text);
          }
          list.push_back(std::move(v));
        }
        doc[m.name] = std::move(list);
        continue;
      }
      json v;
      if (!ScalarFromText(*text, m, shape, "rfc822", &v)) return bad(m, "the header", *text);
      doc[m.name] = std::move(v);
    } else if (m.location == "headers") {
      json map = json::object();
      std::string prefix = Lower(m.location_name);
      for (const auto& [k, v] : req.headers) {
        std::string lk = Lower(k);
        if (lk.size() > prefix.size() && lk.compare(0, prefix.size(), prefix) == 0) {
          map[lk.substr(prefix.size())] = v;
        }
      }
      if (!map.empty()) doc[m.name] = std::move(map);
    } else if (&m == payload) {
      if (shape.type == ShapeType::kBlob) {
        if (!req.body.empty()) doc[m.name] = Base64Encode(req.body);
      } else if (shape.type == ShapeType::kString) {
        if (!req.body.empty()) doc[m.name] = req.body;
      } else if (!req.body.empty()) {
        auto parsed = ParseJson(req.body);
        if (!parsed.ok() || !parsed->is_object()) {
          return Serialization("The request body is not a JSON object.");
        }
        doc[m.name] = std::move(parsed).value();
      }
    } else if (m.location.empty()) {
      body_members = true;
    }
  }
  if (payload == nullptr && body_members && !req.body.empty()) {
    auto parsed = ParseJson(req.body);
    if (!parsed.ok()) {
      return Serialization(IsJsonTooDeep(parsed.status())
                               ? "The request body is " + parsed.status().message() + "."
                               : "The request body is not valid JSON: " +
                                     parsed.status().message());
    }
    if (!parsed->is_object()) {
      return Serialization("The request body must be a JSON object.");
    }
    json body = std::move(parsed).value();
    if (model.has_wire_names()) RenameBodyMembers(&body, input, false);
    for (const Member& m : input.members) {
      if (!m.location.empty() || &m == payload) continue;
      auto it = body.find(m.name);
      if (it == body.end() || it->is_null()) continue;
      doc[m.name] = std::move(*it);
    }
  }
  return call;
}

WireResponse RestJsonCodec::Encode(const ServiceModel& model, const Operation& op,
                                   const json& output, const std::string&) const {
  WireResponse r;
  r.status = op.response_code;
  if (op.output == nullptr) return r;
  const Shape& shape = *op.output;
  const json empty = json::object();
  const json& doc = output.is_object() ? output : empty;
  const Member* payload = shape.payload.empty() ? nullptr : shape.FindMember(shape.payload);
  json body = json::object();
  for (const Member& m : shape.members) {
    auto it = doc.find(m.name);
    if (it == doc.end() || it->is_null()) continue;
    const json& v = *it;
    if (m.location == "statusCode") {
      if (v.is_number_integer()) r.status = v.get<int>();
    } else if (m.location == "header") {
      if (v.is_array()) {
        std::string joined;
        for (const auto& e : v) {
          joined +=
              (joined.empty() ? "" : ",") +
              ScalarToText(e, m, m.shape->list_member ? *m.shape->list_member : *m.shape, "rfc822");
        }
        r.headers.emplace_back(WireName(m), joined);
      } else {
        r.headers.emplace_back(WireName(m), ScalarToText(v, m, *m.shape, "rfc822"));
      }
    } else if (m.location == "headers") {
      if (!v.is_object()) continue;
      for (const auto& [k, e] : v.items()) {
        r.headers.emplace_back(m.location_name + k,
                               e.is_string() ? e.get<std::string>() : e.dump());
      }
    } else if (&m == payload) {
      if (m.shape->type == ShapeType::kBlob) {
        std::string raw;
        if (v.is_string() && Base64Decode(v.get_ref<const std::string&>(), &raw)) {
          r.body = std::move(raw);
        } else if (v.is_string()) {
          r.body = v.get<std::string>();
        }
        r.content_type = "application/octet-stream";
      } else if (m.shape->type == ShapeType::kString) {
        r.body = v.is_string() ? v.get<std::string>() : DumpJson(v);
        r.content_type = "text/plain";
      } else {
        r.body = DumpJson(v);
        r.content_type = "application/json";
      }
    } else if (m.location.empty()) {
      body[m.name] = v;
    }
  }
  if (payload == nullptr) {
    if (model.has_wire_names()) RenameBodyMembers(&body, shape, true);
    r.content_type = "application/json";
    r.body = DumpJson(body);
  }
  if (r.status == 204) {
    // HTTP forbids a body on 204 (DeleteFunction): a client would read it as the next response.
    r.body.clear();
    r.content_type.clear();
  }
  return r;
}

WireResponse RestJsonCodec::EncodeError(const ServiceModel*, const ApiError& error,
                                        const std::string&) const {
  WireResponse r;
  r.status = error.http_status;
  r.content_type = "application/json";
  r.headers.emplace_back("X-Amzn-ErrorType", error.type);
  r.body = DumpJson(
      json{{"Type", error.http_status < 500 ? "User" : "Service"}, {"message", error.message}});
  return r;
}

}  // namespace ty::api
