// The container contract as pure functions of an InstanceConfig: the JSON
// files under /opt/ml/input/config, the SM_* environment of the
// sagemaker-training-toolkit, the toolkit's command line for a user script,
// and the training command (spec/sagemaker-training.md sections 5.1-5.7).
// No I/O here; staging.h writes what these compute.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/agent_protocol.h"

namespace ty::agent {

inline constexpr char kOptMl[] = "/opt/ml";
inline constexpr char kHomogeneousGroup[] = "homogeneousCluster";
inline constexpr char kBasePath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// "algo-<host_index>".
std::string CurrentHost(const model::InstanceConfig& c);

// Contents of input/config/*.json (compact JSON, keys sorted).
std::string HyperparametersJson(const model::JobSpec& spec);
std::string ResourceConfigJson(const model::InstanceConfig& c);
std::string InputDataConfigJson(const model::JobSpec& spec);
// {"LocalPath": <local_path>, "S3Uri": <checkpoint uri>}. REQUIRES: spec.checkpoint_uri.
std::string CheckpointConfigJson(const model::JobSpec& spec, const std::string& local_path);

// Debugger and profiler configs, as SageMaker writes them (spec/debugger.md section 2.4):
// debughookconfig.json {"S3OutputPath", "LocalPath", "HookParameters", "CollectionConfigurations":
// [{"CollectionName", "CollectionParameters"?}]} with the rules' collections already merged in
// (REQUIRES: spec.debug_hook); tensorboardoutputconfig.json {"LocalPath", "S3OutputPath"}
// (REQUIRES: spec.tensorboard); profilerconfig.json {"ProfilingIntervalInMilliseconds",
// "ProfilingParameters": {}, "DisableProfiler"} (REQUIRES: spec.profiler; framework profiling is
// refused at create, so smdebug's framework profiler stays off). `local_path` is the directory as
// the training process sees it.
std::string DebugHookConfigJson(const model::JobSpec& spec, const std::string& local_path);
std::string TensorBoardConfigJson(const model::JobSpec& spec, const std::string& local_path);
std::string ProfilerConfigJson(const model::JobSpec& spec);

// Where the server's python/ folder (InstanceConfig::python_dir) is bound, read-only, in the
// sandbox.
inline constexpr char kSandboxPythonDir[] = "/opt/trainyard/python";

// A hyperparameter value decoded as the toolkit does: JSON when it parses,
// else the raw string. Returned as compact JSON text.
std::string DecodeHyperparameter(const std::string& value);

// The toolkit's view of the hyperparameters.
struct ToolkitParams {
  std::string program;           // sagemaker_program, decoded ("" when absent)
  std::string submit_directory;  // sagemaker_submit_directory, decoded ("" when absent)
  int log_level = 20;            // sagemaker_container_log_level
  std::string user_json;         // user hyperparameters (no sagemaker_* keys), decoded, as JSON
  std::string framework_json;    // other sagemaker_* keys, decoded, as JSON
};
ToolkitParams ParseToolkitParams(const std::map<std::string, std::string>& hyperparameters);

// The toolkit's `mapping.to_cmd_args` over the decoded user hyperparameters:
// sorted keys, "--key" ("-k" for one-character keys), each followed by the
// value rendered like Python's str() (True/False, None, dicts as "k=v,k2=v2").
std::vector<std::string> ToolkitUserArgs(const std::map<std::string, std::string>& hyperparameters);

// Python's str() of a JSON value, as the toolkit renders a decoded value.
std::string PythonStr(const std::string& json_text);

// The environment of the training process: a clean base (PATH, HOME, LANG,
// PYTHONUNBUFFERED), then image.env, then TRAINING_JOB_NAME/ARN, AWS_REGION and
// every SM_* variable (paths under `ml_root`, which is "/opt/ml" inside the
// sandbox or the instance dir without one), then spec.environment (user wins). For the
// python-framework runtime the server's python/ folder (kSandboxPythonDir in the sandbox,
// c.python_dir without one) is appended to PYTHONPATH last, after the user's own entries.
// `home` is HOME's value.
std::map<std::string, std::string> BuildContainerEnv(const model::InstanceConfig& c,
                                                     const std::string& ml_root,
                                                     const std::string& home);

// What to run. argv as the sandbox sees it; cwd likewise.
struct TrainingCommand {
  std::vector<std::string> argv;
  std::string cwd;
  bool toolkit = false;  // played as sagemaker-training-toolkit (failure/success files)
};
// kCommand: entrypoint (spec.container_entrypoint or image.command) + arguments
// (spec.container_arguments, else ["train"] unless an entrypoint was given).
// kPythonFramework without container_entrypoint: the toolkit's command for
// sagemaker_program under ml_root/code. InvalidArgument when there is nothing
// to run (no command, no sagemaker_program).
Result<TrainingCommand> BuildTrainingCommand(const model::InstanceConfig& c,
                                             const std::string& ml_root);

// The toolkit's failure text for a user script that exited non-zero:
// ExecuteUserScriptError:\nExitCode <n>\nErrorMessage "<stderr>"\nCommand "<cmd>".
// `stderr_tail` are the last stderr lines; duplicates are dropped and the
// message is cut to its last 1 KiB.
std::string ExecuteUserScriptError(int exit_code, const std::vector<std::string>& stderr_tail,
                                   const std::vector<std::string>& argv);

}  // namespace ty::agent
