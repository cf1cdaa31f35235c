#include "services/sagemaker/debugger_request.h"

#include <algorithm>
#include <map>
#include <set>

namespace ty::services {

using nlohmann::json;

namespace {

// SageMaker's sagemaker-debugger-rules registries (the SDK's image_uri_config/debugger.json).
const std::map<std::string, std::string>& RulesAccounts() {
  static const std::map<std::string, std::string> kAccounts = {
      {"af-south-1", "314341159256"},     {"ap-east-1", "199566480951"},
      {"ap-northeast-1", "430734990657"}, {"ap-northeast-2", "578805364391"},
      {"ap-northeast-3", "479947661362"}, {"ap-south-1", "904829902805"},
      {"ap-southeast-1", "972752614525"}, {"ap-southeast-2", "184798709955"},
      {"ca-central-1", "519511493484"},   {"cn-north-1", "618459771430"},
      {"cn-northwest-1", "658757709296"}, {"eu-central-1", "482524230118"},
      {"eu-north-1", "314864569078"},     {"eu-south-1", "563282790590"},
      {"eu-west-1", "929884845733"},      {"eu-west-2", "250201462417"},
      {"eu-west-3", "447278800020"},      {"me-south-1", "986000313247"},
      {"sa-east-1", "818342061345"},      {"us-east-1", "503895931360"},
      {"us-east-2", "915447279597"},      {"us-gov-west-1", "515509971035"},
      {"us-west-1", "685455198987"},      {"us-west-2", "895741380848"},
  };
  return kAccounts;
}

std::string Str(const json& obj, const char* key, const std::string& dflt = "") {
  auto it = obj.find(key);
  return (it != obj.end() && it->is_string()) ? it->get<std::string>() : dflt;
}

bool Has(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && !obj.at(key).is_null();
}

std::map<std::string, std::string> StringMap(const json& obj, const char* key) {
  std::map<std::string, std::string> out;
  if (!Has(obj, key) || !obj.at(key).is_object()) return out;
  for (const auto& [k, v] : obj.at(key).items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

// A directory the training process writes and the agent syncs: under /opt/ml, not the
// input tree the agent writes, no "..".
Status CheckLocalPath(const std::string& what, const std::string& path) {
  if (path.rfind("/opt/ml/", 0) != 0 || path.find("..") != std::string::npos ||
      path.rfind("/opt/ml/input", 0) == 0 || path.find('\0') != std::string::npos) {
    return InvalidArgument(what + " must lie under /opt/ml/ (and not under /opt/ml/input) (got '" +
                           path + "').");
  }
  return Status::Ok();
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string part = s.substr(start, end - start);
    part.erase(0, part.find_first_not_of(" \t"));
    part.erase(part.find_last_not_of(" \t") + 1);
    if (!part.empty()) out.push_back(part);
    start = end + 1;
  }
  return out;
}

Result<std::vector<model::RuleSpec>> ParseRules(const json& body, const char* member,
                                                const RequestPolicy& policy,
                                                std::set<std::string>* names) {
  std::vector<model::RuleSpec> rules;
  if (!Has(body, member)) return rules;
  const json& list = body.at(member);
  if (!list.is_array()) return InvalidArgument(std::string(member) + " must be a list.");
  // The service model says so too; repeated here so the parser stands on its own.
  if (list.size() > 20) {
    return InvalidArgument(std::string(member) + " has " + std::to_string(list.size()) +
                           " rules; a training job can have at most 20.");
  }
  for (const auto& r : list) {
    model::RuleSpec rule;
    rule.configuration_name = Str(r, "RuleConfigurationName");
    const std::string where = std::string(member) + " '" + rule.configuration_name + "'";
    if (rule.configuration_name.empty()) {
      return InvalidArgument(std::string(member) + ": RuleConfigurationName is required.");
    }
    if (!names->insert(rule.configuration_name).second) {
      return InvalidArgument("RuleConfigurationName '" + rule.configuration_name +
                             "' is repeated; rule configuration names must be unique within a "
                             "training job.");
    }
    rule.evaluator_image = Str(r, "RuleEvaluatorImage");
    if (rule.evaluator_image.find("/detailed-profiler-processing:") != std::string::npos) {
      return InvalidArgument(where + ": RuleEvaluatorImage '" + rule.evaluator_image +
                             "' is SageMaker Profiler's detailed profiling, which is not "
                             "supported by Trainyard yet.");
    }
    if (!IsBuiltInRulesImage(rule.evaluator_image)) {
      return InvalidArgument(
          where + ": RuleEvaluatorImage '" + rule.evaluator_image +
          "' is not supported: custom rule images are not supported by Trainyard yet; use the "
          "built-in rules image of a region, <account>.dkr.ecr.<region>.amazonaws.com/"
          "sagemaker-debugger-rules:latest (e.g. 503895931360.dkr.ecr.us-east-1.amazonaws.com/"
          "sagemaker-debugger-rules:latest).");
    }
    rule.parameters = StringMap(r, "RuleParameters");
    auto invoke = rule.parameters.find("rule_to_invoke");
    if (invoke == rule.parameters.end() || invoke->second.empty()) {
      return InvalidArgument(where +
                             ": RuleParameters.rule_to_invoke is required (the built-in rule "
                             "to run, e.g. VanishingGradient).");
    }
    rule.rule = invoke->second;
    rule.local_path = Str(r, "LocalPath");
    rule.s3_output_path = Str(r, "S3OutputPath");
    if (!rule.s3_output_path.empty()) {
      TY_RETURN_IF_ERROR(CheckUri(where + " S3OutputPath", rule.s3_output_path, policy));
    }
    rule.instance_type = Str(r, "InstanceType");
    if (Has(r, "VolumeSizeInGB") && r.at("VolumeSizeInGB").is_number_integer()) {
      rule.volume_size_gb = r.at("VolumeSizeInGB").get<int>();
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace

bool IsBuiltInRulesImage(const std::string& image) {
  // <account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-debugger-rules:latest
  static const std::string kRepo = "/sagemaker-debugger-rules:latest";
  if (image.size() <= kRepo.size() ||
      image.compare(image.size() - kRepo.size(), kRepo.size(), kRepo) != 0) {
    return false;
  }
  const std::string host = image.substr(0, image.size() - kRepo.size());
  size_t dot = host.find('.');
  if (dot == std::string::npos) return false;
  const std::string account = host.substr(0, dot);
  static const std::string kEcr = ".dkr.ecr.";
  if (host.compare(dot, kEcr.size(), kEcr) != 0) return false;
  std::string rest = host.substr(dot + kEcr.size());  // <region>.amazonaws.com[.cn]
  size_t rdot = rest.find('.');
  if (rdot == std::string::npos) return false;
  const std::string region = rest.substr(0, rdot);
  const std::string domain = rest.substr(rdot);
  const bool china = region.rfind("cn-", 0) == 0;
  if (domain != (china ? ".amazonaws.com.cn" : ".amazonaws.com")) return false;
  auto it = RulesAccounts().find(region);
  return it != RulesAccounts().end() && it->second == account;
}

std::vector<model::CollectionConfig> RuleCollections(const std::string& rule) {
  // smdebug_rulesconfig's ruleConfigs.json (spec section 2.5); every interval is "500".
  using P = std::map<std::string, std::string>;
  if (rule == "VanishingGradient") return {{"gradients", P{{"save_interval", "500"}}}};
  if (rule == "LossNotDecreasing") return {{"losses", P{{"save_interval", "500"}}}};
  if (rule == "WeightUpdateRatio") return {{"weights", P{{"save_interval", "500"}}}};
  if (rule == "DeadRelu") {
    return {{"relu_output", P{{"include_regex", ".*relu_output"}, {"save_interval", "500"}}}};
  }
  if (rule == "PoorWeightInitialization") {
    return {{"relu_input", P{{"include_regex", ".*relu_input"}, {"save_interval", "500"}}}};
  }
  if (rule == "CheckInputImages") {
    return {{"input_image",
             P{{"include_regex", ".*hybridsequential0_input_0"}, {"save_interval", "500"}}}};
  }
  if (rule == "NLPSequenceRatio") {
    return {
        {"input_sequence", P{{"include_regex", ".*embedding0_input_0"}, {"save_interval", "500"}}}};
  }
  if (rule == "FeatureImportanceOverweight") {
    return {{"feature_importance", P{{"save_interval", "500"}}}};
  }
  if (rule == "CreateXgboostReport") {
    return {{"metrics", P{{"save_interval", "5"}}},
            {"feature_importance", P{{"save_interval", "5"}}},
            {"predictions", P{{"save_interval", "5"}}},
            {"labels", P{{"save_interval", "5"}}},
            {"hyperparameters", P{{"save_steps", "0"}}}};
  }
  return {};
}

void MergeRuleCollections(const model::RuleSpec& rule,
                          std::vector<model::CollectionConfig>* collections) {
  std::vector<model::CollectionConfig> wanted = RuleCollections(rule.rule);
  if (auto it = rule.parameters.find("collection_names"); it != rule.parameters.end()) {
    for (const auto& name : SplitCommas(it->second)) wanted.push_back({name, {}});
  }
  for (auto& w : wanted) {
    auto have = std::find_if(collections->begin(), collections->end(),
                             [&](const model::CollectionConfig& c) { return c.name == w.name; });
    if (have == collections->end()) {
      collections->push_back(std::move(w));
      continue;
    }
    // The user's (or an earlier rule's) parameters win; only missing keys are filled.
    for (auto& [k, v] : w.parameters) have->parameters.emplace(k, v);
  }
}

Status ParseDebuggerMembers(const json& body, const RequestPolicy& policy, model::JobSpec* spec) {
  // DebugHookConfig.
  if (Has(body, "DebugHookConfig")) {
    const json& h = body.at("DebugHookConfig");
    model::DebugHookSpec hook;
    hook.s3_output_path = Str(h, "S3OutputPath");
    TY_RETURN_IF_ERROR(CheckUri("DebugHookConfig.S3OutputPath", hook.s3_output_path, policy));
    hook.local_path = Str(h, "LocalPath", hook.local_path);
    if (hook.local_path.empty()) hook.local_path = "/opt/ml/output/tensors";
    TY_RETURN_IF_ERROR(CheckLocalPath("DebugHookConfig.LocalPath", hook.local_path));
    hook.hook_parameters = StringMap(h, "HookParameters");
    std::set<std::string> seen;
    if (Has(h, "CollectionConfigurations") && h.at("CollectionConfigurations").is_array()) {
      for (const auto& c : h.at("CollectionConfigurations")) {
        model::CollectionConfig cc;
        cc.name = Str(c, "CollectionName");
        if (cc.name.empty()) {
          return InvalidArgument(
              "DebugHookConfig.CollectionConfigurations: CollectionName is "
              "required.");
        }
        if (!seen.insert(cc.name).second) {
          return InvalidArgument("DebugHookConfig.CollectionConfigurations: collection '" +
                                 cc.name + "' is repeated.");
        }
        cc.parameters = StringMap(c, "CollectionParameters");
        hook.collections.push_back(std::move(cc));
      }
    }
    spec->debug_hook = std::move(hook);
  }

  std::set<std::string> names;
  TY_ASSIGN_OR_RETURN(spec->debug_rules,
                      ParseRules(body, "DebugRuleConfigurations", policy, &names));
  TY_ASSIGN_OR_RETURN(spec->profiler_rules,
                      ParseRules(body, "ProfilerRuleConfigurations", policy, &names));

  // The rules' collections reach the hook through its config (spec section 2.5); rules with no
  // DebugHookConfig get a hook writing under the job's output path, as SageMaker does.
  if (!spec->debug_rules.empty() && !spec->debug_hook) {
    model::DebugHookSpec hook;
    hook.s3_output_path = spec->output_path;
    spec->debug_hook = std::move(hook);
  }
  for (const auto& r : spec->debug_rules) MergeRuleCollections(r, &spec->debug_hook->collections);

  // TensorBoardOutputConfig.
  if (Has(body, "TensorBoardOutputConfig")) {
    const json& t = body.at("TensorBoardOutputConfig");
    model::TensorBoardSpec tb;
    tb.s3_output_path = Str(t, "S3OutputPath");
    TY_RETURN_IF_ERROR(CheckUri("TensorBoardOutputConfig.S3OutputPath", tb.s3_output_path, policy));
    tb.local_path = Str(t, "LocalPath", tb.local_path);
    if (tb.local_path.empty()) tb.local_path = "/opt/ml/output/tensorboard";
    TY_RETURN_IF_ERROR(CheckLocalPath("TensorBoardOutputConfig.LocalPath", tb.local_path));
    if (spec->debug_hook && spec->debug_hook->local_path == tb.local_path) {
      return InvalidArgument(
          "TensorBoardOutputConfig.LocalPath must differ from "
          "DebugHookConfig.LocalPath ('" +
          tb.local_path + "').");
    }
    spec->tensorboard = std::move(tb);
  }

  // ProfilerConfig: system metrics only; framework profiling is refused by name.
  if (Has(body, "ProfilerConfig")) {
    const json& p = body.at("ProfilerConfig");
    model::ProfilerSpec prof;
    prof.s3_output_path = Str(p, "S3OutputPath", spec->output_path);
    if (prof.s3_output_path.empty()) prof.s3_output_path = spec->output_path;
    TY_RETURN_IF_ERROR(CheckUri("ProfilerConfig.S3OutputPath", prof.s3_output_path, policy));
    if (Has(p, "DisableProfiler") && p.at("DisableProfiler").is_boolean()) {
      prof.disabled = p.at("DisableProfiler").get<bool>();
    }
    if (Has(p, "ProfilingIntervalInMilliseconds")) {
      const json& v = p.at("ProfilingIntervalInMilliseconds");
      const bool allowed =
          v.is_number_integer() &&
          std::find(std::begin(kProfilingIntervalsMs), std::end(kProfilingIntervalsMs),
                    v.get<int64_t>()) != std::end(kProfilingIntervalsMs);
      if (!allowed) {
        return InvalidArgument("Invalid ProfilerConfig.ProfilingIntervalInMilliseconds " +
                               v.dump() +
                               ": it must be one of 100, 200, 500, 1000, 5000 or 60000.");
      }
      prof.interval_ms = v.get<int64_t>();
    }
    if (Has(p, "ProfilingParameters") && p.at("ProfilingParameters").is_object() &&
        !p.at("ProfilingParameters").empty()) {
      std::string keys;
      for (const auto& [k, v] : p.at("ProfilingParameters").items()) {
        keys += (keys.empty() ? "" : ", ") + k;
      }
      return InvalidArgument("ProfilerConfig.ProfilingParameters (" + keys +
                             ") is not supported by Trainyard yet: framework profiling is not "
                             "available; system metrics are (ProfilingIntervalInMilliseconds).");
    }
    spec->profiler = std::move(prof);
  }
  if (!spec->profiler_rules.empty()) {
    if (spec->profiler && spec->profiler->disabled) {
      return InvalidArgument(
          "ProfilerRuleConfigurations need the profiler, but "
          "ProfilerConfig.DisableProfiler is true.");
    }
    if (!spec->profiler) {
      model::ProfilerSpec prof;
      prof.s3_output_path = spec->output_path;
      spec->profiler = std::move(prof);
    }
  }
  return Status::Ok();
}

}  // namespace ty::services
