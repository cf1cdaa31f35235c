#include "functions/runtime.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "agent/resource_limits.h"
#include "agent/sandbox.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/subprocess.h"

namespace ty::functions {

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;
using std::chrono::steady_clock;

constexpr char kTaskRoot[] = "/var/task";
constexpr char kRuntimeDir[] = "/var/runtime";
constexpr size_t kTailBytes = 4096;
constexpr char kBasePath[] = "/usr/local/bin:/usr/bin:/bin";

// Lambda's error document: {"errorMessage", "errorType"}.
std::string ErrorDoc(const std::string& type, const std::string& message) {
  return nlohmann::json{{"errorMessage", message}, {"errorType", type}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int64_t NowMs() { return ToEpochMillis(SystemClock::Default()->Now()); }

std::string FunctionArn(const std::string& region, const FunctionConfig& fn) {
  return "arn:aws:lambda:" + region + ":" + fn.account + ":function:" + fn.name;
}

// "2026/01/02/[$LATEST]<32 hex>", the stream of one execution environment.
std::string StreamName() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char day[16];
  std::strftime(day, sizeof(day), "%Y/%m/%d", &tm);
  std::string hex = RandomUuid();
  std::string compact;
  for (char c : hex) {
    if (c != '-') compact += c;
  }
  return std::string(day) + "/[$LATEST]" + compact;
}

std::string FormatMs(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", ms);
  return buf;
}

// The most memory the worker's cgroup held (MiB), or 0 when unknown.
int64_t PeakMemoryMb(const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    for (const char* f : {"memory.peak", "memory.max_usage_in_bytes", "memory.current"}) {
      std::ifstream in(JoinPath(d, f));
      uint64_t v = 0;
      if (in >> v) return static_cast<int64_t>((v + (1 << 20) - 1) >> 20);
    }
  }
  return 0;
}

// Runs closures on one long-lived thread: a worker's sandbox is spawned there, because a
// child's kill-with-parent signal is tied to the thread that forked it (an HTTP or delivery
// thread may end before the worker should).
class TaskThread {
 public:
  TaskThread() : thread_([this] { Loop(); }) {}
  ~TaskThread() {
    {
      MutexLock l(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    thread_.join();
  }
  void Run(std::function<void()> fn) {
    std::promise<void> done;
    auto fut = done.get_future();
    {
      MutexLock l(&mu_);
      tasks_.push_back([&] {
        fn();
        done.set_value();
      });
      cv_.SignalAll();
    }
    fut.wait();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> task;
      {
        MutexLock l(&mu_);
        while (tasks_.empty() && !stop_) cv_.Wait(&mu_);
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> tasks_ TY_GUARDED_BY(mu_);
  bool stop_ TY_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

TaskThread& Spawner() {
  static auto* t = new TaskThread();  // lives as long as the process (workers are its children)
  return *t;
}

// Places `pid` and every descendant it has forked so far in the cgroup `name`. A process is
// moved before its children are listed, so a child forked meanwhile inherits the cgroup.
agent::LimitsOutcome LimitTree(pid_t pid, const std::string& name,
                               const agent::InstanceLimits& limits) {
  agent::LimitsOutcome first = agent::ApplyInstanceLimitsToProcess(pid, name, limits);
  if (!first.enforced) return first;
  std::vector<pid_t> todo = {pid};
  for (size_t i = 0; i < todo.size() && i < 64; ++i) {
    std::error_code ec;
    std::string task_dir = "/proc/" + std::to_string(todo[i]) + "/task";
    std::vector<std::string> tids;
    if (auto* d = ::opendir(task_dir.c_str())) {
      while (auto* e = ::readdir(d)) {
        if (e->d_name[0] != '.') tids.push_back(e->d_name);
      }
      ::closedir(d);
    }
    for (const auto& tid : tids) {
      std::ifstream in(task_dir + "/" + tid + "/children");
      pid_t child;
      while (in >> child) {
        if (i > 0 || child != pid) {
          (void)agent::ApplyInstanceLimitsToProcess(child, name, limits);
          todo.push_back(child);
        }
      }
    }
  }
  return first;
}

}  // namespace

struct FunctionRuntime::Invocation {
  std::string id;
  std::string payload;
  std::string client_context;
  std::string arn;
  int timeout_seconds = 3;
  SteadyTime assigned_at;
  bool picked_up = false;
  SteadyTime picked_at;
  int64_t deadline_ms = 0;
  bool done = false;
  bool error = false;
  bool from_init = false;
  std::string result;
  size_t log_start = 0;  // lines of the worker's log before it are init output
};

struct FunctionRuntime::Worker {
  std::string token;
  std::string fn_key;
  std::string account;
  std::string name;
  int64_t code_version = 0;
  std::string revision_id;
  std::string log_stream;
  std::string scratch_dir;
  std::string cgroup_name;
  std::vector<std::string> cgroup_dirs;
  KeyMinter::Key key;
  std::unique_ptr<Subprocess> proc;
  SteadyTime started;
  std::thread reader;

  // Guarded by the runtime's mu_.
  enum class State { kBusy, kIdle } state = State::kBusy;
  bool retired = false;
  bool killed = false;
  bool exited = false;
  int exit_code = 0;
  bool cold = true;  // no invocation finished on it yet
  std::optional<double> init_ms;
  std::string init_error;
  std::shared_ptr<Invocation> current;
  SteadyTime last_used;

  // Output, guarded by io_mu.
  Mutex io_mu;
  std::string partial[2];
  std::vector<std::pair<int64_t, std::string>> lines TY_GUARDED_BY(io_mu);
  size_t log_bytes TY_GUARDED_BY(io_mu) = 0;
  int64_t dropped_bytes TY_GUARDED_BY(io_mu) = 0;
  std::atomic<bool> stop_reading{false};
};

FunctionRuntime::FunctionRuntime(RuntimeOptions options, LogSink* sink, KeyMinter* minter)
    : options_(std::move(options)), sink_(sink), minter_(minter) {
  bootstrap_dir_ = JoinPath(JoinPath(options_.data_dir, "functions"), ".runtime");
  (void)MakeDirs(bootstrap_dir_, 0755);
  (void)::chmod(bootstrap_dir_.c_str(), 0755);
  (void)WriteFileAtomic(JoinPath(bootstrap_dir_, "bootstrap.py"), std::string(BootstrapSource()),
                        0644);
  (void)RemoveAll(JoinPath(JoinPath(options_.data_dir, "functions"), ".workers"));
  reaper_ = std::thread([this] { ReaperLoop(); });
}

FunctionRuntime::~FunctionRuntime() { Shutdown(); }

void FunctionRuntime::SetAddresses(std::string runtime_api, std::string endpoint_url) {
  MutexLock l(&mu_);
  runtime_api_ = std::move(runtime_api);
  endpoint_url_ = std::move(endpoint_url);
}

std::shared_ptr<FunctionRuntime::Worker> FunctionRuntime::StartWorker(const FunctionConfig& fn,
                                                                      const std::string& code_dir,
                                                                      std::string* error) {
  auto w = std::make_shared<Worker>();
  w->token = RandomAlnum(40);
  w->fn_key = FunctionKey(fn.account, fn.name);
  w->account = fn.account;
  w->name = fn.name;
  w->code_version = fn.code_version;
  w->revision_id = fn.revision_id;
  w->log_stream = StreamName();
  w->started = steady_clock::now();
  w->key = minter_->Mint(fn.account);
  std::string runtime_api, endpoint;
  {
    MutexLock l(&mu_);
    runtime_api = runtime_api_;
    endpoint = endpoint_url_;
  }
  const bool sandboxed = options_.sandboxed;
  const std::string task_root = sandboxed ? kTaskRoot : code_dir;
  const std::string runtime_dir = sandboxed ? kRuntimeDir : bootstrap_dir_;

  std::map<std::string, std::string> env = fn.environment;
  auto set = [&env](const std::string& k, const std::string& v) { env[k] = v; };
  set("PATH", kBasePath);
  set("LANG", "en_US.UTF-8");
  set("TZ", "UTC");
  set("HOME", "/tmp");
  set("PYTHONDONTWRITEBYTECODE", "1");
  set("LAMBDA_TASK_ROOT", task_root);
  set("LAMBDA_RUNTIME_DIR", runtime_dir);
  set("_HANDLER", fn.handler);
  set("AWS_REGION", options_.region);
  set("AWS_DEFAULT_REGION", options_.region);
  set("AWS_EXECUTION_ENV", "AWS_Lambda_" + fn.runtime);
  set("AWS_LAMBDA_FUNCTION_NAME", fn.name);
  set("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", std::to_string(fn.memory_mb));
  set("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST");
  set("AWS_LAMBDA_FUNCTION_TIMEOUT", std::to_string(fn.timeout_seconds));
  set("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/" + fn.name);
  set("AWS_LAMBDA_LOG_STREAM_NAME", w->log_stream);
  set("AWS_LAMBDA_RUNTIME_API", runtime_api);
  set("AWS_ACCESS_KEY_ID", w->key.access_key_id);
  set("AWS_SECRET_ACCESS_KEY", w->key.secret_access_key);
  set("AWS_SESSION_TOKEN", w->key.session_token);
  set("AWS_ENDPOINT_URL", endpoint);
  set("TRAINYARD_ENDPOINT_URL", endpoint);
  set("TRAINYARD_RUNTIME_TOKEN", w->token);

  const std::vector<std::string> command = {options_.python, "-u",
                                            JoinPath(runtime_dir, "bootstrap.py")};
  SpawnOptions so;
  std::optional<agent::PreparedSandbox> prepared;
  if (sandboxed) {
    w->scratch_dir =
        JoinPath(JoinPath(JoinPath(options_.data_dir, "functions"), ".workers"), w->token);
    if (Status s = MakeDirs(w->scratch_dir, 0755); !s.ok()) {
      *error = s.message();
      return nullptr;
    }
    if (options_.sandbox.user_namespace) {
      // bubblewrap, started as the sandbox's uid, resolves bind sources by path: it must be
      // able to walk to them through the server's private directories (search only).
      for (const std::string& dir : {code_dir, bootstrap_dir_, w->scratch_dir}) {
        if (Status s = agent::GrantSearchToAncestors(dir, options_.sandbox.uid); !s.ok()) {
          *error = s.message();
          return nullptr;
        }
      }
    }
    model::SandboxConfig config = options_.sandbox;
    // /var becomes an empty tmpfs, so /var/task and /var/runtime can be mounted on it (the
    // root is read-only).
    config.hidden_paths.push_back("/var");
    auto p = agent::PrepareSandbox(config, options_.bwrap_path, "localhost", w->scratch_dir,
                                   {{code_dir, kTaskRoot}, {bootstrap_dir_, kRuntimeDir}},
                                   kTaskRoot, command);
    if (!p.ok()) {
      *error = p.status().message();
      return nullptr;
    }
    prepared = std::move(p).value();
    so = prepared->spawn;
  } else {
    so.argv = command;
    so.cwd = code_dir;
  }
  so.env = std::move(env);
  const bool limit = options_.memory_limits;
  Status spawn_status;
  Spawner().Run([&] {
    auto proc = Subprocess::Spawn(so);
    if (!proc.ok()) {
      spawn_status = proc.status();
      return;
    }
    w->proc = std::move(proc).value();
    if (limit) {
      w->cgroup_name = agent::SanitizeCgroupName("lambda-" + w->token.substr(0, 16));
      agent::InstanceLimits limits;
      limits.memory_bytes = static_cast<uint64_t>(fn.memory_mb) << 20;
      limits.max_processes = 1024;
      agent::LimitsOutcome o = LimitTree(w->proc->pid(), w->cgroup_name, limits);
      if (o.enforced) {
        w->cgroup_dirs = o.cgroup_dirs;
      } else {
        w->cgroup_name.clear();
      }
    }
  });
  prepared.reset();  // the descriptors the sandbox was handed
  if (!spawn_status.ok()) {
    *error = spawn_status.message();
    if (!w->scratch_dir.empty()) (void)RemoveAll(w->scratch_dir);
    minter_->Revoke(w->key.access_key_id);
    return nullptr;
  }
  {
    MutexLock l(&mu_);
    by_token_[w->token] = w;
  }
  w->reader = std::thread([this, w] { ReadOutput(w); });
  return w;
}

void FunctionRuntime::DrainOutput(Worker& w) {
  MutexLock io(&w.io_mu);
  if (!w.proc) return;
  int fds[2] = {w.proc->stdout_fd(), w.proc->stderr_fd()};
  char buf[65536];
  for (int i = 0; i < 2; ++i) {
    if (fds[i] < 0) continue;
    for (;;) {
      ssize_t n = ::read(fds[i], buf, sizeof(buf));
      if (n <= 0) break;
      std::string& part = w.partial[i];
      for (ssize_t k = 0; k < n; ++k) {
        char c = buf[k];
        if (c == '\n') {
          if (w.log_bytes + part.size() <= options_.max_log_bytes_per_invocation) {
            w.log_bytes += part.size();
            w.lines.emplace_back(NowMs(), std::move(part));
          } else {
            w.dropped_bytes += static_cast<int64_t>(part.size()) + 1;
          }
          part.clear();
        } else if (part.size() < options_.max_line_bytes) {
          part += c;
        } else {
          ++w.dropped_bytes;
        }
      }
    }
  }
}

void FunctionRuntime::ReadOutput(const std::shared_ptr<Worker>& w) {
  int fds[2] = {w->proc->stdout_fd(), w->proc->stderr_fd()};
  bool open[2] = {fds[0] >= 0, fds[1] >= 0};
  while ((open[0] || open[1]) && !w->stop_reading) {
    pollfd p[2];
    int n = 0;
    for (int i = 0; i < 2; ++i) {
      if (open[i]) p[n++] = {fds[i], POLLIN, 0};
    }
    int r = ::poll(p, static_cast<nfds_t>(n), 200);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    bool hangup = false;
    for (int i = 0; i < n; ++i) {
      if ((p[i].revents & (POLLHUP | POLLERR)) != 0 && (p[i].revents & POLLIN) == 0) {
        hangup = true;
        for (int k = 0; k < 2; ++k) {
          if (fds[k] == p[i].fd) open[k] = false;
        }
      }
    }
    DrainOutput(*w);
    (void)hangup;
  }
  auto code = w->proc->Wait();
  DrainOutput(*w);
  MutexLock l(&mu_);
  w->exited = true;
  w->exit_code = code.ok() ? *code : -1;
  cv_.SignalAll();
}

void FunctionRuntime::KillWorker(const std::shared_ptr<Worker>& w) {
  {
    MutexLock l(&mu_);
    if (w->killed) return;
    w->killed = true;
    w->retired = true;
    by_token_.erase(w->token);
    --starting_or_live_;
    cv_.SignalAll();
  }
  if (w->proc) (void)w->proc->SignalGroup(SIGKILL);
  if (!w->cgroup_name.empty()) agent::ReleaseInstanceLimits(w->cgroup_name);
  {
    // The reader ends at EOF; a descendant that kept the pipe open is not waited for long.
    MutexLock l(&mu_);
    auto until = steady_clock::now() + std::chrono::seconds(2);
    while (!w->exited && steady_clock::now() < until) cv_.WaitUntil(&mu_, until);
    if (!w->exited) w->stop_reading = true;
  }
  if (w->reader.joinable()) {
    if (w->reader.get_id() == std::this_thread::get_id()) {
      w->reader.detach();
    } else {
      w->reader.join();
    }
  }
  minter_->Revoke(w->key.access_key_id);
  if (!w->scratch_dir.empty()) (void)RemoveAll(w->scratch_dir);
}

InvokeResult FunctionRuntime::Invoke(const FunctionConfig& fn, const std::string& code_dir,
                                     const InvokeRequest& request) {
  auto inv = std::make_shared<Invocation>();
  inv->id = RandomUuid();
  inv->payload = request.payload.empty() ? "{}" : request.payload;
  inv->client_context = request.client_context;
  inv->arn = FunctionArn(options_.region, fn);
  inv->timeout_seconds = fn.timeout_seconds;
  InvokeResult result;
  result.request_id = inv->id;
  const std::string key = FunctionKey(fn.account, fn.name);
  const SteadyTime free_deadline = steady_clock::now() + std::chrono::seconds(fn.timeout_seconds);

  std::shared_ptr<Worker> w;
  bool start_one = false;
  {
    MutexLock l(&mu_);
    for (;;) {
      if (shut_down_) {
        result.busy = true;
        return result;
      }
      int mine = 0;
      for (auto& [token, cand] : by_token_) {
        // Retired workers (older code or configuration) end soon and take no new work.
        if (cand->fn_key != key || cand->killed || cand->retired) continue;
        ++mine;
        if (!w && cand->state == Worker::State::kIdle && !cand->retired && !cand->exited &&
            cand->code_version == fn.code_version && cand->revision_id == fn.revision_id) {
          w = cand;
        }
      }
      if (w) {
        w->state = Worker::State::kBusy;
        break;
      }
      if (mine < options_.max_workers_per_function && starting_or_live_ < options_.max_workers) {
        ++starting_or_live_;
        start_one = true;
        break;
      }
      if (!cv_.WaitUntil(&mu_, free_deadline) && steady_clock::now() >= free_deadline) {
        result.busy = true;
        return result;
      }
    }
  }
  if (start_one) {
    std::string error;
    w = StartWorker(fn, code_dir, &error);
    if (!w) {
      {
        MutexLock l(&mu_);
        --starting_or_live_;
        cv_.SignalAll();
      }
      result.function_error = "Unhandled";
      result.payload =
          ErrorDoc("Runtime.StartError",
                   "RequestId: " + inv->id + " Error: cannot start the runtime: " + error);
      return result;
    }
  }

  bool timed_out = false;
  bool crashed = false;
  bool cold = false;
  std::optional<double> init_ms;
  {
    MutexLock l(&mu_);
    cold = w->cold;
    inv->assigned_at = steady_clock::now();
    w->current = inv;
    cv_.SignalAll();
    for (;;) {
      if (inv->done) break;
      if (w->exited) {
        crashed = true;
        break;
      }
      SteadyTime limit = inv->picked_up ? inv->picked_at + std::chrono::seconds(fn.timeout_seconds)
                                        : inv->assigned_at + options_.init_timeout +
                                              std::chrono::seconds(fn.timeout_seconds);
      if (steady_clock::now() >= limit) {
        timed_out = true;
        break;
      }
      cv_.WaitUntil(&mu_, limit);
    }
    init_ms = w->init_ms;
    w->current.reset();
  }
  const SteadyTime end = steady_clock::now();
  const double duration_ms =
      inv->picked_up ? std::chrono::duration<double, std::milli>(end - inv->picked_at).count()
                     : std::chrono::duration<double, std::milli>(end - inv->assigned_at).count();

  bool retired = false;
  {
    MutexLock l(&mu_);
    retired = w->retired;
  }
  // Read from the cgroup before a kill releases it.
  const bool oom = (crashed || timed_out) && agent::CountOomKills(w->cgroup_dirs) > 0;
  const int64_t max_memory_mb = PeakMemoryMb(w->cgroup_dirs);
  if (timed_out || crashed || inv->from_init) {
    KillWorker(w);
  } else {
    DrainOutput(*w);  // what the handler printed before it answered
  }

  if (inv->done) {
    result.payload = inv->result;
    if (inv->error) result.function_error = "Unhandled";
  } else if (timed_out && !oom) {
    result.timed_out = true;
    result.function_error = "Unhandled";
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.2f", static_cast<double>(fn.timeout_seconds));
    result.payload =
        ErrorDoc("Sandbox.Timedout",
                 "RequestId: " + inv->id + " Error: Task timed out after " + secs + " seconds");
  } else {
    result.function_error = "Unhandled";
    std::string init_error;
    int exit_code = 0;
    {
      MutexLock l(&mu_);
      init_error = w->init_error;
      exit_code = w->exit_code;
    }
    if (!init_error.empty()) {
      result.payload = init_error;
    } else if (oom) {
      result.payload =
          ErrorDoc("Runtime.OutOfMemory", "RequestId: " + inv->id +
                                              " Error: Runtime exited with error: signal: killed "
                                              "(memory limit " +
                                              std::to_string(fn.memory_mb) + " MB)");
    } else {
      std::string how = exit_code > 128 ? "signal: " + std::string(strsignal(exit_code - 128))
                                        : "exit status " + std::to_string(exit_code);
      result.payload =
          ErrorDoc("Runtime.ExitError",
                   "RequestId: " + inv->id + " Error: Runtime exited with error: " + how);
    }
  }

  // The log: init output, START, the handler's lines, END, REPORT.
  std::vector<std::pair<int64_t, std::string>> lines;
  int64_t dropped = 0;
  size_t log_start = 0;
  {
    MutexLock io(&w->io_mu);
    log_start = inv->log_start;  // written under io_mu by the GET next that took the event
    lines.swap(w->lines);
    dropped = w->dropped_bytes;
    w->dropped_bytes = 0;
    w->log_bytes = 0;
  }
  const int64_t now = NowMs();
  size_t split = std::min(log_start, lines.size());
  std::vector<std::pair<int64_t, std::string>> events(lines.begin(), lines.begin() + split);
  events.emplace_back(now, "START RequestId: " + inv->id + " Version: $LATEST");
  events.insert(events.end(), lines.begin() + split, lines.end());
  if (dropped > 0) {
    events.emplace_back(now, "trainyard: " + std::to_string(dropped) +
                                 " bytes of output dropped (the log keeps " +
                                 std::to_string(options_.max_log_bytes_per_invocation) +
                                 " bytes per invocation and lines of at most " +
                                 std::to_string(options_.max_line_bytes) + " bytes)");
  }
  if (result.timed_out) {
    char secs[32];
    std::snprintf(secs, sizeof(secs), "%.2f", static_cast<double>(fn.timeout_seconds));
    events.emplace_back(now, FormatIso8601(SystemClock::Default()->Now()) + " " + inv->id +
                                 " Task timed out after " + secs + " seconds");
  }
  events.emplace_back(now, "END RequestId: " + inv->id);
  std::string report =
      "REPORT RequestId: " + inv->id + "\tDuration: " + FormatMs(duration_ms) +
      " ms\tBilled Duration: " + std::to_string(static_cast<int64_t>(std::ceil(duration_ms))) +
      " ms\tMemory Size: " + std::to_string(fn.memory_mb) +
      " MB\tMax Memory Used: " + std::to_string(max_memory_mb) + " MB";
  if (cold && init_ms) report += "\tInit Duration: " + FormatMs(*init_ms) + " ms";
  events.emplace_back(now, report);
  if (request.tail_log) {
    std::string all;
    for (size_t i = split; i < events.size(); ++i) all += events[i].second + "\n";
    result.log_tail = all.size() > kTailBytes ? all.substr(all.size() - kTailBytes) : all;
  }
  sink_->Append(fn.account, "/aws/lambda/" + fn.name, w->log_stream, events);

  if (retired && !timed_out && !crashed && !inv->from_init) {
    KillWorker(w);
  } else if (!timed_out && !crashed && !inv->from_init) {
    MutexLock l(&mu_);
    w->cold = false;
    w->state = Worker::State::kIdle;
    w->last_used = steady_clock::now();
    cv_.SignalAll();
  }
  return result;
}

void FunctionRuntime::Retire(const std::string& account, const std::string& name) {
  std::vector<std::shared_ptr<Worker>> idle;
  {
    MutexLock l(&mu_);
    const std::string key = FunctionKey(account, name);
    for (auto& [token, w] : by_token_) {
      if (w->fn_key != key) continue;
      w->retired = true;
      if (w->state == Worker::State::kIdle) idle.push_back(w);
    }
    cv_.SignalAll();
  }
  for (auto& w : idle) KillWorker(w);
}

RuntimeResponse FunctionRuntime::HandleRuntimeApi(const RuntimeRequest& req) {
  RuntimeResponse res;
  auto error = [&res](int status, const std::string& type, const std::string& message) {
    res.status = status;
    res.headers = {{"Content-Type", "application/json"}};
    res.body = ErrorDoc(type, message);
    return res;
  };
  const std::string base = "/2018-06-01/runtime";
  if (req.path.compare(0, base.size(), base) != 0) {
    return error(404, "InvalidRequest", "not a Runtime API path");
  }
  const std::string rest = req.path.substr(base.size());
  MutexLock l(&mu_);
  auto it = by_token_.find(req.token);
  if (req.token.empty() || it == by_token_.end()) {
    return error(403, "Forbidden", "unknown worker");
  }
  std::shared_ptr<Worker> w = it->second;
  if (req.method == "GET" && rest == "/invocation/next") {
    if (!w->init_ms) {
      w->init_ms =
          std::chrono::duration<double, std::milli>(steady_clock::now() - w->started).count();
    }
    for (;;) {
      if (shut_down_ || w->killed || (w->retired && w->state == Worker::State::kIdle)) {
        return error(410, "WorkerRetired", "this worker is retired");
      }
      if (w->current && !w->current->picked_up) break;
      cv_.WaitFor(&mu_, std::chrono::seconds(1));
    }
    std::shared_ptr<Invocation> inv = w->current;
    inv->picked_up = true;
    inv->picked_at = steady_clock::now();
    inv->deadline_ms = NowMs() + int64_t{inv->timeout_seconds} * 1000;
    cv_.SignalAll();
    l.Unlock();
    DrainOutput(*w);
    {
      MutexLock io(&w->io_mu);
      inv->log_start = w->lines.size();
    }
    res.status = 200;
    res.headers = {{"Content-Type", "application/json"},
                   {"Lambda-Runtime-Aws-Request-Id", inv->id},
                   {"Lambda-Runtime-Deadline-Ms", std::to_string(inv->deadline_ms)},
                   {"Lambda-Runtime-Invoked-Function-Arn", inv->arn},
                   {"Lambda-Runtime-Trace-Id", "Root=1-" + RandomAlnum(8) + "-" + RandomAlnum(24)}};
    if (!inv->client_context.empty()) {
      res.headers.emplace_back("Lambda-Runtime-Client-Context", inv->client_context);
    }
    res.body = inv->payload;
    return res;
  }
  if (req.method == "POST" && rest == "/init/error") {
    w->init_error =
        req.body.size() <= 65536 ? req.body : ErrorDoc("Runtime.InitError", "init error too large");
    w->retired = true;
    if (w->current && !w->current->done) {
      w->current->done = true;
      w->current->error = true;
      w->current->from_init = true;
      w->current->result = w->init_error;
    }
    cv_.SignalAll();
    res.status = 202;
    res.body = "{\"status\":\"OK\"}";
    return res;
  }
  const std::string prefix = "/invocation/";
  if (req.method == "POST" && rest.compare(0, prefix.size(), prefix) == 0) {
    std::string tail = rest.substr(prefix.size());
    size_t slash = tail.find('/');
    std::string id = tail.substr(0, slash);
    std::string what = slash == std::string::npos ? "" : tail.substr(slash + 1);
    std::shared_ptr<Invocation> inv = w->current;
    if (!inv || inv->id != id || !inv->picked_up || inv->done) {
      return error(400, "InvalidRequestID", "Invalid request ID");
    }
    if (what == "response") {
      if (req.body.size() > options_.max_response_bytes) {
        inv->error = true;
        inv->result = ErrorDoc("Function.ResponseSizeTooLarge",
                               "Response payload size exceeded maximum allowed payload size (" +
                                   std::to_string(options_.max_response_bytes) + " bytes).");
        inv->done = true;
        cv_.SignalAll();
        return error(413, "RequestEntityTooLarge", "response too large");
      }
      inv->result = req.body;
    } else if (what == "error") {
      inv->error = true;
      inv->result = req.body.size() <= options_.max_response_bytes
                        ? req.body
                        : ErrorDoc("Unhandled", "error too large");
    } else {
      return error(404, "InvalidRequest", "unknown Runtime API path");
    }
    inv->done = true;
    cv_.SignalAll();
    res.status = 202;
    res.body = "{\"status\":\"OK\"}";
    return res;
  }
  return error(404, "InvalidRequest", "unknown Runtime API path");
}

void FunctionRuntime::ReaperLoop() {
  for (;;) {
    std::vector<std::shared_ptr<Worker>> victims;
    {
      MutexLock l(&mu_);
      if (shut_down_) return;
      cv_.WaitFor(&mu_, std::chrono::seconds(1));
      if (shut_down_) return;
      const SteadyTime now = steady_clock::now();
      for (auto& [token, w] : by_token_) {
        if (w->state != Worker::State::kIdle) continue;
        if (w->retired || w->exited || now - w->last_used >= options_.idle_timeout) {
          victims.push_back(w);
        }
      }
    }
    for (auto& w : victims) KillWorker(w);
  }
}

void FunctionRuntime::Shutdown() {
  std::vector<std::shared_ptr<Worker>> all;
  {
    MutexLock l(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [token, w] : by_token_) all.push_back(w);
    cv_.SignalAll();
  }
  if (reaper_.joinable()) reaper_.join();
  for (auto& w : all) KillWorker(w);
}

int FunctionRuntime::WorkerCount(const std::string& account, const std::string& name) {
  MutexLock l(&mu_);
  int n = 0;
  for (auto& [token, w] : by_token_) n += w->fn_key == FunctionKey(account, name) ? 1 : 0;
  return n;
}

}  // namespace ty::functions
