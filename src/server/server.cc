#include "server/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/resource_limits.h"
#include "agent/sandbox.h"
#include "api/cbor_codec.h"
#include "api/credentials.h"
#include "api/json_codec.h"
#include "api/query_codec.h"
#include "api/rest_json_codec.h"
#include "api/router.h"
#include "api/service_model.h"
#include "api/sigv4_verifier.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"
#include "control/delivery.h"
#include "control/delivery_queue.h"
#include "control/job_controller.h"
#include "debugger/rule_manager.h"
#include "events/dispatcher.h"
#include "events/governance.h"
#include "events/job_event.h"
#include "events/logs_deliverer.h"
#include "functions/function_store.h"
#include "functions/lambda_deliverer.h"
#include "functions/runtime.h"
#include "launch/image_catalog.h"
#include "launch/local_launcher.h"
#include "model/agent_protocol.h"
#include "server/http_server.h"
#include "server/launcher_factory.h"
#include "server/server_metrics.h"
#include "services/events/events_service.h"
#include "services/lambda/lambda_service.h"
#include "services/logs/logs_service.h"
#include "services/monitoring/monitoring_service.h"
#include "services/sagemaker/sagemaker_service.h"
#include "services/sns/sns_service.h"
#include "services/sns/sns_topics.h"
#include "services/trainyard/trainyard_service.h"
#include "storage/s3_settings.h"
#include "store/store.h"
#include "telemetry/alarm_manager.h"
#include "telemetry/job_metrics_observer.h"
#include "telemetry/metric_store.h"

namespace ty::server {

using nlohmann::json;

struct Server::Impl {
  ServerConfig config;
  storage::S3Settings s3;        // resolved at Create
  model::SandboxConfig sandbox;  // probed at Create, handed to every agent
  std::unique_ptr<store::Store> store;
  // One of the two, and `launcher` points at it.
  std::unique_ptr<launch::LocalLauncher> local_launcher;
  std::unique_ptr<launch::SlurmLauncher> slurm_launcher;
  launch::Launcher* launcher = nullptr;
  std::unique_ptr<launch::ImageCatalog> images;
  capacity::InstanceCatalog catalog;  // before the controller, which reads it
  // CloudWatch datapoints, and the observer that puts jobs' metrics there: both outlive the
  // controller, which calls the observer (members are destroyed in reverse order).
  std::unique_ptr<telemetry::MetricStore> metric_store;
  std::unique_ptr<telemetry::MetricSweeper> metrics_sweeper;
  std::unique_ptr<telemetry::JobMetricsObserver> metrics_observer;
  // Built-in governance: an observer of the controller (so it outlives it) and the
  // SageMaker service's admission check.
  std::unique_ptr<events::Governance> governance;
  // Where rules, alarms and topics send payloads: each target's owner registers its
  // Deliverer here (lambda, sns, logs). Declared before them all, so it outlives its users.
  control::DeliveryRouter deliveries;
  // SNS fan-out and alarm actions run on this queue's workers (with retries). ~Impl stops the
  // alarm evaluator and then the queue before anything the queue's callbacks touch goes.
  std::unique_ptr<control::DeliveryQueue> delivery_queue;
  std::unique_ptr<services::HttpPoster> sns_poster;
  std::unique_ptr<services::SnsTopics> sns;  // the "sns" Deliverer
  std::unique_ptr<telemetry::AlarmManager> alarms;
  // Lambda: the functions, the runtime that runs them (with the log sink and key minter it
  // borrows), its Runtime API listener (made at Start), the service and the "lambda" Deliverer.
  std::unique_ptr<functions::FunctionStore> function_store;
  std::unique_ptr<functions::LogSink> function_logs;
  std::unique_ptr<functions::KeyMinter> function_keys;
  std::unique_ptr<functions::FunctionRuntime> function_runtime;
  std::unique_ptr<HttpServer> runtime_http;
  std::shared_ptr<services::LambdaService> lambda;
  std::unique_ptr<functions::LambdaDeliverer> lambda_deliverer;
  // EventBridge: the "logs" target, the dispatcher that routes the outbox and delivers, and the
  // source of job events the controller stores with each change (destroyed after it).
  std::unique_ptr<events::LogsDeliverer> logs_deliverer;
  std::unique_ptr<events::EventDispatcher> dispatcher;
  std::unique_ptr<events::JobEventPublisher> job_events;
  // Debugger and profiler rules: an observer of the controller (so it outlives it) with its
  // worker pool, reading the jobs' output through per-account stores.
  std::unique_ptr<debugger::RootsAccountStorage> rule_storage;
  std::unique_ptr<debugger::RuleManager> rule_manager;
  std::unique_ptr<control::JobController> controller;
  std::unique_ptr<api::CredentialStore> credentials;
  std::unique_ptr<api::SigV4Verifier> verifier;
  std::unique_ptr<api::ApiRouter> router;
  std::unique_ptr<HttpServer> http;        // made at Start
  std::unique_ptr<HttpServer> admin_http;  // metrics_endpoint.listen, when set
  ServerMetrics metrics;
  std::string url;
  int lock_fd = -1;  // flock on <data_dir>/server.lock: one server per data dir
  bool started = false;
  std::atomic<bool> shut_down{false};
  std::string file_roots_note;        // FileRootsSummary()
  std::vector<std::string> warnings;  // Warnings()

  ~Impl() {
    // Its workers deliver to SNS, which enqueues on delivery_queue: stopped before that goes.
    if (dispatcher) dispatcher->Shutdown();
    if (alarms) alarms->Stop();
    delivery_queue.reset();
    if (lock_fd >= 0) ::close(lock_fd);
  }

  HttpResponse HandleApi(HttpRequest req);
  HttpResponse HandleAgentReport(const HttpRequest& req);
  // GET /metrics; `authenticate` on the API listener unless the config opens it.
  HttpResponse HandleMetrics(const HttpRequest& req, bool authenticate);
  // The caller's access key id if the request carries a configured key's SigV4 signature or
  // HTTP Basic credentials, else empty.
  std::string MetricsCaller(const HttpRequest& req);
};

namespace {

// The job trees under DIR/jobs/<account>/<job>, counted (at most `limit`).
int CountJobTrees(const std::string& data_dir, int limit) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator acc(JoinPath(data_dir, "jobs"), ec), end; !ec && acc != end;
       acc.increment(ec)) {
    if (!acc->is_directory(ec)) continue;
    for (fs::directory_iterator job(acc->path(), ec); !ec && job != end; job.increment(ec)) {
      if (job->is_directory(ec) && ++n >= limit) return n;
    }
    ec.clear();
  }
  return n;
}

std::string LostDatabase(const std::string& db, const std::string& data_dir, int trees,
                         const std::string& state) {
  return db + " is " + state + ", but " + JoinPath(data_dir, "jobs") + " holds the trees of " +
         (trees >= 100 ? "100 or more" : std::to_string(trees)) +
         " jobs: the server's state was lost, and starting would silently forget those jobs. "
         "Restore the database from a copy made with `trainyard admin backup` (copy it to " +
         db + " and delete " + db + "-wal and " + db +
         "-shm first, or SQLite replays the old "
         "log onto the copy), or, to start an empty server on purpose, move " +
         JoinPath(data_dir, "jobs") + " aside.";
}

// The python/ folder handed to training code (ServerConfig::python_dir): the configured one,
// which must be a directory, else the first of <exe dir>/../python and
// <exe dir>/../share/trainyard/python that is one, else "" (none).
Result<std::string> ResolvePythonDir(const std::string& configured) {
  struct stat st {};
  if (!configured.empty()) {
    auto real = RealPath(configured);
    if (!real.ok() || ::stat(real->c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return InvalidArgument("python_dir '" + configured + "' is not a directory");
    }
    return *real;
  }
  auto exe = RealPath("/proc/self/exe");
  if (!exe.ok()) return std::string();
  const std::string dir = exe->substr(0, exe->find_last_of('/'));
  for (const char* rel : {"/../python", "/../share/trainyard/python"}) {
    auto real = RealPath(dir + rel);
    if (real.ok() && ::stat(real->c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return *real;
  }
  return std::string();
}

// Refuses a missing or zero-length database beside existing job trees, before
// Store::Open would create a fresh one over the loss.
Status CheckDatabaseBesideJobs(const std::string& data_dir) {
  const std::string db = store::DatabasePath(data_dir);
  struct stat st {};
  bool missing = ::stat(db.c_str(), &st) != 0;
  if (!missing && st.st_size > 0) return Status::Ok();
  int trees = CountJobTrees(data_dir, 100);
  if (trees == 0) return Status::Ok();
  return FailedPrecondition(LostDatabase(db, data_dir, trees, missing ? "missing" : "empty"));
}

// A function's log lines into the account's CloudWatch Logs group (created on first use).
class StoreLogSink final : public functions::LogSink {
 public:
  explicit StoreLogSink(store::Store* store) : store_(store) {}
  void Append(const std::string& account, const std::string& group, const std::string& stream,
              const std::vector<std::pair<int64_t, std::string>>& events) override {
    const int64_t now = ToEpochMillis(SystemClock::Default()->Now());
    auto g = store_->GetLogGroup(account, group);
    if (!g.ok()) g = store_->CreateLogGroup(account, group, now);
    if (!g.ok()) g = store_->GetLogGroup(account, group);  // made meanwhile
    if (!g.ok()) return;
    auto st = store_->GetLogStream(g->id, stream);
    if (!st.ok()) st = store_->CreateLogStream(g->id, stream, now);
    if (!st.ok()) st = store_->GetLogStream(g->id, stream);
    if (!st.ok()) return;
    (void)store_->PutStreamEvents(st->id, events, now);
  }

 private:
  store::Store* const store_;
};

// Session keys of the function's account, known to this server only.
class CredentialKeyMinter final : public functions::KeyMinter {
 public:
  explicit CredentialKeyMinter(const api::CredentialStore* store) : store_(store) {}
  Key Mint(const std::string& account) override {
    api::AccessKey k = store_->MintSessionKey(account);
    return {k.access_key_id, k.secret_access_key, k.session_token};
  }
  void Revoke(const std::string& access_key_id) override {
    store_->RevokeSessionKey(access_key_id);
  }

 private:
  const api::CredentialStore* const store_;
};

HttpResponse ToHttp(api::WireResponse r) {
  HttpResponse res;
  res.status = r.status;
  res.headers = std::move(r.headers);
  res.content_type = std::move(r.content_type);
  res.body = std::move(r.body);
  return res;
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse res;
  res.status = status;
  res.content_type = "application/json";
  res.body = std::move(body);
  return res;
}

// What the HTTP edge refuses on its own, in the protocol the request looks like.
HttpResponse RenderHttpError(const api::ApiRouter& router, const HttpError& e) {
  std::string type;
  std::string message = e.message;
  switch (e.kind) {
    case HttpErrorKind::kNoRoute:
      type = "UnknownOperationException";
      message = "No API on " + e.method + " " + e.path;
      break;
    case HttpErrorKind::kBodyTooLarge:
    case HttpErrorKind::kBadRequest:
      type = "SerializationException";
      break;
    case HttpErrorKind::kHeaderTooLarge:
      type = "RequestHeaderFieldsTooLargeException";
      break;
    case HttpErrorKind::kHandlerFailed:
      // What failed inside is the server's business, not the caller's.
      type = "InternalFailure";
      message = "internal error";
      break;
  }
  HttpRequestParts parts;
  parts.method = e.method;
  parts.path = e.path;
  return ToHttp(router.RenderError(parts, {type, message, e.status}));
}

}  // namespace

HttpResponse Server::Impl::HandleApi(HttpRequest req) {
  HttpRequestParts parts;
  parts.method = std::move(req.method);
  parts.path = std::move(req.path);
  parts.query = std::move(req.query);  // the AWS JSON protocol sends none; kept for signing
  parts.headers = std::move(req.headers);
  parts.body = std::move(req.body);
  return ToHttp(router->Handle(parts));
}

HttpResponse Server::Impl::HandleAgentReport(const HttpRequest& req) {
  const std::string* auth = req.Header("Authorization");
  const std::string prefix = "Bearer ";
  std::string token =
      auth != nullptr && auth->rfind(prefix, 0) == 0 ? auth->substr(prefix.size()) : "";
  auto body = ParseJson(req.body);
  auto report =
      !body.ok() ? Result<model::AgentReport>(body.status()) : model::AgentReportFromJson(*body);
  if (!report.ok()) return JsonResponse(400, json{{"error", report.status().message()}}.dump());
  Status s = controller->HandleReport(token, *report);
  if (s.ok()) {
    int64_t bytes = 0;
    for (const auto& line : report->lines) bytes += static_cast<int64_t>(line.message.size());
    // Each measured value of a sample is one CloudWatch datapoint.
    int64_t points = 0;
    for (const auto& smp : report->samples) {
      points += (smp.cpu ? 1 : 0) + (smp.memory ? 1 : 0) + (smp.disk ? 1 : 0) + (smp.gpu ? 1 : 0) +
                (smp.gpu_memory ? 1 : 0);
    }
    metrics.OnAgentReport(report->job_arn + "/" + std::to_string(report->host_index),
                          static_cast<int64_t>(report->lines.size()), bytes, points,
                          SystemClock::Default()->Now());
    return JsonResponse(200, "{}");
  }
  // 403 and 410 tell the agent to stop retrying; 503 to retry. A store that
  // cannot take the report (a full disk) is passing: the agent keeps the lines
  // and retries. Its detail (SQL, paths) is for the server's log only.
  const bool storage = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kIoError;
  int status = s.code() == StatusCode::kPermissionDenied ? 403
               : s.code() == StatusCode::kNotFound       ? 410
               : storage                                 ? 503
                                                         : 500;
  std::string message = s.message();
  if (status >= 500) {
    std::fprintf(stderr, "trainyard: agent report for %s not taken: %s\n", report->job_arn.c_str(),
                 s.ToString().c_str());
    message = storage ? "the control plane cannot store the report now (its storage is full or "
                        "unavailable); retry"
                      : "internal error in the control plane";
  }
  return JsonResponse(status, json{{"error", message}}.dump());
}

std::string Server::Impl::MetricsCaller(const HttpRequest& req) {
  const std::string* auth = req.Header("Authorization");
  if (auth == nullptr) return "";
  std::string akid;
  if (auth->rfind("Basic ", 0) == 0) {
    std::string decoded;
    if (!Base64Decode(auth->substr(6), &decoded)) return "";
    size_t colon = decoded.find(':');
    if (colon == std::string::npos) return "";
    const api::AccessKey* key = credentials->Find(decoded.substr(0, colon));
    std::string secret = decoded.substr(colon + 1);
    // Constant time: the comparison must not reveal a prefix of the secret.
    if (key == nullptr || !ConstantTimeEquals(secret, key->secret_access_key)) return "";
    akid = key->access_key_id;
  } else {
    HttpRequestParts parts;
    parts.method = req.method;
    parts.path = req.path;
    parts.query = req.query;
    parts.headers = req.headers;
    parts.body = req.body;
    auto verified = verifier->Verify(parts, SystemClock::Default()->Now(),
                                     api::SigV4Verifier::ScopeService(parts));
    auto* caller = std::get_if<api::Caller>(&verified);
    if (caller == nullptr) return "";
    akid = caller->access_key_id;
  }
  const auto& allowed = config.metrics_endpoint.access_keys;
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), akid) == allowed.end()) {
    return "";
  }
  return akid;
}

HttpResponse Server::Impl::HandleMetrics(const HttpRequest& req, bool authenticate) {
  if (authenticate && MetricsCaller(req).empty()) {
    HttpResponse res;
    res.status = 401;
    res.content_type = "text/plain; charset=utf-8";
    res.headers.emplace_back("WWW-Authenticate", "Basic realm=\"trainyard metrics\"");
    res.body =
        "GET /metrics needs a configured access key: SigV4-signed, or HTTP Basic "
        "<access key id>:<secret access key> (metrics_endpoint in the server config can open "
        "it or move it to an admin address).\n";
    return res;
  }
  TimePoint now = SystemClock::Default()->Now();
  std::vector<GaugeFamily> gauges;
  GaugeFamily jobs{"trainyard_jobs", "Training jobs by status, over every account.", "gauge", {}};
  if (auto counts = store->CountJobsByStatus(); counts.ok()) {
    for (const auto& [status, n] : *counts) {
      jobs.samples.push_back({{{"status", status}}, static_cast<double>(n)});
    }
  }
  gauges.push_back(std::move(jobs));
  GaugeFamily total{"trainyard_capacity_instances",
                    "Instances of each type this machine hosts at once.",
                    "gauge",
                    {}};
  GaugeFamily in_use{
      "trainyard_capacity_instances_in_use", "Instances of each type running now.", "gauge", {}};
  GaugeFamily queued{
      "trainyard_jobs_queued", "Jobs waiting for capacity, by instance type.", "gauge", {}};
  if (auto spot = controller->SpotStatus(); spot.ok()) {
    for (const auto& v : *spot) {
      const std::string& type = v.market.instance_type;
      total.samples.push_back({{{"instance_type", type}}, static_cast<double>(v.capacity_total)});
      in_use.samples.push_back({{{"instance_type", type}}, static_cast<double>(v.capacity_in_use)});
      queued.samples.push_back({{{"instance_type", type}}, static_cast<double>(v.queued_jobs)});
    }
  }
  gauges.push_back(std::move(total));
  gauges.push_back(std::move(in_use));
  gauges.push_back(std::move(queued));
  gauges.push_back(
      {"trainyard_agents_connected",
       "Job instances whose agent reported in the last 30 seconds.",
       "gauge",
       {{{}, static_cast<double>(metrics.AgentsConnected(now, std::chrono::seconds(30)))}}});
  if (http != nullptr) {
    HttpServerStats st = http->stats();
    gauges.push_back({"trainyard_http_open_connections",
                      "Open connections on the API listener.",
                      "gauge",
                      {{{}, static_cast<double>(st.open_connections)}}});
    gauges.push_back({"trainyard_http_connections_refused_total",
                      "Connections closed at accept for a connection limit.",
                      "counter",
                      {{{}, static_cast<double>(st.refused)}}});
    gauges.push_back({"trainyard_http_connections_timed_out_total",
                      "Connections closed for a missed deadline.",
                      "counter",
                      {{{}, static_cast<double>(st.timed_out)}}});
  }
  HttpResponse res;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = metrics.Render(gauges);
  return res;
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

const std::string& Server::url() const { return impl_->url; }
const ServerConfig& Server::config() const { return impl_->config; }

std::string Server::FileRootsSummary() const { return impl_->file_roots_note; }
const std::vector<std::string>& Server::Warnings() const { return impl_->warnings; }

std::string Server::LauncherSummary() const { return impl_->launcher->Describe(); }

std::string Server::SandboxSummary() const {
  const model::SandboxConfig& s = impl_->sandbox;
  if (impl_->config.isolation != "bwrap") {
    return "none: training processes run on the host as the server's user (isolation: none)";
  }
  if (!s.user_namespace) {
    return "WEAKER: user namespaces are not available, so training processes run as host root "
           "with no capabilities, no_new_privs and a seccomp filter";
  }
  return "bubblewrap, user namespace: root inside is uid " + std::to_string(s.uid) + " gid " +
         std::to_string(s.gid) + " on the host; no capabilities, seccomp filter";
}

std::string Server::StorageSummary() const {
  const storage::S3Settings& s = impl_->s3;
  const char* style = s.addressing == storage::S3Addressing::kPath      ? "path-style"
                      : s.addressing == storage::S3Addressing::kVirtual ? "virtual-hosted"
                                                                        : "auto";
  return "s3 endpoint " + storage::EffectiveEndpoint(s) + " (region " + s.region + ", " + style +
         " addressing, credentials from " + s.credentials_source + ")";
}

Result<std::unique_ptr<Server>> Server::Create(ServerConfig config) {
  auto impl = std::make_unique<Impl>();
  if (config.data_dir.empty()) return InvalidArgument("--data-dir is required");
  TY_RETURN_IF_ERROR(MakeDirs(config.data_dir));
  TY_ASSIGN_OR_RETURN(config.data_dir, RealPath(config.data_dir));
  // Two servers on one data dir would both adopt the same jobs.
  std::string lock_path = JoinPath(config.data_dir, "server.lock");
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) return ErrnoStatus("cannot open " + lock_path, errno);
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(impl->lock_fd);
    impl->lock_fd = -1;
    return FailedPrecondition("another Trainyard server is using the data dir " + config.data_dir);
  }
  // The data dir holds every account's secrets: it is never a file:// root. The
  // default root is the starting directory, unless that overlaps the data dir.
  if (config.file_roots.empty()) {
    auto cwd = RealPath(CurrentDir());
    if (cwd.ok() && !PathsOverlap(*cwd, config.data_dir)) {
      config.file_roots = {*cwd};
    } else {
      impl->file_roots_note = "none (the starting directory " + CurrentDir() +
                              " overlaps the data dir " + config.data_dir +
                              "; give --file-root or use s3:// URIs)";
    }
  }
  TY_ASSIGN_OR_RETURN(config.file_roots,
                      CheckFileRoots(config.file_roots, config.data_dir, "file root"));
  std::map<std::string, std::vector<std::string>> account_roots;
  for (auto& [account, ac] : config.accounts) {
    TY_ASSIGN_OR_RETURN(ac.file_roots, CheckFileRoots(ac.file_roots, config.data_dir,
                                                      "file root of account " + account));
    account_roots[account] = ac.file_roots;
  }
  if (impl->file_roots_note.empty()) {
    for (const auto& r : config.file_roots) {
      impl->file_roots_note += (impl->file_roots_note.empty() ? "" : ", ") + r;
    }
    if (config.file_roots.empty()) impl->file_roots_note = "none";
  }
  if (!account_roots.empty()) {
    impl->file_roots_note +=
        " (" + std::to_string(account_roots.size()) + " account(s) with their own roots)";
  }
  // Server files are the server's only: the data dir is not listable by others
  // (0711 keeps traversal for sandboxes handed instance dirs below it).
  struct stat dst {};
  if (::stat(config.data_dir.c_str(), &dst) == 0 && (dst.st_mode & 0066) != 0 &&
      ::chmod(config.data_dir.c_str(), (dst.st_mode & 0700) | 0011) != 0) {
    return ErrnoStatus("chmod " + config.data_dir, errno);
  }
  TY_RETURN_IF_ERROR(CheckDatabaseBesideJobs(config.data_dir));
  if (config.agent_binary.empty()) {
    TY_ASSIGN_OR_RETURN(config.agent_binary, RealPath("/proc/self/exe"));
  }
  TY_ASSIGN_OR_RETURN(config.python_dir, ResolvePythonDir(config.python_dir));

  // Credentials: the configured file, or one created on first start.
  auto creds = std::make_unique<api::CredentialStore>();
  if (config.credentials_file.empty()) {
    auto key = api::EnsureCredentialsFile(config.data_dir);
    if (!key.ok()) return key.status();
    config.credentials_file = JoinPath(config.data_dir, "credentials");
  }
  auto loaded = api::LoadSharedCredentialsFile(config.credentials_file);
  if (!loaded.ok()) return loaded.status();
  *creds = std::move(loaded).value();
  if (creds->size() == 0) {
    return InvalidArgument("no access keys in " + config.credentials_file);
  }

  // Probe bubblewrap once here rather than in every agent on the start path.
  const std::string bwrap = agent::AgentOptions{}.bwrap_path;
  if (config.isolation == "auto") {
    config.isolation = agent::BubblewrapWorks(bwrap) ? "bwrap" : "none";
  }
  // Without a sandbox every job can read every other account's data and the server's files.
  const size_t accounts = creds->Accounts().size();
  if (config.isolation == "none" && accounts > 1) {
    if (!config.allow_shared_host) {
      return FailedPrecondition(
          "isolation is none but " + config.credentials_file + " holds " +
          std::to_string(accounts) +
          " accounts: without a sandbox each account's jobs can read the others' data and the "
          "server's secrets. Install bubblewrap (isolation: bwrap), keep one account, or set "
          "allow_shared_host: true in the config if every account is trusted.");
    }
    impl->warnings.push_back(
        "WARNING: isolation is none with " + std::to_string(accounts) +
        " accounts (allow_shared_host: true): every account's jobs run unsandboxed and can read "
        "the other accounts' data and this server's credentials.");
  }
  impl->sandbox.uid = config.sandbox_uid;
  impl->sandbox.gid = config.sandbox_gid;
  impl->sandbox.user_namespace =
      config.isolation == "bwrap" &&
      agent::UserNamespaceSandboxWorks(bwrap, config.sandbox_uid, config.sandbox_gid);
  // Every account's roots are hidden in every sandbox (a job sees only the channels bound into
  // it), so account B's job cannot read account A's root through the host's file system.
  std::vector<std::string> all_roots = config.file_roots;
  for (const auto& [account, ac] : config.accounts) {
    all_roots.insert(all_roots.end(), ac.file_roots.begin(), ac.file_roots.end());
  }
  // Files that may hold the S3 store's secret are the server's too.
  for (const char* var : {"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"}) {
    const char* path = std::getenv(var);
    if (path != nullptr && path[0] == '/') all_roots.push_back(path);
  }
  impl->sandbox.hidden_paths =
      agent::SandboxHiddenPaths(config.data_dir, config.credentials_file, all_roots);
  // Without a user namespace the training process is host root with no capabilities: it can
  // still read every root-owned file the sandbox shows. Not for several accounts.
  if (config.isolation == "bwrap" && !impl->sandbox.user_namespace && accounts > 1 &&
      !config.allow_shared_host) {
    return FailedPrecondition(
        "user namespaces are not available, so training processes would run as host root "
        "(without capabilities) and could read root-owned files of the host, while " +
        config.credentials_file + " holds " + std::to_string(accounts) +
        " accounts. Enable unprivileged user namespaces, keep one account, or set "
        "allow_shared_host: true in the config if every account is trusted.");
  }

  // The S3 store, resolved once like the AWS CLI would (config, env, shared files).
  auto s3 = storage::ResolveS3Settings(config.s3, storage::ProcessEnv());
  if (!s3.ok()) return s3.status().WithPrefix("S3 storage settings");
  impl->s3 = *s3;

  for (const char* service :
       {"sagemaker", "trainyard", "logs", "cloudwatch", "sns", "lambda", "events"}) {
    if (api::ServiceModel::Embedded(service) == nullptr) {
      return Internal(std::string("the embedded ") + service + " model does not load");
    }
  }

  TY_ASSIGN_OR_RETURN(impl->store, store::Store::Open(config.data_dir));
  // A database replaced by a fresh one reads as valid but knows none of the jobs on disk.
  TY_ASSIGN_OR_RETURN(int64_t known_jobs, impl->store->CountJobs());
  if (known_jobs == 0) {
    int trees = CountJobTrees(config.data_dir, 100);
    if (trees > 0) {
      return FailedPrecondition(LostDatabase(store::DatabasePath(config.data_dir), config.data_dir,
                                             trees, "empty (no jobs)"));
    }
  }
  TY_ASSIGN_OR_RETURN(launch::NetworkPolicy network, launch::ParseNetworkPolicy(config.network));
  launch::LocalNetworkOptions net_options;
  // Networks and firewall rules are this server's (other servers may share the machine).
  net_options.server_id = launch::ServerNetworkId(config.data_dir);
  net_options.firewall = true;
  if (config.pass_s3_credentials_to_jobs) net_options.store_url = impl->s3.endpoint;
  impl->catalog = capacity::InstanceCatalog::Builtin();
  for (const auto& t : config.instance_types) impl->catalog.Upsert(t);
  if (config.launcher == "slurm") {
    // Built and checked here so a misconfigured cluster is a start-up error with Slurm's words.
    TY_ASSIGN_OR_RETURN(impl->slurm_launcher, MakeSlurmLauncher(config, net_options.server_id));
    impl->launcher = impl->slurm_launcher.get();
  } else {
    launch::LocalLauncherOptions launcher_options;
    launcher_options.capacity = config.capacity;
    launcher_options.catalog = &impl->catalog;
    launcher_options.jobs_dir = JoinPath(config.data_dir, "jobs");
    impl->local_launcher = std::make_unique<launch::LocalLauncher>(config.agent_binary, network,
                                                                   net_options, launcher_options);
    impl->launcher = impl->local_launcher.get();
  }
  // Instance cgroups of a crashed server's agents: the empty ones go (busy ones stay).
  (void)agent::SweepInstanceCgroups({});
  impl->images = std::make_unique<launch::ImageCatalog>(config.images);
  control::ControllerOptions copts;
  copts.catalog = &impl->catalog;
  copts.spot = config.spot;
  copts.data_dir = config.data_dir;
  copts.region = config.region;
  copts.server_url_file = JoinPath(config.data_dir, "server.url");
  copts.file_roots = config.file_roots;
  copts.account_file_roots = account_roots;
  copts.agent_log_buffer_lines = config.agent_log_buffer_lines;
  copts.storage_s3 = storage::S3SettingsToJson(impl->s3);
  copts.pass_s3_credentials = config.pass_s3_credentials_to_jobs;
  copts.python_dir = config.python_dir;
  copts.isolation = config.isolation;
  copts.sandbox = impl->sandbox;
  copts.enforce_instance_limits = config.instance_limits;
  copts.instance_volumes = config.instance_volumes;
  copts.stop_policy.stop_grace = config.stop_grace;
  copts.metrics_interval_ms = config.metrics_interval_ms;
  TY_ASSIGN_OR_RETURN(impl->metric_store,
                      telemetry::MetricStore::Open(config.data_dir, config.metric_store));
  impl->metrics_sweeper = std::make_unique<telemetry::MetricSweeper>(
      impl->metric_store.get(), config.metrics_sweep_interval, SystemClock::Default());
  impl->metrics_observer = std::make_unique<telemetry::JobMetricsObserver>(
      impl->store.get(), impl->metric_store.get(), SystemClock::Default());
  events::GovernanceOptions gopts;
  gopts.region = config.region;
  gopts.defaults = config.governance;
  gopts.allow_account_updates = config.governance_allow_account_updates;
  impl->governance =
      std::make_unique<events::Governance>(gopts, impl->store.get(), SystemClock::Default());
  impl->logs_deliverer =
      std::make_unique<events::LogsDeliverer>(impl->store.get(), SystemClock::Default());
  impl->deliveries.Register("logs", impl->logs_deliverer.get());
  events::DispatcherOptions dopts = config.events;
  dopts.region = config.region;
  impl->dispatcher = std::make_unique<events::EventDispatcher>(
      dopts, impl->store.get(), &impl->deliveries, SystemClock::Default());
  events::EventDispatcher* dispatcher = impl->dispatcher.get();
  impl->job_events = std::make_unique<events::JobEventPublisher>(
      [dispatcher] { dispatcher->Wake(); }, impl->store.get());
  impl->rule_storage =
      std::make_unique<debugger::RootsAccountStorage>(config.file_roots, account_roots, impl->s3);
  debugger::RuleManagerOptions rmopts;
  rmopts.threads = config.debugger.threads;
  rmopts.poll_interval = std::chrono::milliseconds(config.debugger.poll_interval_ms);
  rmopts.max_tensor_bytes = static_cast<uint64_t>(config.debugger.max_tensor_mb) << 20;
  rmopts.stop_grace = std::chrono::seconds(config.debugger.stop_grace_seconds);
  rmopts.scratch_dir = JoinPath(config.data_dir, "debugger");
  debugger::RuleEventSink rule_events;
  store::Store* store_ptr = impl->store.get();
  rule_events.make = [store_ptr](const model::JobRecord& job,
                                 const std::vector<model::RuleEvaluation>& rules, TimePoint now) {
    auto tags = store_ptr->GetTags(job.arn);
    return std::vector<store::OutboxEvent>{events::TrainingJobStateChangeEvent(
        job, tags.ok() ? *tags : std::vector<store::Tag>{}, now, RandomUuid(), rules)};
  };
  rule_events.committed = [dispatcher] { dispatcher->Wake(); };
  impl->rule_manager =
      std::make_unique<debugger::RuleManager>(rmopts, impl->store.get(), impl->rule_storage.get(),
                                              SystemClock::Default(), std::move(rule_events));
  impl->controller = std::make_unique<control::JobController>(
      copts, impl->store.get(), impl->launcher, impl->images.get(), SystemClock::Default(),
      std::vector<control::JobObserver*>{impl->metrics_observer.get(), impl->governance.get(),
                                         impl->rule_manager.get()},
      impl->job_events.get());
  impl->credentials = std::move(creds);
  impl->verifier = std::make_unique<api::SigV4Verifier>(impl->credentials.get(), config.region);
  api::RouterOptions ropts;
  ropts.max_body_bytes = config.max_body_bytes;
  impl->router =
      std::make_unique<api::ApiRouter>(ropts, impl->verifier.get(), SystemClock::Default());
  // CBOR before JSON, so that a CBOR request also carrying X-Amz-Target is refused by the CBOR
  // codec (the protocol requires it); JSON before query. The router answers requests in no
  // protocol with the JSON codec's errors wherever it is in this list. rest-json is not added
  // until a service speaks it (it claims requests by their credential scope).
  impl->router->AddCodec(std::make_unique<api::CborCodec>());
  // rest-json claims only requests whose credential scope is lambda (no X-Amz-Target).
  impl->router->AddCodec(std::make_unique<api::RestJsonCodec>(std::set<std::string>{"lambda"}));
  impl->router->AddCodec(std::make_unique<api::JsonCodec>());
  impl->router->AddCodec(std::make_unique<api::QueryCodec>());
  impl->router->SetObserver(&impl->metrics);
  services::SageMakerOptions sopts;
  sopts.region = config.region;
  sopts.policy.file_roots = config.file_roots;
  sopts.policy.account_file_roots = account_roots;
  sopts.catalog = &impl->catalog;
  sopts.admission = impl->governance.get();
  impl->router->AddService(std::make_shared<services::SageMakerService>(
      sopts, impl->controller.get(), impl->store.get(), SystemClock::Default()));
  impl->router->AddService(std::make_shared<services::TrainyardService>(
      &impl->catalog, impl->controller.get(), impl->store.get(), SystemClock::Default(),
      impl->governance.get(), impl->rule_storage.get()));
  services::LogsOptions lopts;
  lopts.region = config.region;
  // PutLogEvents takes 1 MiB of events, which is more than 1 MiB of JSON (names, timestamps,
  // escaping): CloudWatch Logs gets a larger body limit than the API's default.
  constexpr size_t kLogsBodyBytes = 4 << 20;
  impl->router->AddService(
      std::make_shared<services::LogsService>(lopts, impl->store.get(), SystemClock::Default()),
      std::max(config.max_body_bytes, kLogsBodyBytes));
  impl->delivery_queue = std::make_unique<control::DeliveryQueue>(control::DeliveryQueueOptions{},
                                                                  SystemClock::Default());
  impl->sns_poster = services::MakeCurlPoster();
  services::SnsOptions sns_options;
  sns_options.data_dir = config.data_dir;
  sns_options.region = config.region;
  TY_ASSIGN_OR_RETURN(impl->sns, services::SnsTopics::Open(
                                     sns_options, &impl->deliveries, impl->delivery_queue.get(),
                                     impl->sns_poster.get(), SystemClock::Default()));
  impl->deliveries.Register("sns", impl->sns.get());
  telemetry::AlarmManagerOptions alarm_options;
  alarm_options.data_dir = config.data_dir;
  alarm_options.region = config.region;
  TY_ASSIGN_OR_RETURN(impl->alarms, telemetry::AlarmManager::Open(
                                        alarm_options, impl->metric_store.get(), &impl->deliveries,
                                        impl->delivery_queue.get(), SystemClock::Default()));
  impl->router->AddService(std::make_shared<services::MonitoringService>(
      impl->metric_store.get(), SystemClock::Default(), impl->alarms.get()));
  impl->router->AddService(std::make_shared<services::SnsService>(impl->sns.get()));

  // Lambda functions: stored under <data_dir>/functions, run in sandboxes like jobs.
  TY_ASSIGN_OR_RETURN(impl->function_store,
                      functions::FunctionStore::Open(config.data_dir, &impl->warnings));
  impl->function_logs = std::make_unique<StoreLogSink>(impl->store.get());
  impl->function_keys = std::make_unique<CredentialKeyMinter>(impl->credentials.get());
  functions::RuntimeOptions fopts;
  fopts.data_dir = config.data_dir;
  fopts.region = config.region;
  fopts.bwrap_path = bwrap;
  fopts.sandboxed = config.isolation == "bwrap";
  fopts.sandbox = impl->sandbox;
  fopts.memory_limits = config.instance_limits;
  impl->function_runtime = std::make_unique<functions::FunctionRuntime>(
      fopts, impl->function_logs.get(), impl->function_keys.get());
  services::LambdaOptions lambda_opts;
  lambda_opts.region = config.region;
  impl->lambda = std::make_shared<services::LambdaService>(lambda_opts, impl->function_store.get(),
                                                           impl->function_runtime.get());
  // A 50 MB package, base64 in JSON.
  constexpr size_t kLambdaBodyBytes = 70 << 20;
  impl->router->AddService(impl->lambda, std::max(config.max_body_bytes, kLambdaBodyBytes));
  impl->lambda_deliverer = std::make_unique<functions::LambdaDeliverer>(
      impl->function_store.get(), impl->function_runtime.get());
  impl->deliveries.Register("lambda", impl->lambda_deliverer.get());
  services::EventsOptions eopts;
  eopts.region = config.region;
  impl->router->AddService(std::make_shared<services::EventsService>(
      eopts, impl->store.get(), SystemClock::Default(), [dispatcher] { dispatcher->Wake(); }));
  impl->config = std::move(config);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Start() {
  Impl& d = *impl_;
  std::string host;
  int port = 0;
  TY_RETURN_IF_ERROR(ParseListen(d.config.listen, &host, &port));

  HttpServerOptions hopts = d.config.http;
  hopts.max_body_bytes = d.router->MaxBodyBytes();
  d.http = std::make_unique<HttpServer>(hopts);
  // API calls wait for the controller's loop; reports have their own threads so that however
  // many agents report at once, an API call never queues behind them (nor they behind it).
  int api_pool = d.http->AddPool("api", std::max(2, d.config.http_threads));
  int report_pool = d.http->AddPool("reports", std::max(1, d.config.http_report_threads));
  // A report carries a batch of log lines: as much as the old server took on any route.
  d.http->Route(
      "POST", model::kAgentReportPath, report_pool,
      [&d](const HttpRequest& req) { return d.HandleAgentReport(req); },
      d.config.max_body_bytes * 4 + 4096);
  const bool open_metrics = d.config.metrics_endpoint.unauthenticated;
  d.http->Route("GET", "/metrics", api_pool, [&d, open_metrics](const HttpRequest& req) {
    return d.HandleMetrics(req, /*authenticate=*/!open_metrics);
  });
  // Everything else is the AWS front door: the router tells the protocols and services apart.
  d.http->Route("*", "*", api_pool, [&d](const HttpRequest& req) { return d.HandleApi(req); });
  d.http->SetErrorRenderer([&d](const HttpError& e) { return RenderHttpError(*d.router, e); });
  TY_ASSIGN_OR_RETURN(int bound, d.http->Bind(host, port));
  std::string url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (host == "0.0.0.0") url_host = "127.0.0.1";
  d.url = "http://" + url_host + ":" + std::to_string(bound);

  // Agents read the URL from a file, so a restarted server on a new port
  // still receives the reports of the jobs it re-adopts.
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(d.config.data_dir, "server.url"), d.url + "\n", 0600));
  json info = {{"url", d.url},
               {"region", d.config.region},
               {"pid", static_cast<int64_t>(::getpid())},
               {"credentials_file", d.config.credentials_file}};
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(d.config.data_dir, "server.json"), info.dump(2) + "\n", 0600));

  // The Lambda Runtime API, on loopback: workers long-poll GET next there, one pool thread each.
  {
    HttpServerOptions ropts;
    ropts.io_threads = 1;
    ropts.raise_fd_limit = false;
    ropts.max_body_bytes = 8 << 20;  // a 6 MB response, and a little more to refuse it properly
    d.runtime_http = std::make_unique<HttpServer>(ropts);
    int pool = d.runtime_http->AddPool("lambda-runtime", 20);
    functions::FunctionRuntime* rt = d.function_runtime.get();
    d.runtime_http->Route("*", "/2018-06-01/runtime/*", pool, [rt](const HttpRequest& req) {
      functions::RuntimeRequest r;
      r.method = req.method;
      r.path = req.path;
      if (const std::string* t = req.Header("Trainyard-Worker-Token")) r.token = *t;
      if (const std::string* t = req.Header("Lambda-Runtime-Function-Error-Type")) {
        r.error_type_header = *t;
      }
      r.body = req.body;
      functions::RuntimeResponse out = rt->HandleRuntimeApi(r);
      HttpResponse res;
      res.status = out.status;
      res.headers = std::move(out.headers);
      res.body = std::move(out.body);
      return res;
    });
    TY_ASSIGN_OR_RETURN(int runtime_port, d.runtime_http->Bind("127.0.0.1", 0));
    TY_RETURN_IF_ERROR(d.runtime_http->Start());
    d.function_runtime->SetAddresses("127.0.0.1:" + std::to_string(runtime_port), d.url);
  }

  // Unfinished rule evaluations restart before the controller re-adopts their jobs.
  TY_RETURN_IF_ERROR(d.rule_manager->Start());
  TY_RETURN_IF_ERROR(d.controller->Start());
  d.alarms->Start();
  // Deliveries a previous server left pending are resumed (at least once).
  TY_RETURN_IF_ERROR(d.dispatcher->Start());
  // The socket is bound and listening already: connections queue until the
  // accept loop runs, so the server is ready to serve from here on.
  TY_RETURN_IF_ERROR(d.http->Start());
  if (!d.config.metrics_endpoint.listen.empty()) {
    // The admin listener: /metrics only, without credentials, for a scraper on a private
    // address.
    std::string admin_host;
    int admin_port = 0;
    TY_RETURN_IF_ERROR(ParseListen(d.config.metrics_endpoint.listen, &admin_host, &admin_port)
                           .WithPrefix("metrics_endpoint: listen"));
    HttpServerOptions aopts;
    aopts.io_threads = 1;
    aopts.max_connections = 64;
    aopts.raise_fd_limit = false;
    d.admin_http = std::make_unique<HttpServer>(aopts);
    int admin_pool = d.admin_http->AddPool("admin", 1);
    d.admin_http->Route("GET", "/metrics", admin_pool, [&d](const HttpRequest& req) {
      return d.HandleMetrics(req, /*authenticate=*/false);
    });
    TY_RETURN_IF_ERROR(d.admin_http->Bind(admin_host, admin_port).status());
    TY_RETURN_IF_ERROR(d.admin_http->Start());
  }
  d.started = true;
  return Status::Ok();
}

void Server::Shutdown(bool wait_for_connections) {
  Impl& d = *impl_;
  if (d.shut_down.exchange(true)) return;
  if (d.controller) d.controller->Shutdown();
  if (d.rule_manager) d.rule_manager->Shutdown();
  if (d.lambda) d.lambda->Shutdown();
  if (d.function_runtime) d.function_runtime->Shutdown();
  if (d.runtime_http) d.runtime_http->Shutdown(false);
  if (d.dispatcher) d.dispatcher->Shutdown();
  // The jobs' networks are released by now: the firewall table goes too (the process ends
  // with _Exit, without destructors).
  if (d.local_launcher) d.local_launcher->Close();
  // Requests already in a handler are answered; idle connections close at once.
  if (d.http) d.http->Shutdown(wait_for_connections);
  if (d.admin_http) d.admin_http->Shutdown(wait_for_connections);
  if (d.started) {
    // A stale URL would send agents of a later server to nobody.
    ::unlink(JoinPath(d.config.data_dir, "server.json").c_str());
  }
  if (d.lock_fd >= 0) {
    ::close(d.lock_fd);  // releases the flock
    d.lock_fd = -1;
  }
}

void Server::Wait() {
  if (impl_->http) impl_->http->Wait();
}

}  // namespace ty::server
