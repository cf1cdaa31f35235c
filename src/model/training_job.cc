#include "model/training_job.h"

#include <array>
#include <utility>

namespace ty::model {

namespace {

constexpr std::array<std::pair<TrainingJobStatus, const char*>, 6> kStatusNames = {{
    {TrainingJobStatus::kInProgress, "InProgress"},
    {TrainingJobStatus::kCompleted, "Completed"},
    {TrainingJobStatus::kFailed, "Failed"},
    {TrainingJobStatus::kStopping, "Stopping"},
    {TrainingJobStatus::kStopped, "Stopped"},
    {TrainingJobStatus::kDeleting, "Deleting"},
}};

constexpr std::array<std::pair<SecondaryStatus, const char*>, 17> kSecondaryNames = {{
    {SecondaryStatus::kStarting, "Starting"},
    {SecondaryStatus::kLaunchingMLInstances, "LaunchingMLInstances"},
    {SecondaryStatus::kPreparingTrainingStack, "PreparingTrainingStack"},
    {SecondaryStatus::kDownloading, "Downloading"},
    {SecondaryStatus::kDownloadingTrainingImage, "DownloadingTrainingImage"},
    {SecondaryStatus::kTraining, "Training"},
    {SecondaryStatus::kUploading, "Uploading"},
    {SecondaryStatus::kStopping, "Stopping"},
    {SecondaryStatus::kStopped, "Stopped"},
    {SecondaryStatus::kMaxRuntimeExceeded, "MaxRuntimeExceeded"},
    {SecondaryStatus::kCompleted, "Completed"},
    {SecondaryStatus::kFailed, "Failed"},
    {SecondaryStatus::kInterrupted, "Interrupted"},
    {SecondaryStatus::kMaxWaitTimeExceeded, "MaxWaitTimeExceeded"},
    {SecondaryStatus::kUpdating, "Updating"},
    {SecondaryStatus::kRestarting, "Restarting"},
    {SecondaryStatus::kPending, "Pending"},
}};

constexpr std::array<std::pair<StopReason, const char*>, 4> kStopReasonNames = {{
    {StopReason::kNone, "None"},
    {StopReason::kUser, "User"},
    {StopReason::kMaxRuntime, "MaxRuntime"},
    {StopReason::kMaxWait, "MaxWait"},
}};

template <typename E, size_t N>
const char* LookupName(const std::array<std::pair<E, const char*>, N>& table, E v) {
  for (const auto& [e, n] : table) {
    if (e == v) return n;
  }
  return "Unknown";
}

template <typename E, size_t N>
std::optional<E> LookupValue(const std::array<std::pair<E, const char*>, N>& table,
                             const std::string& s) {
  for (const auto& [e, n] : table) {
    if (s == n) return e;
  }
  return std::nullopt;
}

}  // namespace

const char* Name(TrainingJobStatus s) { return LookupName(kStatusNames, s); }
const char* Name(SecondaryStatus s) { return LookupName(kSecondaryNames, s); }
const char* Name(StopReason r) { return LookupName(kStopReasonNames, r); }
std::optional<TrainingJobStatus> ParseTrainingJobStatus(const std::string& s) {
  return LookupValue(kStatusNames, s);
}
std::optional<SecondaryStatus> ParseSecondaryStatus(const std::string& s) {
  return LookupValue(kSecondaryNames, s);
}
std::optional<StopReason> ParseStopReason(const std::string& s) {
  return LookupValue(kStopReasonNames, s);
}

bool IsTerminal(TrainingJobStatus s) {
  return s == TrainingJobStatus::kCompleted || s == TrainingJobStatus::kFailed ||
         s == TrainingJobStatus::kStopped;
}

std::string TrainingJobArn(const std::string& region, const std::string& account,
                           const std::string& name) {
  return "arn:aws:sagemaker:" + region + ":" + account + ":training-job/" + name;
}

std::string ModelArtifactUri(const JobSpec& spec) {
  std::string base = spec.output_path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  base += "/" + spec.name + "/output/";
  return spec.compress_output ? base + "model.tar.gz" : base + "model/";
}

namespace {

std::string JobSubdirUri(std::string base, const std::string& job, const char* leaf) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + job + "/" + leaf + "/";
}

}  // namespace

std::string DebugOutputUri(const JobSpec& spec) {
  if (!spec.debug_hook) return "";
  return JobSubdirUri(spec.debug_hook->s3_output_path, spec.name, "debug-output");
}

std::string TensorBoardOutputUri(const JobSpec& spec) {
  if (!spec.tensorboard) return "";
  return JobSubdirUri(spec.tensorboard->s3_output_path, spec.name, "tensorboard-output");
}

std::string ProfilerOutputUri(const JobSpec& spec) {
  if (!spec.profiler || spec.profiler->disabled) return "";
  return JobSubdirUri(spec.profiler->s3_output_path, spec.name, "profiler-output");
}

}  // namespace ty::model
