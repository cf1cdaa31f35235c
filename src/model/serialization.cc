#include "model/serialization.h"

namespace ty::model {

using nlohmann::json;

namespace {

json RulesToJson(const std::vector<RuleSpec>& rules) {
  json arr = json::array();
  for (const auto& r : rules) {
    arr.push_back({{"configuration_name", r.configuration_name},
                   {"evaluator_image", r.evaluator_image},
                   {"rule", r.rule},
                   {"parameters", r.parameters},
                   {"local_path", r.local_path},
                   {"s3_output_path", r.s3_output_path},
                   {"instance_type", r.instance_type},
                   {"volume_size_gb", r.volume_size_gb}});
  }
  return arr;
}

}  // namespace

json SpecToJson(const JobSpec& s) {
  json channels = json::array();
  for (const auto& c : s.channels) {
    channels.push_back({{"name", c.name},
                        {"uri", c.uri},
                        {"content_type", c.content_type},
                        {"input_mode", c.input_mode},
                        {"data_type", c.data_type},
                        {"distribution_type", c.distribution_type},
                        {"record_wrapper_type", c.record_wrapper_type},
                        {"compression_type", c.compression_type}});
  }
  json metrics = json::array();
  for (const auto& m : s.metric_definitions)
    metrics.push_back({{"name", m.name}, {"regex", m.regex}});
  json j = {{"name", s.name},
            {"training_image", s.training_image},
            {"training_input_mode", s.training_input_mode},
            {"container_entrypoint", s.container_entrypoint},
            {"container_arguments", s.container_arguments},
            {"metric_definitions", metrics},
            {"hyperparameters", s.hyperparameters},
            {"environment", s.environment},
            {"channels", channels},
            {"output_path", s.output_path},
            {"compress_output", s.compress_output},
            {"instance_type", s.instance_type},
            {"instance_count", s.instance_count},
            {"volume_size_gb", s.volume_size_gb},
            {"max_runtime_seconds", s.max_runtime.count()},
            {"managed_spot", s.managed_spot},
            {"checkpoint_local_path", s.checkpoint_local_path},
            {"max_retry_attempts", s.max_retry_attempts},
            {"network_isolation", s.network_isolation}};
  if (s.max_wait) j["max_wait_seconds"] = s.max_wait->count();
  if (s.checkpoint_uri) j["checkpoint_uri"] = *s.checkpoint_uri;
  if (s.debug_hook) {
    json collections = json::array();
    for (const auto& c : s.debug_hook->collections) {
      collections.push_back({{"name", c.name}, {"parameters", c.parameters}});
    }
    j["debug_hook"] = {{"s3_output_path", s.debug_hook->s3_output_path},
                       {"local_path", s.debug_hook->local_path},
                       {"hook_parameters", s.debug_hook->hook_parameters},
                       {"collections", collections}};
  }
  if (!s.debug_rules.empty()) j["debug_rules"] = RulesToJson(s.debug_rules);
  if (s.tensorboard) {
    j["tensorboard"] = {{"s3_output_path", s.tensorboard->s3_output_path},
                        {"local_path", s.tensorboard->local_path}};
  }
  if (s.profiler) {
    j["profiler"] = {{"s3_output_path", s.profiler->s3_output_path},
                     {"interval_ms", s.profiler->interval_ms},
                     {"disabled", s.profiler->disabled}};
  }
  if (!s.profiler_rules.empty()) j["profiler_rules"] = RulesToJson(s.profiler_rules);
  return j;
}

namespace {

template <typename T>
void Get(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) *out = it->get<T>();
}

std::vector<RuleSpec> RulesFromJson(const json& j, const char* key) {
  std::vector<RuleSpec> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& e : *it) {
    RuleSpec r;
    Get(e, "configuration_name", &r.configuration_name);
    Get(e, "evaluator_image", &r.evaluator_image);
    Get(e, "rule", &r.rule);
    Get(e, "parameters", &r.parameters);
    Get(e, "local_path", &r.local_path);
    Get(e, "s3_output_path", &r.s3_output_path);
    Get(e, "instance_type", &r.instance_type);
    Get(e, "volume_size_gb", &r.volume_size_gb);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

Result<JobSpec> SpecFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("job spec is not a JSON object");
  JobSpec s;
  try {
    Get(j, "name", &s.name);
    Get(j, "training_image", &s.training_image);
    Get(j, "training_input_mode", &s.training_input_mode);
    Get(j, "container_entrypoint", &s.container_entrypoint);
    Get(j, "container_arguments", &s.container_arguments);
    if (auto it = j.find("metric_definitions"); it != j.end()) {
      for (const auto& m : *it) s.metric_definitions.push_back({m.at("name"), m.at("regex")});
    }
    Get(j, "hyperparameters", &s.hyperparameters);
    Get(j, "environment", &s.environment);
    if (auto it = j.find("channels"); it != j.end()) {
      for (const auto& c : *it) {
        Channel ch;
        Get(c, "name", &ch.name);
        Get(c, "uri", &ch.uri);
        Get(c, "content_type", &ch.content_type);
        Get(c, "input_mode", &ch.input_mode);
        Get(c, "data_type", &ch.data_type);
        Get(c, "distribution_type", &ch.distribution_type);
        Get(c, "record_wrapper_type", &ch.record_wrapper_type);
        Get(c, "compression_type", &ch.compression_type);
        s.channels.push_back(std::move(ch));
      }
    }
    Get(j, "output_path", &s.output_path);
    Get(j, "compress_output", &s.compress_output);
    Get(j, "instance_type", &s.instance_type);
    Get(j, "instance_count", &s.instance_count);
    Get(j, "volume_size_gb", &s.volume_size_gb);
    int64_t secs = s.max_runtime.count();
    Get(j, "max_runtime_seconds", &secs);
    s.max_runtime = std::chrono::seconds(secs);
    if (j.contains("max_wait_seconds")) {
      s.max_wait = std::chrono::seconds(j.at("max_wait_seconds").get<int64_t>());
    }
    Get(j, "managed_spot", &s.managed_spot);
    if (j.contains("checkpoint_uri")) s.checkpoint_uri = j.at("checkpoint_uri").get<std::string>();
    Get(j, "checkpoint_local_path", &s.checkpoint_local_path);
    Get(j, "max_retry_attempts", &s.max_retry_attempts);
    Get(j, "network_isolation", &s.network_isolation);
    if (auto it = j.find("debug_hook"); it != j.end() && it->is_object()) {
      DebugHookSpec h;
      Get(*it, "s3_output_path", &h.s3_output_path);
      Get(*it, "local_path", &h.local_path);
      Get(*it, "hook_parameters", &h.hook_parameters);
      if (auto c = it->find("collections"); c != it->end()) {
        for (const auto& e : *c) {
          CollectionConfig cc;
          Get(e, "name", &cc.name);
          Get(e, "parameters", &cc.parameters);
          h.collections.push_back(std::move(cc));
        }
      }
      s.debug_hook = std::move(h);
    }
    s.debug_rules = RulesFromJson(j, "debug_rules");
    if (auto it = j.find("tensorboard"); it != j.end() && it->is_object()) {
      TensorBoardSpec t;
      Get(*it, "s3_output_path", &t.s3_output_path);
      Get(*it, "local_path", &t.local_path);
      s.tensorboard = std::move(t);
    }
    if (auto it = j.find("profiler"); it != j.end() && it->is_object()) {
      ProfilerSpec p;
      Get(*it, "s3_output_path", &p.s3_output_path);
      Get(*it, "interval_ms", &p.interval_ms);
      Get(*it, "disabled", &p.disabled);
      s.profiler = std::move(p);
    }
    s.profiler_rules = RulesFromJson(j, "profiler_rules");
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed job spec: ") + e.what());
  }
  return s;
}

json TransitionsToJson(const std::vector<StatusTransition>& transitions) {
  json arr = json::array();
  for (const auto& t : transitions) {
    json e = {
        {"status", Name(t.status)}, {"start_ms", ToEpochMillis(t.start)}, {"message", t.message}};
    if (t.end) e["end_ms"] = ToEpochMillis(*t.end);
    arr.push_back(std::move(e));
  }
  return arr;
}

Result<std::vector<StatusTransition>> TransitionsFromJson(const json& j) {
  std::vector<StatusTransition> out;
  if (!j.is_array()) return InvalidArgument("transitions are not a JSON array");
  try {
    for (const auto& e : j) {
      auto status = ParseSecondaryStatus(e.at("status").get<std::string>());
      if (!status) return InvalidArgument("unknown secondary status in transitions");
      StatusTransition t{*status, FromEpochMillis(e.at("start_ms").get<int64_t>()), std::nullopt,
                         e.value("message", "")};
      if (e.contains("end_ms")) t.end = FromEpochMillis(e.at("end_ms").get<int64_t>());
      out.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed transitions: ") + e.what());
  }
  return out;
}

json FinalMetricsToJson(const std::vector<FinalMetric>& metrics) {
  json arr = json::array();
  for (const auto& m : metrics) {
    arr.push_back(
        {{"name", m.name}, {"value", m.value}, {"timestamp_ms", ToEpochMillis(m.timestamp)}});
  }
  return arr;
}

Result<std::vector<FinalMetric>> FinalMetricsFromJson(const json& j) {
  std::vector<FinalMetric> out;
  if (!j.is_array()) return InvalidArgument("final metrics are not a JSON array");
  try {
    for (const auto& e : j) {
      out.push_back({e.at("name").get<std::string>(), e.at("value").get<double>(),
                     FromEpochMillis(e.at("timestamp_ms").get<int64_t>())});
    }
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed final metrics: ") + e.what());
  }
  return out;
}

}  // namespace ty::model

namespace ty::model {

namespace {

void PutTime(json* j, const char* key, const std::optional<TimePoint>& t) {
  if (t) (*j)[key] = ToEpochMillis(*t);
}

std::optional<TimePoint> GetTime(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return FromEpochMillis(it->get<int64_t>());
}

}  // namespace

json RuntimeToJson(const JobRecord& job) {
  json interruptions = json::array();
  for (const auto& i : job.interruptions) {
    interruptions.push_back({{"attempt", i.attempt},
                             {"time_ms", ToEpochMillis(i.time)},
                             {"cause", i.cause},
                             {"lost_ms", i.lost_ms}});
  }
  json j = {{"queued", job.queued},
            {"retries", job.retries},
            {"run_ms", job.run_ms},
            {"billable_ms", job.billable_ms},
            {"attempt_on_spot", job.attempt_on_spot},
            {"attempt_price_fraction", job.attempt_price_fraction},
            {"attempt_notice_ms", job.attempt_notice_ms},
            {"interruptions", interruptions}};
  if (!job.instances_exited.empty()) j["instances_exited"] = job.instances_exited;
  PutTime(&j, "attempt_run_start_ms", job.attempt_run_start);
  PutTime(&j, "interruption_at_ms", job.interruption_at);
  PutTime(&j, "notice_deadline_ms", job.notice_deadline);
  PutTime(&j, "last_checkpoint_ms", job.last_checkpoint);
  return j;
}

Status RuntimeFromJson(const json& j, JobRecord* job) {
  if (!j.is_object()) return InvalidArgument("job runtime is not a JSON object");
  try {
    Get(j, "queued", &job->queued);
    Get(j, "retries", &job->retries);
    Get(j, "run_ms", &job->run_ms);
    Get(j, "billable_ms", &job->billable_ms);
    Get(j, "attempt_on_spot", &job->attempt_on_spot);
    Get(j, "attempt_price_fraction", &job->attempt_price_fraction);
    Get(j, "attempt_notice_ms", &job->attempt_notice_ms);
    job->attempt_run_start = GetTime(j, "attempt_run_start_ms");
    job->interruption_at = GetTime(j, "interruption_at_ms");
    job->notice_deadline = GetTime(j, "notice_deadline_ms");
    job->last_checkpoint = GetTime(j, "last_checkpoint_ms");
    job->instances_exited.clear();
    if (auto it = j.find("instances_exited"); it != j.end() && it->is_array()) {
      for (const auto& e : *it) job->instances_exited.push_back(e.get<bool>());
    }
    job->interruptions.clear();
    if (auto it = j.find("interruptions"); it != j.end() && it->is_array()) {
      for (const auto& e : *it) {
        job->interruptions.push_back({e.at("attempt").get<int>(),
                                      FromEpochMillis(e.at("time_ms").get<int64_t>()),
                                      e.value("cause", ""), e.value("lost_ms", int64_t{0})});
      }
    }
  } catch (const json::exception& e) {
    return InvalidArgument(std::string("malformed job runtime: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace ty::model
