// The wire side of the API edge: one ProtocolCodec per AWS wire protocol (AWS JSON 1.0/1.1,
// AWS query, rest-json, smithy RPC v2 CBOR). A codec turns a request into a DecodedCall (an
// operation name and a JSON document) and a service's output document or error back into that
// protocol's response. Codecs are stateless and know nothing of services beyond the
// ServiceModel they are handed; services (api/service.h) know nothing of wires.
//
// The document form, shared by every codec and every service (it is what AWS JSON carries):
//   structure -> object keyed by the model's member names (never a locationName)
//   list -> array, map -> object, string/enum -> string, boolean -> boolean,
//   integer/long -> integer, float/double -> number,
//   timestamp -> epoch seconds as a number (fractional when the wire had milliseconds),
//   blob -> base64 string.
// A codec decodes into this form and encodes from it, converting timestamps, blobs, flattened
// lists and names as its protocol requires. Members whose value is null are absent.
//
// Thread contract: codecs are immutable; any thread may call any method concurrently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/service_model.h"
#include "common/sigv4.h"

namespace ty::api {

enum class WireProtocol { kJson, kQuery, kRestJson, kRpcV2Cbor };

// botocore's names: "json", "query", "rest-json", "smithy-rpc-v2-cbor".
const char* WireProtocolName(WireProtocol protocol);

// A response as the router hands it to the HTTP server.
struct WireResponse {
  int status = 200;
  std::string content_type;  // empty: no Content-Type (an empty body)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// One operation call, decoded.
struct DecodedCall {
  std::string operation;  // "GetLogEvents"
  nlohmann::json input = nlohmann::json::object();
};

class ProtocolCodec {
 public:
  virtual ~ProtocolCodec() = default;

  virtual WireProtocol protocol() const = 0;

  // True when the request is in this protocol, judged from its method, path and headers only
  // (the body is not read): the router asks each codec in turn.
  virtual bool Recognizes(const HttpRequestParts& req) const = 0;

  // The service the request names on the wire, when the protocol names one: the X-Amz-Target
  // prefix for JSON ("SageMaker", "Logs_20140328"), the path's service for CBOR
  // ("GraniteServiceVersion20100801"). Empty for query and rest-json, which the router routes
  // by the credential scope. Compared with ServiceMetadata::target_prefix.
  virtual std::string AddressedService(const HttpRequestParts& req) const = 0;

  // The operation and its input document. Errors are the protocol's own
  // (SerializationException, UnknownOperationException, InvalidAction, ...), 4xx.
  // The operation is checked against `model` (unknown: an error); the document is not
  // validated here (the router runs ValidateRequest on it).
  virtual std::variant<DecodedCall, ApiError> Decode(const HttpRequestParts& req,
                                                     const ServiceModel& model) const = 0;

  // The response for `output` (a document of op.output's shape; null or {} when the operation
  // has no output). `request_id` goes where the protocol carries it (the router also sends it
  // as x-amzn-RequestId).
  virtual WireResponse Encode(const ServiceModel& model, const Operation& op,
                              const nlohmann::json& output,
                              const std::string& request_id) const = 0;

  // The error response. `model` is null when the request's service is unknown; when known,
  // modeled errors take their wire code and status from it (query <Code>, x-amzn-query-error).
  virtual WireResponse EncodeError(const ServiceModel* model, const ApiError& error,
                                   const std::string& request_id) const = 0;
};

}  // namespace ty::api
