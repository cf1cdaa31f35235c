// ApiError: an error as the AWS JSON protocol sends it — the `__type`, the
// message and the HTTP status. Every failure leaving the api/ module is one
// of these; ToApiError (api/errors.cc) is the one place Status codes map to
// AWS error types.
#pragma once

#include <string>
#include <utility>

#include "common/status.h"

namespace ty::api {

struct ApiError {
  std::string type;      // e.g. "ValidationException"
  std::string message;
  int http_status = 400;
};

// kInvalidArgument/kNotFound/kFailedPrecondition -> ValidationException,
// kAlreadyExists -> ResourceInUse, kResourceExhausted -> ResourceLimitExceeded,
// kUnauthenticated -> UnrecognizedClientException, kUnavailable -> ServiceUnavailable (503),
// everything else -> InternalFailure (500).
ApiError ToApiError(const Status& status);

// A ValidationException with `message` (400).
inline ApiError Validation(std::string message) {
  return {"ValidationException", std::move(message), 400};
}
// What SageMaker answers for an unknown job name (the SDK's waiter relies on it).
inline ApiError JobNotFound() { return Validation("Requested resource not found."); }

}  // namespace ty::api
