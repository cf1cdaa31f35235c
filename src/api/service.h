// Service: one AWS service (or Trainyard's own operations) as a table of operations over JSON
// documents in the document form of api/protocol.h. A service never sees bytes, headers or
// signatures: the router (api/router.h) authenticates, decodes with the request's codec and
// validates the input against model() before Call, and encodes what Call returns.
//
// Thread contract: Call may run on any number of HTTP workers at once.
#pragma once

#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "api/protocol.h"
#include "api/service_model.h"
#include "api/sigv4_verifier.h"

namespace ty::api {

struct CallContext {
  Caller caller;           // who signed the request (account and key)
  std::string request_id;  // also in the response
  WireProtocol protocol = WireProtocol::kJson;
};

// A response body already rendered as AWS JSON text (a service's cache of a hot response):
// the JSON codec sends it as is; other codecs parse it first.
struct RawJson {
  std::string text;
};

using ServiceOutcome = std::variant<nlohmann::json, ApiError, RawJson>;

class Service {
 public:
  virtual ~Service() = default;
  // The model the router decodes and validates against; its metadata names the service.
  virtual const ServiceModel& model() const = 0;
  // Runs `op` with a validated `input`. A 5xx ApiError's message is logged and redacted by
  // the router; 4xx messages reach the caller.
  virtual ServiceOutcome Call(const CallContext& ctx, const Operation& op,
                              const nlohmann::json& input) = 0;
};

}  // namespace ty::api
