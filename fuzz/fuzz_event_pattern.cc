// The EventBridge pattern compiler and matcher on one input: the input is an event pattern
// (as PutRule and TestEventPattern receive it), parsed and, when valid, matched against a fixed
// SageMaker job event. The same bytes are also tried as an InputTransformer template and as an
// InputPath. A crash, a sanitizer report, an escaping exception, an error that is not
// InvalidArgument with EventBridge's reason prefix, or a match that differs between two runs
// is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "events/event_pattern.h"

namespace {

// ../shared/spec/aws-services.md §1.6, with an address and a nested array for cidr and
// array-flattening paths.
constexpr std::string_view kEvent = R"({
  "version": "0", "id": "29f939a9-3cce-a8e1-24c7-3d8db2861245",
  "detail-type": "SageMaker Training Job State Change", "source": "aws.sagemaker",
  "account": "123456789012", "time": "2023-10-04T13:46:47Z", "region": "us-east-1",
  "resources": ["arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job"],
  "detail": {"TrainingJobName": "my-job", "TrainingJobStatus": "InProgress",
    "SecondaryStatus": "Training", "FailureReason": null, "sourceIPAddress": "10.0.0.7",
    "HyperParameters": {"epochs": "3"}, "Nested": [[1, 2.5], [true, "x"], []],
    "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
    "CreationTime": 1696427182554, "TrainingEndTime": null,
    "SecondaryStatusTransitions": [
      {"Status": "Starting", "StartTime": 1696427182554, "StatusMessage": "Preparing"},
      {"Status": "Interrupted", "StartTime": 1696427186229},
      {"Status": "Training", "StartTime": 1696427186300}],
    "Tags": {"Team": "ml", "project": "p1"}}})";

bool IsPatternError(const ty::Status& s) {
  return s.code() == ty::StatusCode::kInvalidArgument &&
         s.message().rfind("Event pattern is not valid. Reason: ", 0) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::json event = *ty::ParseJson(kEvent);
  static const nlohmann::json paths = {{"name", "$.detail.TrainingJobName"},
                                       {"tags", "$.detail.Tags"},
                                       {"first", "$.detail.SecondaryStatusTransitions[0]"},
                                       {"missing", "$.detail.Nope"}};
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto pattern = ty::events::EventPattern::Parse(text);
  if (pattern.ok()) {
    bool first = pattern->Matches(event);
    if (pattern->Matches(event) != first) std::abort();
    (void)pattern->Matches(event["detail"]);
  } else if (!IsPatternError(pattern.status())) {
    std::abort();
  }

  auto transformed = ty::events::TransformInput(event, paths, text, {"rule", "arn:rule", ""});
  if (!transformed.ok() && transformed.status().code() != ty::StatusCode::kInvalidArgument) {
    std::abort();
  }
  auto selected = ty::events::SelectInputPath(event, text);
  if (!selected.ok() && selected.status().code() != ty::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
