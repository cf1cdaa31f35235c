// JsonCodec: the AWS JSON 1.0 / 1.1 protocol. POST / with X-Amz-Target: <TargetPrefix>.<Op>
// and Content-Type application/x-amz-json-1.x; the body is the input document itself. Errors
// are {"__type", "message"} with X-Amzn-ErrorType, plus x-amzn-query-error (<Code>;Sender) for
// query-compatible services (CloudWatch), which botocore reads to name the modeled error.
#pragma once

#include "api/protocol.h"

namespace ty::api {

class JsonCodec final : public ProtocolCodec {
 public:
  WireProtocol protocol() const override { return WireProtocol::kJson; }
  bool Recognizes(const HttpRequestParts& req) const override;
  std::string AddressedService(const HttpRequestParts& req) const override;
  std::variant<DecodedCall, ApiError> Decode(const HttpRequestParts& req,
                                             const ServiceModel& model) const override;
  WireResponse Encode(const ServiceModel& model, const Operation& op, const nlohmann::json& output,
                      const std::string& request_id) const override;
  WireResponse EncodeError(const ServiceModel* model, const ApiError& error,
                           const std::string& request_id) const override;
};

// The query-protocol code and fault of an error: the modeled error shape's code (or the error
// type when it is not modeled, or the model is null) and "Sender" / "Receiver". Shared by the
// codecs that speak for query-compatible services.
struct QueryErrorCode {
  std::string code;
  bool sender = true;
};
QueryErrorCode QueryCodeOf(const ServiceModel* model, const ApiError& error);

}  // namespace ty::api
