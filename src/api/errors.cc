#include "api/api_error.h"

#include <cstdio>

namespace ty::api {

ApiError ToApiError(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return {"InternalFailure", "an operation succeeded but was reported as an error", 500};
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kFailedPrecondition:
      return {"ValidationException", status.message(), 400};
    case StatusCode::kAlreadyExists:
      return {"ResourceInUse", status.message(), 400};
    case StatusCode::kResourceExhausted:
      return {"ResourceLimitExceeded", status.message(), 400};
    case StatusCode::kPermissionDenied:
      return {"AccessDeniedException", status.message(), 400};
    case StatusCode::kUnauthenticated:
      return {"UnrecognizedClientException", status.message(), 400};
    case StatusCode::kUnavailable:
      return {"ServiceUnavailable", status.message(), 503};
    case StatusCode::kInternal:
    case StatusCode::kIoError:
      return {"InternalFailure", status.message(), 500};
  }
  return {"InternalFailure", status.message(), 500};
}

ApiError RedactServerError(ApiError error, const std::string& request_id, std::FILE* log) {
  if (error.http_status < 500) return error;
  // The detail of a server-side failure (SQL text, paths of the data dir) is for the
  // operator: it goes to the server's log under the request id the client also sees.
  if (log != nullptr) {
    std::fprintf(log, "trainyard: request %s failed: %s: %s\n", request_id.c_str(),
                 error.type.c_str(), error.message.c_str());
    std::fflush(log);
  }
  error.message =
      error.http_status == 503
          ? "The service is temporarily unable to handle the request; retry it "
            "(request id " +
                request_id + ")."
          : "We encountered an internal error. Please try again (request id " + request_id + ").";
  return error;
}

}  // namespace ty::api
