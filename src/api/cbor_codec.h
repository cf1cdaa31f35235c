// CborCodec: smithy RPC v2 CBOR. POST {prefix}/service/<Service>/operation/<Op> with
// Smithy-Protocol: rpc-v2-cbor; the body is one CBOR map of the input's members (none for no
// input). The service is named in the path, by its target prefix ("GraniteServiceVersion20100801")
// or its absolute shape id ("com.amazonaws.cloudwatch#GraniteServiceVersion20100801"). A request
// that also carries X-Amz-Target is refused, as the protocol requires.
//
// Decoding is model-driven: tag 1 timestamps (integer or float, any width) become epoch seconds,
// byte strings become base64 for blob members, null members are dropped, unknown members (and
// "__type") are ignored; members go by their model names (botocore's serializer sends a
// locationName instead, which is accepted). Input is bounded (depth 64, item count, declared
// lengths); malformed input is a SerializationException.
//
// Responses: a CBOR map (shortest integers, float64 doubles, tag 1 timestamps, byte-string
// blobs), Smithy-Protocol and Content-Type application/cbor; no body for no output. Errors:
// {"__type": "<namespace>#<Shape>", "message"} with the error's status, plus
// x-amzn-query-error for query-compatible services, and no X-Amzn-ErrorType.
//
// Thread contract: immutable; any thread may call any method.
#pragma once

#include "api/protocol.h"

namespace ty::api {

class CborCodec final : public ProtocolCodec {
 public:
  WireProtocol protocol() const override { return WireProtocol::kRpcV2Cbor; }
  bool Recognizes(const HttpRequestParts& req) const override;
  std::string AddressedService(const HttpRequestParts& req) const override;
  std::variant<DecodedCall, ApiError> Decode(const HttpRequestParts& req,
                                             const ServiceModel& model) const override;
  WireResponse Encode(const ServiceModel& model, const Operation& op, const nlohmann::json& output,
                      const std::string& request_id) const override;
  WireResponse EncodeError(const ServiceModel* model, const ApiError& error,
                           const std::string& request_id) const override;
};

// "com.amazonaws.cloudwatch" for serviceId "CloudWatch": the smithy namespace of a service's
// shapes, as the error __type carries it.
std::string SmithyNamespace(const ServiceModel& model);

// The document (api/protocol.h) for a CBOR request body of `shape`: exposed for the fuzz
// target. "" on success, else what is wrong.
std::string CborToDocument(std::string_view body, const Shape& shape, nlohmann::json* out);
// The CBOR encoding of a document of `shape` (null: written generically).
std::string DocumentToCbor(const nlohmann::json& doc, const Shape* shape);

}  // namespace ty::api
