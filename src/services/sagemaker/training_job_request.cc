#include "services/sagemaker/training_job_request.h"

#include <set>

#include "common/json.h"
#include "services/sagemaker/debugger_request.h"
#include "storage/uri.h"

namespace ty::services {

using nlohmann::json;

namespace {

std::string Str(const json& obj, const char* key, const std::string& dflt = "") {
  auto it = obj.find(key);
  return (it != obj.end() && it->is_string()) ? it->get<std::string>() : dflt;
}

bool Has(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && !obj.at(key).is_null();
}

// An integer in [1, ceiling]; JSON integers may be signed or unsigned (and
// beyond int64) in nlohmann's representation.
bool InSecondsRange(const json& v, int64_t ceiling) {
  if (v.is_number_unsigned())
    return v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= static_cast<uint64_t>(ceiling);
  if (v.is_number_integer()) return v.get<int64_t>() >= 1 && v.get<int64_t>() <= ceiling;
  return false;
}

Status NotSupported(const std::string& what) {
  return InvalidArgument(what + " is not supported by Trainyard yet.");
}

}  // namespace

Status CheckUri(const std::string& what, const std::string& uri, const RequestPolicy& policy) {
  if (uri.rfind("https://", 0) == 0) {
    return InvalidArgument("Invalid " + what + " '" + uri +
                           "': https:// URIs are not supported; use an s3:// or file:// URI.");
  }
  auto parsed = storage::ParseStorageUri(uri);
  if (!parsed.ok()) return InvalidArgument("Invalid " + what + ": " + parsed.status().message());
  if (parsed->scheme == "s3") return Status::Ok();
  if (parsed->scheme != "file") {
    return InvalidArgument("Invalid " + what + " '" + uri + "': give an s3:// or file:// URI.");
  }
  Status s = storage::CheckWithinRoots(parsed->path, policy.file_roots);
  if (!s.ok()) return InvalidArgument("Invalid " + what + " '" + uri + "': " + s.message());
  return Status::Ok();
}

Result<model::JobSpec> ParseCreateTrainingJob(const json& body, const RequestPolicy& policy) {
  model::JobSpec spec;
  spec.name = Str(body, "TrainingJobName");

  // Members not supported yet: rejected by name, never silently ignored.
  static const char* const kUnsupportedTop[] = {
      "VpcConfig",           "RemoteDebugConfig", "InfraCheckConfig",  "SessionChainingConfig",
      "ServerlessJobConfig", "MlflowConfig",      "ModelPackageConfig"};
  for (const char* member : kUnsupportedTop) {
    if (Has(body, member)) return NotSupported(member);
  }
  spec.network_isolation = body.value("EnableNetworkIsolation", false);
  if (body.value("EnableInterContainerTrafficEncryption", false)) {
    return NotSupported("EnableInterContainerTrafficEncryption=true");
  }

  // Stopping condition and spot.
  const json stopping = body.value("StoppingCondition", json::object());
  bool spot = body.value("EnableManagedSpotTraining", false);
  spec.managed_spot = spot;
  if (stopping.contains("MaxRuntimeInSeconds")) {
    // SageMaker's documented ceiling; also keeps time arithmetic far from overflow.
    constexpr int64_t kMaxRuntimeCeiling = 2419200;  // 28 days
    const json& v = stopping.at("MaxRuntimeInSeconds");
    if (!InSecondsRange(v, kMaxRuntimeCeiling)) {
      return InvalidArgument("Invalid MaxRuntimeInSeconds " + v.dump() +
                             ". It must be between 1 and 2419200 seconds (28 days).");
    }
    spec.max_runtime = std::chrono::seconds(v.get<int64_t>());
  }
  if (stopping.contains("MaxWaitTimeInSeconds")) {
    if (!spot) {
      return InvalidArgument(
          "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is "
          "set to true");
    }
    const json& w = stopping.at("MaxWaitTimeInSeconds");
    if (!InSecondsRange(w, 2419200)) {
      return InvalidArgument("Invalid MaxWaitTimeInSeconds " + w.dump() +
                             ". It must be between 1 and 2419200 seconds (28 days).");
    }
    spec.max_wait = std::chrono::seconds(w.get<int64_t>());
    if (*spec.max_wait < spec.max_runtime) {
      return InvalidArgument(
          "Invalid MaxWaitTimeInSeconds. It must be equal to or greater than MaxRuntimeInSeconds");
    }
  }
  if (spot && !spec.max_wait) {
    return InvalidArgument(
        "MaxWaitTimeInSeconds is required when EnableManagedSpotTraining is set to true");
  }
  if (Has(body, "RetryStrategy")) {
    // The service model checks 1..30; retries cover failures of our own making.
    spec.max_retry_attempts = body.at("RetryStrategy").value("MaximumRetryAttempts", 0);
  }
  if (stopping.contains("MaxPendingTimeInSeconds")) return NotSupported("MaxPendingTimeInSeconds");

  // Algorithm.
  const json algo = body.value("AlgorithmSpecification", json::object());
  bool has_image = Has(algo, "TrainingImage");
  bool has_algorithm = Has(algo, "AlgorithmName");
  if (has_image == has_algorithm) {
    return InvalidArgument(
        "Exactly one of AlgorithmSpecification.TrainingImage and "
        "AlgorithmSpecification.AlgorithmName must be given.");
  }
  if (has_algorithm) return NotSupported("AlgorithmSpecification.AlgorithmName");
  if (Has(algo, "TrainingImageConfig"))
    return NotSupported("AlgorithmSpecification.TrainingImageConfig");
  spec.training_image = Str(algo, "TrainingImage");
  spec.training_input_mode = Str(algo, "TrainingInputMode", "File");
  if (spec.training_input_mode == "Pipe") return NotSupported("TrainingInputMode Pipe");
  spec.container_entrypoint = algo.value("ContainerEntrypoint", std::vector<std::string>{});
  spec.container_arguments = algo.value("ContainerArguments", std::vector<std::string>{});
  std::set<std::string> metric_names;
  for (const auto& m : algo.value("MetricDefinitions", json::array())) {
    std::string name = Str(m, "Name");
    if (!metric_names.insert(name).second) {
      return InvalidArgument("Duplicate metric definition name: " + name);
    }
    spec.metric_definitions.push_back({name, Str(m, "Regex")});
  }

  spec.hyperparameters = body.value("HyperParameters", std::map<std::string, std::string>{});
  spec.environment = body.value("Environment", std::map<std::string, std::string>{});
  // The model's patterns let NUL through ("[\\S\\s]*", ".*"), but both maps reach the training
  // process as environment variables (SM_HP_*, SM_TRAINING_ENV) and arguments, which are C strings:
  // a NUL would silently cut the value short there. Refuse it here instead.
  for (const auto& [member, map] : {std::pair{"HyperParameters", &spec.hyperparameters},
                                    std::pair{"Environment", &spec.environment}}) {
    for (const auto& [k, v] : *map) {
      if (k.find('\0') != std::string::npos) {
        return InvalidArgument(std::string(member) +
                               " has a key with a NUL character; keys and "
                               "values are passed as environment variables, which cannot hold it.");
      }
      if (v.find('\0') != std::string::npos) {
        return InvalidArgument(std::string(member) + " value of '" + k +
                               "' has a NUL character; "
                               "values are passed as environment variables, which cannot hold it.");
      }
    }
  }

  // Channels.
  std::set<std::string> channel_names;
  for (const auto& c : body.value("InputDataConfig", json::array())) {
    model::Channel ch;
    ch.name = Str(c, "ChannelName");
    if (!channel_names.insert(ch.name).second) {
      return InvalidArgument("Channel names must be unique; '" + ch.name + "' is repeated.");
    }
    if (ch.name == "." || ch.name == "..") {
      return InvalidArgument("Invalid channel name '" + ch.name + "'.");
    }
    const json ds = c.value("DataSource", json::object());
    if (Has(ds, "FileSystemDataSource")) return NotSupported("DataSource.FileSystemDataSource");
    if (Has(ds, "DatasetSource")) return NotSupported("DataSource.DatasetSource");
    if (!Has(ds, "S3DataSource")) {
      return InvalidArgument("Channel '" + ch.name + "' needs a DataSource.S3DataSource.");
    }
    const json& s3 = ds.at("S3DataSource");
    std::string type = Str(s3, "S3DataType");
    if (type != "S3Prefix" && type != "ManifestFile") return NotSupported("S3DataType " + type);
    ch.data_type = type;
    for (const char* m :
         {"AttributeNames", "InstanceGroupNames", "ModelAccessConfig", "HubAccessConfig"}) {
      if (Has(s3, m)) return NotSupported(std::string("S3DataSource.") + m);
    }
    ch.uri = Str(s3, "S3Uri");
    TY_RETURN_IF_ERROR(CheckUri("S3Uri of channel '" + ch.name + "'", ch.uri, policy));
    ch.distribution_type = Str(s3, "S3DataDistributionType", "FullyReplicated");
    ch.content_type = Str(c, "ContentType");
    ch.compression_type = Str(c, "CompressionType");
    if (ch.compression_type == "Gzip") return NotSupported("Channel CompressionType Gzip");
    ch.record_wrapper_type = Str(c, "RecordWrapperType", "None");
    if (ch.record_wrapper_type == "RecordIO") return NotSupported("RecordWrapperType RecordIO");
    if (Has(c, "ShuffleConfig")) return NotSupported("Channel ShuffleConfig");
    ch.input_mode = Str(c, "InputMode", spec.training_input_mode);
    if (ch.input_mode == "Pipe") return NotSupported("Channel InputMode Pipe");
    spec.channels.push_back(std::move(ch));
  }

  // Output.
  const json out = body.value("OutputDataConfig", json::object());
  spec.output_path = Str(out, "S3OutputPath");
  TY_RETURN_IF_ERROR(CheckUri("S3OutputPath", spec.output_path, policy));
  if (!Str(out, "KmsKeyId").empty()) return NotSupported("OutputDataConfig.KmsKeyId");
  spec.compress_output = Str(out, "CompressionType", "GZIP") != "NONE";

  // Resources.
  const json res = body.value("ResourceConfig", json::object());
  if (Has(res, "InstanceGroups")) return NotSupported("ResourceConfig.InstanceGroups");
  if (Has(res, "TrainingPlanArn")) return NotSupported("ResourceConfig.TrainingPlanArn");
  if (Has(res, "InstancePlacementConfig"))
    return NotSupported("ResourceConfig.InstancePlacementConfig");
  if (!Str(res, "VolumeKmsKeyId").empty()) return NotSupported("ResourceConfig.VolumeKmsKeyId");
  if (res.value("KeepAlivePeriodInSeconds", 0) > 0) {
    return NotSupported("ResourceConfig.KeepAlivePeriodInSeconds (warm pools)");
  }
  spec.instance_type = Str(res, "InstanceType");
  if (spec.instance_type.empty())
    return InvalidArgument("ResourceConfig.InstanceType is required.");
  spec.instance_count = res.value("InstanceCount", 1);
  if (spec.instance_count < 1) {
    return InvalidArgument("ResourceConfig.InstanceCount must be at least 1.");
  }
  spec.volume_size_gb = res.value("VolumeSizeInGB", 0);

  // Checkpoints: restored into LocalPath at start (continuous sync arrives
  // with managed spot training).
  if (Has(body, "CheckpointConfig")) {
    const json& cp = body.at("CheckpointConfig");
    spec.checkpoint_uri = Str(cp, "S3Uri");
    TY_RETURN_IF_ERROR(CheckUri("CheckpointConfig.S3Uri", *spec.checkpoint_uri, policy));
    spec.checkpoint_local_path = Str(cp, "LocalPath", "/opt/ml/checkpoints");
    if (spec.checkpoint_local_path.rfind("/opt/ml/", 0) != 0 ||
        spec.checkpoint_local_path.find("..") != std::string::npos) {
      return InvalidArgument("CheckpointConfig.LocalPath must lie under /opt/ml/ (got '" +
                             spec.checkpoint_local_path + "').");
    }
  }

  // The toolkit's submit directory is a URI too.
  if (auto it = spec.hyperparameters.find("sagemaker_submit_directory");
      it != spec.hyperparameters.end()) {
    std::string dir = it->second;
    auto decoded = ParseJson(dir);
    if (decoded.ok() && decoded->is_string()) dir = decoded->get<std::string>();
    if (dir.rfind("file://", 0) == 0 || dir.rfind("s3://", 0) == 0) {
      TY_RETURN_IF_ERROR(CheckUri("hyperparameter sagemaker_submit_directory", dir, policy));
    } else if (dir != "/opt/ml/code") {
      return InvalidArgument("Invalid hyperparameter sagemaker_submit_directory '" + dir +
                             "': give an s3:// or file:// URI.");
    }
  }

  // Debugger and profiler (after the output path: their S3OutputPath defaults to it).
  TY_RETURN_IF_ERROR(ParseDebuggerMembers(body, policy, &spec));

  // Tags: no reserved keys, no duplicate keys.
  std::set<std::string> tag_keys;
  for (const auto& t : body.value("Tags", json::array())) {
    std::string key = Str(t, "Key");
    if (key.rfind("aws:", 0) == 0) {
      return InvalidArgument("Tag keys beginning with 'aws:' are reserved for AWS use: " + key);
    }
    if (!tag_keys.insert(key).second) return InvalidArgument("Duplicate tag key: " + key);
  }
  return spec;
}

}  // namespace ty::services
