// The contract between the control plane and `trainyard agent`:
//  - InstanceConfig: what the launcher writes to <instance_dir>/instance.json
//    and the agent reads at start (`trainyard agent --instance FILE`);
//  - AgentReport: what the agent POSTs to the control plane at
//    <server url>/_trainyard/agent/v1/report with header
//    "Authorization: Bearer <token>"; the body is one report as JSON.
// A serialization edge: nlohmann/json is allowed here.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "model/training_job.h"

namespace ty::model {

inline constexpr char kAgentReportPath[] = "/_trainyard/agent/v1/report";

// How the image's entrypoint is played (resolved by the control plane from
// the image catalog before launch).
struct ImageEntry {
  enum class Runtime {
    kCommand,          // run `command` (+ args) as the image's ENTRYPOINT
    kPythonFramework,  // do what the SageMaker training toolkit does
  };
  Runtime runtime = Runtime::kCommand;
  std::vector<std::string> command;        // ENTRYPOINT argv; empty for python-framework
  std::string workdir;                     // empty: the instance's /opt/ml/code or /
  std::map<std::string, std::string> env;  // added before the job's Environment
};

// The network an instance's training process sees: one address per instance (launch/
// instance_network.h), in its own network namespace, or on a loopback alias for multi-node
// jobs where namespaces cannot be made. Empty (no address) for a single instance that shares
// the host's network.
struct InstanceNetworkConfig {
  std::string netns;      // `ip netns` name the training process enters; "" for none
  std::string interface;  // SM_NETWORK_INTERFACE_NAME ("eth0"; "lo" on loopback)
  std::string address;    // this instance's address
  // Every instance's name and address, for the instance's /etc/hosts.
  std::vector<std::pair<std::string, std::string>> hosts;
  int master_port = 7777;  // SM_MASTER_PORT
  // AWS_ENDPOINT_URL_S3 as this instance reaches the store (the gateway in place of a store on
  // the host); "" keeps the store's own URL.
  std::string store_url;
  // Name servers for the instance's resolv.conf: the host's, for instances with NAT; none
  // otherwise (a lookup that misses /etc/hosts then fails at once instead of hanging).
  std::vector<std::string> nameservers;
  // A line for the job's log saying what this network reaches and, when it is weaker than a
  // namespace behind the firewall, why.
  std::string notice;
  bool empty() const { return address.empty(); }
};

// How the training process is sandboxed when isolation is bwrap (agent/sandbox.h).
struct SandboxConfig {
  // true: a user namespace in which `uid`/`gid` (unprivileged on the host) are 0; false: the
  // server found no user namespaces, and the process runs as root with no capabilities.
  bool user_namespace = true;
  uint32_t uid = 65534;  // host owner of what the training process writes (nobody)
  uint32_t gid = 65534;  // (nogroup)
  // Host paths the sandbox shows as empty: the data dir, /root, /home, the file roots.
  std::vector<std::string> hidden_paths;
};

struct InstanceConfig {
  std::string job_name;
  std::string job_arn;
  std::string region;
  std::string account;
  int attempt = 1;
  int host_index = 1;              // 1-based: algo-<host_index>
  std::vector<std::string> hosts;  // "algo-1", ... sorted
  std::string instance_dir;        // the tree bound at /opt/ml
  std::string log_stream;          // "<job>/algo-<n>-<epoch seconds>"
  std::string server_url_file;     // file holding the control plane's URL
  // The control plane's URL; when set it is used instead of server_url_file (SlurmLauncher:
  // the URL the nodes reach, slurm.server_url).
  std::string server_url;
  std::string token;                 // authenticates reports
  int64_t stop_grace_seconds = 120;  // SIGTERM -> SIGKILL of the training process
  // Spot interruption notice period: after SIGUSR1 the instance has this
  // long before it is killed (the agent keeps some of it for the final sync).
  int64_t notice_seconds = 120;
  // Log lines the agent holds at most while the control plane cannot take them
  // (agent::Reporter::Options::max_buffered_lines).
  int64_t log_buffer_lines = 20000;
  std::string isolation = "auto";  // auto | bwrap | none
  SandboxConfig sandbox;
  std::vector<std::string> file_roots;  // where file:// URIs may point
  // The server's S3 store as storage::S3SettingsToJson gives it (credentials
  // included; model/ cannot name storage/'s type), or null when none.
  nlohmann::json storage_s3;
  // Give the training process the S3 endpoint, region and credentials
  // (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...), as SageMaker local mode does.
  bool pass_s3_credentials = false;
  int num_cpus = 1;
  int num_gpus = 0;
  double memory_gib = 0;  // the instance type's memory
  int max_processes = 0;  // the instance type's process limit; 0: none
  // Hold the instance (agent and training process) to num_cpus, memory_gib and max_processes
  // with a cgroup where the machine allows it (agent/resource_limits.h).
  bool enforce_limits = false;
  // How often the agent samples the instance's utilisation (CPU, memory, disk, GPU) for
  // CloudWatch; 0: never.
  int64_t metrics_interval_ms = 1000;
  // How the instance tree is held to spec.volume_size_gb: auto (its own loop-mounted file
  // system where possible, else watched) | watch | off (storage/instance_volume.h).
  std::string volumes = "off";
  InstanceNetworkConfig network;
  // Set by SlurmLauncher only. sigterm_means_notice: a SIGTERM is the spot interruption notice
  // (Slurm preempting a spot-partition job), not a stop. slurm_network: `network` is learnt at
  // start from the Slurm allocation (launch/slurm_allocation.h) instead of being given here.
  // engine_signals_every_process: the engine signals every process of the instance, the
  // sandbox's too (Slurm's proctrack), so the sandbox must survive a SIGTERM.
  bool sigterm_means_notice = false;
  bool slurm_network = false;
  bool engine_signals_every_process = false;
  // The server's python/ folder (Python pieces training code may import, e.g. the debugger
  // hook): bound read-only into the sandbox and appended to PYTHONPATH for the python-framework
  // runtime. "": none.
  std::string python_dir;
  ImageEntry image;
  JobSpec spec;
};

nlohmann::json InstanceConfigToJson(const InstanceConfig& c);
Result<InstanceConfig> InstanceConfigFromJson(const nlohmann::json& j);

struct AgentLogLine {
  int64_t timestamp_ms = 0;
  std::string message;
};

// One sample of an instance's utilisation (agent/instance_sampler.h), in CloudWatch's terms:
// percent, CPU and GPU summed over vCPUs and GPUs (100 per vCPU, per GPU). A metric the agent
// could not measure is absent.
struct InstanceSample {
  int64_t timestamp_ms = 0;
  std::optional<double> cpu, memory, disk, gpu, gpu_memory;
};

// Samples one report carries at most (a report past it is refused).
inline constexpr size_t kMaxSamplesPerReport = 3600;

// One report from an agent. Reports of one agent carry increasing `seq`
// so a retried report is applied once.
struct AgentReport {
  enum class Type {
    kPhase,       // the instance entered `phase` (Downloading, Training, Uploading)
    kLog,         // log lines of `stream`
    kExit,        // the instance is done: `outcome` and details
    kCheckpoint,  // the checkpoint directory was synced to CheckpointConfig.S3Uri
  };
  // kInterrupted: the instance got a spot interruption notice and is gone;
  // only checkpoints were synced (no artifacts).
  enum class Outcome { kCompleted, kFailed, kStopped, kInterrupted };

  Type type = Type::kPhase;
  std::string job_arn;
  int host_index = 1;
  int attempt = 1;
  int64_t seq = 0;
  // Every type: log lines of this instance the agent has dropped so far (its buffer
  // overflowed, or the control plane refused or could not take them for too long), and why
  // the last ones were dropped. Cumulative, so a later report carries the count of
  // dropped ones.
  int64_t lost_lines = 0;
  std::string lost_reason;
  // kPhase
  SecondaryStatus phase = SecondaryStatus::kDownloading;
  std::string message;  // StatusMessage for the transition
  // kLog
  std::string stream;
  std::vector<AgentLogLine> lines;
  // Utilisation samples taken since the last report (they ride on log reports, which may then
  // carry no line). Values outside [0, 100 x 4096] or not finite are dropped when parsed.
  std::vector<InstanceSample> samples;
  // kExit
  Outcome outcome = Outcome::kCompleted;
  std::string
      failure_reason;  // "AlgorithmError: ..." / "ClientError: ..." / "InternalServerError: ..."
  std::string model_artifacts;  // where model.tar.gz (or model/) was written
  bool artifacts_uploaded = false;
  // kCheckpoint
  int64_t synced_at_ms = 0;
  int files_uploaded = 0;
  int objects_deleted = 0;
  uint64_t bytes_uploaded = 0;
};

nlohmann::json AgentReportToJson(const AgentReport& r);
Result<AgentReport> AgentReportFromJson(const nlohmann::json& j);

}  // namespace ty::model
