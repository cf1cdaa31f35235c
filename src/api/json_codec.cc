#include "api/json_codec.h"

#include "common/json.h"

namespace ty::api {

using nlohmann::json;

namespace {

// Request bytes (headers, paths, job output) need not be valid UTF-8: replace bad sequences
// rather than let the serializer throw.
std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string ContentType(const ServiceModel* model) {
  std::string version = model != nullptr && !model->metadata().json_version.empty()
                            ? model->metadata().json_version
                            : "1.1";
  return "application/x-amz-json-" + version;
}

std::string MediaType(const HttpRequestParts& req) {
  const std::string* ct = FindHeader(req, "content-type");
  if (ct == nullptr) return "";
  std::string t = ct->substr(0, ct->find(';'));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}

}  // namespace

QueryErrorCode QueryCodeOf(const ServiceModel* model, const ApiError& error) {
  QueryErrorCode out{error.type, error.http_status < 500};
  if (model == nullptr) return out;
  if (const Shape* shape = model->FindShape(error.type); shape != nullptr && shape->exception) {
    if (!shape->error_code.empty()) out.code = shape->error_code;
    out.sender = shape->sender_fault;
  }
  return out;
}

const std::string& BodyName(const Member& m) {
  return m.location_name.empty() ? m.name : m.location_name;
}

const Member* FindBodyMember(const Shape& shape, std::string_view name) {
  for (const Member& m : shape.members) {
    if (BodyName(m) == name) return &m;
  }
  return nullptr;
}

namespace {
// Documents are at most kMaxJsonDepth deep (ParseJson); the model bounds the walk too.
void Rename(json* doc, const Shape& shape, bool to_wire, int depth) {
  if (depth > 256) return;
  switch (shape.type) {
    case ShapeType::kStructure: {
      if (!doc->is_object()) return;
      json out = json::object();
      for (auto& [k, v] : doc->items()) {
        const Member* m = to_wire ? shape.FindMember(k) : FindBodyMember(shape, k);
        if (m == nullptr) {
          out[k] = std::move(v);
          continue;
        }
        Rename(&v, *m->shape, to_wire, depth + 1);
        out[to_wire ? BodyName(*m) : m->name] = std::move(v);
      }
      *doc = std::move(out);
      return;
    }
    case ShapeType::kList:
      if (!doc->is_array()) return;
      for (auto& e : *doc) Rename(&e, *shape.list_member, to_wire, depth + 1);
      return;
    case ShapeType::kMap:
      if (!doc->is_object()) return;
      for (auto& [k, v] : doc->items()) Rename(&v, *shape.map_value, to_wire, depth + 1);
      return;
    default:
      return;
  }
}
}  // namespace

void RenameBodyMembers(json* doc, const Shape& shape, bool to_wire) {
  Rename(doc, shape, to_wire, 0);
}

bool JsonCodec::Recognizes(const HttpRequestParts& req) const {
  if (FindHeader(req, "x-amz-target") != nullptr) return true;
  return MediaType(req).rfind("application/x-amz-json-", 0) == 0;
}

std::string JsonCodec::AddressedService(const HttpRequestParts& req) const {
  const std::string* target = FindHeader(req, "x-amz-target");
  if (target == nullptr) return "";
  return target->substr(0, target->rfind('.'));
}

std::variant<DecodedCall, ApiError> JsonCodec::Decode(const HttpRequestParts& req,
                                                      const ServiceModel& model) const {
  if (req.method != "POST" || req.path != "/") {
    return ApiError{"UnknownOperationException",
                    "The AWS JSON protocol takes POST / with an X-Amz-Target header; got " +
                        req.method + " " + req.path,
                    404};
  }
  const std::string* target = FindHeader(req, "x-amz-target");
  if (target == nullptr || target->empty()) {
    return ApiError{"UnknownOperationException",
                    "The request has no X-Amz-Target header naming the operation.", 400};
  }
  const std::string& prefix = model.metadata().target_prefix;
  if (target->size() <= prefix.size() + 1 || target->compare(0, prefix.size(), prefix) != 0 ||
      (*target)[prefix.size()] != '.') {
    return ApiError{"UnknownOperationException", "Unknown operation '" + *target + "'.", 400};
  }
  DecodedCall call;
  call.operation = target->substr(prefix.size() + 1);
  if (model.FindOperation(call.operation) == nullptr) {
    return ApiError{"UnknownOperationException",
                    "Unknown operation '" + *target + "'. " + model.metadata().service_id +
                        " here implements: " +
                        [&model] {
                          std::string ops;
                          for (const auto& [name, op] : model.operations()) {
                            ops += (ops.empty() ? "" : ", ") + name;
                          }
                          return ops;
                        }() +
                        ".",
                    400};
  }
  std::string media = MediaType(req);
  if (media != "application/x-amz-json-1.1" && media != "application/x-amz-json-1.0" &&
      media != "application/json") {
    return ApiError{"SerializationException",
                    "Unsupported Content-Type '" + media + "'; send " + ContentType(&model) + ".",
                    400};
  }
  if (req.body.empty()) return call;
  auto parsed = ParseJson(req.body);
  if (!parsed.ok()) {
    return ApiError{"SerializationException",
                    IsJsonTooDeep(parsed.status())
                        ? "The request body is " + parsed.status().message() +
                              "; the limit keeps every request walkable without exhausting the "
                              "server's stack."
                        : "The request body is not valid JSON: " + parsed.status().message(),
                    400};
  }
  if (!parsed->is_object()) {
    return ApiError{"SerializationException", "The request body must be a JSON object.", 400};
  }
  call.input = std::move(parsed).value();
  const Shape* input = model.FindOperation(call.operation)->input;
  if (model.has_wire_names() && input != nullptr) RenameBodyMembers(&call.input, *input, false);
  return call;
}

WireResponse JsonCodec::Encode(const ServiceModel& model, const Operation& op, const json& output,
                               const std::string&) const {
  WireResponse r;
  r.content_type = ContentType(&model);
  if (output.is_null()) {
    r.body = "{}";
  } else if (model.has_wire_names() && op.output != nullptr) {
    json renamed = output;
    RenameBodyMembers(&renamed, *op.output, true);
    r.body = DumpJson(renamed);
  } else {
    r.body = DumpJson(output);
  }
  return r;
}

WireResponse JsonCodec::EncodeError(const ServiceModel* model, const ApiError& error,
                                    const std::string&) const {
  WireResponse r;
  r.status = error.http_status;
  r.content_type = ContentType(model);
  r.headers.emplace_back("X-Amzn-ErrorType", error.type);
  if (model != nullptr && model->metadata().aws_query_compatible) {
    QueryErrorCode q = QueryCodeOf(model, error);
    r.headers.emplace_back("x-amzn-query-error", q.code + (q.sender ? ";Sender" : ";Receiver"));
  }
  r.body = DumpJson(json{{"__type", error.type}, {"message", error.message}});
  return r;
}

}  // namespace ty::api
