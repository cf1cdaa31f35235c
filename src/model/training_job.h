// Typed domain values of a training job: statuses, the parts of the request
// the runtime acts on (JobSpec), and the job's persisted state (JobRecord).
// The full CreateTrainingJob request is also kept verbatim as JSON text
// (JobRecord::request_json) so Describe/Search echo every member the caller
// sent; JobSpec holds only what the controller and agents need, typed.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace ty::model {

enum class TrainingJobStatus { kInProgress, kCompleted, kFailed, kStopping, kStopped, kDeleting };

enum class SecondaryStatus {
  kStarting,
  kLaunchingMLInstances,
  kPreparingTrainingStack,
  kDownloading,
  kDownloadingTrainingImage,
  kTraining,
  kUploading,
  kStopping,
  kStopped,
  kMaxRuntimeExceeded,
  kCompleted,
  kFailed,
  kInterrupted,
  kMaxWaitTimeExceeded,
  kUpdating,
  kRestarting,
  kPending,
};

const char* Name(TrainingJobStatus s);
const char* Name(SecondaryStatus s);
std::optional<TrainingJobStatus> ParseTrainingJobStatus(const std::string& s);
std::optional<SecondaryStatus> ParseSecondaryStatus(const std::string& s);
bool IsTerminal(TrainingJobStatus s);

struct MetricDefinition {
  std::string name;
  std::string regex;
};

struct Channel {
  std::string name;
  std::string uri;                     // S3Uri of the S3DataSource (file:// or s3://)
  std::string content_type;            // may be empty
  std::string input_mode;              // effective: channel InputMode or job TrainingInputMode
  std::string distribution_type;       // FullyReplicated | ShardedByS3Key
  std::string record_wrapper_type;     // None | RecordIO
  std::string compression_type;        // None | Gzip (empty when unset)
  std::string data_type = "S3Prefix";  // S3Prefix | ManifestFile
};

// Debugger and profiler (CreateTrainingJob's DebugHookConfig, DebugRuleConfigurations,
// TensorBoardOutputConfig, ProfilerConfig, ProfilerRuleConfigurations). The hook runs inside the
// training process; its output is synced to <S3OutputPath>/<job>/debug-output/ and the rules run
// on the control plane (debugger/).
struct CollectionConfig {
  std::string name;                               // CollectionName
  std::map<std::string, std::string> parameters;  // CollectionParameters, strings as sent
};

struct DebugHookSpec {
  std::string s3_output_path;  // the hook output goes to <this>/<job>/debug-output/
  std::string local_path = "/opt/ml/output/tensors";   // LocalPath: the hook's out_dir
  std::map<std::string, std::string> hook_parameters;  // HookParameters, strings as sent
  // CollectionConfigurations, with the collections the job's rules need merged in (spec §2.5).
  std::vector<CollectionConfig> collections;
};

// One DebugRuleConfigurations or ProfilerRuleConfigurations entry.
struct RuleSpec {
  std::string configuration_name;  // RuleConfigurationName (unique within the job)
  std::string evaluator_image;     // RuleEvaluatorImage (a regional built-in rules image)
  std::string rule;                // RuleParameters["rule_to_invoke"]
  std::map<std::string, std::string> parameters;  // RuleParameters, strings as sent
  std::string local_path;                         // LocalPath (echoed only)
  std::string s3_output_path;                     // S3OutputPath (echoed only)
  std::string instance_type;                      // InstanceType (echoed only)
  int volume_size_gb = 0;                         // VolumeSizeInGB (echoed only)
};

struct TensorBoardSpec {
  std::string s3_output_path;  // synced to <this>/<job>/tensorboard-output/
  std::string local_path = "/opt/ml/output/tensorboard";
};

struct ProfilerSpec {
  std::string s3_output_path;  // system metrics go to <this>/<job>/profiler-output/system/
  int64_t interval_ms = 500;   // ProfilingIntervalInMilliseconds
  bool disabled = false;       // DisableProfiler
};

struct JobSpec {
  std::string name;
  std::string training_image;
  std::string training_input_mode = "File";
  std::vector<std::string> container_entrypoint;  // empty: image default
  std::vector<std::string> container_arguments;   // empty: ["train"] unless entrypoint given
  std::vector<MetricDefinition> metric_definitions;
  std::map<std::string, std::string> hyperparameters;
  std::map<std::string, std::string> environment;
  std::vector<Channel> channels;
  std::string output_path;      // S3OutputPath
  bool compress_output = true;  // OutputDataConfig.CompressionType != NONE
  std::string instance_type;
  int instance_count = 1;
  int volume_size_gb = 0;
  std::chrono::seconds max_runtime{86400};
  std::optional<std::chrono::seconds> max_wait;
  bool managed_spot = false;
  std::optional<std::string> checkpoint_uri;
  std::string checkpoint_local_path = "/opt/ml/checkpoints";
  int max_retry_attempts = 0;  // RetryStrategy.MaximumRetryAttempts, 0 = none
  // EnableNetworkIsolation: the instances reach each other and nothing else (no NAT, no store).
  bool network_isolation = false;
  std::optional<DebugHookSpec> debug_hook;
  std::vector<RuleSpec> debug_rules;
  std::optional<TensorBoardSpec> tensorboard;
  std::optional<ProfilerSpec> profiler;
  std::vector<RuleSpec> profiler_rules;
};

struct StatusTransition {
  SecondaryStatus status;
  TimePoint start;
  std::optional<TimePoint> end;
  std::string message;
};

struct FinalMetric {
  std::string name;
  double value = 0;
  TimePoint timestamp;
};

// Why a job is in Stopping; decides the final secondary status.
enum class StopReason { kNone, kUser, kMaxRuntime, kMaxWait };
const char* Name(StopReason r);
std::optional<StopReason> ParseStopReason(const std::string& s);

// An attempt that ended before the job did: a spot interruption, or an
// instance lost without notice that RetryStrategy retried.
struct Interruption {
  int attempt = 0;
  TimePoint time;       // the notice (or the loss)
  std::string cause;    // human-readable: why the instance went away
  int64_t lost_ms = 0;  // progress lost: from the last synced checkpoint to `time`
};

// Everything persisted about a job. Owned by the controller while the job
// runs; read by the API from the store.
struct JobRecord {
  int64_t id = 0;       // store row id
  std::string account;  // 12-digit account id
  std::string arn;
  std::string request_json;  // the CreateTrainingJob body as accepted
  JobSpec spec;
  TrainingJobStatus status = TrainingJobStatus::kInProgress;
  SecondaryStatus secondary = SecondaryStatus::kStarting;
  std::vector<StatusTransition> transitions;
  std::string failure_reason;
  std::string model_artifacts;  // S3ModelArtifacts
  TimePoint creation_time;
  TimePoint last_modified_time;
  std::optional<TimePoint> training_start_time;
  std::optional<TimePoint> training_end_time;
  std::optional<int64_t> training_time_seconds;
  std::optional<int64_t> billable_time_seconds;
  std::vector<FinalMetric> final_metrics;
  StopReason stop_reason = StopReason::kNone;
  // Runtime bookkeeping of the current attempt (not part of the AWS shape).
  int attempt = 0;
  std::string agent_token;  // authenticates the agent's reports
  // The launcher's handle of the current attempt (launch::AttemptHandle, opaque: "local:...",
  // "slurm:<job id>"); "" when no attempt runs. An attempt runs from its launch until it ends,
  // also while the engine still starts it or keeps it pending.
  std::string attempt_handle;
  std::string instance_dir;  // where the agent stages /opt/ml (algo-1's)
  // Per instance of the current attempt (algo-1 first): its exit report arrived. Lets a
  // restarted server re-adopt a multi-node attempt some of whose instances are done.
  std::vector<bool> instances_exited;
  // Scheduling and spot bookkeeping across attempts (not part of the AWS shape).
  bool queued = false;                         // waiting for capacity to (re)start
  int retries = 0;                             // RetryStrategy retries used
  int64_t run_ms = 0;                          // running time of ended attempts
  double billable_ms = 0;                      // the same, weighted by the spot price fraction
  std::optional<TimePoint> attempt_run_start;  // the current attempt began running
  bool attempt_on_spot = false;                // the current attempt runs on spot capacity
  double attempt_price_fraction = 1.0;
  int64_t attempt_notice_ms = 0;             // its interruption notice period
  std::optional<TimePoint> interruption_at;  // the spot market's drawn interruption
  std::optional<TimePoint> notice_deadline;  // interrupted: the instance is killed then
  std::optional<TimePoint> last_checkpoint;  // the current attempt's last synced checkpoint
  std::vector<Interruption> interruptions;
};

// "arn:aws:sagemaker:<region>:<account>:training-job/<name>"
std::string TrainingJobArn(const std::string& region, const std::string& account,
                           const std::string& name);
// The expected model artifact location: "<S3OutputPath>/<job>/output/model.tar.gz"
// (".../output/model/" when output compression is off).
std::string ModelArtifactUri(const JobSpec& spec);
// Where the platform puts the job's debugger, TensorBoard and profiler output:
// "<S3OutputPath>/<job>/debug-output/", ".../tensorboard-output/", ".../profiler-output/"
// ("" when the job has no such config).
std::string DebugOutputUri(const JobSpec& spec);
std::string TensorBoardOutputUri(const JobSpec& spec);
std::string ProfilerOutputUri(const JobSpec& spec);

}  // namespace ty::model
