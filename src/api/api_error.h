// ApiError: an error as the AWS JSON protocol sends it — the `__type`, the
// message and the HTTP status. Every failure leaving the api/ module is one
// of these; ToApiError (api/errors.cc) is the one place Status codes map to
// AWS error types.
#pragma once

#include <string>

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

}  // namespace ty::api
