// RestJsonCodec: the rest-json protocol (Lambda). Operations are routed by the model's http
// traits: op.http_method and op.request_uri, whose path has literal segments, {Label} segments
// and a greedy {Label+} tail, and may end in a literal query part ("?versions"). Input members
// are located by their traits: uri labels, querystring keys (a map member takes the remaining
// keys), header values, "headers" prefix maps, the payload member (the raw body for a blob or
// string, the body's document for a structure) or the JSON body. Timestamps are RFC 822 in
// headers, ISO-8601 in the query string and epoch seconds in the body, unless a member's
// timestampFormat says otherwise.
//
// rest-json names no service on the wire and its paths could clash with others (a path-style
// S3 bucket may be named "2015-03-31"), so a request is recognized only when its SigV4
// credential scope names one of the services this codec was built for.
//
// Responses: op.response_code (or a statusCode member), header members, and the JSON body (or
// the payload). Errors: {"Type": "User"|"Service", "message"} with X-Amzn-ErrorType: <Code> and
// the error's status.
//
// Thread contract: immutable; any thread may call any method.
#pragma once

#include <set>
#include <string>

#include "api/protocol.h"

namespace ty::api {

class RestJsonCodec final : public ProtocolCodec {
 public:
  // `scope_services`: the SigV4 scope services that speak rest-json here ({"lambda"}).
  explicit RestJsonCodec(std::set<std::string> scope_services)
      : scope_services_(std::move(scope_services)) {}

  WireProtocol protocol() const override { return WireProtocol::kRestJson; }
  bool Recognizes(const HttpRequestParts& req) const override;
  std::string AddressedService(const HttpRequestParts&) const override { return ""; }
  std::variant<DecodedCall, ApiError> Decode(const HttpRequestParts& req,
                                             const ServiceModel& model) const override;
  WireResponse Encode(const ServiceModel& model, const Operation& op, const nlohmann::json& output,
                      const std::string& request_id) const override;
  WireResponse EncodeError(const ServiceModel* model, const ApiError& error,
                           const std::string& request_id) const override;

 private:
  const std::set<std::string> scope_services_;
};

// The operation of `model` whose http traits match `method` and `path` (percent-encoded, as
// on the wire) and `query`, with the decoded label values; null when none does. When several
// match, the one with the most literal segments wins.
const Operation* MatchRestRoute(const ServiceModel& model, const std::string& method,
                                const std::string& path, const std::string& query,
                                std::vector<std::pair<std::string, std::string>>* labels);

}  // namespace ty::api
