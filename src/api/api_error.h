// ApiError: an error as the AWS JSON protocol sends it — the `__type`, the
// message and the HTTP status. Every failure leaving the api/ module is one
// of these; ToApiError (api/errors.cc) is the one place Status codes map to
// AWS error types.
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include "common/status.h"

namespace ty::api {

struct ApiError {
  std::string type;  // e.g. "ValidationException"
  std::string message;
  int http_status = 400;
};

// kInvalidArgument/kNotFound/kFailedPrecondition -> ValidationException,
// kAlreadyExists -> ResourceInUse, kResourceExhausted -> ResourceLimitExceeded,
// kUnauthenticated -> UnrecognizedClientException, kUnavailable -> ServiceUnavailable (503),
// everything else -> InternalFailure (500).
ApiError ToApiError(const Status& status);

// A 5xx error as a client may see it: the message becomes a generic one naming
// `request_id`, and the original message (which may hold SQL text or server paths)
// is written to `log` (the server's stderr) with that id. 4xx errors are returned
// unchanged: their messages are written for the caller.
ApiError RedactServerError(ApiError error, const std::string& request_id, std::FILE* log);

// A ValidationException with `message` (400).
inline ApiError Validation(std::string message) {
  return {"ValidationException", std::move(message), 400};
}
// What SageMaker answers for an unknown job name (the SDK's waiter relies on it).
inline ApiError JobNotFound() { return Validation("Requested resource not found."); }

}  // namespace ty::api
