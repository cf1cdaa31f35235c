// ServerConfig: everything `trainyard server` can be told, from flags and
// an optional YAML file (--config). See README "Server configuration".
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "capacity/capacity_pool.h"
#include "capacity/instance_catalog.h"
#include "capacity/spot_market.h"
#include "common/status.h"
#include "events/dispatcher_options.h"
#include "events/governance_policy.h"
#include "launch/image_catalog.h"
#include "launch/slurm_launcher.h"
#include "server/http_server.h"
#include "storage/s3_settings.h"
#include "telemetry/metric_store.h"

namespace ty::server {

// Settings of one account (config key accounts: {"<12-digit id>": {...}}).
struct AccountConfig {
  // Where this account's file:// URIs may point, instead of the server's file_roots.
  std::vector<std::string> file_roots;
};

struct ServerConfig {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free port
  std::string data_dir;                // SQLite state, credentials, job trees
  std::string region = "us-east-1";
  // Where file:// URIs may point. Default: the starting directory, unless it overlaps the data
  // dir (then none). Roots that overlap the data dir are refused at start.
  std::vector<std::string> file_roots;
  // Per-account settings; accounts not listed use the server-wide ones.
  std::map<std::string, AccountConfig> accounts;
  std::string credentials_file;    // default: <data_dir>/credentials (created)
  std::string isolation = "auto";  // auto | bwrap | none
  // sandbox: {uid, gid}: the unprivileged host uid/gid that is root inside every sandbox and
  // owns what training processes write (default 65534:65534, nobody:nogroup).
  uint32_t sandbox_uid = 65534;
  uint32_t sandbox_gid = 65534;
  // isolation none with several accounts in the credentials file lets every account's jobs
  // read the others' data: refused at start unless this is true (then loudly warned about).
  bool allow_shared_host = false;
  // Log lines each agent holds at most while the server cannot store them (a full disk);
  // beyond, the oldest are dropped and counted in the job's log and status message.
  int64_t agent_log_buffer_lines = 20000;
  // How multi-node jobs' instances are networked: auto | namespaces | loopback
  // (launch::NetworkPolicy).
  std::string network = "auto";
  // Hold each instance to its type's CPUs and memory with a cgroup where possible.
  bool instance_limits = true;
  // How an instance is held to its job's VolumeSizeInGB: auto (its own loop-mounted ext4 volume
  // where the machine allows it, else watched), watch (usage polled, the job ended past it), off.
  std::string instance_volumes = "auto";
  std::chrono::seconds stop_grace{120};  // SIGTERM -> SIGKILL of a stopping job
  size_t max_body_bytes = 1 << 20;       // larger API bodies are refused
  // Threads that run API calls (they wait for the controller's loop). Open connections cost
  // no thread: idle and slow clients wait in the HTTP server's I/O threads.
  int http_threads = 16;
  // Threads that run agents' reports, apart from the API's so reports never hold an API call.
  int http_report_threads = 4;
  // The HTTP edge (config key http): I/O threads, deadlines, header and connection limits.
  // Its max_body_bytes is set from max_body_bytes above.
  HttpServerOptions http;
  std::vector<launch::ImageRule> images;  // image catalog entries (before built-ins)
  // What runs the jobs' instances (config key launcher): local (this machine) | slurm (a Slurm
  // cluster, configured under slurm:).
  std::string launcher = "local";
  // Config key slurm: {spot_partition, on_demand_partition, server_url, bin_dir, slurm_conf,
  // timeout_seconds, job_name_prefix, agent_binary, instance_types: {TYPE: {cpus, memory_mb,
  // gres, constraint, partition}}, require_instance_types, sbatch_args, unknown_grace_seconds}
  // (launch/slurm_launcher.h). server_url defaults to http://<listen> when listen is not a
  // loopback or wildcard address; job_name_prefix to "ty-<server id>-"; agent_binary to
  // this executable.
  launch::SlurmLauncherOptions slurm;
  std::string agent_binary;  // default: this executable
  // The python/ folder training code may import from (config key python_dir); default: the
  // first of <exe dir>/../python and <exe dir>/../share/trainyard/python that exists.
  std::string python_dir;
  // Catalog overrides and additions (over the built-in table), each complete:
  // fields a config entry leaves out come from the built-in entry.
  std::vector<capacity::InstanceType> instance_types;
  // Instances of each type this machine hosts at once; default: derived from
  // the host's cores and memory.
  capacity::CapacityConfig capacity;
  // Default: 0.3 of on-demand, 120 s notice, no interruptions, always available.
  capacity::SpotMarketConfig spot;
  // The S3 store for s3:// URIs (config key storage.s3); members left unset come from the
  // AWS environment variables and shared files, as for the AWS CLI.
  storage::S3SettingsOverrides s3;
  // storage.pass_credentials_to_jobs: training processes get AWS_ENDPOINT_URL_S3, AWS_REGION
  // and the store's keys (off by default: the keys are the server's, not the caller's).
  bool pass_s3_credentials_to_jobs = false;
  // CloudWatch metrics (config key metrics): how often agents sample their instance
  // (interval_seconds, 0: never), retention of each tier (raw_retention_hours,
  // minute_retention_days, hour_retention_days), how often aged data is swept
  // (sweep_interval_seconds) and max_series_per_account (telemetry/metric_store.h).
  int64_t metrics_interval_ms = 1000;
  telemetry::MetricStoreOptions metric_store;
  std::chrono::seconds metrics_sweep_interval{60};
  // GET /metrics (config key metrics_endpoint), the server's own metrics for Prometheus.
  // By default it is served on the API listener to callers with a configured access key
  // (SigV4-signed, or HTTP Basic <access key id>:<secret>, which Prometheus' basic_auth sends).
  struct MetricsEndpoint {
    std::string listen;                    // HOST:PORT of a separate admin listener, served without
                                           // credentials (bind it where only operators reach)
    bool unauthenticated = false;          // serve it on the API listener without credentials
    std::vector<std::string> access_keys;  // when set, only these keys may read it
  } metrics_endpoint;
  // Built-in governance (config key governance; README "Governance"): the policies every
  // account starts with (events/governance_policy.h, snake_case keys), and
  // allow_account_updates (default true): whether an account may replace its own policies
  // with Trainyard.UpdateGovernance.
  events::GovernancePolicies governance;
  bool governance_allow_account_updates = true;
  // EventBridge delivery (config key events): delivery_workers (4), max_retries (8),
  // max_event_age_seconds (900), backoff_initial_ms (1000), backoff_max_ms (60000), poll_ms
  // (500), keep_dead_letters (1000 per account), paused (false: true routes and delivers
  // nothing; the outbox keeps every event for a later server). A target's RetryPolicy overrides
  // max_retries and max_event_age_seconds.
  events::DispatcherOptions events;
  // Debugger and profiler rules (config key debugger; debugger/rule_manager.h): threads (2)
  // evaluate at once, each rule advanced every poll_interval_ms (1000), reading tensors of at
  // most max_tensor_mb (64); a stopped job's rules stop within stop_grace_seconds (60).
  struct Debugger {
    int threads = 2;
    int64_t poll_interval_ms = 1000;
    int64_t max_tensor_mb = 64;
    int64_t stop_grace_seconds = 60;
  } debugger;
};

// Reads a YAML config file over `config` (keys: listen, data_dir, region,
// file_roots, accounts: {ACCOUNT_ID: {file_roots}}, credentials_file, isolation,
// allow_shared_host, agent_log_buffer_lines, sandbox: {uid, gid}, network, instance_limits,
// instance_volumes, stop_grace_seconds, max_body_bytes, http_threads,
// metrics_endpoint: {listen, unauthenticated, access_keys}, http: {io_threads,
// report_threads, head_timeout_seconds, body_timeout_seconds, idle_timeout_seconds,
// max_header_bytes, max_connections, max_connections_per_client}, images: [{match, runtime,
// command, workdir, env}], instance_types: {TYPE: {vcpus, memory_gib, gpus, on_demand_price,
// max_processes}},
// capacity: {TYPE or "*": count},
// spot: {seed, trace_file, types: {TYPE: MODEL}, and the MODEL keys
// price_fraction, notice_seconds, mean_time_between_interruptions_seconds,
// availability: {mean_available_seconds, mean_unavailable_seconds}},
// governance: {allow_account_updates, required_tags: {keys, action}, allowed_instance_types,
// max_instance_count, max_runtime_seconds, idle_stop: {metric, threshold_percent,
// duration_seconds}, auto_resume: {min_runtime_seconds, max_resumes, on_algorithm_error},
// spot_fallback: {after_interruptions, max_capacity_wait_seconds}},
// metrics: {interval_seconds, raw_retention_hours, minute_retention_days, hour_retention_days,
// sweep_interval_seconds, max_series_per_account},
// storage: {pass_credentials_to_jobs, s3: {endpoint, region, addressing, profile,
// access_key_id, secret_access_key, session_token, max_concurrency, part_size_mib,
// multipart_threshold_mib, max_attempts}}).
// A new instance type needs vcpus, memory_gib and on_demand_price. Spot
// entries under types inherit the keys they leave out from spot's own;
// mean_time_between_interruptions_seconds 0 and availability null turn those
// processes off. trace_file is read and parsed here, relative to the config
// file's directory. kInvalidArgument names the file and the offending key.
Status LoadConfigFile(const std::string& path, ServerConfig* config);

// True when one of the two directories contains the other (or they are the same).
// Both must be canonical (RealPath) absolute paths.
bool PathsOverlap(const std::string& a, const std::string& b);

// Canonicalises `roots` and refuses (kInvalidArgument naming `what` and the root) one that
// does not exist or overlaps the data dir `data_dir` (canonical): a file:// root there would
// let jobs read the credentials, the database and other jobs' agent tokens.
Result<std::vector<std::string>> CheckFileRoots(const std::vector<std::string>& roots,
                                                const std::string& data_dir,
                                                const std::string& what);

// Splits "HOST:PORT". kInvalidArgument when malformed.
Status ParseListen(const std::string& listen, std::string* host, int* port);

}  // namespace ty::server
