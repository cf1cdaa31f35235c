// DebuggerOutputs: the platform side of SageMaker Debugger on one instance. While the training
// process runs it mirrors
//   DebugHookConfig.LocalPath          -> <S3OutputPath>/<job>/debug-output/
//   TensorBoardOutputConfig.LocalPath  -> <S3OutputPath>/<job>/tensorboard-output/
//   the profiler's system metrics      -> <S3OutputPath>/<job>/profiler-output/system/
// with storage::DirectorySync (the checkpoint sync engine: files are uploaded whole, once their
// writer closed them, so a rule never reads a torn file), and writes the system metrics
// (SystemMetricsWriter) when ProfilerConfig asks for them. Finish() is the final flush, once
// the training process is gone (on interruption too: what was written is kept).
// training_job_end.ts is not placed here: the control plane places it when the job ends.
//
// Thread contract: Start() and Finish() from one thread; on_error runs on the syncs' threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/system_metrics.h"
#include "common/status.h"
#include "model/agent_protocol.h"
#include "storage/directory_sync.h"

namespace ty::agent {

class DebuggerOutputs {
 public:
  // `on_error` gets a line for the job's log for each failure (retried by the syncs).
  DebuggerOutputs(const model::InstanceConfig& config,
                  std::function<void(const std::string&)> on_error);
  ~DebuggerOutputs();
  DebuggerOutputs(const DebuggerOutputs&) = delete;
  DebuggerOutputs& operator=(const DebuggerOutputs&) = delete;

  // After staging: starts the syncs the job asks for and the system metrics writer, which
  // measures memory in the instance's cgroup `cgroup_dirs` when it has one (else the agent's
  // process tree) against `memory_limit_bytes` (0: the instance type's memory). Nothing when
  // the job has no debugger, TensorBoard or profiler config.
  Status Start(const std::vector<std::string>& cgroup_dirs = {}, uint64_t memory_limit_bytes = 0);
  // Stops the writer (its last file is moved into place), flushes every sync within `budget`
  // and stops them. The first failure, or Ok. Idempotent.
  Status Finish(std::chrono::milliseconds budget);
  bool active() const { return !syncs_.empty(); }

 private:
  Status StartSync(const std::string& local_dir, const std::string& uri);

  const model::InstanceConfig& config_;
  std::function<void(const std::string&)> on_error_;
  std::vector<std::unique_ptr<storage::DirectorySync>> syncs_;
  std::unique_ptr<SystemMetricsWriter> writer_;
};

}  // namespace ty::agent
