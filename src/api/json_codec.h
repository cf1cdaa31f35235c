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

// The name a structure member has in a JSON or CBOR body: its locationName when it has one
// (botocore's JSON and CBOR serializers use it even for members the rest protocols would put in
// a header or the query string), else its model name.
const std::string& BodyName(const Member& m);
// The member whose body name is `name`, or null.
const Member* FindBodyMember(const Shape& shape, std::string_view name);
// Renames the members of a document of `shape` (recursively) from their body names to their
// model names (to_wire false) or back (to_wire true). Only needed when
// ServiceModel::has_wire_names(); members unknown to the model keep their names.
void RenameBodyMembers(nlohmann::json* doc, const Shape& shape, bool to_wire);

}  // namespace ty::api
