#include "agent/container_env.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "common/json.h"
#include "storage/s3_settings.h"

namespace ty::agent {
namespace {

using json = nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json Decode(const std::string& value) {
  auto j = ParseJson(value);
  if (!j.ok()) return json(value);
  return std::move(j).value();
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string Upper(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return s;
}

// Keys the toolkit consumes itself (params.py); they are neither user
// hyperparameters nor framework params.
const std::set<std::string>& ReservedToolkitKeys() {
  static const std::set<std::string> kKeys = {
      "sagemaker_program",  "sagemaker_submit_directory",    "sagemaker_enable_cloudwatch_metrics",
      "sagemaker_region",   "sagemaker_container_log_level", "sagemaker_job_name",
      "sagemaker_s3_output"};
  return kKeys;
}

std::string PyRepr(const json& v);

std::string PyFloat(const json& v) { return v.dump(); }

std::string PyStrOf(const json& v) {
  switch (v.type()) {
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::boolean:
      return v.get<bool>() ? "True" : "False";
    case json::value_t::null:
      return "None";
    case json::value_t::number_float:
      return PyFloat(v);
    case json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + PyRepr(v[i]);
      return out + "]";
    }
    case json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        out += (first ? "" : ", ") + PyRepr(json(k)) + ": " + PyRepr(e);
        first = false;
      }
      return out + "}";
    }
    default:
      return v.dump();
  }
}

std::string PyRepr(const json& v) {
  if (!v.is_string()) return PyStrOf(v);
  const std::string s = v.get<std::string>();
  // Python prefers single quotes unless the string holds one and no double quote.
  char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
  std::string out(1, q);
  for (char ch : s) {
    if (ch == '\\' || ch == q) {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '\r') {
      out += "\\r";
    } else {
      out += ch;
    }
  }
  return out + q;
}

// SM_NETWORK_INTERFACE_NAME: the instance network's interface; "eth0" on the host network, as
// SageMaker names it (a script that binds to it there finds the host's own).
std::string InterfaceName(const model::InstanceConfig& c) {
  return c.network.interface.empty() ? "eth0" : c.network.interface;
}

json HostsJson(const model::InstanceConfig& c) {
  std::vector<std::string> hosts = c.hosts;
  if (hosts.empty()) hosts.push_back(CurrentHost(c));
  // algo-2 before algo-10: names of equal prefix order by their number.
  std::sort(hosts.begin(), hosts.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  return hosts;
}

std::string InstanceType(const model::InstanceConfig& c) {
  return c.spec.instance_type.empty() ? "local" : c.spec.instance_type;
}

json ResourceConfig(const model::InstanceConfig& c) {
  json hosts = HostsJson(c);
  return {{"current_host", CurrentHost(c)},
          {"current_instance_type", InstanceType(c)},
          {"current_group_name", kHomogeneousGroup},
          {"hosts", hosts},
          {"instance_groups", json::array({{{"instance_group_name", kHomogeneousGroup},
                                            {"instance_type", InstanceType(c)},
                                            {"hosts", hosts}}})},
          {"network_interface_name", InterfaceName(c)}};
}

json InputDataConfig(const model::JobSpec& spec) {
  json j = json::object();
  for (const auto& ch : spec.channels) {
    json e = {
        {"TrainingInputMode", ch.input_mode.empty() ? spec.training_input_mode : ch.input_mode},
        {"S3DistributionType",
         ch.distribution_type.empty() ? "FullyReplicated" : ch.distribution_type},
        {"RecordWrapperType", ch.record_wrapper_type.empty() ? "None" : ch.record_wrapper_type}};
    if (!ch.content_type.empty()) e["ContentType"] = ch.content_type;
    if (!ch.compression_type.empty()) e["CompressionType"] = ch.compression_type;
    j[ch.name] = std::move(e);
  }
  return j;
}

struct DecodedParams {
  json user = json::object();
  json framework = json::object();
  std::string program;
  std::string submit_directory;
  int log_level = 20;
};

DecodedParams DecodeParams(const std::map<std::string, std::string>& hps) {
  DecodedParams d;
  for (const auto& [k, v] : hps) {
    json value = Decode(v);
    if (!StartsWith(k, "sagemaker_")) {
      d.user[k] = value;
    } else if (k == "sagemaker_program") {
      d.program = value.is_string() ? value.get<std::string>() : Dump(value);
    } else if (k == "sagemaker_submit_directory") {
      d.submit_directory = value.is_string() ? value.get<std::string>() : Dump(value);
    } else if (k == "sagemaker_container_log_level") {
      if (value.is_number_integer()) d.log_level = value.get<int>();
    } else if (!ReservedToolkitKeys().count(k)) {
      d.framework[k] = value;
    }
  }
  return d;
}

std::vector<std::string> UserArgs(const json& user) {
  std::vector<std::string> args;
  for (const auto& [k, v] : user.items()) {  // json objects iterate in sorted key order
    if (k.empty()) continue;
    args.push_back(k.size() == 1 ? "-" + k : "--" + k);
    if (v.is_object()) {
      std::string joined;
      bool first = true;
      for (const auto& [mk, mv] : v.items()) {
        joined += (first ? "" : ",") + mk + "=" + PyStrOf(mv);
        first = false;
      }
      args.push_back(joined);
    } else {
      args.push_back(PyStrOf(v));
    }
  }
  return args;
}

// The value the toolkit puts in an SM_* variable: strings raw, others JSON.
std::string EnvValue(const json& v) { return v.is_string() ? v.get<std::string>() : Dump(v); }

std::string ModuleName(const std::string& program) {
  return EndsWith(program, ".py") ? program.substr(0, program.size() - 3) : program;
}

}  // namespace

std::string CurrentHost(const model::InstanceConfig& c) {
  return "algo-" + std::to_string(c.host_index);
}

std::string HyperparametersJson(const model::JobSpec& spec) {
  return Dump(json(spec.hyperparameters));
}

std::string ResourceConfigJson(const model::InstanceConfig& c) { return Dump(ResourceConfig(c)); }

std::string InputDataConfigJson(const model::JobSpec& spec) { return Dump(InputDataConfig(spec)); }

std::string CheckpointConfigJson(const model::JobSpec& spec, const std::string& local_path) {
  return Dump({{"LocalPath", local_path}, {"S3Uri", spec.checkpoint_uri.value_or("")}});
}

std::string DebugHookConfigJson(const model::JobSpec& spec, const std::string& local_path) {
  const model::DebugHookSpec& h = *spec.debug_hook;
  json collections = json::array();
  for (const auto& c : h.collections) {
    json entry = {{"CollectionName", c.name}};
    if (!c.parameters.empty()) entry["CollectionParameters"] = c.parameters;
    collections.push_back(std::move(entry));
  }
  return Dump({{"S3OutputPath", h.s3_output_path},
               {"LocalPath", local_path},
               {"HookParameters", h.hook_parameters},
               {"CollectionConfigurations", collections}});
}

std::string TensorBoardConfigJson(const model::JobSpec& spec, const std::string& local_path) {
  return Dump({{"LocalPath", local_path}, {"S3OutputPath", spec.tensorboard->s3_output_path}});
}

std::string ProfilerConfigJson(const model::JobSpec& spec) {
  const model::ProfilerSpec& p = *spec.profiler;
  return Dump({{"ProfilingIntervalInMilliseconds", p.interval_ms},
               {"ProfilingParameters", json::object()},
               {"DisableProfiler", p.disabled}});
}

std::string DecodeHyperparameter(const std::string& value) { return Dump(Decode(value)); }

ToolkitParams ParseToolkitParams(const std::map<std::string, std::string>& hyperparameters) {
  DecodedParams d = DecodeParams(hyperparameters);
  ToolkitParams p;
  p.program = d.program;
  p.submit_directory = d.submit_directory;
  p.log_level = d.log_level;
  p.user_json = Dump(d.user);
  p.framework_json = Dump(d.framework);
  return p;
}

std::vector<std::string> ToolkitUserArgs(
    const std::map<std::string, std::string>& hyperparameters) {
  return UserArgs(DecodeParams(hyperparameters).user);
}

std::string PythonStr(const std::string& json_text) { return PyStrOf(Decode(json_text)); }

std::map<std::string, std::string> BuildContainerEnv(const model::InstanceConfig& c,
                                                     const std::string& ml_root,
                                                     const std::string& home) {
  std::map<std::string, std::string> env = {
      {"PATH", kBasePath}, {"HOME", home}, {"LANG", "C.UTF-8"}, {"PYTHONUNBUFFERED", "1"}};
  for (const auto& [k, v] : c.image.env) env[k] = v;

  const model::JobSpec& spec = c.spec;
  env["TRAINING_JOB_NAME"] = c.job_name;
  env["TRAINING_JOB_ARN"] = c.job_arn;
  env["AWS_REGION"] = c.region;
  // Like SageMaker local mode: the job may reach the store itself
  // (storage.pass_credentials_to_jobs).
  if (c.pass_s3_credentials && !c.storage_s3.is_null()) {
    auto s3 = storage::S3SettingsFromJson(c.storage_s3);
    if (s3.ok()) {
      if (!s3->endpoint.empty()) env["AWS_ENDPOINT_URL_S3"] = s3->endpoint;
      // In its own network namespace the instance reaches the store at its gateway.
      if (!c.network.store_url.empty()) env["AWS_ENDPOINT_URL_S3"] = c.network.store_url;
      if (!s3->credentials.access_key_id.empty()) {
        env["AWS_ACCESS_KEY_ID"] = s3->credentials.access_key_id;
        env["AWS_SECRET_ACCESS_KEY"] = s3->credentials.secret_access_key;
      }
      if (!s3->credentials.session_token.empty()) {
        env["AWS_SESSION_TOKEN"] = s3->credentials.session_token;
      }
    }
  }

  DecodedParams d = DecodeParams(spec.hyperparameters);
  const std::string current = CurrentHost(c);
  json hosts = HostsJson(c);
  json resource = ResourceConfig(c);
  json input_data = InputDataConfig(spec);
  json channels = json::array();
  json channel_dirs = json::object();
  std::vector<std::string> names;
  for (const auto& ch : spec.channels) names.push_back(ch.name);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    channels.push_back(n);
    channel_dirs[n] = ml_root + "/input/data/" + n;
  }
  std::vector<std::string> args = UserArgs(d.user);
  std::string framework_module;
  for (const auto* m : {&c.image.env, &spec.environment}) {
    auto it = m->find("SAGEMAKER_TRAINING_MODULE");
    if (it != m->end()) framework_module = it->second;
  }
  json groups = json::array({kHomogeneousGroup});
  json distribution_groups = groups;
  if (d.framework.contains("sagemaker_distribution_instance_groups")) {
    distribution_groups = d.framework["sagemaker_distribution_instance_groups"];
  }
  json groups_dict = {{kHomogeneousGroup,
                       {{"instance_group_name", kHomogeneousGroup},
                        {"instance_type", InstanceType(c)},
                        {"hosts", hosts}}}};
  int rank = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (hosts[i] == current) rank = static_cast<int>(i);
  }
  std::string module_dir = d.submit_directory.empty() ? ml_root + "/code" : d.submit_directory;

  // The toolkit's Environment properties; each becomes SM_<KEY>.
  json props = {
      {"hosts", hosts},
      {"network_interface_name", InterfaceName(c)},
      {"hps", d.user},
      {"user_entry_point", d.program},
      {"framework_params", d.framework},
      {"resource_config", resource},
      {"input_data_config", input_data},
      {"output_data_dir", ml_root + "/output/data"},
      {"channels", channels},
      {"current_host", current},
      {"current_instance_type", InstanceType(c)},
      {"current_instance_group", kHomogeneousGroup},
      {"current_instance_group_hosts", hosts},
      {"instance_groups", groups},
      {"instance_groups_dict", groups_dict},
      {"distribution_instance_groups", distribution_groups},
      {"is_hetero", false},
      {"module_name", ModuleName(d.program)},
      {"log_level", d.log_level},
      {"input_dir", ml_root + "/input"},
      {"input_config_dir", ml_root + "/input/config"},
      {"output_dir", ml_root + "/output"},
      {"num_cpus", c.num_cpus},
      {"num_gpus", c.num_gpus},
      {"num_neurons", 0},
      {"model_dir", ml_root + "/model"},
      {"module_dir", module_dir},
      {"user_args", args},
      {"output_intermediate_dir", ml_root + "/output/intermediate"},
  };
  if (!framework_module.empty()) props["framework_module"] = framework_module;
  for (const auto& [k, v] : props.items()) env["SM_" + Upper(k)] = EnvValue(v);

  json training_env = {
      {"additional_framework_parameters", d.framework},
      {"channel_input_dirs", channel_dirs},
      {"current_host", current},
      {"current_instance_group", kHomogeneousGroup},
      {"current_instance_group_hosts", hosts},
      {"current_instance_type", InstanceType(c)},
      {"distribution_hosts", hosts},
      {"distribution_instance_groups", distribution_groups},
      {"framework_module", framework_module.empty() ? json(nullptr) : json(framework_module)},
      {"hosts", hosts},
      {"hyperparameters", d.user},
      {"input_config_dir", ml_root + "/input/config"},
      {"input_data_config", input_data},
      {"input_dir", ml_root + "/input"},
      {"instance_groups", groups},
      {"instance_groups_dict", groups_dict},
      {"is_hetero", false},
      {"is_master", rank == 0},
      {"is_modelparallel_enabled", nullptr},
      {"is_smddpmprun_installed", false},
      {"job_name", c.job_name},
      {"log_level", d.log_level},
      {"master_hostname", hosts[0]},
      {"master_addr", hosts[0]},
      {"master_port", c.network.master_port},
      {"model_dir", ml_root + "/model"},
      {"module_dir", module_dir},
      {"module_name", ModuleName(d.program)},
      {"network_interface_name", InterfaceName(c)},
      {"num_cpus", c.num_cpus},
      {"num_gpus", c.num_gpus},
      {"num_neurons", 0},
      {"output_data_dir", ml_root + "/output/data"},
      {"output_dir", ml_root + "/output"},
      {"output_intermediate_dir", ml_root + "/output/intermediate"},
      {"resource_config", resource},
      {"user_entry_point", d.program},
  };
  env["SM_TRAINING_ENV"] = Dump(training_env);
  for (const auto& n : names) env["SM_CHANNEL_" + Upper(n)] = ml_root + "/input/data/" + n;
  for (const auto& [k, v] : d.user.items()) env["SM_HP_" + Upper(k)] = EnvValue(v);
  env["SM_MASTER_ADDR"] = hosts[0];
  env["SM_MASTER_PORT"] = std::to_string(c.network.master_port);
  env["SM_HOST_COUNT"] = std::to_string(hosts.size());
  env["SM_CURRENT_HOST_RANK"] = std::to_string(rank);
  env["SM_INPUT_DATA_DIR"] = ml_root + "/input/data";
  env["SM_OUTPUT_FAILURE"] = ml_root + "/output/failure";

  if (c.image.runtime == model::ImageEntry::Runtime::kPythonFramework) {
    env["PYTHONPATH"] = ml_root + "/code";
    env["SAGEMAKER_JOB_NAME"] = c.job_name;
    env["SAGEMAKER_REGION"] = c.region;
    env["CURRENT_HOST"] = current;
  }
  for (const auto& [k, v] : spec.environment) env[k] = v;
  if (c.image.runtime == model::ImageEntry::Runtime::kPythonFramework && !c.python_dir.empty()) {
    // Last, so the user's own modules win over ours.
    const std::string dir = ml_root == kOptMl ? std::string(kSandboxPythonDir) : c.python_dir;
    std::string& path = env["PYTHONPATH"];
    path = path.empty() ? dir : path + ":" + dir;
  }
  return env;
}

Result<TrainingCommand> BuildTrainingCommand(const model::InstanceConfig& c,
                                             const std::string& ml_root) {
  const model::JobSpec& spec = c.spec;
  TrainingCommand cmd;
  bool has_entrypoint = !spec.container_entrypoint.empty();
  if (c.image.runtime == model::ImageEntry::Runtime::kPythonFramework && !has_entrypoint) {
    DecodedParams d = DecodeParams(spec.hyperparameters);
    if (d.program.empty()) {
      return InvalidArgument(
          "hyperparameter sagemaker_program is required by the python-framework image runtime");
    }
    if (d.program.find("..") != std::string::npos || StartsWith(d.program, "/")) {
      return InvalidArgument("sagemaker_program '" + d.program + "' must be a relative path in " +
                             "the code directory");
    }
    std::vector<std::string> args = UserArgs(d.user);
    if (EndsWith(d.program, ".py")) {
      cmd.argv = {"/usr/bin/python3", d.program};
    } else {
      cmd.argv = {"/usr/bin/python3", "-m", d.program};
    }
    cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
    cmd.cwd = ml_root + "/code";
    cmd.toolkit = true;
    return cmd;
  }
  cmd.argv = has_entrypoint ? spec.container_entrypoint : c.image.command;
  if (!spec.container_arguments.empty()) {
    cmd.argv.insert(cmd.argv.end(), spec.container_arguments.begin(),
                    spec.container_arguments.end());
  } else if (!has_entrypoint) {
    cmd.argv.push_back("train");
  }
  if (cmd.argv.empty()) {
    return InvalidArgument("the image '" + spec.training_image +
                           "' has no command and the job gives no ContainerEntrypoint");
  }
  if (c.image.workdir.empty()) {
    cmd.cwd = "/";
  } else if (StartsWith(c.image.workdir + "/", std::string(kOptMl) + "/")) {
    cmd.cwd = ml_root + c.image.workdir.substr(sizeof(kOptMl) - 1);
  } else {
    cmd.cwd = c.image.workdir;
  }
  return cmd;
}

std::string ExecuteUserScriptError(int exit_code, const std::vector<std::string>& stderr_tail,
                                   const std::vector<std::string>& argv) {
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (const auto& l : stderr_tail) {
    if (seen.insert(l).second) unique.push_back(l);
  }
  std::string message;
  for (const auto& l : unique) message += (message.empty() ? "" : "\n") + l;
  if (message.size() > 1024) message = message.substr(message.size() - 1024);
  std::string command;
  for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
  std::string out = "ExecuteUserScriptError:\nExitCode " + std::to_string(exit_code) +
                    "\nErrorMessage \"" + message + "\"\nCommand \"" + command + "\"";
  if (exit_code == 137) out += "\nExtraInfo \"OutOfMemory: Process killed by SIGKILL (signal 9)\"";
  return out;
}

}  // namespace ty::agent
