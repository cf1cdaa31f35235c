#include "agent/agent.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "agent/container_env.h"
#include "agent/debugger_output.h"
#include "agent/instance_sampler.h"
#include "agent/reporter.h"
#include "agent/resource_limits.h"
#include "agent/sandbox.h"
#include "agent/staging.h"
#include "agent/supervisor.h"
#include "agent/volume_guard.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/subprocess.h"
#include "launch/slurm_allocation.h"
#include "storage/directory_sync.h"
#include "storage/object_store.h"

namespace ty::agent {
namespace {

using model::AgentReport;

constexpr size_t kMaxBatchLines = 500;
// Lines reach followers within ~this long; batching keeps report count low
// for chatty jobs.
constexpr auto kMaxBatchDelay = std::chrono::milliseconds(20);
constexpr size_t kMaxBatchBytes = 1 << 20;
constexpr size_t kStderrTailLines = 64;
// coreutils env (>= 8.31: --ignore-signal, --default-signal).
constexpr char kEnvPath[] = "/usr/bin/env";

int64_t NowMs() { return ToEpochMillis(SystemClock::Default()->Now()); }

// Reasons follow spec section 3.5: platform-detected user errors are
// ClientError, our own or the environment's faults InternalServerError.
std::string ReasonFor(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInternal:
    case StatusCode::kIoError:
    case StatusCode::kUnavailable:
      return "InternalServerError: " + s.message();
    default:
      return "ClientError: " + s.message();
  }
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::atomic<Agent*> g_signal_agent{nullptr};

// Set before the handlers are installed: SIGTERM is the spot notice (Slurm's preemption).
std::atomic<bool> g_sigterm_means_notice{false};

void HandleStopSignal(int sig) {
  Agent* a = g_signal_agent.load();
  if (a == nullptr) return;
  if (sig == SIGUSR1 || (sig == SIGTERM && g_sigterm_means_notice.load())) {
    a->RequestInterrupt();
  } else if (sig == SIGUSR2 || sig == SIGURG) {
    a->RequestAbort();
  } else {
    a->RequestStop();
  }
}

int64_t MonotonicMs() {
  // clock_gettime is async-signal-safe (the notice's start is taken in a handler).
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// Of an interruption notice, the part kept for the final checkpoint sync
// after the training process had its chance to save one.
std::chrono::milliseconds SyncReserve(std::chrono::milliseconds notice) {
  return std::min<std::chrono::milliseconds>(notice / 4, std::chrono::seconds(30));
}

}  // namespace

bool BubblewrapWorks(const std::string& bwrap_path) {
  static std::mutex mu;
  static std::map<std::string, bool> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(bwrap_path);
  if (it != cache.end()) return it->second;
  SpawnOptions o;
  o.argv = {bwrap_path, "--ro-bind", "/", "/", "true"};
  o.env = {{"PATH", kBasePath}};
  o.capture_output = false;
  o.stdout_file = "/dev/null";
  bool works = false;
  auto p = Subprocess::Spawn(o);
  if (p.ok()) {
    auto code = (*p)->Wait();
    works = code.ok() && *code == 0;
  }
  cache[bwrap_path] = works;
  return works;
}

struct Agent::Impl {
  model::InstanceConfig config;
  std::ostream& err;
  AgentOptions options;
  std::mutex err_mu;
  Supervisor supervisor;
  std::unique_ptr<Reporter> reporter;
  std::unique_ptr<storage::DirectorySync> checkpoint_sync;
  // Debugger hook, TensorBoard and profiler output (main thread only).
  std::unique_ptr<DebuggerOutputs> debugger;
  std::atomic<bool> stop_asked{false};   // SIGTERM/SIGINT: stop, upload artifacts
  std::atomic<bool> aborted{false};      // SIGUSR2: another instance failed the job
  std::string limits_cgroup;             // the instance cgroup, when limits were applied
  std::vector<std::string> limits_dirs;  // its directories (one per v1 hierarchy)
  uint64_t memory_limit_bytes = 0;       // the memory limit in force; 0: none
  std::unique_ptr<VolumeGuard> volume;   // VolumeSizeInGB (main thread only)
  // CloudWatch instance metrics (main thread only): samples wait here for the next report.
  std::unique_ptr<InstanceSampler> sampler;
  std::vector<model::InstanceSample> pending_samples;
  std::chrono::steady_clock::time_point next_sample;
  bool volume_exceeded = false;          // a watched volume went over: the process was stopped
  std::atomic<bool> interrupted{false};  // SIGUSR1: spot interruption notice
  std::atomic<int64_t> notice_at_ms{0};  // MonotonicMs() of the notice
  // Lines for the job's log from other threads (the checkpoint sync).
  std::mutex notes_mu;
  std::vector<std::string> notes;

  // Log batching (main thread only).
  std::vector<model::AgentLogLine> pending;
  size_t pending_bytes = 0;
  std::chrono::steady_clock::time_point first_pending;
  std::deque<std::string> stderr_tail;

  Impl(model::InstanceConfig c, std::ostream& e, AgentOptions o)
      : config(std::move(c)), err(e), options(std::move(o)) {}

  void Diag(const std::string& line) {
    std::lock_guard<std::mutex> lock(err_mu);
    err << FormatIso8601(SystemClock::Default()->Now()) << " trainyard agent " << config.job_name
        << "/" << CurrentHost(config) << ": " << line << std::endl;
  }

  AgentReport NewReport(AgentReport::Type type) {
    AgentReport r;
    r.type = type;
    r.job_arn = config.job_arn;
    r.host_index = config.host_index;
    r.attempt = config.attempt;
    return r;
  }

  void Phase(model::SecondaryStatus phase, const std::string& message) {
    FlushLog();
    AgentReport r = NewReport(AgentReport::Type::kPhase);
    r.phase = phase;
    r.message = message;
    reporter->Send(std::move(r));
  }

  void AddLine(int64_t ts, std::string text) {
    if (pending.empty()) first_pending = std::chrono::steady_clock::now();
    pending_bytes += text.size();
    pending.push_back({ts, std::move(text)});
    // Lines may be up to 256 KiB: bound the report's body too (the server
    // refuses bodies of a few MiB).
    if (pending.size() >= kMaxBatchLines || pending_bytes >= kMaxBatchBytes) FlushLog();
  }

  void DrainNotes() {
    std::vector<std::string> taken;
    {
      std::lock_guard<std::mutex> lock(notes_mu);
      taken.swap(notes);
    }
    for (auto& n : taken) AddLine(NowMs(), "trainyard: " + n);
  }

  std::chrono::milliseconds Notice() const {
    return std::chrono::seconds(std::max<int64_t>(config.notice_seconds, 0));
  }

  // Async-signal-safe: the spot instance is going away after the notice.
  void RequestInterrupt() {
    if (interrupted.exchange(true)) return;
    notice_at_ms.store(MonotonicMs());
    supervisor.RequestStop(Notice() - SyncReserve(Notice()));
  }

  void RequestStop() {
    stop_asked.store(true);
    supervisor.RequestStop();
  }

  // Async-signal-safe: the job failed on another instance. Stop like a StopTrainingJob, but
  // upload no artifacts (the job has none): checkpoints are still synced.
  void RequestAbort() {
    aborted.store(true);
    RequestStop();
  }

  // Starts mirroring the checkpoint directory (restored by staging) to the
  // checkpoint URI.
  Status StartCheckpointSync() {
    if (!config.spec.checkpoint_uri) return Status::Ok();
    TY_ASSIGN_OR_RETURN(std::string local, CheckpointHostDir(config));
    std::string uri = *config.spec.checkpoint_uri;
    if (uri.back() != '/') uri += '/';
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(uri, StorageConfigOf(config)));
    storage::DirectorySyncOptions o;
    o.local_dir = local;
    o.uri = uri;
    o.on_progress = [this](const storage::SyncProgress& p) {
      AgentReport r = NewReport(AgentReport::Type::kCheckpoint);
      r.synced_at_ms = p.synced_at_ms;
      r.files_uploaded = p.files_uploaded;
      r.objects_deleted = p.objects_deleted;
      r.bytes_uploaded = p.bytes_uploaded;
      reporter->Send(std::move(r));
    };
    o.on_error = [this](const std::string& message) {
      Diag(message);
      std::lock_guard<std::mutex> lock(notes_mu);
      notes.push_back(message);
    };
    checkpoint_sync = std::make_unique<storage::DirectorySync>(std::move(o), std::move(store));
    return checkpoint_sync->Start();
  }

  // The last sync of the checkpoint directory, once the training process is
  // gone: nothing written before it exited is lost.
  void FinalCheckpointSync(std::chrono::milliseconds budget) {
    if (!checkpoint_sync) return;
    Status s = checkpoint_sync->Flush(budget);
    checkpoint_sync->Stop();
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(notes_mu);
      notes.push_back("final checkpoint sync failed: " + s.message());
    }
    DrainNotes();
  }

  void MaybeFlushLog() {
    DrainNotes();
    SampleIfDue();
    const bool lines_due =
        !pending.empty() && std::chrono::steady_clock::now() - first_pending >= kMaxBatchDelay;
    // A quiet job's samples go alone, so they arrive within a sample interval.
    const bool samples_alone = pending.empty() && !pending_samples.empty();
    if (lines_due || samples_alone) FlushLog();
  }

  // Samples the instance every metrics_interval_ms while the training process runs.
  void SampleIfDue() {
    if (!sampler) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_sample) return;
    next_sample = now + std::chrono::milliseconds(config.metrics_interval_ms);
    model::InstanceSample s = sampler->Sample(NowMs(), now);
    if (s.cpu || s.memory || s.disk || s.gpu || s.gpu_memory) pending_samples.push_back(s);
    // A stalled control plane must not make one report unbounded (the reporter bounds the rest).
    if (pending_samples.size() > model::kMaxSamplesPerReport) {
      pending_samples.erase(pending_samples.begin());
    }
  }

  void FlushLog() {
    if (pending.empty() && pending_samples.empty()) return;
    AgentReport r = NewReport(AgentReport::Type::kLog);
    r.stream = config.log_stream;
    r.lines = std::move(pending);
    r.samples = std::move(pending_samples);
    pending.clear();
    pending_samples.clear();
    pending_bytes = 0;
    reporter->Send(std::move(r));
  }

  // The last sync of the debugger, TensorBoard and profiler output, once the training process
  // is gone: every file it wrote is kept, whatever the outcome.
  void FinalDebuggerSync() {
    if (!debugger) return;
    std::chrono::milliseconds budget = std::chrono::minutes(10);
    if (interrupted.load() && !stop_asked.load()) {
      int64_t left = Notice().count() - (MonotonicMs() - notice_at_ms.load());
      budget = std::chrono::milliseconds(std::max<int64_t>(left - 500, 1000));
    }
    Status s = debugger->Finish(budget);
    if (!s.ok()) {
      std::lock_guard<std::mutex> lock(notes_mu);
      notes.push_back("final debugger output sync failed: " + s.message());
    }
    debugger.reset();
    DrainNotes();
  }

  int Finish(AgentReport::Outcome outcome, const std::string& reason, const std::string& artifacts,
             bool uploaded) {
    FinalDebuggerSync();
    FlushLog();
    AgentReport r = NewReport(AgentReport::Type::kExit);
    r.outcome = outcome;
    r.failure_reason = reason;
    r.model_artifacts = artifacts;
    r.artifacts_uploaded = uploaded;
    if (!reason.empty()) Diag("exit: " + reason);
    reporter->Send(std::move(r));
    if (reporter->WaitIdle(options.exit_retry_budget + std::chrono::seconds(5))) return 0;
    Diag("the exit report could not be delivered");
    return 1;
  }

  // Multi-node jobs: the instance trees of one attempt are siblings (<attempt>/algo-<i>), on
  // one machine or a shared file system. An instance other than algo-1 marks its tree final
  // with <attempt>/algo-<i>.done once its training process is gone; algo-1 waits for every
  // mark before it merges the trees' model/ and output/data/ and uploads them.
  std::string PeerDir(int i) const {
    std::string dir = config.instance_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    return JoinPath(dir.substr(0, dir.find_last_of('/')), "algo-" + std::to_string(i));
  }

  // Waits until every other instance marked its tree final; false when the wait was cut
  // short (a stop arrived while waiting, or `budget` ran out once stopping).
  bool WaitForPeers(std::chrono::milliseconds budget) {
    const int n = static_cast<int>(config.hosts.size());
    auto deadline = std::chrono::steady_clock::now() + budget;
    bool logged = false;
    for (;;) {
      int missing = 0;
      for (int i = 2; i <= n; ++i) missing += PathExists(PeerDir(i) + ".done") ? 0 : 1;
      if (missing == 0) return true;
      if (!logged) {
        AddLine(NowMs(), "trainyard: waiting for " + std::to_string(missing) +
                             " other instance(s) to finish before uploading the model");
        FlushLog();
        logged = true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      // A stop while waiting (a peer failed and the job is being stopped): give the
      // stopped peers the bounded wait instead.
      if (stop_asked.load() &&
          deadline - std::chrono::steady_clock::now() > std::chrono::seconds(30)) {
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      }
      // A few stat(2)s every 20 ms: cheap, and the upload starts soon after the last peer.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Uploads artifacts and the final checkpoints; returns the failure reason
  // ("" on success).
  std::string Upload(std::string* artifacts, bool* uploaded) {
    FinalCheckpointSync(std::chrono::minutes(10));
    const int n = static_cast<int>(config.hosts.size());
    if (config.host_index != 1) {
      // Without its mark algo-1 would wait for this instance forever: fail instead.
      Status marked = WriteFileAtomic(PeerDir(config.host_index) + ".done", "");
      return marked.ok() ? "" : ReasonFor(marked.WithPrefix("cannot mark the instance finished"));
    }
    std::string model_dir;
    std::string data_dir;
    if (n > 1) {
      // Once stopping, peers get a bounded wait: they were stopped too and mark quickly.
      auto budget = stop_asked.load() ? std::chrono::milliseconds(std::chrono::seconds(30))
                                      : std::chrono::milliseconds(std::chrono::hours(24 * 365));
      if (!WaitForPeers(budget) && !stop_asked.load()) {
        return "InternalServerError: the other instances did not finish";
      }
      std::vector<std::string> models, datas;
      for (int i = 1; i <= n; ++i) {
        models.push_back(JoinPath(PeerDir(i), "model"));
        datas.push_back(JoinPath(PeerDir(i), "output/data"));
        for (const auto& tree : {models.back(), datas.back()}) {
          Status real = CheckRealDirectory(tree);
          if (!real.ok()) return ReasonFor(real.WithPrefix("cannot upload the training artifacts"));
        }
      }
      std::string merged = JoinPath(config.instance_dir, ".trainyard/merged");
      (void)RemoveAll(merged);
      model_dir = JoinPath(merged, "model");
      data_dir = JoinPath(merged, "data");
      std::vector<std::string> clashes;
      Status m = MergeTrees(models, model_dir, &clashes);
      if (m.ok()) m = MergeTrees(datas, data_dir, &clashes);
      if (!m.ok()) return ReasonFor(m.WithPrefix("cannot merge the instances' model directories"));
      for (const auto& c : clashes) {
        AddLine(NowMs(), "trainyard: model merge: " + c +
                             " is also in a lower-numbered instance's tree; that copy was kept");
      }
    }
    for (const char* tree : {"model", "output", "output/data"}) {
      Status real = CheckRealDirectory(JoinPath(config.instance_dir, tree));
      if (!real.ok()) return ReasonFor(real.WithPrefix("cannot upload the training artifacts"));
    }
    Status s = UploadArtifacts(config, artifacts, model_dir, data_dir);
    *uploaded = s.ok() && !artifacts->empty();
    if (!s.ok()) {
      Diag("artifact upload failed: " + s.ToString());
      return ReasonFor(s.WithPrefix("cannot upload the training artifacts"));
    }
    return "";
  }

  // The notice ran out or the training process is gone: sync what the
  // script saved and leave; the control plane restarts the job elsewhere.
  int Interrupted() {
    int64_t left = Notice().count() - (MonotonicMs() - notice_at_ms.load());
    FinalCheckpointSync(std::chrono::milliseconds(std::max<int64_t>(left - 500, 1000)));
    AddLine(NowMs(),
            "trainyard: spot interruption: the instance is going away; checkpoints synced");
    return Finish(AgentReport::Outcome::kInterrupted, "", "", false);
  }

  // The sandbox's uid may walk to the tree (search only) and read /opt/ml and input/.
  // What the training process must be able to write is given to the sandbox's uid: model/,
  // output/ (the toolkit's failure file), code/ and the checkpoint directory. /opt/ml itself
  // and input/ stay the agent's (made readable), so the process cannot swap the trees the
  // agent reads as root for symlinks.
  Status GrantTreeToSandbox() {
    const uid_t uid = config.sandbox.uid;
    const gid_t gid = config.sandbox.gid;
    // bubblewrap, started as the uid, resolves the tree's path itself.
    TY_RETURN_IF_ERROR(GrantSearchToAncestors(config.instance_dir, uid));
    if (::chmod(config.instance_dir.c_str(), 0755) != 0) {
      return ErrnoStatus("cannot chmod " + config.instance_dir, errno);
    }
    TY_RETURN_IF_ERROR(MakeTreeReadable(JoinPath(config.instance_dir, "input")));
    for (const char* tree : {"model", "output", "code"}) {
      TY_RETURN_IF_ERROR(ChownTree(JoinPath(config.instance_dir, tree), uid, gid));
    }
    if (config.spec.checkpoint_uri) {
      TY_ASSIGN_OR_RETURN(std::string ckpt, CheckpointHostDir(config));
      TY_RETURN_IF_ERROR(ChownTree(ckpt, uid, gid));
    }
    // The hook's and TensorBoard's local directories may lie outside output/.
    TY_ASSIGN_OR_RETURN(DebuggerDirs dirs, DebuggerHostDirs(config));
    for (const std::string& dir : {dirs.debug, dirs.tensorboard}) {
      if (!dir.empty()) TY_RETURN_IF_ERROR(ChownTree(dir, uid, gid));
    }
    return Status::Ok();
  }

  // The instance's /etc/hosts (every instance by name) and resolv.conf (no name server: a
  // reverse lookup must fail at once rather than hang), beside the instance tree.
  Result<std::string> WriteNetworkFiles() {
    std::string dir = config.instance_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    dir += ".etc";
    TY_RETURN_IF_ERROR(MakeDirs(dir));
    std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    for (const auto& [name, addr] : config.network.hosts) hosts += addr + "\t" + name + "\n";
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(dir, "hosts"), hosts));
    std::string resolv = "options timeout:1 attempts:1\n";
    for (const auto& ns : config.network.nameservers) resolv += "nameserver " + ns + "\n";
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(dir, "resolv.conf"), resolv));
    return dir;
  }

  // The FailureReason of a training process that failed after the kernel's out-of-memory killer
  // ended a process of the instance since the count was `kills_before`; "" when it did not.
  // Whatever the script then said (a failure file, exit code 137 or 1), the cause is the memory
  // limit, and the reason names it as SageMaker does.
  std::string OutOfMemoryFailure(uint64_t kills_before, int exit_code) const {
    if (memory_limit_bytes == 0 || CountOomKills(limits_dirs) <= kills_before) return "";
    return OutOfMemoryReason(memory_limit_bytes, config.spec.instance_type, exit_code);
  }

  // `reason`, unless the instance's volume is (or was seen) full: then the volume's reason with
  // `what`, since running out of space is the likelier cause of whatever failed.
  std::string VolumeReasonOr(const std::string& reason, const std::string& what) {
    if (volume == nullptr || !volume->Check(/*now=*/true)) return reason;
    return volume->Reason(what);
  }

  // file:// channels bound read-only into the sandbox count toward the volume, as the
  // downloaded ones do.
  Status CountBoundChannels(const InstanceView& view) {
    std::vector<std::string> sources;
    for (const auto& [src, dst] : view.ro_binds) {
      if (dst.rfind(std::string(kOptMl) + "/input/data/", 0) == 0) sources.push_back(src);
    }
    return volume->CountChannels(sources);
  }

  // While the training process runs: a watched volume past its size stops it (a mounted one
  // stops its writes by itself).
  void WatchVolume() {
    if (volume_exceeded || !volume->watching() || !volume->Check()) return;
    volume_exceeded = true;
    AddLine(NowMs(), "trainyard: the instance's storage volume is over VolumeSizeInGB " +
                         std::to_string(config.spec.volume_size_gb) +
                         "; stopping the training process");
    supervisor.RequestStop();
  }

  // The instance's network from its Slurm allocation: algo-<i> is the i-th node's address.
  Status LearnSlurmNetwork() {
    launch::SlurmClient client(launch::SlurmClientOptions{});
    TY_ASSIGN_OR_RETURN(launch::SlurmAllocation allocation, launch::ReadAllocation(client));
    if (allocation.node_id + 1 != config.host_index ||
        allocation.nodes.size() != config.hosts.size()) {
      return Internal("the allocation has " + std::to_string(allocation.nodes.size()) +
                      " nodes and this is node " + std::to_string(allocation.node_id) +
                      ", but the instance is algo-" + std::to_string(config.host_index) + " of " +
                      std::to_string(config.hosts.size()));
    }
    TY_ASSIGN_OR_RETURN(config.network, launch::AllocationNetwork(allocation));
    return Status::Ok();
  }

  // A stop or interruption arrived before or while the process ran.
  // True when the script died of SIGTERM (exit code 143, as a shell reports it, or the signal)
  // and this agent's own notice or stop arrives within a moment: the engine sends both.
  bool EngineSignalArriving(int exit_code) {
    if (exit_code != 128 + SIGTERM && exit_code != -SIGTERM) return false;
    for (int i = 0; i < 40 && !interrupted.load() && !stop_asked.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return interrupted.load() || stop_asked.load();
  }

  int Ended() { return stop_asked.load() || !interrupted.load() ? Stopped() : Interrupted(); }

  int Stopped() {
    std::string artifacts;
    bool uploaded = false;
    if (aborted.load()) {
      FinalCheckpointSync(std::chrono::minutes(1));
      AddLine(NowMs(), "trainyard: stopped: the job failed on another instance");
      return Finish(AgentReport::Outcome::kStopped, "", "", false);
    }
    (void)Upload(&artifacts, &uploaded);
    return Finish(AgentReport::Outcome::kStopped, "", artifacts, uploaded);
  }

  int Run() {
    Reporter::Options ro;
    ro.server_url_file = config.server_url_file;
    ro.server_url = config.server_url;
    ro.token = config.token;
    ro.retry_budget = options.retry_budget;
    ro.exit_retry_budget = options.exit_retry_budget;
    ro.max_buffered_lines = static_cast<size_t>(std::max<int64_t>(1, config.log_buffer_lines));
    if (!config.instance_dir.empty()) {
      std::string parent = config.instance_dir;
      while (parent.size() > 1 && parent.back() == '/') parent.pop_back();
      parent = parent.substr(0, parent.find_last_of('/'));
      ro.undelivered_log = JoinPath(parent.empty() ? "/" : parent, "agent-undelivered.log");
    }
    reporter = std::make_unique<Reporter>(ro, [this](const std::string& l) { Diag(l); });
    const auto fail = AgentReport::Outcome::kFailed;

    InstanceView view;
    view.instance_dir = config.instance_dir;
    if (config.isolation == "bwrap") {
      // The server probed bubblewrap once at startup (or the operator asked
      // for it explicitly): no per-job probe on the start path.
      view.sandboxed = true;
    } else if (config.isolation == "auto") {
      view.sandboxed = BubblewrapWorks(options.bwrap_path);
      if (view.sandboxed && config.sandbox.user_namespace) {
        config.sandbox.user_namespace =
            UserNamespaceSandboxWorks(options.bwrap_path, config.sandbox.uid, config.sandbox.gid);
      }
    }
    view.unprivileged = view.sandboxed && config.sandbox.user_namespace;

    std::string limits_line;
    if (config.enforce_limits) {
      // The instance is held to its type's CPUs and memory before anything is staged: the
      // agent and all it starts are in the instance's cgroup.
      InstanceLimits limits;
      limits.cpus = config.num_cpus;
      limits.memory_bytes = static_cast<uint64_t>(config.memory_gib * 1024 * 1024 * 1024);
      limits.max_processes = static_cast<uint64_t>(std::max(config.max_processes, 0));
      limits_cgroup = config.account + "-" + config.job_name + "-" + CurrentHost(config) + "-" +
                      std::to_string(config.attempt);
      LimitsOutcome applied = ApplyInstanceLimits(limits_cgroup, limits);
      if (!applied.enforced) limits_cgroup.clear();
      limits_line = applied.message;
      if (applied.enforced) {
        limits_dirs = applied.cgroup_dirs;
        memory_limit_bytes = limits.memory_bytes;
      }
    }

    // Before staging: the channels are downloaded onto the volume.
    volume = std::make_unique<VolumeGuard>(config.instance_dir, config.spec.volume_size_gb,
                                           config.volumes);
    std::string volume_line = volume->Prepare();

    Phase(model::SecondaryStatus::kDownloading, "Downloading input data");
    if (config.slurm_network) {
      // Started by srun: the peers' addresses are known only now, from the allocation.
      Status learnt = LearnSlurmNetwork();
      if (!learnt.ok()) {
        return Finish(fail,
                      ReasonFor(learnt.WithPrefix("cannot learn the Slurm allocation's nodes")), "",
                      false);
      }
    }
    if (!limits_line.empty()) AddLine(NowMs(), limits_line);
    if (!volume_line.empty()) AddLine(NowMs(), volume_line);
    Status staged = StageInstance(config, &view);
    if (!staged.ok()) {
      return Finish(fail, VolumeReasonOr(ReasonFor(staged), "staging the input data failed"), "",
                    false);
    }
    Status counted = CountBoundChannels(view);
    if (!counted.ok()) {
      return Finish(fail,
                    counted.code() == StatusCode::kFailedPrecondition
                        ? volume->Reason(counted.message())
                        : ReasonFor(counted),
                    "", false);
    }
    if (view.unprivileged) {
      Status granted = GrantTreeToSandbox();
      if (!granted.ok()) {
        return Finish(fail, ReasonFor(granted.WithPrefix("cannot prepare the sandbox")), "", false);
      }
    }
    Status synced = StartCheckpointSync();
    if (!synced.ok()) {
      return Finish(fail, ReasonFor(synced.WithPrefix("cannot watch the checkpoint directory")), "",
                    false);
    }
    if (config.spec.debug_hook || config.spec.tensorboard || config.spec.profiler) {
      debugger = std::make_unique<DebuggerOutputs>(config, [this](const std::string& message) {
        Diag(message);
        std::lock_guard<std::mutex> lock(notes_mu);
        notes.push_back(message);
      });
      Status started = debugger->Start(limits_dirs, memory_limit_bytes);
      if (!started.ok()) {
        return Finish(fail, ReasonFor(started.WithPrefix("cannot sync the debugger output")), "",
                      false);
      }
    }
    if (supervisor.stop_requested()) return Ended();

    Phase(model::SecondaryStatus::kTraining,
          "Training image download completed. Training in progress.");
    if (!config.network.empty() && !view.sandboxed) {
      // Without the sandbox the instance cannot have its own /etc/hosts: the host names of
      // the other instances would not resolve.
      return Finish(fail,
                    "ClientError: a multi-instance job needs bubblewrap (the instances' host "
                    "names are given to each through its own /etc/hosts)",
                    "", false);
    }
    if (!config.network.empty()) {
      AddLine(NowMs(), "trainyard: " + CurrentHost(config) + " is " + config.network.address +
                           " on " + config.network.interface +
                           (config.network.netns.empty()
                                ? (config.slurm_network
                                       ? " (its Slurm node's network)"
                                       : " (loopback alias: network namespaces are not available)")
                                : " (network namespace " + config.network.netns + ")"));
    }
    if (!config.network.notice.empty()) AddLine(NowMs(), config.network.notice);
    if (!view.sandboxed) {
      AddLine(NowMs(),
              "trainyard: bubblewrap not available; running without isolation (paths under " +
                  config.instance_dir + ")");
    } else if (view.unprivileged) {
      AddLine(NowMs(), "trainyard: sandbox: root inside is uid " +
                           std::to_string(config.sandbox.uid) + " gid " +
                           std::to_string(config.sandbox.gid) +
                           " on the host; no capabilities, seccomp filter, server files hidden");
    } else {
      AddLine(NowMs(),
              "trainyard: WARNING: user namespaces are not available here, so the training "
              "process runs as host root (all capabilities dropped, no_new_privs, seccomp "
              "filter, server files hidden); files it writes are owned by root");
    }
    auto cmd = BuildTrainingCommand(config, view.ml_root());
    if (!cmd.ok()) return Finish(fail, ReasonFor(cmd.status()), "", false);
    const char* home = std::getenv("HOME");
    auto env = BuildContainerEnv(config, view.ml_root(), home != nullptr && *home ? home : "/root");

    // bwrap would only report a missing program as its own exit status 1;
    // look it up in the sandbox's view first so the job fails as a ClientError.
    const std::string& argv0 = cmd->argv[0];
    std::string found;
    if (argv0.find('/') != std::string::npos) {
      std::string p = argv0[0] == '/' ? argv0 : JoinPath(cmd->cwd, argv0);
      if (IsExecutableFile(view.HostPath(p))) found = p;
    } else {
      std::stringstream ss(env.count("PATH") ? env["PATH"] : kBasePath);
      std::string dir;
      while (found.empty() && std::getline(ss, dir, ':')) {
        if (!dir.empty() && IsExecutableFile(view.HostPath(JoinPath(dir, argv0)))) {
          found = JoinPath(dir, argv0);
        }
      }
    }
    if (found.empty()) {
      return Finish(fail, "ClientError: cannot execute '" + argv0 + "': No such file or directory",
                    "", false);
    }

    SpawnOptions so;
    std::optional<PreparedSandbox> sandbox;  // its descriptors stay open until the spawn
    if (view.sandboxed) {
      auto binds = view.ro_binds;
      if (!config.network.empty()) {
        auto etc = WriteNetworkFiles();
        if (!etc.ok()) return Finish(fail, ReasonFor(etc.status()), "", false);
        binds.emplace_back(*etc + "/hosts", "/etc/hosts");
        binds.emplace_back(*etc + "/resolv.conf", "/etc/resolv.conf");
      }
      std::vector<std::string> inner = cmd->argv;
      if (config.engine_signals_every_process) {
        // The engine's SIGTERM reaches bubblewrap too, which would die of it and take the
        // sandbox down at once (--die-with-parent): bubblewrap ignores it, and the training
        // process gets the default back, so the notice's SIGTERM reaches it as locally.
        inner.insert(inner.begin(), {kEnvPath, "--default-signal=TERM"});
      }
      auto prepared = PrepareSandbox(config.sandbox, options.bwrap_path, CurrentHost(config),
                                     config.instance_dir, binds, cmd->cwd, inner);
      if (!prepared.ok()) {
        return Finish(fail, ReasonFor(prepared.status().WithPrefix("cannot prepare the sandbox")),
                      "", false);
      }
      sandbox = std::move(prepared).value();
      so = sandbox->spawn;
      if (config.engine_signals_every_process) {
        so.argv.insert(so.argv.begin(), {kEnvPath, "--ignore-signal=TERM"});
      }
      if (!config.network.empty() && !config.network.netns.empty()) {
        so.netns_path = "/run/netns/" + config.network.netns;
      }
    } else {
      so.argv = cmd->argv;
      so.cwd = cmd->cwd;
    }
    so.env = env;
    Diag("running " + [&] {
      std::string s;
      for (const auto& a : so.argv) s += (s.empty() ? "" : " ") + a;
      return s;
    }());

    auto sink = [this](const OutputLine& l) {
      if (l.is_stderr) {
        stderr_tail.push_back(l.text);
        if (stderr_tail.size() > kStderrTailLines) stderr_tail.pop_front();
      }
      AddLine(l.timestamp_ms, l.text);
    };
    const uint64_t oom_kills_before = CountOomKills(limits_dirs);
    if (config.metrics_interval_ms > 0) {
      // The instance is measured while its training process runs; the first sample is the
      // baseline of the CPU time.
      SamplerOptions so_metrics;
      so_metrics.cgroup_dirs = limits_dirs;
      so_metrics.root_pid = ::getpid();
      so_metrics.memory_limit_bytes =
          memory_limit_bytes > 0 ? memory_limit_bytes
                                 : static_cast<uint64_t>(config.memory_gib * 1024 * 1024 * 1024);
      so_metrics.volume_path = config.instance_dir;
      so_metrics.gpus = config.num_gpus;
      if (!options.nvml_library.empty()) so_metrics.nvml_library = options.nvml_library;
      sampler = std::make_unique<InstanceSampler>(so_metrics);
      if (!sampler->notice().empty()) AddLine(NowMs(), sampler->notice());
      (void)sampler->Sample(NowMs(), std::chrono::steady_clock::now());
      next_sample =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(config.metrics_interval_ms);
    }
    auto outcome = supervisor.Run(
        so, std::chrono::seconds(config.stop_grace_seconds), sink,
        [this] {
          MaybeFlushLog();
          WatchVolume();
        },
        view.sandboxed);
    if (!outcome.ok())
      return Finish(fail,
                    ReasonFor(outcome.status().code() == StatusCode::kIoError
                                  ? InvalidArgument(outcome.status().message())
                                  : outcome.status()),
                    "", false);
    sampler.reset();
    FlushLog();
    Diag("training process exited with " + std::to_string(outcome->exit_code) +
         (outcome->stopped ? " (stopped)" : ""));
    if (outcome->stopped && volume_exceeded) {
      FinalCheckpointSync(std::chrono::minutes(10));
      return Finish(fail, volume->Reason("the training process was stopped"), "", false);
    }
    if (outcome->stopped) return Ended();
    if (config.engine_signals_every_process && outcome->exit_code != 0 &&
        EngineSignalArriving(outcome->exit_code)) {
      // The engine (Slurm) signalled the script and this agent together, and the script's end
      // was seen first: it is the notice's (or stop's), not the script's failure.
      return Ended();
    }

    std::string output_dir = JoinPath(config.instance_dir, "output");
    if (outcome->exit_code == 0) {
      if (cmd->toolkit) (void)WriteFileAtomic(JoinPath(output_dir, "success"), "");
      Phase(model::SecondaryStatus::kUploading, "Uploading generated training model");
      std::string artifacts;
      bool uploaded = false;
      std::string reason = Upload(&artifacts, &uploaded);
      if (!reason.empty()) {
        return Finish(fail, VolumeReasonOr(reason, "packing the model failed"), artifacts,
                      uploaded);
      }
      return Finish(AgentReport::Outcome::kCompleted, "", artifacts, uploaded);
    }

    std::string failure_file = JoinPath(output_dir, "failure");
    if (cmd->toolkit && !PathExists(failure_file)) {
      std::vector<std::string> tail(stderr_tail.begin(), stderr_tail.end());
      (void)WriteFileAtomic(failure_file,
                            ExecuteUserScriptError(outcome->exit_code, tail, cmd->argv));
    }
    std::string reason = "AlgorithmError: Exit Code: " + std::to_string(outcome->exit_code);
    // The training process may have left a symlink there: never follow it as root.
    auto text = ReadJobFile(failure_file, 1024);
    if (text.ok() && !text->empty()) reason = "AlgorithmError: " + text->substr(0, 1024);
    std::string oom = OutOfMemoryFailure(oom_kills_before, outcome->exit_code);
    if (!oom.empty()) {
      reason = oom;
    } else {
      reason = VolumeReasonOr(
          reason, "the training process exited with code " + std::to_string(outcome->exit_code));
    }
    FinalCheckpointSync(std::chrono::minutes(10));
    return Finish(fail, reason, "", false);
  }
};

Agent::Agent(model::InstanceConfig config, std::ostream& err, AgentOptions options)
    : impl_(std::make_unique<Impl>(std::move(config), err, std::move(options))) {}

Agent::~Agent() = default;

void Agent::RequestStop() { impl_->RequestStop(); }

void Agent::RequestInterrupt() { impl_->RequestInterrupt(); }

void Agent::RequestAbort() { impl_->RequestAbort(); }

int Agent::Run() {
  int rc = impl_->Run();
  if (!impl_->limits_cgroup.empty()) ReleaseInstanceLimits(impl_->limits_cgroup);
  impl_->checkpoint_sync.reset();  // its callbacks use the reporter
  impl_->debugger.reset();
  impl_->reporter.reset();
  return rc;
}

int RunAgent(const std::string& instance_config_path, std::ostream& err) {
  auto text = ReadFile(instance_config_path);
  if (!text.ok()) {
    err << "trainyard agent: " << text.status().message() << std::endl;
    return 2;
  }
  auto j = ParseJson(*text);
  if (!j.ok()) {
    err << "trainyard agent: " << instance_config_path << ": " << j.status().message() << std::endl;
    return 2;
  }
  auto config = model::InstanceConfigFromJson(*j);
  if (!config.ok()) {
    err << "trainyard agent: " << config.status().message() << std::endl;
    return 2;
  }
  g_sigterm_means_notice.store(config->sigterm_means_notice);
  Agent agent(std::move(config).value(), err);
  struct sigaction sa {
  }, old_term{}, old_int{}, old_usr1{}, old_usr2{}, old_pipe{}, old_winch{}, old_urg{};
  sa.sa_handler = HandleStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  g_signal_agent.store(&agent);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGUSR1, &sa, &old_usr1);
  ::sigaction(SIGUSR2, &sa, &old_usr2);
  // Stop and abort as SlurmLauncher sends them: Slurm signals every process of the step, and
  // these two are ignored by default, so a training script that gets them too is unharmed.
  ::sigaction(SIGWINCH, &sa, &old_winch);
  ::sigaction(SIGURG, &sa, &old_urg);
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe);
  int rc = agent.Run();
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ::sigaction(SIGUSR2, &old_usr2, nullptr);
  ::sigaction(SIGWINCH, &old_winch, nullptr);
  ::sigaction(SIGURG, &old_urg, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  g_signal_agent.store(nullptr);
  return rc;
}

}  // namespace ty::agent
