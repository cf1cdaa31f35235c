#include "api/cbor_codec.h"

#include <cmath>
#include <limits>

#include "api/cbor.h"
#include "api/json_codec.h"
#include "api/wire_format.h"

namespace ty::api {

using nlohmann::json;

namespace {

constexpr const char* kProtocolHeader = "Smithy-Protocol";
constexpr const char* kProtocolValue = "rpc-v2-cbor";
// A 1 MB body holds at most about a million one-byte items; real requests (PutMetricData's
// 1000 datums) need tens of thousands.
constexpr size_t kMaxItems = 200000;

struct PathParts {
  std::string service;
  std::string operation;
};

// The last four segments "service/<S>/operation/<O>" of the path (a prefix may come before).
bool SplitPath(const std::string& path, PathParts* out) {
  std::vector<std::string_view> segs;
  std::string_view p = path;
  while (!p.empty()) {
    size_t slash = p.find('/');
    std::string_view seg = p.substr(0, slash);
    if (!seg.empty()) segs.push_back(seg);
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  if (segs.size() < 4) return false;
  size_t n = segs.size();
  if (segs[n - 4] != "service" || segs[n - 2] != "operation") return false;
  std::string service;
  std::string operation;
  if (!PercentDecode(segs[n - 3], false, &service) ||
      !PercentDecode(segs[n - 1], false, &operation)) {
    return false;
  }
  // The absolute shape id ("com.amazonaws.cloudwatch#Granite...", or with '#' as '.') names the
  // same service as its last part.
  size_t cut = service.find_last_of("#.");
  if (cut != std::string::npos) service = service.substr(cut + 1);
  out->service = std::move(service);
  out->operation = std::move(operation);
  return true;
}

ApiError Serialization(std::string message) {
  return {"SerializationException", std::move(message), 400};
}

// --- CBOR -> document -------------------------------------------------------------------------

class ToDocument {
 public:
  std::string Convert(const CborItem& item, const Shape& shape, json* out) {
    if (!Value(item, shape, out, "")) return error_;
    return "";
  }

 private:
  bool Fail(const std::string& path, std::string what) {
    error_ = "Cannot deserialize " +
             (path.empty() ? std::string("the request body") : "'" + path + "'") + ": " +
             std::move(what);
    return false;
  }

  static const char* KindName(const CborItem& i) {
    switch (i.kind) {
      case CborItem::Kind::kUnsigned:
      case CborItem::Kind::kNegative:
        return "an integer";
      case CborItem::Kind::kBytes:
        return "a byte string";
      case CborItem::Kind::kText:
        return "a text string";
      case CborItem::Kind::kArray:
        return "an array";
      case CborItem::Kind::kMap:
        return "a map";
      case CborItem::Kind::kTag:
        return "a tagged item";
      case CborItem::Kind::kFloat:
        return "a float";
      case CborItem::Kind::kBool:
        return "a boolean";
      case CborItem::Kind::kNull:
        return "null";
      case CborItem::Kind::kUndefined:
        return "undefined";
    }
    return "an item";
  }

  bool Expected(const CborItem& item, const Shape& shape, const std::string& path) {
    return Fail(path,
                std::string("expected ") + ShapeTypeName(shape.type) + ", got " + KindName(item));
  }

  // A finite number's JSON form; NaN and infinities as AWS JSON writes them (strings).
  static json FloatJson(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return d;
  }

  bool Value(const CborItem& item, const Shape& shape, json* out, const std::string& path) {
    switch (shape.type) {
      case ShapeType::kStructure: {
        if (item.kind != CborItem::Kind::kMap) return Expected(item, shape, path);
        *out = json::object();
        for (size_t i = 0; i + 1 < item.items.size(); i += 2) {
          const CborItem& k = item.items[i];
          const CborItem& v = item.items[i + 1];
          if (k.kind != CborItem::Kind::kText) return Fail(path, "a map key is not text");
          if (v.kind == CborItem::Kind::kNull || v.kind == CborItem::Kind::kUndefined) continue;
          // Smithy names members by their model names; botocore's CBOR serializer uses a
          // locationName when the model has one (its parser does not), so take either.
          const Member* m = shape.FindMember(k.s);
          if (m == nullptr) m = FindBodyMember(shape, k.s);
          if (m == nullptr) continue;  // unknown members and "__type" are ignored
          json child;
          if (!Value(v, *m->shape, &child, path.empty() ? k.s : path + "." + k.s)) return false;
          (*out)[m->name] = std::move(child);
        }
        return true;
      }
      case ShapeType::kList: {
        if (item.kind != CborItem::Kind::kArray) return Expected(item, shape, path);
        *out = json::array();
        for (size_t i = 0; i < item.items.size(); ++i) {
          const CborItem& e = item.items[i];
          json child;
          if (e.kind != CborItem::Kind::kNull &&
              !Value(e, *shape.list_member, &child, path + "[" + std::to_string(i) + "]")) {
            return false;
          }
          out->push_back(std::move(child));
        }
        return true;
      }
      case ShapeType::kMap: {
        if (item.kind != CborItem::Kind::kMap) return Expected(item, shape, path);
        *out = json::object();
        for (size_t i = 0; i + 1 < item.items.size(); i += 2) {
          const CborItem& k = item.items[i];
          const CborItem& v = item.items[i + 1];
          if (k.kind != CborItem::Kind::kText) return Fail(path, "a map key is not text");
          if (v.kind == CborItem::Kind::kNull) continue;
          json child;
          if (!Value(v, *shape.map_value, &child, path + "." + k.s)) return false;
          (*out)[k.s] = std::move(child);
        }
        return true;
      }
      case ShapeType::kString:
        if (item.kind != CborItem::Kind::kText) return Expected(item, shape, path);
        *out = item.s;
        return true;
      case ShapeType::kBoolean:
        if (item.kind != CborItem::Kind::kBool) return Expected(item, shape, path);
        *out = item.u != 0;
        return true;
      case ShapeType::kInteger:
      case ShapeType::kLong:
        return Integer(item, shape, out, path);
      case ShapeType::kFloat:
      case ShapeType::kDouble:
        if (item.kind == CborItem::Kind::kFloat) {
          *out = FloatJson(item.d);
          return true;
        }
        return Integer(item, shape, out, path);
      case ShapeType::kTimestamp: {
        // Tag 1 (epoch seconds) is what the protocol sends; a bare number is taken as the same.
        const CborItem* v = &item;
        if (v->kind == CborItem::Kind::kTag) {
          if (v->u != 1) return Fail(path, "a timestamp has tag " + std::to_string(v->u));
          v = &v->items[0];
        }
        if (v->kind == CborItem::Kind::kFloat) {
          if (!std::isfinite(v->d)) return Fail(path, "a timestamp is not finite");
          *out = v->d;
          return true;
        }
        return Integer(*v, shape, out, path);
      }
      case ShapeType::kBlob:
        if (item.kind != CborItem::Kind::kBytes && item.kind != CborItem::Kind::kText) {
          return Expected(item, shape, path);
        }
        *out = Base64Encode(item.s);
        return true;
    }
    return Expected(item, shape, path);
  }

  bool Integer(const CborItem& item, const Shape& shape, json* out, const std::string& path) {
    if (item.kind == CborItem::Kind::kUnsigned) {
      if (item.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Fail(path, "an integer is out of the 64-bit range");
      }
      *out = static_cast<int64_t>(item.u);
      return true;
    }
    if (item.kind == CborItem::Kind::kNegative) {
      if (item.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Fail(path, "an integer is out of the 64-bit range");
      }
      *out = -1 - static_cast<int64_t>(item.u);
      return true;
    }
    return Expected(item, shape, path);
  }

  std::string error_;
};

// --- document -> CBOR -------------------------------------------------------------------------

void Generic(const json& v, CborWriter* w) {
  switch (v.type()) {
    case json::value_t::object:
      w->MapHead(v.size());
      for (const auto& [k, e] : v.items()) {
        w->Text(k);
        Generic(e, w);
      }
      return;
    case json::value_t::array:
      w->ArrayHead(v.size());
      for (const auto& e : v) Generic(e, w);
      return;
    case json::value_t::string:
      w->Text(v.get_ref<const std::string&>());
      return;
    case json::value_t::boolean:
      w->Bool(v.get<bool>());
      return;
    case json::value_t::number_integer:
      w->Integer(v.get<int64_t>());
      return;
    case json::value_t::number_unsigned:
      w->Unsigned(v.get<uint64_t>());
      return;
    case json::value_t::number_float:
      w->Double(v.get<double>());
      return;
    default:
      w->Null();
      return;
  }
}

void Encode(const json& v, const Shape* shape, CborWriter* w) {
  if (shape == nullptr) return Generic(v, w);
  switch (shape->type) {
    case ShapeType::kStructure: {
      if (!v.is_object()) return Generic(v, w);
      size_t n = 0;
      for (const auto& [k, e] : v.items()) n += e.is_null() ? 0 : 1;
      w->MapHead(n);
      for (const auto& [k, e] : v.items()) {
        if (e.is_null()) continue;
        const Member* m = shape->FindMember(k);
        w->Text(k);
        Encode(e, m != nullptr ? m->shape : nullptr, w);
      }
      return;
    }
    case ShapeType::kList:
      if (!v.is_array()) return Generic(v, w);
      w->ArrayHead(v.size());
      for (const auto& e : v) Encode(e, shape->list_member, w);
      return;
    case ShapeType::kMap:
      if (!v.is_object()) return Generic(v, w);
      w->MapHead(v.size());
      for (const auto& [k, e] : v.items()) {
        w->Text(k);
        Encode(e, shape->map_value, w);
      }
      return;
    case ShapeType::kFloat:
    case ShapeType::kDouble:
      if (v.is_number()) return w->Double(v.get<double>());
      if (v.is_string()) {
        double d;
        if (ParseDouble(v.get_ref<const std::string&>(), &d)) return w->Double(d);
      }
      return Generic(v, w);
    case ShapeType::kTimestamp: {
      double secs;
      if (!DocumentEpoch(v, &secs)) return Generic(v, w);
      w->Tag(1);
      if (v.is_number_integer() || v.is_number_unsigned()) return Generic(v, w);
      if (std::floor(secs) == secs && std::abs(secs) < 9e15) {
        return w->Integer(static_cast<int64_t>(secs));
      }
      return w->Double(secs);
    }
    case ShapeType::kBlob: {
      std::string raw;
      if (v.is_string() && Base64Decode(v.get_ref<const std::string&>(), &raw)) {
        return w->Bytes(raw);
      }
      return Generic(v, w);
    }
    default:
      return Generic(v, w);
  }
}

}  // namespace

std::string SmithyNamespace(const ServiceModel& model) {
  std::string ns = "com.amazonaws.";
  for (char c : model.metadata().service_id) {
    if (c == ' ') continue;
    ns += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return ns;
}

std::string CborToDocument(std::string_view body, const Shape& shape, json* out) {
  CborReadLimits limits;
  limits.max_items = kMaxItems;
  CborItem item;
  std::string err = ReadCbor(body, limits, &item);
  if (!err.empty()) return "The request body is not valid CBOR: " + err + ".";
  return ToDocument().Convert(item, shape, out);
}

std::string DocumentToCbor(const json& doc, const Shape* shape) {
  CborWriter w;
  Encode(doc, shape, &w);
  return w.Take();
}

bool CborCodec::Recognizes(const HttpRequestParts& req) const {
  const std::string* p = FindHeader(req, "smithy-protocol");
  if (p == nullptr || *p != kProtocolValue) return false;
  PathParts parts;
  return SplitPath(req.path, &parts);
}

std::string CborCodec::AddressedService(const HttpRequestParts& req) const {
  PathParts parts;
  return SplitPath(req.path, &parts) ? parts.service : "";
}

std::variant<DecodedCall, ApiError> CborCodec::Decode(const HttpRequestParts& req,
                                                      const ServiceModel& model) const {
  if (FindHeader(req, "x-amz-target") != nullptr) {
    return Serialization(
        "An RPC v2 CBOR request must not carry X-Amz-Target; send either the AWS JSON protocol "
        "(X-Amz-Target, POST /) or RPC v2 CBOR (POST /service/<Service>/operation/<Operation>).");
  }
  if (req.method != "POST") {
    return ApiError{"UnknownOperationException",
                    "RPC v2 CBOR takes POST; got " + req.method + " " + req.path + ".", 404};
  }
  PathParts parts;
  if (!SplitPath(req.path, &parts)) {
    return ApiError{"UnknownOperationException", "Unknown operation path '" + req.path + "'.", 404};
  }
  const Operation* op = model.FindOperation(parts.operation);
  if (op == nullptr) {
    return ApiError{
        "UnknownOperationException",
        "Unknown operation '" + parts.operation + "' of " + model.metadata().service_id + ".", 404};
  }
  if (const std::string* ct = FindHeader(req, "content-type");
      ct != nullptr && !req.body.empty() && MediaTypeOf(*ct) != "application/cbor") {
    return Serialization("Unsupported Content-Type '" + *ct + "'; send application/cbor.");
  }
  DecodedCall call;
  call.operation = parts.operation;
  if (req.body.empty()) return call;
  if (op->input == nullptr) {
    // The operation takes no input; the body must still be one well-formed item.
    CborItem ignored;
    CborReadLimits limits;
    limits.max_items = kMaxItems;
    std::string err = ReadCbor(req.body, limits, &ignored);
    if (!err.empty()) return Serialization("The request body is not valid CBOR: " + err + ".");
    return call;
  }
  std::string err = CborToDocument(req.body, *op->input, &call.input);
  if (!err.empty()) return Serialization(std::move(err));
  return call;
}

WireResponse CborCodec::Encode(const ServiceModel&, const Operation& op, const json& output,
                               const std::string&) const {
  WireResponse r;
  r.headers.emplace_back(kProtocolHeader, kProtocolValue);
  // No output shape: no body and no Content-Type (smithy's Unit output).
  if (op.output == nullptr) return r;
  r.content_type = "application/cbor";
  r.body = DocumentToCbor(output.is_object() ? output : json::object(), op.output);
  return r;
}

WireResponse CborCodec::EncodeError(const ServiceModel* model, const ApiError& error,
                                    const std::string&) const {
  WireResponse r;
  r.status = error.http_status;
  r.content_type = "application/cbor";
  r.headers.emplace_back(kProtocolHeader, kProtocolValue);
  if (model != nullptr && model->metadata().aws_query_compatible) {
    QueryErrorCode q = QueryCodeOf(model, error);
    r.headers.emplace_back("x-amzn-query-error", q.code + (q.sender ? ";Sender" : ";Receiver"));
  }
  CborWriter w;
  w.MapHead(2);
  w.Text("__type");
  w.Text(model != nullptr ? SmithyNamespace(*model) + "#" + error.type : error.type);
  w.Text("message");
  w.Text(error.message);
  r.body = w.Take();
  return r;
}

}  // namespace ty::api
