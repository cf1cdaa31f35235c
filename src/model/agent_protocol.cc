#include "model/agent_protocol.h"

#include <cmath>

#include "model/serialization.h"

namespace ty::model {

using nlohmann::json;

namespace {

const char* RuntimeName(ImageEntry::Runtime r) {
  return r == ImageEntry::Runtime::kPythonFramework ? "python-framework" : "command";
}

const char* ReportTypeName(AgentReport::Type t) {
  switch (t) {
    case AgentReport::Type::kPhase:
      return "phase";
    case AgentReport::Type::kLog:
      return "log";
    case AgentReport::Type::kExit:
      return "exit";
    case AgentReport::Type::kCheckpoint:
      return "checkpoint";
  }
  return "unknown";
}

const char* OutcomeName(AgentReport::Outcome o) {
  switch (o) {
    case AgentReport::Outcome::kCompleted:
      return "Completed";
    case AgentReport::Outcome::kFailed:
      return "Failed";
    case AgentReport::Outcome::kStopped:
      return "Stopped";
    case AgentReport::Outcome::kInterrupted:
      return "Interrupted";
  }
  return "unknown";
}

json NetworkToJson(const InstanceNetworkConfig& n) {
  json hosts = json::array();
  for (const auto& [name, addr] : n.hosts) hosts.push_back({name, addr});
  return {{"netns", n.netns},
          {"interface", n.interface},
          {"address", n.address},
          {"master_port", n.master_port},
          {"store_url", n.store_url},
          {"notice", n.notice},
          {"nameservers", n.nameservers},
          {"hosts", hosts}};
}

}  // namespace

json InstanceConfigToJson(const InstanceConfig& c) {
  return {{"job_name", c.job_name},
          {"job_arn", c.job_arn},
          {"region", c.region},
          {"account", c.account},
          {"attempt", c.attempt},
          {"host_index", c.host_index},
          {"hosts", c.hosts},
          {"instance_dir", c.instance_dir},
          {"log_stream", c.log_stream},
          {"server_url_file", c.server_url_file},
          {"server_url", c.server_url},
          {"sigterm_means_notice", c.sigterm_means_notice},
          {"slurm_network", c.slurm_network},
          {"engine_signals_every_process", c.engine_signals_every_process},
          {"token", c.token},
          {"stop_grace_seconds", c.stop_grace_seconds},
          {"notice_seconds", c.notice_seconds},
          {"log_buffer_lines", c.log_buffer_lines},
          {"metrics_interval_ms", c.metrics_interval_ms},
          {"isolation", c.isolation},
          {"sandbox",
           {{"user_namespace", c.sandbox.user_namespace},
            {"uid", c.sandbox.uid},
            {"gid", c.sandbox.gid},
            {"hidden_paths", c.sandbox.hidden_paths}}},
          {"file_roots", c.file_roots},
          {"storage_s3", c.storage_s3},
          {"pass_s3_credentials", c.pass_s3_credentials},
          {"num_cpus", c.num_cpus},
          {"num_gpus", c.num_gpus},
          {"memory_gib", c.memory_gib},
          {"max_processes", c.max_processes},
          {"enforce_limits", c.enforce_limits},
          {"volumes", c.volumes},
          {"network", NetworkToJson(c.network)},
          {"python_dir", c.python_dir},
          {"image",
           {{"runtime", RuntimeName(c.image.runtime)},
            {"command", c.image.command},
            {"workdir", c.image.workdir},
            {"env", c.image.env}}},
          {"spec", SpecToJson(c.spec)}};
}

Result<InstanceConfig> InstanceConfigFromJson(const json& j) {
  InstanceConfig c;
  try {
    c.job_name = j.at("job_name").get<std::string>();
    c.job_arn = j.at("job_arn").get<std::string>();
    c.region = j.at("region").get<std::string>();
    c.account = j.at("account").get<std::string>();
    c.attempt = j.value("attempt", 1);
    c.host_index = j.at("host_index").get<int>();
    c.hosts = j.at("hosts").get<std::vector<std::string>>();
    c.instance_dir = j.at("instance_dir").get<std::string>();
    c.log_stream = j.at("log_stream").get<std::string>();
    c.server_url_file = j.at("server_url_file").get<std::string>();
    c.server_url = j.value("server_url", std::string());
    c.sigterm_means_notice = j.value("sigterm_means_notice", false);
    c.slurm_network = j.value("slurm_network", false);
    c.engine_signals_every_process = j.value("engine_signals_every_process", false);
    c.token = j.at("token").get<std::string>();
    c.stop_grace_seconds = j.value("stop_grace_seconds", int64_t{120});
    c.notice_seconds = j.value("notice_seconds", int64_t{120});
    c.log_buffer_lines = j.value("log_buffer_lines", int64_t{20000});
    c.metrics_interval_ms = j.value("metrics_interval_ms", int64_t{1000});
    c.isolation = j.value("isolation", std::string("auto"));
    if (auto it = j.find("sandbox"); it != j.end() && it->is_object()) {
      c.sandbox.user_namespace = it->value("user_namespace", true);
      c.sandbox.uid = it->value("uid", c.sandbox.uid);
      c.sandbox.gid = it->value("gid", c.sandbox.gid);
      c.sandbox.hidden_paths = it->value("hidden_paths", std::vector<std::string>{});
    }
    c.file_roots = j.value("file_roots", std::vector<std::string>{});
    if (j.contains("storage_s3")) c.storage_s3 = j.at("storage_s3");
    c.pass_s3_credentials = j.value("pass_s3_credentials", false);
    c.num_cpus = j.value("num_cpus", 1);
    c.num_gpus = j.value("num_gpus", 0);
    c.memory_gib = j.value("memory_gib", 0.0);
    c.max_processes = j.value("max_processes", 0);
    c.enforce_limits = j.value("enforce_limits", false);
    c.volumes = j.value("volumes", std::string("off"));
    c.python_dir = j.value("python_dir", std::string());
    if (auto it = j.find("network"); it != j.end() && it->is_object()) {
      c.network.netns = it->value("netns", std::string());
      c.network.interface = it->value("interface", std::string());
      c.network.address = it->value("address", std::string());
      c.network.master_port = it->value("master_port", 7777);
      c.network.store_url = it->value("store_url", std::string());
      c.network.notice = it->value("notice", std::string());
      c.network.nameservers = it->value("nameservers", std::vector<std::string>());
      for (const auto& h : it->value("hosts", json::array())) {
        c.network.hosts.emplace_back(h.at(0).get<std::string>(), h.at(1).get<std::string>());
      }
    }
    const json& img = j.at("image");
    c.image.runtime = img.value("runtime", std::string("command")) == "python-framework"
                          ? ImageEntry::Runtime::kPythonFramework
                          : ImageEntry::Runtime::kCommand;
    c.image.command = img.value("command", std::vector<std::string>{});
    c.image.workdir = img.value("workdir", std::string());
    c.image.env = img.value("env", std::map<std::string, std::string>{});
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed instance config: ") + e.what());
  }
  auto spec = SpecFromJson(j.value("spec", json::object()));
  if (!spec.ok()) return spec.status();
  c.spec = std::move(spec).value();
  return c;
}

namespace {

// A sample's value, or none when absent or out of any instance's range (a broken agent must
// not put absurd points into CloudWatch).
std::optional<double> SampleValue(const json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end() || !it->is_number()) return std::nullopt;
  double v = it->get<double>();
  if (!std::isfinite(v) || v < 0 || v > 100.0 * 4096) return std::nullopt;
  return v;
}

}  // namespace

json AgentReportToJson(const AgentReport& r) {
  json j = {{"type", ReportTypeName(r.type)},
            {"job_arn", r.job_arn},
            {"host_index", r.host_index},
            {"attempt", r.attempt},
            {"seq", r.seq}};
  if (r.lost_lines > 0) {
    j["lost_lines"] = r.lost_lines;
    j["lost_reason"] = r.lost_reason;
  }
  switch (r.type) {
    case AgentReport::Type::kPhase:
      j["phase"] = Name(r.phase);
      j["message"] = r.message;
      break;
    case AgentReport::Type::kLog: {
      j["stream"] = r.stream;
      json lines = json::array();
      for (const auto& l : r.lines) lines.push_back({{"t", l.timestamp_ms}, {"m", l.message}});
      j["lines"] = std::move(lines);
      if (!r.samples.empty()) {
        json samples = json::array();
        for (const auto& s : r.samples) {
          json o = {{"t", s.timestamp_ms}};
          if (s.cpu) o["cpu"] = *s.cpu;
          if (s.memory) o["mem"] = *s.memory;
          if (s.disk) o["disk"] = *s.disk;
          if (s.gpu) o["gpu"] = *s.gpu;
          if (s.gpu_memory) o["gpumem"] = *s.gpu_memory;
          samples.push_back(std::move(o));
        }
        j["samples"] = std::move(samples);
      }
      break;
    }
    case AgentReport::Type::kExit:
      j["outcome"] = OutcomeName(r.outcome);
      j["failure_reason"] = r.failure_reason;
      j["model_artifacts"] = r.model_artifacts;
      j["artifacts_uploaded"] = r.artifacts_uploaded;
      break;
    case AgentReport::Type::kCheckpoint:
      j["synced_at_ms"] = r.synced_at_ms;
      j["files_uploaded"] = r.files_uploaded;
      j["objects_deleted"] = r.objects_deleted;
      j["bytes_uploaded"] = r.bytes_uploaded;
      break;
  }
  return j;
}

Result<AgentReport> AgentReportFromJson(const json& j) {
  AgentReport r;
  try {
    std::string type = j.at("type").get<std::string>();
    r.job_arn = j.at("job_arn").get<std::string>();
    r.host_index = j.value("host_index", 1);
    r.attempt = j.value("attempt", 1);
    r.seq = j.value("seq", int64_t{0});
    r.lost_lines = j.value("lost_lines", int64_t{0});
    r.lost_reason = j.value("lost_reason", std::string());
    if (type == "phase") {
      r.type = AgentReport::Type::kPhase;
      auto phase = ParseSecondaryStatus(j.at("phase").get<std::string>());
      if (!phase) return InvalidArgument("unknown phase in agent report");
      r.phase = *phase;
      r.message = j.value("message", std::string());
    } else if (type == "log") {
      r.type = AgentReport::Type::kLog;
      r.stream = j.at("stream").get<std::string>();
      for (const auto& l : j.at("lines")) {
        r.lines.push_back({l.at("t").get<int64_t>(), l.at("m").get<std::string>()});
      }
      if (auto it = j.find("samples"); it != j.end()) {
        if (!it->is_array() || it->size() > kMaxSamplesPerReport) {
          return InvalidArgument("agent report: samples must be an array of at most " +
                                 std::to_string(kMaxSamplesPerReport));
        }
        for (const auto& o : *it) {
          InstanceSample s;
          s.timestamp_ms = o.at("t").get<int64_t>();
          s.cpu = SampleValue(o, "cpu");
          s.memory = SampleValue(o, "mem");
          s.disk = SampleValue(o, "disk");
          s.gpu = SampleValue(o, "gpu");
          s.gpu_memory = SampleValue(o, "gpumem");
          r.samples.push_back(s);
        }
      }
    } else if (type == "exit") {
      r.type = AgentReport::Type::kExit;
      std::string o = j.at("outcome").get<std::string>();
      if (o == "Completed") {
        r.outcome = AgentReport::Outcome::kCompleted;
      } else if (o == "Failed") {
        r.outcome = AgentReport::Outcome::kFailed;
      } else if (o == "Stopped") {
        r.outcome = AgentReport::Outcome::kStopped;
      } else if (o == "Interrupted") {
        r.outcome = AgentReport::Outcome::kInterrupted;
      } else {
        return InvalidArgument("unknown outcome in agent report: " + o);
      }
      r.failure_reason = j.value("failure_reason", std::string());
      r.model_artifacts = j.value("model_artifacts", std::string());
      r.artifacts_uploaded = j.value("artifacts_uploaded", false);
    } else if (type == "checkpoint") {
      r.type = AgentReport::Type::kCheckpoint;
      r.synced_at_ms = j.at("synced_at_ms").get<int64_t>();
      r.files_uploaded = j.value("files_uploaded", 0);
      r.objects_deleted = j.value("objects_deleted", 0);
      r.bytes_uploaded = j.value("bytes_uploaded", uint64_t{0});
    } else {
      return InvalidArgument("unknown agent report type: " + type);
    }
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed agent report: ") + e.what());
  }
  return r;
}

}  // namespace ty::model
