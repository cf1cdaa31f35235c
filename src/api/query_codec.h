// QueryCodec: the AWS query protocol. A request is a form (POST with Content-Type
// application/x-www-form-urlencoded, or GET/POST with Action= in the query string) naming the
// operation in Action and the API version in Version; members are flat keys
// ("Dimensions.member.1.Name", "Attributes.entry.1.key", flattened "Name.1"). The protocol names
// no service: the router routes it by the credential scope.
//
// Decoding is bounded (parameter count, key length, nesting) and model-driven: the keys a shape
// can have are derived from the model (locationName, list member names, flattened lists and
// maps, map key/value names), ISO-8601 timestamps become epoch seconds, booleans and numbers
// are typed, blobs stay base64. Unknown Action: InvalidAction (400); missing: MissingAction;
// a Version other than the model's: NoSuchVersion.
//
// Responses are text/xml: <OpResponse xmlns=ns><OpResult>...</OpResult><ResponseMetadata>
// <RequestId>id</RequestId></ResponseMetadata></OpResponse> (no Result for no output); errors
// <ErrorResponse xmlns=ns><Error><Type>Sender|Receiver</Type><Code>..</Code><Message>..
// </Message></Error><RequestId>..</RequestId></ErrorResponse> with the model's query code.
//
// Thread contract: immutable; any thread may call any method.
#pragma once

#include "api/protocol.h"

namespace ty::api {

class QueryCodec final : public ProtocolCodec {
 public:
  WireProtocol protocol() const override { return WireProtocol::kQuery; }
  bool Recognizes(const HttpRequestParts& req) const override;
  std::string AddressedService(const HttpRequestParts&) const override { return ""; }
  std::variant<DecodedCall, ApiError> Decode(const HttpRequestParts& req,
                                             const ServiceModel& model) const override;
  WireResponse Encode(const ServiceModel& model, const Operation& op, const nlohmann::json& output,
                      const std::string& request_id) const override;
  WireResponse EncodeError(const ServiceModel* model, const ApiError& error,
                           const std::string& request_id) const override;
};

// The document (api/protocol.h) for the flat form `params` of `shape` (exposed for the fuzz
// target and tests). "" on success, else what is wrong.
std::string QueryParamsToDocument(const std::vector<std::pair<std::string, std::string>>& params,
                                  const Shape& shape, nlohmann::json* out);
// The XML elements (no wrapper) for a document of `shape`.
std::string DocumentToQueryXml(const nlohmann::json& doc, const Shape& shape);

}  // namespace ty::api
