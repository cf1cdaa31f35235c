#include "api/router.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <exception>

#include "api/content_encoding.h"
#include "api/validator.h"
#include "common/crypto.h"
#include "common/sigv4.h"

namespace ty::api {

using nlohmann::json;

const char* WireProtocolName(WireProtocol protocol) {
  switch (protocol) {
    case WireProtocol::kJson:
      return "json";
    case WireProtocol::kQuery:
      return "query";
    case WireProtocol::kRestJson:
      return "rest-json";
    case WireProtocol::kRpcV2Cbor:
      return "smithy-rpc-v2-cbor";
  }
  return "unknown";
}

struct ApiRouter::Route {
  std::shared_ptr<Service> service;
  const ServiceModel* model = nullptr;
  size_t max_body_bytes = 0;
};

ApiRouter::ApiRouter(RouterOptions options, const SigV4Verifier* verifier, const Clock* clock)
    : options_(options), verifier_(verifier), clock_(clock) {}

ApiRouter::~ApiRouter() = default;

void ApiRouter::AddCodec(std::unique_ptr<ProtocolCodec> codec) {
  codecs_.push_back(std::move(codec));
}

void ApiRouter::AddService(std::shared_ptr<Service> service, size_t max_body_bytes) {
  auto route = std::make_unique<Route>();
  route->model = &service->model();
  route->max_body_bytes = max_body_bytes > 0 ? max_body_bytes : options_.max_body_bytes;
  route->service = std::move(service);
  routes_.push_back(std::move(route));
}

size_t ApiRouter::MaxBodyBytes() const {
  size_t most = options_.max_body_bytes;
  for (const auto& r : routes_) most = std::max(most, r->max_body_bytes);
  return most;
}

std::vector<std::string> ApiRouter::SigningNames() const {
  std::vector<std::string> names;
  for (const auto& r : routes_) {
    const std::string& n = r->model->metadata().SigningName();
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

const ProtocolCodec* ApiRouter::CodecFor(const HttpRequestParts& req) const {
  for (const auto& c : codecs_) {
    if (c->Recognizes(req)) return c.get();
  }
  return nullptr;
}

const ProtocolCodec* ApiRouter::FallbackCodec() const {
  for (const auto& c : codecs_) {
    if (c->protocol() == WireProtocol::kJson) return c.get();
  }
  return codecs_.front().get();
}

const ApiRouter::Route* ApiRouter::ServiceFor(const ProtocolCodec& codec,
                                              const HttpRequestParts& req, ApiError* error) const {
  const char* protocol = WireProtocolName(codec.protocol());
  std::string addressed = codec.AddressedService(req);
  if (!addressed.empty()) {
    for (const auto& r : routes_) {
      const ServiceMetadata& md = r->model->metadata();
      if (md.target_prefix == addressed && md.Speaks(protocol)) return r.get();
    }
    *error = {"UnknownOperationException",
              "Unknown operation: no service on this endpoint has the target prefix '" + addressed +
                  "' in " + protocol + " (" +
                  (FindHeader(req, "x-amz-target") ? *FindHeader(req, "x-amz-target") : req.path) +
                  ").",
              400};
    return nullptr;
  }
  // Query and rest-json name no service on the wire: the credential scope does.
  std::string scope = SigV4Verifier::ScopeService(req);
  for (const auto& r : routes_) {
    const ServiceMetadata& md = r->model->metadata();
    if (md.SigningName() == scope && md.Speaks(protocol)) return r.get();
  }
  if (scope.empty()) {
    // No usable Authorization header: the verifier says what is wrong with it.
    auto verified = verifier_->Verify(req, clock_->Now(), "");
    if (auto* err = std::get_if<ApiError>(&verified)) {
      *error = *err;
      return nullptr;
    }
  }
  std::string known;
  for (const auto& r : routes_) {
    const ServiceMetadata& md = r->model->metadata();
    if (!md.Speaks(protocol)) continue;
    known += (known.empty() ? "'" : ", '") + md.SigningName() + "'";
  }
  *error = {"InvalidSignatureException",
            "Credential should be scoped to correct service: the " + std::string(protocol) +
                " protocol on this endpoint serves " + (known.empty() ? "no service" : known) +
                ", not '" + scope + "'. ",
            400};
  return nullptr;
}

WireResponse ApiRouter::Finish(const ProtocolCodec& codec, const ServiceModel* model,
                               ApiError error, const std::string& request_id) const {
  return codec.EncodeError(model, RedactServerError(std::move(error), request_id, stderr),
                           request_id);
}

WireResponse ApiRouter::Handle(const HttpRequestParts& req) {
  const auto started = std::chrono::steady_clock::now();
  const std::string request_id = RandomUuid();
  RequestRecord record;
  std::string operation;
  std::string error_type;
  auto done = [&](WireResponse r) {
    r.headers.emplace_back("x-amzn-RequestId", request_id);
    if (observer_ != nullptr) {
      record.operation = operation;
      record.status = r.status;
      record.error_type = error_type;
      record.latency = std::chrono::steady_clock::now() - started;
      observer_->OnRequest(record);
    }
    return r;
  };
  auto fail = [&](const ProtocolCodec& codec, const ServiceModel* model, ApiError e) {
    error_type = e.type;
    return done(Finish(codec, model, std::move(e), request_id));
  };

  const ProtocolCodec* codec = CodecFor(req);
  if (codec == nullptr) {
    // The request is in no protocol served here; answer in AWS JSON, which most clients parse.
    return fail(
        *FallbackCodec(), nullptr,
        {"UnknownOperationException",
         "The request is in no AWS protocol served here; got " + req.method + " " + req.path +
             ". The AWS JSON protocol takes POST / with an X-Amz-Target header, the AWS "
             "query protocol POST / with a form body naming the Action, and RPC v2 CBOR "
             "POST /service/<Service>/operation/<Operation>.",
         404});
  }
  auto too_large = [&](size_t limit) -> ApiError {
    return {"SerializationException",
            "The request body is " + std::to_string(req.body.size()) + " bytes; the limit is " +
                std::to_string(limit) + " bytes.",
            413};
  };
  if (req.body.size() > MaxBodyBytes()) return fail(*codec, nullptr, too_large(MaxBodyBytes()));
  ApiError error;
  const Route* route = ServiceFor(*codec, req, &error);
  if (route == nullptr) return fail(*codec, nullptr, std::move(error));
  const ServiceModel& model = *route->model;
  record.service = model.metadata().service_id;
  if (req.body.size() > route->max_body_bytes) {
    return fail(*codec, &model, too_large(route->max_body_bytes));
  }

  auto verified = verifier_->Verify(req, clock_->Now(), model.metadata().SigningName());
  if (auto* err = std::get_if<ApiError>(&verified)) return fail(*codec, &model, *err);

  // A compressed body was signed as sent; the codec reads it inflated (content_encoding.h).
  const HttpRequestParts* wire = &req;
  HttpRequestParts inflated;
  if (const std::string* encoding = FindHeader(req, "Content-Encoding"); encoding != nullptr) {
    std::string e = TrimAll(*encoding);
    std::transform(e.begin(), e.end(), e.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (e == "gzip") {
      inflated = req;
      std::string why;
      if (!InflateGzip(req.body, route->max_body_bytes, &inflated.body, &why)) {
        return fail(*codec, &model,
                    {"SerializationException", "Content-Encoding gzip: " + why, 400});
      }
      wire = &inflated;
    } else if (!e.empty() && e != "identity") {
      return fail(
          *codec, &model,
          {"SerializationException",
           "Unsupported Content-Encoding (gzip and identity are): " + e.substr(0, 64), 415});
    }
  }

  auto decoded = codec->Decode(*wire, model);
  if (auto* err = std::get_if<ApiError>(&decoded)) return fail(*codec, &model, *err);
  DecodedCall& call = std::get<DecodedCall>(decoded);
  const Operation* op = model.FindOperation(call.operation);
  if (op == nullptr) {
    return fail(
        *codec, &model,
        {"UnknownOperationException",
         "Unknown operation '" + call.operation + "' of " + model.metadata().service_id + ".",
         400});
  }
  operation = op->name;  // a name from the model: bounded, unlike what the caller sent
  if (auto err = ValidateRequest(model, call.operation, call.input)) {
    // Services whose operations do not model ValidationException report constraint
    // violations under the error they do model, as AWS does: CloudWatch Logs as
    // InvalidParameterException, CloudWatch as MissingParameter (a required member is absent)
    // or InvalidParameterValue, and otherwise as the query services' common ValidationError.
    auto models = [op](const char* name) {
      return std::find(op->errors.begin(), op->errors.end(), name) != op->errors.end();
    };
    if (err->type == "ValidationException" && !models("ValidationException")) {
      const bool missing = err->message.find("must not be null") != std::string::npos;
      if (missing && models("MissingRequiredParameterException")) {
        err->type = "MissingRequiredParameterException";
      } else if (models("InvalidParameterValueException")) {
        err->type = "InvalidParameterValueException";
      } else if (models("InvalidParameterException")) {
        err->type = "InvalidParameterException";
      } else if (std::find(model.metadata().protocols.begin(), model.metadata().protocols.end(),
                           "query") != model.metadata().protocols.end()) {
        // Query services (CloudWatch, SNS) list ValidationError among their common errors.
        err->type = "ValidationError";
      }
    }
    return fail(*codec, &model, std::move(*err));
  }

  CallContext ctx{std::get<Caller>(std::move(verified)), request_id, codec->protocol()};
  ServiceOutcome outcome;
  try {
    outcome = route->service->Call(ctx, *op, call.input);
  } catch (const std::exception& e) {
    // Validation guarantees the shapes; a throw here is our bug, not the caller's.
    outcome = ApiError{"InternalFailure", std::string("internal error: ") + e.what(), 500};
  }
  if (auto* err = std::get_if<ApiError>(&outcome)) return fail(*codec, &model, std::move(*err));
  if (auto* raw = std::get_if<RawJson>(&outcome)) {
    if (codec->protocol() == WireProtocol::kJson) {
      WireResponse r = codec->Encode(model, *op, json::object(), request_id);
      r.body = std::move(raw->text);
      return done(std::move(r));
    }
    auto parsed = json::parse(raw->text, nullptr, /*allow_exceptions=*/false);
    outcome = std::move(parsed);
  }
  try {
    return done(codec->Encode(model, *op, std::get<json>(outcome), request_id));
  } catch (const std::exception& e) {
    return fail(*codec, &model,
                {"InternalFailure", std::string("internal error encoding: ") + e.what(), 500});
  }
}

WireResponse ApiRouter::RenderError(const HttpRequestParts& req, const ApiError& error) const {
  const ProtocolCodec* codec = CodecFor(req);
  if (codec == nullptr) codec = FallbackCodec();
  std::string request_id = RandomUuid();
  WireResponse r = codec->EncodeError(nullptr, error, request_id);
  r.headers.emplace_back("x-amzn-RequestId", request_id);
  return r;
}

}  // namespace ty::api
