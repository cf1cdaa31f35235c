#include "server/server.h"

#include <httplib.h>
#include <fcntl.h>
#include <atomic>
#include <filesystem>
#include <map>
#include <cerrno>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/agent.h"
#include "agent/resource_limits.h"
#include "api/credentials.h"
#include "api/sagemaker_api.h"
#include "api/service_model.h"
#include "api/sigv4_verifier.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "control/job_controller.h"
#include "launch/image_catalog.h"
#include "launch/local_launcher.h"
#include "model/agent_protocol.h"
#include "storage/s3_settings.h"
#include "store/store.h"

namespace ty::server {

using nlohmann::json;

struct Server::Impl {
  ServerConfig config;
  storage::S3Settings s3;  // resolved at Create
  std::unique_ptr<store::Store> store;
  std::unique_ptr<launch::LocalLauncher> launcher;
  std::unique_ptr<launch::ImageCatalog> images;
  capacity::InstanceCatalog catalog;  // before the controller, which reads it
  std::unique_ptr<control::JobController> controller;
  std::unique_ptr<api::CredentialStore> credentials;
  std::unique_ptr<api::SigV4Verifier> verifier;
  std::unique_ptr<api::SageMakerApi> api;
  httplib::Server http;
  std::thread http_thread;
  std::string url;
  int lock_fd = -1;  // flock on <data_dir>/server.lock: one server per data dir
  bool started = false;
  std::atomic<bool> shut_down{false};
  std::string file_roots_note;        // FileRootsSummary()
  std::vector<std::string> warnings;  // Warnings()

  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);
  }

  void HandleApi(const httplib::Request& req, httplib::Response& res);
  void HandleAgentReport(const httplib::Request& req, httplib::Response& res);
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
         "Restore the database from a copy made with `trainyard admin backup` (copy it to " + db +
         "), or, to start an empty server on purpose, move " + JoinPath(data_dir, "jobs") +
         " aside.";
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

void WriteApiResponse(const api::ApiResponse& r, httplib::Response& res) {
  res.status = r.status;
  res.set_header("x-amzn-RequestId", r.request_id);
  if (!r.error_type.empty()) res.set_header("X-Amzn-ErrorType", r.error_type);
  res.set_content(r.body, "application/x-amz-json-1.1");
}

}  // namespace

void Server::Impl::HandleApi(const httplib::Request& req, httplib::Response& res) {
  HttpRequestParts parts;
  parts.method = req.method;
  parts.path = req.path;
  parts.query = "";
  if (!req.params.empty()) {
    // The AWS JSON protocol sends no query; keep what came for signing.
    auto q = req.target.find('?');
    if (q != std::string::npos) parts.query = req.target.substr(q + 1);
  }
  parts.headers.reserve(req.headers.size());
  for (const auto& [k, v] : req.headers) {
    // httplib adds these for its own bookkeeping; they were never sent.
    if (k == "REMOTE_ADDR" || k == "REMOTE_PORT" || k == "LOCAL_ADDR" || k == "LOCAL_PORT") continue;
    parts.headers.emplace_back(k, v);
  }
  parts.body = req.body;
  WriteApiResponse(api->Handle(parts), res);
}

void Server::Impl::HandleAgentReport(const httplib::Request& req, httplib::Response& res) {
  std::string auth = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  std::string token = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
  json body = json::parse(req.body, nullptr, false);
  auto report = body.is_discarded() ? Result<model::AgentReport>(InvalidArgument("bad JSON"))
                                    : model::AgentReportFromJson(body);
  if (!report.ok()) {
    res.status = 400;
    res.set_content(json{{"error", report.status().message()}}.dump(), "application/json");
    return;
  }
  Status s = controller->HandleReport(token, *report);
  if (s.ok()) {
    res.status = 200;
    res.set_content("{}", "application/json");
    return;
  }
  // 403 and 410 tell the agent to stop retrying; 503 to retry. A store that
  // cannot take the report (a full disk) is passing: the agent keeps the lines
  // and retries. Its detail (SQL, paths) is for the server's log only.
  const bool storage = s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kIoError;
  res.status = s.code() == StatusCode::kPermissionDenied ? 403
               : s.code() == StatusCode::kNotFound       ? 410
               : storage                                 ? 503
                                                         : 500;
  std::string message = s.message();
  if (res.status >= 500) {
    std::fprintf(stderr, "trainyard: agent report for %s not taken: %s\n",
                 report->job_arn.c_str(), s.ToString().c_str());
    message = storage ? "the control plane cannot store the report now (its storage is full or "
                        "unavailable); retry"
                      : "internal error in the control plane";
  }
  res.set_content(json{{"error", message}}.dump(), "application/json");
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Shutdown(); }

const std::string& Server::url() const { return impl_->url; }
const ServerConfig& Server::config() const { return impl_->config; }

std::string Server::FileRootsSummary() const { return impl_->file_roots_note; }
const std::vector<std::string>& Server::Warnings() const { return impl_->warnings; }

std::string Server::NetworkSummary() const { return impl_->launcher->NetworkSummary(); }

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
    TY_ASSIGN_OR_RETURN(ac.file_roots,
                        CheckFileRoots(ac.file_roots, config.data_dir,
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
    impl->file_roots_note += " (" + std::to_string(account_roots.size()) +
                             " account(s) with their own roots)";
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
  if (config.isolation == "auto") {
    config.isolation = agent::BubblewrapWorks(agent::AgentOptions{}.bwrap_path) ? "bwrap" : "none";
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

  // The S3 store, resolved once like the AWS CLI would (config, env, shared files).
  auto s3 = storage::ResolveS3Settings(config.s3, storage::ProcessEnv());
  if (!s3.ok()) return s3.status().WithPrefix("S3 storage settings");
  impl->s3 = *s3;

  auto model = api::ServiceModel::Load(api::EmbeddedSageMakerModel());
  if (!model.ok()) return model.status();

  TY_ASSIGN_OR_RETURN(impl->store, store::Store::Open(config.data_dir));
  // A database replaced by a fresh one reads as valid but knows none of the jobs on disk.
  TY_ASSIGN_OR_RETURN(int64_t known_jobs, impl->store->CountJobs());
  if (known_jobs == 0) {
    int trees = CountJobTrees(config.data_dir, 100);
    if (trees > 0) {
      return FailedPrecondition(LostDatabase(store::DatabasePath(config.data_dir),
                                             config.data_dir, trees, "empty (no jobs)"));
    }
  }
  TY_ASSIGN_OR_RETURN(launch::NetworkPolicy network, launch::ParseNetworkPolicy(config.network));
  impl->launcher = std::make_unique<launch::LocalLauncher>(config.agent_binary, network);
  // Instance cgroups of a crashed server's agents: the empty ones go (busy ones stay).
  (void)agent::SweepInstanceCgroups({});
  impl->images = std::make_unique<launch::ImageCatalog>(config.images);
  impl->catalog = capacity::InstanceCatalog::Builtin();
  for (const auto& t : config.instance_types) impl->catalog.Upsert(t);
  control::ControllerOptions copts;
  copts.catalog = &impl->catalog;
  copts.capacity = config.capacity;
  copts.spot = config.spot;
  copts.data_dir = config.data_dir;
  copts.region = config.region;
  copts.server_url_file = JoinPath(config.data_dir, "server.url");
  copts.file_roots = config.file_roots;
  copts.account_file_roots = account_roots;
  copts.agent_log_buffer_lines = config.agent_log_buffer_lines;
  copts.storage_s3 = storage::S3SettingsToJson(impl->s3);
  copts.pass_s3_credentials = config.pass_s3_credentials_to_jobs;
  copts.isolation = config.isolation;
  copts.enforce_instance_limits = config.instance_limits;
  copts.stop_policy.stop_grace = config.stop_grace;
  impl->controller = std::make_unique<control::JobController>(
      copts, impl->store.get(), impl->launcher.get(), impl->images.get(), SystemClock::Default());
  impl->credentials = std::move(creds);
  impl->verifier = std::make_unique<api::SigV4Verifier>(impl->credentials.get(), config.region);
  api::ApiOptions aopts;
  aopts.region = config.region;
  aopts.policy.file_roots = config.file_roots;
  aopts.policy.account_file_roots = account_roots;
  aopts.max_body_bytes = config.max_body_bytes;
  aopts.catalog = &impl->catalog;
  impl->api = std::make_unique<api::SageMakerApi>(aopts, std::move(model).value(),
                                                  impl->verifier.get(), impl->controller.get(),
                                                  impl->store.get(), SystemClock::Default());
  impl->config = std::move(config);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Status Server::Start() {
  Impl& d = *impl_;
  std::string host;
  int port = 0;
  TY_RETURN_IF_ERROR(ParseListen(d.config.listen, &host, &port));

  int threads = std::max(2, d.config.http_threads);
  d.http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Accept bodies a little over the API limit so the API answers in the AWS
  // shape; beyond that httplib refuses them (413, rendered by the error handler).
  d.http.set_payload_max_length(d.config.max_body_bytes * 4 + 4096);
  d.http.set_tcp_nodelay(true);  // agents and clients send small requests on keep-alive
  d.http.set_keep_alive_max_count(100000);
  // httplib holds a worker per open connection: idle keep-alive connections
  // are closed after 5 s so they cannot starve the pool, yet a poller asking
  // every second or two (the SDK waiters, `trainyard run`) reuses its own.
  d.http.set_keep_alive_timeout(5);
  d.http.Post("/", [&d](const httplib::Request& req, httplib::Response& res) { d.HandleApi(req, res); });
  d.http.Post(model::kAgentReportPath, [&d](const httplib::Request& req, httplib::Response& res) {
    d.HandleAgentReport(req, res);
  });
  d.http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    // httplib calls this outside its exception guard: nothing may escape.
    try {
    std::string type = res.status == 413 ? "SerializationException" : "UnknownOperationException";
    std::string message = res.status == 413
                              ? "The request body is larger than the server accepts."
                              : "The AWS JSON protocol takes POST / with an X-Amz-Target header; got " +
                                    req.method + " " + req.path;
    api::ApiResponse r = api::SageMakerApi::ErrorResponse({type, message, res.status});
    res.set_header("X-Amzn-ErrorType", type);
    res.set_header("x-amzn-RequestId", RandomUuid());
    res.set_content(r.body, "application/x-amz-json-1.1");
    } catch (...) {
      res.set_content(R"({"__type":"InternalFailure","message":"internal error"})",
                      "application/x-amz-json-1.1");
    }
  });
  d.http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    api::ApiResponse r = api::SageMakerApi::ErrorResponse({"InternalFailure", "internal error", 500});
    res.status = 500;
    res.set_content(r.body, "application/x-amz-json-1.1");
  });

  int bound = port;
  if (port == 0) {
    bound = d.http.bind_to_any_port(host);
    if (bound < 0) return IoError("cannot bind " + host + ":0");
  } else if (!d.http.bind_to_port(host, port)) {
    return IoError("cannot bind " + d.config.listen + " (in use, or not an address of this machine)");
  }
  std::string url_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (host == "0.0.0.0") url_host = "127.0.0.1";
  d.url = "http://" + url_host + ":" + std::to_string(bound);

  // Agents read the URL from a file, so a restarted server on a new port
  // still receives the reports of the jobs it re-adopts.
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(d.config.data_dir, "server.url"), d.url + "\n", 0600));
  json info = {{"url", d.url},
               {"region", d.config.region},
               {"pid", static_cast<int64_t>(::getpid())},
               {"credentials_file", d.config.credentials_file}};
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(d.config.data_dir, "server.json"), info.dump(2) + "\n", 0600));

  TY_RETURN_IF_ERROR(d.controller->Start());
  d.http_thread = std::thread([&d] { d.http.listen_after_bind(); });
  // The socket is bound and listening already: connections queue until the
  // accept loop runs, so the server is ready to serve from here on.
  d.started = true;
  return Status::Ok();
}

void Server::Shutdown(bool wait_for_connections) {
  Impl& d = *impl_;
  if (d.shut_down.exchange(true)) return;
  if (d.controller) d.controller->Shutdown();
  d.http.stop();
  // httplib's workers only notice the stop when an idle keep-alive wait ends.
  if (wait_for_connections && d.http_thread.joinable()) d.http_thread.join();
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
  if (impl_->http_thread.joinable()) impl_->http_thread.join();
}

}  // namespace ty::server
