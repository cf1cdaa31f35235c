#include "api/api_error.h"

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

}  // namespace ty::api
