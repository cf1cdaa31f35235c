#include "agent/debugger_output.h"

#include <unistd.h>

#include <algorithm>

#include "agent/container_env.h"
#include "agent/staging.h"
#include "common/fs.h"
#include "storage/object_stores.h"

namespace ty::agent {

DebuggerOutputs::DebuggerOutputs(const model::InstanceConfig& config,
                                 std::function<void(const std::string&)> on_error)
    : config_(config), on_error_(std::move(on_error)) {}

DebuggerOutputs::~DebuggerOutputs() { (void)Finish(std::chrono::milliseconds(0)); }

Status DebuggerOutputs::StartSync(const std::string& local_dir, const std::string& uri) {
  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(uri, StorageConfigOf(config_)));
  storage::DirectorySyncOptions o;
  o.local_dir = local_dir;
  o.uri = uri;
  o.on_error = on_error_;
  auto sync = std::make_unique<storage::DirectorySync>(std::move(o), std::move(store));
  TY_RETURN_IF_ERROR(sync->Start().WithPrefix("cannot watch " + local_dir));
  syncs_.push_back(std::move(sync));
  return Status::Ok();
}

Status DebuggerOutputs::Start(const std::vector<std::string>& cgroup_dirs,
                              uint64_t memory_limit_bytes) {
  TY_ASSIGN_OR_RETURN(DebuggerDirs dirs, DebuggerHostDirs(config_));
  const model::JobSpec& spec = config_.spec;
  if (!dirs.debug.empty()) TY_RETURN_IF_ERROR(StartSync(dirs.debug, model::DebugOutputUri(spec)));
  if (!dirs.tensorboard.empty()) {
    TY_RETURN_IF_ERROR(StartSync(dirs.tensorboard, model::TensorBoardOutputUri(spec)));
  }
  if (!dirs.profiler.empty()) {
    const std::string system = JoinPath(dirs.profiler, "system");
    TY_RETURN_IF_ERROR(StartSync(system, model::ProfilerOutputUri(spec) + "system/"));
    SystemMetricsOptions o;
    o.dir = dirs.profiler;
    o.staging_dir = dirs.profiler_staging;
    o.node_id = CurrentHost(config_);
    o.interval = std::chrono::milliseconds(std::max<int64_t>(spec.profiler->interval_ms, 100));
    o.sampler.cgroup_dirs = cgroup_dirs;
    o.sampler.root_pid = ::getpid();
    o.sampler.memory_limit_bytes =
        memory_limit_bytes > 0 ? memory_limit_bytes
                               : static_cast<uint64_t>(config_.memory_gib * 1024 * 1024 * 1024);
    o.sampler.gpus = config_.num_gpus;
    writer_ = std::make_unique<SystemMetricsWriter>(std::move(o));
    TY_RETURN_IF_ERROR(writer_->Start());
  }
  return Status::Ok();
}

Status DebuggerOutputs::Finish(std::chrono::milliseconds budget) {
  if (writer_) {
    writer_->Stop();
    writer_.reset();
  }
  Status first;
  const auto deadline = std::chrono::steady_clock::now() + budget;
  for (auto& sync : syncs_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    Status s = sync->Flush(std::max(left, std::chrono::milliseconds(1)));
    sync->Stop();
    if (!s.ok() && first.ok()) first = s;
  }
  syncs_.clear();
  return first;
}

}  // namespace ty::agent
