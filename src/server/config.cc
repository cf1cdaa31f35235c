#include "server/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <set>

#include "common/fs.h"
#include "launch/local_launcher.h"
#include "server/bounded_yaml.h"

namespace ty::server {
namespace {

// `v` as T, or InvalidArgument naming `key` (yaml-cpp's own message names
// only a line and column).
template <typename T>
Status Read(const YAML::Node& v, const std::string& key, const std::string& want, T* out) {
  try {
    *out = v.as<T>();
  } catch (const YAML::Exception&) {
    return InvalidArgument(key + " must be " + want);
  }
  return Status::Ok();
}

Status ReadCount(const YAML::Node& v, const std::string& key, int64_t min, int64_t* out) {
  std::string want = "a whole number >= " + std::to_string(min);
  TY_RETURN_IF_ERROR(Read(v, key, want, out));
  if (*out < min) return InvalidArgument(key + " must be " + want);
  return Status::Ok();
}

Status ReadSeconds(const YAML::Node& v, const std::string& key, int64_t min,
                   std::chrono::seconds* out) {
  int64_t n = 0;
  TY_RETURN_IF_ERROR(ReadCount(v, key, min, &n));
  *out = std::chrono::seconds(n);
  return Status::Ok();
}

// A finite number, > 0 when `positive`, else >= 0.
Status ReadNumber(const YAML::Node& v, const std::string& key, bool positive, double* out) {
  std::string want = positive ? "a number > 0" : "a number >= 0";
  TY_RETURN_IF_ERROR(Read(v, key, want, out));
  if (!std::isfinite(*out) || *out < 0 || (positive && *out == 0)) {
    return InvalidArgument(key + " must be " + want);
  }
  return Status::Ok();
}

Status CheckMap(const YAML::Node& v, const std::string& key, const std::string& of) {
  if (!v.IsMap()) return InvalidArgument(key + " must be a mapping of " + of);
  return Status::Ok();
}

Status ParseInstanceTypes(const YAML::Node& v, std::vector<capacity::InstanceType>* out) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(
      CheckMap(v, "instance_types",
               "instance type to {vcpus, memory_gib, gpus, on_demand_price, max_processes}"));
  const capacity::InstanceCatalog builtin = capacity::InstanceCatalog::Builtin();
  for (const auto& kv : v) {
    std::string name = kv.first.as<std::string>();
    std::string where = "instance_types: " + name;
    const capacity::InstanceType* known = builtin.Find(name);
    capacity::InstanceType type = known ? *known : capacity::InstanceType{name};
    std::set<std::string> given;
    if (!kv.second.IsNull()) {
      TY_RETURN_IF_ERROR(
          CheckMap(kv.second, where, "vcpus, memory_gib, gpus, on_demand_price, max_processes"));
    }
    for (const auto& field : kv.second) {
      std::string key = field.first.as<std::string>();
      std::string at = where + ": " + key;
      if (key == "vcpus") {
        int64_t n = 0;
        TY_RETURN_IF_ERROR(ReadCount(field.second, at, 1, &n));
        type.vcpus = static_cast<int>(n);
      } else if (key == "memory_gib") {
        TY_RETURN_IF_ERROR(ReadNumber(field.second, at, true, &type.memory_gib));
      } else if (key == "gpus") {
        int64_t n = 0;
        TY_RETURN_IF_ERROR(ReadCount(field.second, at, 0, &n));
        type.gpus = static_cast<int>(n);
      } else if (key == "on_demand_price") {
        TY_RETURN_IF_ERROR(ReadNumber(field.second, at, false, &type.on_demand_price));
      } else if (key == "max_processes") {
        // Fewer than a handful could not even start the sandbox and the training process.
        int64_t n = 0;
        TY_RETURN_IF_ERROR(ReadCount(field.second, at, 8, &n));
        // Linux's own ceiling (PID_MAX_LIMIT); more would wrap the int.
        if (n > 4194304) {
          return InvalidArgument(at + " must be at most 4194304");
        }
        type.max_processes = static_cast<int>(n);
      } else {
        return InvalidArgument(where + ": unknown key '" + key + "'");
      }
      given.insert(key);
    }
    if (!known) {
      for (const char* required : {"vcpus", "memory_gib", "on_demand_price"}) {
        if (!given.contains(required)) {
          return InvalidArgument(where + ": not a built-in type, so it needs " + required);
        }
      }
    }
    std::erase_if(*out, [&](const capacity::InstanceType& t) { return t.name == name; });
    out->push_back(std::move(type));
  }
  return Status::Ok();
}

Status ParseCapacity(const YAML::Node& v, capacity::CapacityConfig* out) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "capacity", "instance type (or \"*\") to a count"));
  for (const auto& kv : v) {
    std::string type = kv.first.as<std::string>();
    int64_t n = 0;
    if (type == "*") {
      // default_count 0 means "derive from the host": "*": 0 would silently
      // mean the opposite of what it says.
      TY_RETURN_IF_ERROR(ReadCount(kv.second, "capacity: *", 1, &n));
      out->default_count = static_cast<int>(n);
    } else {
      TY_RETURN_IF_ERROR(ReadCount(kv.second, "capacity: " + type, 0, &n));
      out->counts[type] = static_cast<int>(n);
    }
  }
  return Status::Ok();
}

// Applies the model keys of the mapping `v` to `model`, skipping `others`
// (the keys its caller reads); `where` names `v` in errors.
Status ParseSpotModel(const YAML::Node& v, const std::string& where,
                      const std::set<std::string>& others, capacity::SpotModel* model) {
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = where + ": " + key;
    if (others.contains(key)) continue;
    if (key == "price_fraction") {
      double f = 0;
      TY_RETURN_IF_ERROR(Read(kv.second, at, "a number in (0, 1]", &f));
      if (!(f > 0 && f <= 1)) return InvalidArgument(at + " must be a number in (0, 1]");
      model->price_fraction = f;
    } else if (key == "notice_seconds") {
      TY_RETURN_IF_ERROR(ReadSeconds(kv.second, at, 0, &model->notice));
    } else if (key == "mean_time_between_interruptions_seconds") {
      std::chrono::seconds mean{0};
      TY_RETURN_IF_ERROR(ReadSeconds(kv.second, at, 0, &mean));
      model->mean_time_between_interruptions =
          mean > std::chrono::seconds(0) ? std::optional(mean) : std::nullopt;
    } else if (key == "availability") {
      model->mean_available.reset();
      model->mean_unavailable.reset();
      if (kv.second.IsNull()) continue;
      TY_RETURN_IF_ERROR(
          CheckMap(kv.second, at, "mean_available_seconds and mean_unavailable_seconds"));
      for (const auto& mean : kv.second) {
        std::string name = mean.first.as<std::string>();
        std::chrono::seconds s{0};
        if (name == "mean_available_seconds") {
          TY_RETURN_IF_ERROR(ReadSeconds(mean.second, at + ": " + name, 1, &s));
          model->mean_available = s;
        } else if (name == "mean_unavailable_seconds") {
          TY_RETURN_IF_ERROR(ReadSeconds(mean.second, at + ": " + name, 1, &s));
          model->mean_unavailable = s;
        } else {
          return InvalidArgument(at + ": unknown key '" + name + "'");
        }
      }
      if (!model->mean_available || !model->mean_unavailable) {
        return InvalidArgument(at +
                               " needs both mean_available_seconds and mean_unavailable_seconds");
      }
    } else {
      return InvalidArgument(where + ": unknown key '" + key + "'");
    }
  }
  return Status::Ok();
}

Status ParseSpot(const YAML::Node& v, const std::string& config_path,
                 capacity::SpotMarketConfig* out) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "spot", "spot settings"));
  // The defaults first, whatever the key order: every types entry inherits them.
  TY_RETURN_IF_ERROR(ParseSpotModel(v, "spot", {"seed", "trace_file", "types"}, &out->defaults));
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    if (key == "seed") {
      TY_RETURN_IF_ERROR(Read(kv.second, "spot: seed", "a whole number >= 0", &out->seed));
    } else if (key == "trace_file") {
      std::string file;
      TY_RETURN_IF_ERROR(Read(kv.second, "spot: trace_file", "a path", &file));
      std::string dir = std::filesystem::path(config_path).parent_path().string();
      file = Absolutize(file, Absolutize(dir.empty() ? "." : dir, CurrentDir()));
      Result<std::string> text = ReadFile(file);
      if (!text.ok()) return InvalidArgument("spot: trace_file: " + text.status().message());
      Result<std::vector<capacity::TraceEvent>> trace = capacity::ParseTrace(*text);
      if (!trace.ok()) return trace.status().WithPrefix("spot: trace_file " + file);
      out->trace = std::move(trace).value();
    } else if (key == "types") {
      if (kv.second.IsNull()) continue;
      TY_RETURN_IF_ERROR(CheckMap(kv.second, "spot: types", "instance type to spot settings"));
      for (const auto& entry : kv.second) {
        std::string type = entry.first.as<std::string>();
        std::string where = "spot: types: " + type;
        capacity::SpotModel model = out->defaults;
        if (!entry.second.IsNull()) {
          TY_RETURN_IF_ERROR(CheckMap(entry.second, where, "spot settings"));
          TY_RETURN_IF_ERROR(ParseSpotModel(entry.second, where, {}, &model));
        }
        out->types[type] = model;
      }
    }
  }
  return Status::Ok();
}

Status ParseStorage(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "storage", "storage settings"));
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    if (key == "pass_credentials_to_jobs") {
      TY_RETURN_IF_ERROR(Read(kv.second, "storage: pass_credentials_to_jobs", "true or false",
                              &c->pass_s3_credentials_to_jobs));
    } else if (key == "s3") {
      if (kv.second.IsNull()) continue;
      TY_RETURN_IF_ERROR(CheckMap(kv.second, "storage: s3", "S3 settings"));
      storage::S3SettingsOverrides& o = c->s3;
      for (const auto& s : kv.second) {
        std::string k = s.first.as<std::string>();
        std::string at = "storage: s3: " + k;
        auto text = [&](std::optional<std::string>* out) -> Status {
          std::string value;
          TY_RETURN_IF_ERROR(Read(s.second, at, "a string", &value));
          *out = value;
          return Status::Ok();
        };
        auto mib = [&](std::optional<uint64_t>* out) -> Status {
          int64_t n = 0;
          TY_RETURN_IF_ERROR(ReadCount(s.second, at, 5, &n));
          *out = static_cast<uint64_t>(n) << 20;
          return Status::Ok();
        };
        auto count = [&](std::optional<int>* out) -> Status {
          int64_t n = 0;
          TY_RETURN_IF_ERROR(ReadCount(s.second, at, 1, &n));
          *out = static_cast<int>(std::min<int64_t>(n, 1 << 20));
          return Status::Ok();
        };
        Status st;
        if (k == "endpoint")
          st = text(&o.endpoint);
        else if (k == "region")
          st = text(&o.region);
        else if (k == "addressing")
          st = text(&o.addressing);
        else if (k == "profile")
          st = text(&o.profile);
        else if (k == "access_key_id")
          st = text(&o.access_key_id);
        else if (k == "secret_access_key")
          st = text(&o.secret_access_key);
        else if (k == "session_token")
          st = text(&o.session_token);
        else if (k == "max_concurrency")
          st = count(&o.max_concurrency);
        else if (k == "max_attempts")
          st = count(&o.max_attempts);
        else if (k == "part_size_mib")
          st = mib(&o.part_size);
        else if (k == "multipart_threshold_mib")
          st = mib(&o.multipart_threshold);
        else
          return InvalidArgument("storage: s3: unknown key '" + k + "'");
        TY_RETURN_IF_ERROR(st);
      }
    } else {
      return InvalidArgument("storage: unknown key '" + key + "'");
    }
  }
  return Status::Ok();
}

Status ParseMetricsEndpoint(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "metrics_endpoint", "metrics endpoint settings"));
  auto& m = c->metrics_endpoint;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    if (key == "listen") {
      m.listen = kv.second.as<std::string>();
    } else if (key == "unauthenticated") {
      m.unauthenticated = kv.second.as<bool>();
    } else if (key == "access_keys") {
      if (!kv.second.IsSequence()) {
        return InvalidArgument("metrics_endpoint: access_keys must be a list of access key ids");
      }
      m.access_keys = kv.second.as<std::vector<std::string>>();
    } else {
      return InvalidArgument("metrics_endpoint: unknown key '" + key + "'");
    }
  }
  return Status::Ok();
}

Status ParseMetrics(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "metrics", "metric settings"));
  telemetry::MetricStoreOptions& o = c->metric_store;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = "metrics: " + key;
    double x = 0;
    // A span in `unit` ms, at least 1 ms and at most ~30 years.
    auto span = [&](bool positive, double unit, int64_t* out) -> Status {
      TY_RETURN_IF_ERROR(ReadNumber(kv.second, at, positive, &x));
      *out = static_cast<int64_t>(std::min(x * unit, 1e12));
      if (positive && *out == 0) *out = 1;
      return Status::Ok();
    };
    Status st;
    if (key == "interval_seconds") {
      st = span(/*positive=*/false, 1000, &c->metrics_interval_ms);
    } else if (key == "raw_retention_hours") {
      st = span(true, 3600e3, &o.raw_retention_ms);
    } else if (key == "minute_retention_days") {
      st = span(true, 86400e3, &o.minute_retention_ms);
    } else if (key == "hour_retention_days") {
      st = span(true, 86400e3, &o.hour_retention_ms);
    } else if (key == "sweep_interval_seconds") {
      int64_t ms = 0;
      st = span(true, 1000, &ms);
      c->metrics_sweep_interval = std::chrono::seconds(std::max<int64_t>(1, ms / 1000));
    } else if (key == "max_series_per_account") {
      st = ReadCount(kv.second, at, 1, &o.max_series_per_account);
    } else {
      return InvalidArgument("metrics: unknown key '" + key + "'");
    }
    TY_RETURN_IF_ERROR(st);
  }
  if (o.minute_retention_ms < o.raw_retention_ms || o.hour_retention_ms < o.minute_retention_ms) {
    return InvalidArgument("metrics: retention must not shrink from raw to minute to hour rollups");
  }
  return Status::Ok();
}

Status ParseGovernance(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "governance", "governance policies"));
  auto converted = YamlToJson(v);
  if (!converted.ok()) return converted.status().WithPrefix("governance");
  nlohmann::json doc = std::move(converted).value();
  if (doc.contains("allow_account_updates")) {
    if (!doc["allow_account_updates"].is_boolean()) {
      return InvalidArgument("governance: allow_account_updates must be true or false");
    }
    c->governance_allow_account_updates = doc["allow_account_updates"].get<bool>();
    doc.erase("allow_account_updates");
  }
  auto parsed = events::ParsePolicies(doc, events::PolicyKeys::kConfig);
  if (!parsed.ok()) return parsed.status().WithPrefix("governance");
  c->governance = std::move(parsed).value();
  return Status::Ok();
}

Status ParseEvents(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "events", "EventBridge delivery settings"));
  events::DispatcherOptions& o = c->events;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = "events: " + key;
    int64_t n = 0;
    auto ms = [&](int64_t min, int64_t unit, std::chrono::milliseconds* out) -> Status {
      TY_RETURN_IF_ERROR(ReadCount(kv.second, at, min, &n));
      *out = std::chrono::milliseconds(std::min<int64_t>(n, 1000000000) * unit);
      return Status::Ok();
    };
    Status st;
    if (key == "delivery_workers") {
      st = ReadCount(kv.second, at, 1, &n);
      o.workers = static_cast<int>(std::min<int64_t>(n, 64));
    } else if (key == "max_retries") {
      st = ReadCount(kv.second, at, 0, &n);
      o.max_retries = static_cast<int>(std::min<int64_t>(n, 185));
    } else if (key == "max_event_age_seconds") {
      st = ms(1, 1000, &o.max_event_age);
    } else if (key == "backoff_initial_ms") {
      st = ms(1, 1, &o.backoff_initial);
    } else if (key == "backoff_max_ms") {
      st = ms(1, 1, &o.backoff_max);
    } else if (key == "poll_ms") {
      st = ms(10, 1, &o.poll);
    } else if (key == "keep_dead_letters") {
      st = ReadCount(kv.second, at, 1, &o.keep_dead_letters);
    } else if (key == "paused") {
      if (!kv.second.IsScalar()) return InvalidArgument(at + " must be true or false");
      o.paused = kv.second.as<bool>();
    } else {
      return InvalidArgument("events: unknown key '" + key + "'");
    }
    TY_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status ParseDebugger(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "debugger", "debugger rule settings"));
  auto& o = c->debugger;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = "debugger: " + key;
    int64_t n = 0;
    Status st;
    if (key == "threads") {
      st = ReadCount(kv.second, at, 1, &n);
      o.threads = static_cast<int>(std::min<int64_t>(n, 64));
    } else if (key == "poll_interval_ms") {
      st = ReadCount(kv.second, at, 10, &n);
      o.poll_interval_ms = std::min<int64_t>(n, 3600000);
    } else if (key == "max_tensor_mb") {
      st = ReadCount(kv.second, at, 1, &n);
      o.max_tensor_mb = std::min<int64_t>(n, 16384);
    } else if (key == "stop_grace_seconds") {
      st = ReadCount(kv.second, at, 0, &n);
      o.stop_grace_seconds = std::min<int64_t>(n, 86400);
    } else {
      return InvalidArgument("debugger: unknown key '" + key + "'");
    }
    TY_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status ParseSlurmTypes(const YAML::Node& v, launch::SlurmLauncherOptions* o) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "slurm: instance_types",
                              "instance type to {cpus, memory_mb, gres, constraint, partition}"));
  for (const auto& kv : v) {
    std::string type = kv.first.as<std::string>();
    std::string where = "slurm: instance_types: " + type;
    launch::SlurmResources r;
    if (!kv.second.IsNull()) {
      TY_RETURN_IF_ERROR(
          CheckMap(kv.second, where, "cpus, memory_mb, gres, constraint, partition"));
    }
    for (const auto& field : kv.second) {
      std::string key = field.first.as<std::string>();
      std::string at = where + ": " + key;
      int64_t n = 0;
      if (key == "cpus") {
        TY_RETURN_IF_ERROR(ReadCount(field.second, at, 1, &n));
        r.cpus = static_cast<int>(std::min<int64_t>(n, 100000));
      } else if (key == "memory_mb") {
        TY_RETURN_IF_ERROR(ReadCount(field.second, at, 1, &n));
        r.memory_mb = std::min<int64_t>(n, int64_t{1} << 40);
      } else if (key == "gres" || key == "constraint" || key == "partition") {
        std::string text;
        TY_RETURN_IF_ERROR(Read(field.second, at, "a string", &text));
        // Passed to sbatch as one argument of its own; still, keep it one plain line.
        if (text.size() > 256 || text.find_first_of("\n\r\t ") != std::string::npos) {
          return InvalidArgument(at + " must be one word of at most 256 characters");
        }
        (key == "gres" ? r.gres : key == "constraint" ? r.constraint : r.partition) = text;
      } else {
        return InvalidArgument(where + ": unknown key '" + key +
                               "' (cpus, memory_mb, gres, constraint, partition)");
      }
    }
    o->instance_types[type] = r;
  }
  return Status::Ok();
}

Status ParseSlurm(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "slurm", "Slurm launcher settings"));
  launch::SlurmLauncherOptions& o = c->slurm;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = "slurm: " + key;
    int64_t n = 0;
    Status st;
    auto word = [&](std::string* out) {
      Status r = Read(kv.second, at, "a string", out);
      if (r.ok() && (out->size() > 4096 || out->find_first_of("\n\r") != std::string::npos)) {
        r = InvalidArgument(at + " must be one line");
      }
      return r;
    };
    if (key == "spot_partition") {
      st = word(&o.spot_partition);
    } else if (key == "on_demand_partition") {
      st = word(&o.on_demand_partition);
    } else if (key == "server_url") {
      st = word(&o.server_url);
    } else if (key == "bin_dir") {
      st = word(&o.client.bin_dir);
    } else if (key == "slurm_conf") {
      st = word(&o.client.slurm_conf);
    } else if (key == "job_name_prefix") {
      st = word(&o.job_name_prefix);
      if (st.ok() && (o.job_name_prefix.empty() || o.job_name_prefix.size() > 64 ||
                      o.job_name_prefix.find_first_not_of(
                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") !=
                          std::string::npos)) {
        st = InvalidArgument(at + " must be 1 to 64 of [A-Za-z0-9_-]");
      }
    } else if (key == "agent_binary") {
      st = word(&o.agent_binary);
    } else if (key == "timeout_seconds") {
      st = ReadCount(kv.second, at, 1, &n);
      o.client.timeout = std::chrono::seconds(std::min<int64_t>(n, 600));
    } else if (key == "unknown_grace_seconds") {
      st = ReadCount(kv.second, at, 0, &n);
      o.unknown_grace = std::chrono::seconds(std::min<int64_t>(n, 86400));
    } else if (key == "require_instance_types") {
      st = Read(kv.second, at, "true or false", &o.require_instance_types);
    } else if (key == "sbatch_args") {
      st = Read(kv.second, at, "a list of sbatch options", &o.extra_sbatch_args);
      if (st.ok() && o.extra_sbatch_args.size() > 64) st = InvalidArgument(at + ": at most 64");
    } else if (key == "instance_types") {
      st = ParseSlurmTypes(kv.second, &o);
    } else {
      return InvalidArgument("slurm: unknown key '" + key + "'");
    }
    TY_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status ParseHttp(const YAML::Node& v, ServerConfig* c) {
  if (v.IsNull()) return Status::Ok();
  TY_RETURN_IF_ERROR(CheckMap(v, "http", "HTTP settings"));
  HttpServerOptions& o = c->http;
  for (const auto& kv : v) {
    std::string key = kv.first.as<std::string>();
    std::string at = "http: " + key;
    int64_t n = 0;
    auto count = [&](int64_t min, int* out) -> Status {
      TY_RETURN_IF_ERROR(ReadCount(kv.second, at, min, &n));
      *out = static_cast<int>(std::min<int64_t>(n, 1 << 24));
      return Status::Ok();
    };
    auto seconds = [&](std::chrono::milliseconds* out) -> Status {
      double s = 0;
      TY_RETURN_IF_ERROR(ReadNumber(kv.second, at, /*positive=*/true, &s));
      *out = std::chrono::milliseconds(static_cast<int64_t>(std::min(s, 1e9) * 1000));
      if (out->count() == 0) *out = std::chrono::milliseconds(1);
      return Status::Ok();
    };
    Status st;
    if (key == "io_threads")
      st = count(1, &o.io_threads);
    else if (key == "report_threads")
      st = count(1, &c->http_report_threads);
    else if (key == "head_timeout_seconds")
      st = seconds(&o.head_timeout);
    else if (key == "body_timeout_seconds")
      st = seconds(&o.body_timeout);
    else if (key == "idle_timeout_seconds")
      st = seconds(&o.idle_timeout);
    else if (key == "max_connections")
      st = count(1, &o.max_connections);
    else if (key == "max_connections_per_client")
      st = count(1, &o.max_connections_per_client);
    else if (key == "max_header_bytes") {
      st = ReadCount(kv.second, at, 1024, &n);
      o.max_header_bytes = static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 30));
    } else {
      return InvalidArgument("http: unknown key '" + key + "'");
    }
    TY_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

}  // namespace

Status ParseListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("--listen wants HOST:PORT, got '" + listen + "'");
  }
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  // Digits only: std::stoi alone would take " 80" and "+80".
  std::string digits = listen.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos || std::stoi(digits) > 65535) {
    return InvalidArgument("--listen has a bad port: '" + listen + "'");
  }
  *port = std::stoi(digits);
  return Status::Ok();
}

bool PathsOverlap(const std::string& a, const std::string& b) {
  auto within = [](const std::string& dir, const std::string& p) {
    if (dir == "/") return true;
    return p == dir ||
           (p.size() > dir.size() && p.compare(0, dir.size(), dir) == 0 && p[dir.size()] == '/');
  };
  return within(a, b) || within(b, a);
}

Result<std::vector<std::string>> CheckFileRoots(const std::vector<std::string>& roots,
                                                const std::string& data_dir,
                                                const std::string& what) {
  std::vector<std::string> out;
  for (const auto& r : roots) {
    auto real = RealPath(r);
    if (!real.ok()) return InvalidArgument(what + " " + r + ": " + real.status().message());
    if (PathsOverlap(*real, data_dir)) {
      return InvalidArgument(
          what + " " + r + " overlaps the data dir " + data_dir +
          ": jobs could read the server's credentials, database and agent tokens through "
          "file:// URIs. Give roots that neither contain nor lie inside the data dir, or move "
          "the data dir (--data-dir) elsewhere.");
    }
    out.push_back(*real);
  }
  return out;
}

Status LoadConfigFile(const std::string& path, ServerConfig* c) {
  try {
    TY_ASSIGN_OR_RETURN(YAML::Node root, LoadYamlFile(path));
    if (!root.IsMap()) return InvalidArgument(path + ": the config must be a YAML mapping");
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "listen") {
        c->listen = v.as<std::string>();
      } else if (key == "data_dir") {
        c->data_dir = v.as<std::string>();
      } else if (key == "region") {
        c->region = v.as<std::string>();
      } else if (key == "file_roots") {
        c->file_roots = v.as<std::vector<std::string>>();
      } else if (key == "accounts") {
        if (!v.IsNull() && !v.IsMap()) {
          return InvalidArgument(path + ": accounts must map 12-digit account ids to settings");
        }
        for (const auto& acc : v) {
          std::string id = acc.first.as<std::string>();
          if (id.size() != 12 || id.find_first_not_of("0123456789") != std::string::npos) {
            return InvalidArgument(path + ": accounts: '" + id + "' is not a 12-digit account id");
          }
          AccountConfig ac;
          for (const auto& field : acc.second) {
            std::string fk = field.first.as<std::string>();
            if (fk != "file_roots") {
              return InvalidArgument(path + ": accounts." + id + ": unknown key '" + fk + "'");
            }
            ac.file_roots = field.second.as<std::vector<std::string>>();
          }
          c->accounts[id] = std::move(ac);
        }
      } else if (key == "agent_log_buffer_lines") {
        c->agent_log_buffer_lines = v.as<int64_t>();
        if (c->agent_log_buffer_lines < 1) {
          return InvalidArgument(path + ": agent_log_buffer_lines must be at least 1");
        }
      } else if (key == "allow_shared_host") {
        c->allow_shared_host = v.as<bool>();
      } else if (key == "credentials_file") {
        c->credentials_file = v.as<std::string>();
      } else if (key == "python_dir") {
        c->python_dir = v.as<std::string>();
      } else if (key == "isolation") {
        c->isolation = v.as<std::string>();
        if (c->isolation != "auto" && c->isolation != "bwrap" && c->isolation != "none") {
          return InvalidArgument(path + ": isolation must be auto, bwrap or none");
        }
      } else if (key == "sandbox") {
        if (!v.IsMap()) return InvalidArgument(path + ": sandbox must be a mapping {uid, gid}");
        for (const auto& skv : v) {
          std::string sk = skv.first.as<std::string>();
          if (sk != "uid" && sk != "gid") {
            return InvalidArgument(path + ": unknown key sandbox." + sk + " (uid, gid)");
          }
          int64_t id = skv.second.as<int64_t>();
          // 0 would make the sandbox's root the host's root.
          if (id <= 0 || id >= 4294967295LL) {
            return InvalidArgument(path + ": sandbox." + sk + " must be a non-root uid/gid");
          }
          (sk == "uid" ? c->sandbox_uid : c->sandbox_gid) = static_cast<uint32_t>(id);
        }
      } else if (key == "network") {
        c->network = v.as<std::string>();
        if (!launch::ParseNetworkPolicy(c->network).ok()) {
          return InvalidArgument(path + ": network must be auto, namespaces or loopback");
        }
      } else if (key == "instance_limits") {
        c->instance_limits = v.as<bool>();
      } else if (key == "instance_volumes") {
        c->instance_volumes = v.as<std::string>();
        if (c->instance_volumes != "auto" && c->instance_volumes != "watch" &&
            c->instance_volumes != "off") {
          return InvalidArgument(path + ": instance_volumes must be auto, watch or off");
        }
      } else if (key == "stop_grace_seconds") {
        c->stop_grace = std::chrono::seconds(v.as<int64_t>());
      } else if (key == "max_body_bytes") {
        c->max_body_bytes = v.as<size_t>();
      } else if (key == "http_threads") {
        c->http_threads = v.as<int>();
      } else if (key == "images") {
        if (!v.IsNull() && !v.IsSequence()) {
          return InvalidArgument(path + ": images must be a list of entries");
        }
        for (const auto& img : v) {
          launch::ImageRule rule;
          rule.match = img["match"].as<std::string>();
          std::string runtime = img["runtime"] ? img["runtime"].as<std::string>() : "command";
          if (runtime == "python-framework") {
            rule.entry.runtime = model::ImageEntry::Runtime::kPythonFramework;
          } else if (runtime == "command") {
            rule.entry.runtime = model::ImageEntry::Runtime::kCommand;
            if (!img["command"]) {
              return InvalidArgument(path + ": image '" + rule.match + "' needs a command");
            }
            rule.entry.command = img["command"].as<std::vector<std::string>>();
          } else {
            return InvalidArgument(path + ": image runtime must be command or python-framework");
          }
          if (img["workdir"]) rule.entry.workdir = img["workdir"].as<std::string>();
          if (img["env"]) rule.entry.env = img["env"].as<std::map<std::string, std::string>>();
          c->images.push_back(std::move(rule));
        }
      } else if (key == "instance_types") {
        TY_RETURN_IF_ERROR(ParseInstanceTypes(v, &c->instance_types).WithPrefix(path));
      } else if (key == "capacity") {
        TY_RETURN_IF_ERROR(ParseCapacity(v, &c->capacity).WithPrefix(path));
      } else if (key == "spot") {
        TY_RETURN_IF_ERROR(ParseSpot(v, path, &c->spot).WithPrefix(path));
      } else if (key == "storage") {
        TY_RETURN_IF_ERROR(ParseStorage(v, c).WithPrefix(path));
      } else if (key == "http") {
        TY_RETURN_IF_ERROR(ParseHttp(v, c).WithPrefix(path));
      } else if (key == "metrics") {
        TY_RETURN_IF_ERROR(ParseMetrics(v, c).WithPrefix(path));
      } else if (key == "metrics_endpoint") {
        TY_RETURN_IF_ERROR(ParseMetricsEndpoint(v, c).WithPrefix(path));
      } else if (key == "governance") {
        TY_RETURN_IF_ERROR(ParseGovernance(v, c).WithPrefix(path));
      } else if (key == "events") {
        TY_RETURN_IF_ERROR(ParseEvents(v, c).WithPrefix(path));
      } else if (key == "debugger") {
        TY_RETURN_IF_ERROR(ParseDebugger(v, c).WithPrefix(path));
      } else if (key == "launcher") {
        c->launcher = v.as<std::string>();
        if (c->launcher != "local" && c->launcher != "slurm") {
          return InvalidArgument(path + ": launcher must be local or slurm");
        }
      } else if (key == "slurm") {
        TY_RETURN_IF_ERROR(ParseSlurm(v, c).WithPrefix(path));
      } else {
        return InvalidArgument(path + ": unknown config key '" + key + "'");
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": " + e.what());
  }
  return Status::Ok();
}

}  // namespace ty::server
