#include "cli/cli.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/agent.h"
#include "api/service_model.h"
#include "cli/alarms_commands.h"
#include "cli/client.h"
#include "cli/debugger_commands.h"
#include "cli/functions_commands.h"
#include "cli/governance_commands.h"
#include "cli/job_spec_file.h"
#include "cli/rules_commands.h"
#include "cli/storage_commands.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/json.h"
#include "server/server.h"
#include "storage/uri.h"
#include "store/store.h"

namespace ty::cli {

using nlohmann::json;

namespace {

std::string FormatSeconds(const json& t) {
  if (!t.is_number()) return "-";
  return FormatHuman(FromEpochMillis(static_cast<int64_t>(t.get<double>() * 1000)));
}

// Blocks SIGINT/SIGTERM in every thread created after this call so one
// thread can sigwait for them.
sigset_t BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// ---- trainyard server ------------------------------------------------------

struct ServerFlags {
  std::string listen = "127.0.0.1:0";
  std::string data_dir;
  std::string region;
  std::string config;
  std::vector<std::string> file_roots;
  std::string isolation;
  int64_t stop_grace = -1;
};

Result<server::ServerConfig> MakeServerConfig(const ServerFlags& f) {
  server::ServerConfig c;
  if (!f.config.empty()) TY_RETURN_IF_ERROR(server::LoadConfigFile(f.config, &c));
  if (!f.listen.empty()) c.listen = f.listen;
  if (!f.data_dir.empty()) c.data_dir = f.data_dir;
  if (c.data_dir.empty()) c.data_dir = DefaultDataDir();
  if (!f.region.empty()) c.region = f.region;
  if (!f.file_roots.empty()) c.file_roots = f.file_roots;
  if (!f.isolation.empty()) c.isolation = f.isolation;
  if (f.stop_grace >= 0) c.stop_grace = std::chrono::seconds(f.stop_grace);
  return c;
}

int RunServer(const ServerFlags& flags, std::ostream& out, std::ostream& err) {
  sigset_t signals = BlockTerminationSignals();
  auto config = MakeServerConfig(flags);
  if (!config.ok()) {
    err << "trainyard server: " << config.status().message() << "\n";
    return 2;
  }
  auto srv = server::Server::Create(std::move(config).value());
  if (!srv.ok()) {
    err << "trainyard server: " << srv.status().message() << "\n";
    return 1;
  }
  Status s = (*srv)->Start();
  if (!s.ok()) {
    err << "trainyard server: " << s.message() << "\n";
    return 1;
  }
  out << "trainyard listening on " << (*srv)->url() << std::endl;
  out << "trainyard storage: " << (*srv)->StorageSummary() << std::endl;
  {
    std::istringstream lines((*srv)->LauncherSummary());
    for (std::string line; std::getline(lines, line);) out << "trainyard " << line << std::endl;
  }
  out << "trainyard sandbox: " << (*srv)->SandboxSummary() << std::endl;
  out << "trainyard file roots: " << (*srv)->FileRootsSummary() << std::endl;
  for (const auto& w : (*srv)->Warnings()) {
    out << "trainyard: " << w << std::endl;
    err << "trainyard server: " << w << std::endl;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  err << "trainyard server: shutting down (signal " << sig << ")" << std::endl;
  // Every job is settled and persisted by now; idle client connections need
  // not be waited for.
  (*srv)->Shutdown(/*wait_for_connections=*/false);
  out.flush();
  std::_Exit(0);
}

// A job's log read through CloudWatch Logs, as the SageMaker SDK reads it: the streams
// "<job>/..." of /aws/sagemaker/TrainingJobs (DescribeLogStreams), each from the head with its
// forward token (GetLogEvents) until a page comes back empty.
class JobLogReader {
 public:
  struct Line {
    std::string stream;
    int64_t timestamp_ms = 0;
    std::string message;
  };
  JobLogReader(ApiClient* client, std::string job)
      : client_(client), job_(std::move(job)), model_(api::ServiceModel::Embedded("logs")) {}

  // Every line appended since the last call, merged across streams by timestamp (each
  // stream's own order kept).
  Result<std::vector<Line>> Poll() {
    if (model_ == nullptr) return Internal("the logs model is not embedded");
    std::vector<std::string> names;
    json req = {{"logGroupName", store::kTrainingJobLogGroup},
                {"logStreamNamePrefix", job_ + "/"},
                {"orderBy", "LogStreamName"},
                {"limit", 50}};
    for (;;) {
      auto page = client_->Call(*model_, "DescribeLogStreams", req);
      // No group yet: the account's first job has not logged.
      if (!page.ok() && page.status().code() == StatusCode::kNotFound) return std::vector<Line>();
      if (!page.ok()) return page.status();
      for (const auto& s : (*page)["logStreams"]) names.push_back(s.value("logStreamName", ""));
      if (!page->contains("nextToken")) break;
      req["nextToken"] = (*page)["nextToken"];
    }
    std::vector<Line> out;
    for (const auto& stream : names) {
      for (;;) {
        json get = {{"logGroupName", store::kTrainingJobLogGroup},
                    {"logStreamName", stream},
                    {"startFromHead", true}};
        auto token = tokens_.find(stream);
        if (token != tokens_.end()) get["nextToken"] = token->second;
        auto page = client_->Call(*model_, "GetLogEvents", get);
        if (!page.ok()) return page.status();
        tokens_[stream] = page->value("nextForwardToken", "");
        const json& events = (*page)["events"];
        if (events.empty()) break;
        for (const auto& e : events) {
          out.push_back({stream, e.value("timestamp", int64_t{0}), e.value("message", "")});
        }
      }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const Line& a, const Line& b) { return a.timestamp_ms < b.timestamp_ms; });
    return out;
  }

 private:
  ApiClient* client_;
  std::string job_;
  std::shared_ptr<const api::ServiceModel> model_;
  std::map<std::string, std::string> tokens_;  // stream -> its next forward token
};

// ---- following a job -------------------------------------------------------

// Prints new status transitions and log lines until the job ends, like the
// SageMaker SDK's logs=True. Returns the final Describe.
Result<json> Follow(ApiClient* client, const std::string& name, std::ostream& out) {
  size_t printed_transitions = 0;
  std::string last_message;
  JobLogReader reader(client, name);
  for (;;) {
    auto logs = reader.Poll();
    auto d = client->Call("SageMaker.DescribeTrainingJob", {{"TrainingJobName", name}});
    if (!d.ok()) return d.status();
    const json& transitions = (*d)["SecondaryStatusTransitions"];
    for (size_t i = 0; i < transitions.size(); ++i) {
      const json& t = transitions[i];
      std::string msg = t.value("StatusMessage", "");
      bool is_new = i >= printed_transitions;
      bool message_changed = i + 1 == printed_transitions && msg != last_message;
      if (is_new || message_changed) {
        out << FormatSeconds(t["StartTime"]) << " " << t.value("Status", "") << " - " << msg
            << std::endl;
        last_message = msg;
      }
    }
    printed_transitions = transitions.size();
    if (logs.ok()) {
      for (const auto& l : *logs) out << l.message << "\n";
      out.flush();
    }
    std::string status = d->value("TrainingJobStatus", "");
    if (status == "Completed" || status == "Failed" || status == "Stopped") {
      // Drain log lines that arrived with the final report.
      auto more = reader.Poll();
      if (more.ok()) {
        for (const auto& l : *more) out << l.message << "\n";
      }
      return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
}

void PrintSummary(const json& d, std::ostream& out) {
  std::string status = d.value("TrainingJobStatus", "");
  out << "\nTraining job " << d.value("TrainingJobName", "") << ": " << status << " ("
      << d.value("SecondaryStatus", "") << ")\n";
  if (d.contains("FailureReason"))
    out << "Failure reason: " << d["FailureReason"].get<std::string>() << "\n";
  int64_t count = d["ResourceConfig"].value("InstanceCount", 1);
  if (d.contains("TrainingTimeInSeconds")) {
    out << "Training seconds: " << d["TrainingTimeInSeconds"].get<int64_t>() * count << "\n";
  }
  if (d.contains("BillableTimeInSeconds")) {
    out << "Billable seconds: " << d["BillableTimeInSeconds"].get<int64_t>() * count << "\n";
  }
  // The SageMaker SDK's formula and format (estimator.logs_for_job).
  if (d.value("EnableManagedSpotTraining", false) && d.contains("TrainingTimeInSeconds") &&
      d.contains("BillableTimeInSeconds") && d["TrainingTimeInSeconds"].get<int64_t>() > 0) {
    double saving = (1.0 - d["BillableTimeInSeconds"].get<double>() /
                               d["TrainingTimeInSeconds"].get<double>()) *
                    100.0;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.1f", saving);
    out << "Managed Spot Training savings: " << buf << "%\n";
  }
  if (status == "Completed" || status == "Stopped") {
    out << "Model artifacts: " << d["ModelArtifacts"].value("S3ModelArtifacts", "") << "\n";
  }
  if (d.contains("FinalMetricDataList")) {
    out << "Final metrics:\n";
    for (const auto& m : d["FinalMetricDataList"]) {
      out << "  " << m.value("MetricName", "") << " = " << m.value("Value", 0.0) << "\n";
    }
  }
}

// ---- trainyard run ---------------------------------------------------------

struct RunFlags {
  std::string spec;
  std::string name;
  bool follow = false;
  std::string endpoint;
};

// The local directories a spec's file:// URIs name (plain or JSON-encoded strings, e.g. a
// sagemaker_submit_directory), each created when missing (outputs and checkpoints are written
// there); a file's folder for a file.
void CollectFileDirs(const nlohmann::json& j, std::vector<std::string>* out) {
  if (j.is_object() || j.is_array()) {
    for (const auto& v : j) CollectFileDirs(v, out);
    return;
  }
  if (!j.is_string()) return;
  const std::string& text = j.get_ref<const std::string&>();
  size_t at = text.find("file://");
  if (at == std::string::npos) return;
  std::string uri = text.substr(at, text.find('"', at) - at);
  auto parsed = storage::ParseStorageUri(uri);
  if (!parsed.ok() || parsed->path.empty() || parsed->path[0] != '/') return;
  std::string path = parsed->path;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (!MakeDirs(path).ok()) return;
  } else if (!std::filesystem::is_directory(path, ec)) {
    path = std::filesystem::path(path).parent_path().string();
  }
  out->push_back(path);
}

std::vector<std::string> SpecFileDirs(const nlohmann::json& spec) {
  std::vector<std::string> dirs;
  CollectFileDirs(spec, &dirs);
  return dirs;
}

int RunJob(const RunFlags& flags, std::ostream& out, std::ostream& err) {
  auto spec = LoadJobSpec(flags.spec);
  if (!spec.ok()) {
    err << "trainyard run: " << spec.status().message() << "\n";
    return 2;
  }
  if (!flags.name.empty()) {
    (*spec)["TrainingJobName"] = flags.name;
  } else if (spec->contains("TrainingJobName") && !(*spec)["TrainingJobName"].is_string()) {
    // An unquoted YAML number is still a name.
    (*spec)["TrainingJobName"] = (*spec)["TrainingJobName"].dump();
  } else if (!spec->contains("TrainingJobName")) {
    std::string base = std::filesystem::path(flags.spec).stem().string();
    std::string image;
    auto algo = spec->find("AlgorithmSpecification");
    if (algo != spec->end() && algo->is_object()) {
      auto img = algo->find("TrainingImage");
      if (img != algo->end() && img->is_string()) image = img->get<std::string>();
    }
    if (!image.empty()) {
      // "<registry>/<repo>:<tag>" -> "<repo>", as the SageMaker SDK names jobs.
      std::string repo = image.substr(image.rfind('/') + 1);
      base = repo.substr(0, repo.find_first_of(":@"));
    }
    std::string clean;
    for (char c : base) clean += (std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
    if (clean.empty() || !std::isalnum(static_cast<unsigned char>(clean[0]))) clean = "job" + clean;
    (*spec)["TrainingJobName"] = UniqueJobName(clean);
  }
  std::string name = (*spec)["TrainingJobName"].get<std::string>();

  // Find a server; without one, start an embedded one under ~/.trainyard.
  std::unique_ptr<server::Server> embedded;
  std::unique_ptr<ApiClient> client;
  auto endpoint = ResolveEndpoint(flags.endpoint);
  if (endpoint.ok()) {
    client = std::make_unique<ApiClient>(*endpoint);
    if (endpoint->from_default_data_dir && !client->Reachable()) client.reset();
  } else if (endpoint.status().code() != StatusCode::kNotFound) {
    err << "trainyard run: " << endpoint.status().message() << "\n";
    return 2;
  }
  if (!client) {
    // The job's processes must not outlive the embedded server: Ctrl-C stops
    // the job (its artifacts are still uploaded); a second Ctrl-C ends at once.
    BlockTerminationSignals();
    server::ServerConfig config;
    config.data_dir = DefaultDataDir();
    config.listen = "127.0.0.1:0";
    auto spec_dir = RealPath(std::filesystem::path(flags.spec).parent_path().empty()
                                 ? "."
                                 : std::filesystem::path(flags.spec).parent_path().string());
    Status s = MakeDirs(config.data_dir);
    if (!s.ok()) {
      err << "trainyard run: " << s.message() << "\n";
      return 1;
    }
    // The data dir is never a root: the working and spec directories are, unless they overlap
    // it (a job run from the home directory must not reach ~/.trainyard).
    auto real_data = RealPath(config.data_dir);
    std::vector<std::string> candidates = {CurrentDir()};
    if (spec_dir.ok()) candidates.push_back(*spec_dir);
    // The spec's own file:// locations are roots too, so a spec kept beside the data dir (a
    // project folder holding TRAINYARD_HOME) still runs: outputs are created first.
    for (const auto& dir : SpecFileDirs(*spec)) candidates.push_back(dir);
    for (const auto& c : candidates) {
      auto real = RealPath(c);
      if (!real.ok()) continue;
      if (real_data.ok() && server::PathsOverlap(*real, *real_data)) {
        err << "trainyard run: " << *real << " is not a file:// root (it overlaps the data dir "
            << *real_data << ")" << std::endl;
        continue;
      }
      config.file_roots.push_back(*real);
    }
    // The embedded server runs this one job: a multi-node job gets its instances even where
    // the capacity derived from this machine's cores would be smaller (they share the cores,
    // each still held to its type's limits).
    const nlohmann::json& res = spec->value("ResourceConfig", nlohmann::json::object());
    if (res.is_object() && res.value("InstanceType", nlohmann::json()).is_string() &&
        res.value("InstanceCount", nlohmann::json()).is_number_integer() &&
        res["InstanceCount"].get<int>() > 1) {
      config.capacity.counts[res["InstanceType"].get<std::string>()] =
          res["InstanceCount"].get<int>();
    }
    auto srv = server::Server::Create(std::move(config));
    if (!srv.ok() || !(s = (*srv)->Start()).ok()) {
      err << "trainyard run: cannot start the embedded server: "
          << (srv.ok() ? s.message() : srv.status().message()) << "\n";
      return 1;
    }
    embedded = std::move(srv).value();
    auto local = EndpointFromDataDir(DefaultDataDir());
    if (!local.ok()) {
      err << "trainyard run: " << local.status().message() << "\n";
      return 1;
    }
    out << "trainyard: started an embedded server at " << embedded->url() << " (state in "
        << DefaultDataDir() << ")" << std::endl;
    client = std::make_unique<ApiClient>(*local);
  }

  auto created = client->Call("SageMaker.CreateTrainingJob", *spec);
  if (!created.ok()) {
    err << "trainyard run: " << created.status().message() << "\n";
    return 1;
  }
  out << "Created training job " << name << " (" << (*created)["TrainingJobArn"].get<std::string>()
      << ")" << std::endl;
  if (embedded) {
    server::Server* srv = embedded.get();
    Endpoint ep = client->endpoint();
    std::thread([srv, ep, name, &err] {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGTERM);
      int sig = 0;
      sigwait(&set, &sig);
      err << "\ntrainyard run: stopping " << name << " (interrupt again to abort)" << std::endl;
      ApiClient stopper(ep);
      (void)stopper.Call("SageMaker.StopTrainingJob", {{"TrainingJobName", name}});
      sigwait(&set, &sig);
      srv->Shutdown(/*wait_for_connections=*/false);  // kills the job's processes
      std::_Exit(130);
    }).detach();
  }
  // With an embedded server the job cannot outlive this process: always follow.
  if (!flags.follow && !embedded) return 0;
  auto final = Follow(client.get(), name, out);
  int rc = 1;
  if (!final.ok()) {
    err << "trainyard run: " << final.status().message() << "\n";
  } else {
    PrintSummary(*final, out);
    rc = final->value("TrainingJobStatus", "") == "Completed" ? 0 : 1;
  }
  if (embedded) {
    // The signal thread still points at the server: end the process here
    // rather than destroy the server under it.
    out.flush();
    err.flush();
    client.reset();
    embedded->Shutdown(/*wait_for_connections=*/false);
    std::_Exit(rc);
  }
  return rc;
}

// ---- trainyard jobs / logs / env -------------------------------------------

Result<std::unique_ptr<ApiClient>> Connect(const std::string& endpoint_flag) {
  auto endpoint = ResolveEndpoint(endpoint_flag);
  if (!endpoint.ok()) {
    if (endpoint.status().code() == StatusCode::kNotFound) {
      return NotFound(
          "no Trainyard server configured: pass --endpoint-url, set AWS_ENDPOINT_URL, "
          "or start one with `trainyard server`");
    }
    return endpoint.status();
  }
  return std::make_unique<ApiClient>(*endpoint);
}

int JobsList(const std::string& endpoint, const std::string& status, const std::string& contains,
             int max, std::ostream& out, std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  json req = {
      {"SortBy", "CreationTime"}, {"SortOrder", "Descending"}, {"MaxResults", std::min(max, 100)}};
  if (!status.empty()) req["StatusEquals"] = status;
  if (!contains.empty()) req["NameContains"] = contains;
  auto res = (*client)->Call("SageMaker.ListTrainingJobs", req);
  if (!res.ok()) return err << "trainyard: " << res.status().message() << "\n", 1;
  out << std::left << std::setw(64) << "NAME" << std::setw(12) << "STATUS" << std::setw(20)
      << "SECONDARY"
      << "CREATED\n";
  for (const auto& s : (*res)["TrainingJobSummaries"]) {
    out << std::left << std::setw(64) << s.value("TrainingJobName", "") << std::setw(12)
        << s.value("TrainingJobStatus", "") << std::setw(20) << s.value("SecondaryStatus", "")
        << FormatSeconds(s["CreationTime"]) << "\n";
  }
  return 0;
}

std::string Money(double dollars) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "$%.4f", dollars);
  return buf;
}

std::string Fixed1(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// The attempts, interruptions and cost (Trainyard.DescribeTrainingJobCost).
void PrintCost(const json& c, std::ostream& out) {
  out << "Capacity:    " << (c.value("EnableManagedSpotTraining", false) ? "spot" : "on-demand")
      << ", " << c.value("InstanceCount", 1) << " x " << c.value("InstanceType", "") << " ($"
      << c.value("OnDemandHourlyPrice", 0.0) << "/h on-demand)\n"
      << "Attempts:    " << c.value("Attempts", 0) << " (" << c["Interruptions"].size()
      << " interrupted, " << c.value("RetriesUsed", 0) << " retries)\n";
  for (const auto& i : c["Interruptions"]) {
    out << "  attempt " << i.value("Attempt", 0) << " at " << FormatSeconds(i["Time"]) << ": "
        << i.value("Cause", "") << "; lost " << Fixed1(i.value("TimeLostInSeconds", 0.0))
        << " s since the last synced checkpoint\n";
  }
  out << "Running:     " << Fixed1(c.value("RunningTimeInSeconds", 0.0)) << " s, billable "
      << Fixed1(c.value("BillableTimeInSeconds", 0.0)) << " s, lost "
      << Fixed1(c.value("TimeLostInSeconds", 0.0)) << " s\n"
      << "Cost:        " << Money(c.value("CostInDollars", 0.0)) << " (on-demand would have cost "
      << Money(c.value("OnDemandCostInDollars", 0.0)) << "; saved "
      << Money(c.value("SavingsInDollars", 0.0)) << ", " << Fixed1(c.value("SavingsPercent", 0.0))
      << "%)\n";
}

int JobsDescribe(const std::string& endpoint, const std::string& name, bool as_json,
                 std::ostream& out, std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto d = (*client)->Call("SageMaker.DescribeTrainingJob", {{"TrainingJobName", name}});
  if (!d.ok()) return err << "trainyard: " << d.status().message() << "\n", 1;
  if (as_json) {
    out << d->dump(2) << "\n";
    return 0;
  }
  out << "Name:        " << d->value("TrainingJobName", "") << "\n"
      << "ARN:         " << d->value("TrainingJobArn", "") << "\n"
      << "Status:      " << d->value("TrainingJobStatus", "") << " / "
      << d->value("SecondaryStatus", "") << "\n"
      << "Image:       " << (*d)["AlgorithmSpecification"].value("TrainingImage", "") << "\n"
      << "Created:     " << FormatSeconds((*d)["CreationTime"]) << "\n";
  if (d->contains("FailureReason"))
    out << "Failure:     " << (*d)["FailureReason"].get<std::string>() << "\n";
  out << "Artifacts:   " << (*d)["ModelArtifacts"].value("S3ModelArtifacts", "") << "\n";
  out << "Transitions:\n";
  for (const auto& t : (*d)["SecondaryStatusTransitions"]) {
    out << "  " << FormatSeconds(t["StartTime"]) << "  " << std::left << std::setw(14)
        << t.value("Status", "") << t.value("StatusMessage", "") << "\n";
  }
  if (d->contains("FinalMetricDataList")) {
    out << "Final metrics:\n";
    for (const auto& m : (*d)["FinalMetricDataList"]) {
      out << "  " << m.value("MetricName", "") << " = " << m.value("Value", 0.0) << "\n";
    }
  }
  auto cost = (*client)->Call("Trainyard.DescribeTrainingJobCost", {{"TrainingJobName", name}});
  if (cost.ok()) PrintCost(*cost, out);
  return 0;
}

int JobsSimple(const std::string& endpoint, const std::string& target, const std::string& name,
               const char* done, std::ostream& out, std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call(target, {{"TrainingJobName", name}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  out << done << " " << name << "\n";
  return 0;
}

int Logs(const std::string& endpoint, const std::string& name, bool follow, std::ostream& out,
         std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  JobLogReader reader(client->get(), name);
  for (;;) {
    // The status first: lines stored before a terminal status are all read below.
    auto d = (*client)->Call("SageMaker.DescribeTrainingJob", {{"TrainingJobName", name}});
    if (!d.ok()) return err << "trainyard: " << d.status().message() << "\n", 1;
    std::string status = d->value("TrainingJobStatus", "");
    bool done = status == "Completed" || status == "Failed" || status == "Stopped";
    auto lines = reader.Poll();
    if (!lines.ok()) return err << "trainyard: " << lines.status().message() << "\n", 1;
    for (const auto& l : *lines) {
      out << FormatHuman(FromEpochMillis(l.timestamp_ms)) << " " << l.stream << " " << l.message
          << "\n";
    }
    out.flush();
    if (!follow || done) return 0;
    if (lines->empty()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

int SpotInterrupt(const std::string& endpoint, const std::string& name, std::ostream& out,
                  std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call("Trainyard.InterruptTrainingJob", {{"TrainingJobName", name}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  out << "Interrupting " << name << ": its spot instance got the interruption notice\n";
  return 0;
}

int SpotUnavailable(const std::string& endpoint, const std::string& type, double seconds,
                    std::ostream& out, std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call("Trainyard.SetSpotCapacityUnavailable",
                           {{"InstanceType", type}, {"DurationInSeconds", seconds}});
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  out << "Spot capacity of " << type << " is unavailable until "
      << FormatSeconds((*r)["UnavailableUntil"]) << "\n";
  return 0;
}

int SpotStatus(const std::string& endpoint, bool as_json, std::ostream& out, std::ostream& err) {
  auto client = Connect(endpoint);
  if (!client.ok()) return err << "trainyard: " << client.status().message() << "\n", 2;
  auto r = (*client)->Call("Trainyard.DescribeSpotMarket", json::object());
  if (!r.ok()) return err << "trainyard: " << r.status().message() << "\n", 1;
  if (as_json) {
    out << r->dump(2) << "\n";
    return 0;
  }
  out << std::left << std::setw(20) << "INSTANCE TYPE" << std::setw(30) << "SPOT" << std::setw(16)
      << "PRICE $/h" << std::setw(10) << "NOTICE" << std::setw(12) << "MTBI" << std::setw(12)
      << "CAPACITY" << std::setw(8) << "SPOT"
      << "QUEUED\n";
  for (const auto& t : (*r)["InstanceTypes"]) {
    std::string spot = t.value("SpotAvailable", true) ? "available" : "unavailable";
    if (t.contains("UnavailableUntil"))
      spot += " until " + FormatSeconds(t["UnavailableUntil"]).substr(11);
    char price[64];
    std::snprintf(price, sizeof(price), "%.4f/%.3f", t.value("SpotHourlyPrice", 0.0),
                  t.value("OnDemandHourlyPrice", 0.0));
    std::string mtbi =
        t.contains("MeanTimeBetweenInterruptionsInSeconds")
            ? std::to_string(t["MeanTimeBetweenInterruptionsInSeconds"].get<int64_t>()) + "s"
            : "never";
    out << std::left << std::setw(20) << t.value("InstanceType", "") << std::setw(30) << spot
        << std::setw(16) << price << std::setw(10)
        << (std::to_string(t.value("InterruptionNoticeInSeconds", 0)) + "s") << std::setw(12)
        << mtbi << std::setw(12)
        << (std::to_string(t.value("LocalCapacityInUse", 0)) + "/" +
            std::to_string(t.value("LocalCapacity", 0)))
        << std::setw(8) << t.value("RunningSpotJobs", 0) << t.value("QueuedJobs", 0) << "\n";
  }
  return 0;
}

int AdminBackup(const std::string& data_dir, const std::string& out_path, std::ostream& out,
                std::ostream& err) {
  std::string dir = data_dir.empty() ? DefaultDataDir() : data_dir;
  Status s = store::BackupDatabase(dir, out_path);
  if (!s.ok()) {
    err << "trainyard admin backup: " << s.message() << "\n";
    return 1;
  }
  out << "Backed up " << store::DatabasePath(dir) << " to " << out_path
      << " (online copy, integrity_check ok)\n";
  return 0;
}

int Env(const std::string& data_dir, std::ostream& out, std::ostream& err) {
  std::string dir = data_dir.empty() ? DefaultDataDir() : data_dir;
  auto text = ReadFile(JoinPath(dir, "server.json"));
  if (!text.ok()) {
    err << "trainyard env: no running server recorded in " << dir
        << " (start one with `trainyard server --data-dir " << dir << "`)\n";
    return 1;
  }
  auto parsed = ParseJson(*text);
  if (!parsed.ok() || !parsed->is_object()) {
    return err << "trainyard env: malformed server.json\n", 1;
  }
  json info = std::move(parsed).value();
  std::string url = info.value("url", "");
  out << "export AWS_ENDPOINT_URL=" << url << "\n"
      << "export AWS_ENDPOINT_URL_SAGEMAKER=" << url << "\n"
      << "export AWS_SHARED_CREDENTIALS_FILE="
      << info.value("credentials_file", JoinPath(dir, "credentials")) << "\n"
      << "export AWS_PROFILE=trainyard\n"
      << "export AWS_DEFAULT_REGION=" << info.value("region", "us-east-1") << "\n"
      << "export AWS_REGION=" << info.value("region", "us-east-1") << "\n"
      << "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN\n";
  return 0;
}

}  // namespace

int Run(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"trainyard: SageMaker training jobs that really run, on your own machines"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "trainyard 0.1.0");

  ServerFlags server_flags;
  auto* server_cmd = app.add_subcommand("server", "Run the Trainyard server (the control plane)");
  server_cmd->add_option("--listen", server_flags.listen,
                         "HOST:PORT to serve on (port 0: a free port)");
  server_cmd->add_option("--data-dir", server_flags.data_dir,
                         "State directory (default ~/.trainyard)");
  server_cmd->add_option("--region", server_flags.region,
                         "Region in ARNs and SigV4 scopes (default us-east-1)");
  server_cmd->add_option("--config", server_flags.config, "YAML config file (see README)");
  server_cmd->add_option(
      "--file-root", server_flags.file_roots,
      "Directory file:// URIs may point into (repeatable; default: cwd unless it overlaps the "
      "data dir; never the data dir)");
  server_cmd->add_option("--isolation", server_flags.isolation, "auto | bwrap | none");
  server_cmd->add_option("--stop-grace", server_flags.stop_grace,
                         "Seconds between SIGTERM and SIGKILL on stop (default 120)");

  std::string instance_file;
  auto* agent_cmd =
      app.add_subcommand("agent", "Run one training instance (started by the server)");
  agent_cmd->add_option("--instance", instance_file, "Instance config file")->required();

  RunFlags run_flags;
  auto* run_cmd = app.add_subcommand(
      "run", "Submit a job spec (YAML/JSON, CreateTrainingJob-shaped) and follow it");
  run_cmd->add_option("spec", run_flags.spec, "Job spec file")->required();
  run_cmd->add_option("--name", run_flags.name, "Training job name (default: unique)");
  run_cmd->add_flag("--follow,-f", run_flags.follow, "Print status and logs until the job ends");
  run_cmd->add_option("--endpoint-url", run_flags.endpoint, "Server URL");

  std::string endpoint, job_name, status_filter, name_contains;
  int max_results = 50;
  bool as_json = false, follow = false;
  auto* jobs_cmd = app.add_subcommand("jobs", "List, describe, stop and delete training jobs");
  jobs_cmd->require_subcommand(1);
  jobs_cmd->add_option("--endpoint-url", endpoint, "Server URL");
  auto* list_cmd = jobs_cmd->add_subcommand("list", "List training jobs, newest first");
  list_cmd->add_option("--status", status_filter, "Only jobs in this status");
  list_cmd->add_option("--name-contains", name_contains, "Only jobs whose name contains this");
  list_cmd->add_option("--max", max_results, "At most this many (default 50)");
  auto* describe_cmd = jobs_cmd->add_subcommand("describe", "Show a training job");
  describe_cmd->add_option("name", job_name)->required();
  describe_cmd->add_flag("--json", as_json, "Print the DescribeTrainingJob response");
  auto* stop_cmd = jobs_cmd->add_subcommand("stop", "Stop a training job");
  stop_cmd->add_option("name", job_name)->required();
  auto* delete_cmd = jobs_cmd->add_subcommand("delete", "Delete a finished training job");
  delete_cmd->add_option("name", job_name)->required();

  auto* logs_cmd = app.add_subcommand("logs", "Print a training job's log lines");
  logs_cmd->add_option("name", job_name)->required();
  logs_cmd->add_flag("--follow,-f", follow, "Keep printing until the job ends");
  logs_cmd->add_option("--endpoint-url", endpoint, "Server URL");

  std::string instance_type;
  double unavailable_seconds = 0;
  auto* spot_cmd = app.add_subcommand("spot", "Inspect the spot market model and inject faults");
  spot_cmd->require_subcommand(1);
  spot_cmd->add_option("--endpoint-url", endpoint, "Server URL");
  auto* interrupt_cmd = spot_cmd->add_subcommand(
      "interrupt", "Interrupt a running spot job now (interruption notice)");
  interrupt_cmd->add_option("name", job_name, "Training job name")->required();
  auto* unavailable_cmd = spot_cmd->add_subcommand(
      "unavailable", "Take an instance type's spot capacity away for SECONDS");
  unavailable_cmd->add_option("type", instance_type, "Instance type, e.g. ml.m5.large")->required();
  unavailable_cmd->add_option("seconds", unavailable_seconds, "How long")->required();
  auto* spot_status_cmd =
      spot_cmd->add_subcommand("status", "Show the spot market and local capacity");
  spot_status_cmd->add_flag("--json", as_json, "Print the DescribeSpotMarket response");

  std::string env_dir;
  auto* env_cmd =
      app.add_subcommand("env", "Print the exports that point AWS clients at the server");
  env_cmd->add_option("--data-dir", env_dir, "The server's data directory (default ~/.trainyard)");

  std::string admin_dir, backup_out;
  auto* admin_cmd = app.add_subcommand("admin", "Operate on a server's data dir");
  admin_cmd->require_subcommand(1);
  auto* backup_cmd = admin_cmd->add_subcommand(
      "backup", "Copy the database to OUT (consistent, safe while the server runs)");
  backup_cmd->add_option("--data-dir", admin_dir,
                         "The server's data directory (default ~/.trainyard)");
  backup_cmd->add_option("out", backup_out, "Where to write the copy (an SQLite file)")->required();

  StorageCommands storage_cmds(app);
  AlarmsCommands alarms_cmds(app);
  GovernanceCommands governance_cmds(app);
  FunctionsCommands functions_cmds(app);
  RulesCommands rules_cmds(app);
  DebuggerCommands debugger_cmds(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, out, err);
  }

  if (*server_cmd) return RunServer(server_flags, out, err);
  if (*agent_cmd) return agent::RunAgent(instance_file, err);
  if (*run_cmd) return RunJob(run_flags, out, err);
  if (*jobs_cmd) {
    if (*list_cmd) return JobsList(endpoint, status_filter, name_contains, max_results, out, err);
    if (*describe_cmd) return JobsDescribe(endpoint, job_name, as_json, out, err);
    if (*stop_cmd)
      return JobsSimple(endpoint, "SageMaker.StopTrainingJob", job_name, "Stopping", out, err);
    if (*delete_cmd)
      return JobsSimple(endpoint, "SageMaker.DeleteTrainingJob", job_name, "Deleted", out, err);
  }
  if (*logs_cmd) return Logs(endpoint, job_name, follow, out, err);
  if (*spot_cmd) {
    if (*interrupt_cmd) return SpotInterrupt(endpoint, job_name, out, err);
    if (*unavailable_cmd)
      return SpotUnavailable(endpoint, instance_type, unavailable_seconds, out, err);
    if (*spot_status_cmd) return SpotStatus(endpoint, as_json, out, err);
  }
  if (*env_cmd) return Env(env_dir, out, err);
  if (*admin_cmd && *backup_cmd) return AdminBackup(admin_dir, backup_out, out, err);
  if (storage_cmds.chosen()) return storage_cmds.Run(out, err);
  if (alarms_cmds.chosen()) return alarms_cmds.Run(out, err);
  if (governance_cmds.chosen()) return governance_cmds.Run(out, err);
  if (functions_cmds.chosen()) return functions_cmds.Run(out, err);
  if (rules_cmds.chosen()) return rules_cmds.Run(out, err);
  if (debugger_cmds.chosen()) return debugger_cmds.Run(out, err);
  return 2;
}

}  // namespace ty::cli
