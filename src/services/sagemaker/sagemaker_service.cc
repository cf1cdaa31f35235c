#include "services/sagemaker/sagemaker_service.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "api/validator.h"
#include "common/crypto.h"
#include "common/json.h"
#include "services/sagemaker/search.h"
#include "services/sagemaker/training_job_response.h"

namespace ty::services {

using api::JobNotFound;
using api::RawJson;
using api::ToApiError;
using api::Validation;
using nlohmann::json;

namespace {

// Request bytes (headers, paths, job output) need not be valid UTF-8: replace
// bad sequences rather than let the serializer throw.
std::string DumpJson(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Offsets as pagination tokens, tagged so a token from another call is refused.
std::string MakeToken(const char* kind, int64_t offset) {
  return std::string(kind) + "-" + std::to_string(offset);
}

bool ParseToken(const json& body, const char* kind, int64_t* offset) {
  *offset = 0;
  if (!body.contains("NextToken")) return true;
  std::string token = body.at("NextToken").get<std::string>();
  std::string prefix = std::string(kind) + "-";
  if (token.rfind(prefix, 0) != 0) return false;
  try {
    size_t used = 0;
    *offset = std::stoll(token.substr(prefix.size()), &used);
    return used == token.size() - prefix.size() && *offset >= 0;
  } catch (...) {
    return false;
  }
}

std::optional<int64_t> TimeMillis(const json& body, const char* key) {
  if (!body.contains(key)) return std::nullopt;
  const json& v = body.at(key);
  if (v.is_number()) return static_cast<int64_t>(v.get<double>() * 1000.0);
  TimePoint t;
  if (v.is_string() && ParseIso8601(v.get<std::string>(), &t)) return ToEpochMillis(t);
  return std::nullopt;
}

}  // namespace

SageMakerService::SageMakerService(SageMakerOptions options, control::JobController* controller,
                                   store::Store* store, const Clock* clock)
    : options_(std::move(options)),
      model_(api::ServiceModel::Embedded("sagemaker")),
      controller_(controller),
      store_(store),
      clock_(clock) {}

api::ServiceOutcome SageMakerService::Call(const api::CallContext& ctx, const api::Operation& op,
                                           const json& body) {
  using Handler = Outcome (SageMakerService::*)(const Caller&, const json&);
  static const std::pair<const char*, Handler> kOps[] = {
      {"CreateTrainingJob", &SageMakerService::CreateTrainingJob},
      {"DescribeTrainingJob", &SageMakerService::DescribeTrainingJob},
      {"ListTrainingJobs", &SageMakerService::ListTrainingJobs},
      {"StopTrainingJob", &SageMakerService::StopTrainingJob},
      {"DeleteTrainingJob", &SageMakerService::DeleteTrainingJob},
      {"AddTags", &SageMakerService::AddTags},
      {"ListTags", &SageMakerService::ListTags},
      {"DeleteTags", &SageMakerService::DeleteTags},
      {"Search", &SageMakerService::Search},
      {"DescribeProcessingJob", &SageMakerService::DescribeProcessingJob},
  };
  for (const auto& [name, handler] : kOps) {
    if (op.name == name) return (this->*handler)(ctx.caller, body);
  }
  return ApiError{"UnknownOperationException", "Unknown operation '" + op.name + "'.", 400};
}

SageMakerService::Outcome SageMakerService::CreateTrainingJob(const Caller& caller,
                                                              const json& body) {
  auto spec = ParseCreateTrainingJob(body, options_.policy.ForAccount(caller.account_id));
  if (!spec.ok()) return ToApiError(spec.status());
  std::vector<store::Tag> tags;
  if (body.contains("Tags")) {
    for (const auto& t : body.at("Tags")) tags.push_back({t.at("Key"), t.at("Value")});
  }
  if (options_.admission != nullptr) {
    Status admitted = options_.admission->Admit(caller.account_id, *spec, tags);
    if (!admitted.ok()) return ToApiError(admitted);
  }
  std::string name = spec->name;
  auto record = controller_->Submit(caller.account_id, std::move(spec).value(), body.dump(), tags);
  if (!record.ok()) {
    if (record.status().code() == StatusCode::kAlreadyExists) {
      return ApiError{"ResourceInUse",
                      "Training job names must be unique within an AWS account and region, and a "
                      "training job with this name already exists (" +
                          model::TrainingJobArn(options_.region, caller.account_id, name) + ")",
                      400};
    }
    return ToApiError(record.status());
  }
  return json{{"TrainingJobArn", record->arn}};
}

SageMakerService::Outcome SageMakerService::DescribeTrainingJob(const Caller& caller,
                                                                const json& body) {
  std::string name = body.at("TrainingJobName").get<std::string>();
  auto version = store_->GetJobVersion(caller.account_id, name);
  if (!version.ok()) {
    return version.status().code() == StatusCode::kNotFound ? JobNotFound()
                                                            : ToApiError(version.status());
  }
  std::string key = caller.account_id + "/" + name;
  {
    MutexLock lock(&cache_mu_);
    auto it = describe_cache_.find(key);
    if (it != describe_cache_.end() && it->second.id == version->id &&
        it->second.version == version->version) {
      return RawJson{it->second.body};
    }
  }
  auto job = store_->GetJob(caller.account_id, name);
  if (!job.ok()) {
    return job.status().code() == StatusCode::kNotFound ? JobNotFound() : ToApiError(job.status());
  }
  // The job may have moved on since its version was read; then the entry is
  // newer than its key and the next call simply renders again.
  // Read after the version: a rendering is never older than the key it is cached under.
  std::vector<model::RuleEvaluation> rules;
  if (!job->spec.debug_rules.empty() || !job->spec.profiler_rules.empty()) {
    auto stored = store_->RuleEvaluations(job->arn);
    if (!stored.ok()) return ToApiError(stored.status());
    rules = std::move(stored).value();
  }
  std::string rendered = DumpJson(DescribeJson(*job, rules));
  {
    MutexLock lock(&cache_mu_);
    if (describe_cache_.size() >= kDescribeCacheEntries) describe_cache_.clear();
    describe_cache_[key] = {version->id, version->version, rendered};
  }
  return RawJson{std::move(rendered)};
}

SageMakerService::Outcome SageMakerService::DescribeProcessingJob(const Caller& caller,
                                                                  const json& body) {
  // The only processing jobs here are rule evaluations, and only the caller's own are found.
  const std::string name = body.at("ProcessingJobName").get<std::string>();
  auto not_found = [&] {
    return ApiError{"ResourceNotFound",
                    "Processing job arn:aws:sagemaker:" + options_.region + ":" +
                        caller.account_id + ":processing-job/" + name + " does not exist.",
                    400};
  };
  auto rule = store_->RuleEvaluationByName(caller.account_id, name);
  if (!rule.ok()) {
    return rule.status().code() == StatusCode::kNotFound ? not_found() : ToApiError(rule.status());
  }
  auto job = store_->GetJobByArn(rule->job_arn);
  if (!job.ok() || job->account != caller.account_id) return not_found();
  return ProcessingJobJson(*job, *rule);
}

SageMakerService::Outcome SageMakerService::ListTrainingJobs(const Caller& caller,
                                                             const json& body) {
  store::JobQuery q;
  q.account = caller.account_id;
  q.created_after_ms = TimeMillis(body, "CreationTimeAfter");
  q.created_before_ms = TimeMillis(body, "CreationTimeBefore");
  q.modified_after_ms = TimeMillis(body, "LastModifiedTimeAfter");
  q.modified_before_ms = TimeMillis(body, "LastModifiedTimeBefore");
  q.name_contains = body.value("NameContains", "");
  if (body.contains("StatusEquals")) {
    q.status = model::ParseTrainingJobStatus(body.at("StatusEquals").get<std::string>());
  }
  if (body.contains("WarmPoolStatusEquals")) {
    return json{{"TrainingJobSummaries", json::array()}};  // no warm pools here
  }
  if (body.contains("TrainingPlanArnEquals")) {
    return json{{"TrainingJobSummaries", json::array()}};  // no training plans here
  }
  std::string sort_by = body.value("SortBy", "CreationTime");
  q.sort_by = sort_by == "Name"     ? store::JobQuery::SortBy::kName
              : sort_by == "Status" ? store::JobQuery::SortBy::kStatus
                                    : store::JobQuery::SortBy::kCreationTime;
  q.ascending = body.value("SortOrder", "Ascending") == "Ascending";
  int64_t max_results = body.value("MaxResults", 10);
  if (!ParseToken(body, "ltj", &q.offset)) return Validation("Invalid pagination token.");
  q.limit = max_results + 1;  // one extra tells whether another page exists
  auto jobs = store_->ListJobs(q);
  if (!jobs.ok()) return ToApiError(jobs.status());
  json out = {{"TrainingJobSummaries", json::array()}};
  for (size_t i = 0; i < jobs->size() && static_cast<int64_t>(i) < max_results; ++i) {
    out["TrainingJobSummaries"].push_back(SummaryJson((*jobs)[i]));
  }
  if (static_cast<int64_t>(jobs->size()) > max_results) {
    out["NextToken"] = MakeToken("ltj", q.offset + max_results);
  }
  return out;
}

SageMakerService::Outcome SageMakerService::StopTrainingJob(const Caller& caller,
                                                            const json& body) {
  Status s = controller_->Stop(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (s.code() == StatusCode::kNotFound) return JobNotFound();
  if (!s.ok()) return ToApiError(s);
  return json::object();
}

SageMakerService::Outcome SageMakerService::DeleteTrainingJob(const Caller& caller,
                                                              const json& body) {
  // The store drops the job's tags, logs and metrics with it.
  Status s = controller_->Delete(caller.account_id, body.at("TrainingJobName").get<std::string>());
  if (s.code() == StatusCode::kNotFound) return JobNotFound();
  if (!s.ok()) return ToApiError(s);
  return json::object();
}

Result<model::JobRecord> SageMakerService::JobForArn(const Caller& caller, const std::string& arn) {
  auto job = store_->GetJobByArn(arn);
  if (!job.ok() || job->account != caller.account_id) return NotFound("Resource does not exist");
  return job;
}

SageMakerService::Outcome SageMakerService::AddTags(const Caller& caller, const json& body) {
  std::string arn = body.at("ResourceArn").get<std::string>();
  auto job = JobForArn(caller, arn);
  if (!job.ok()) return ToApiError(job.status());
  auto existing = store_->GetTags(job->arn);
  if (!existing.ok()) return ToApiError(existing.status());
  std::vector<store::Tag> tags;
  std::set<std::string> keys;
  for (const auto& t : existing.value()) keys.insert(t.key);
  for (const auto& t : body.at("Tags")) {
    std::string key = t.at("Key").get<std::string>();
    if (key.rfind("aws:", 0) == 0) {
      return Validation("Tag keys beginning with 'aws:' are reserved for AWS use: " + key);
    }
    keys.insert(key);
    tags.push_back({key, t.at("Value").get<std::string>()});
  }
  if (keys.size() > 50) {
    return ApiError{"ResourceLimitExceeded",
                    "A resource can have at most 50 tags; this request would leave " +
                        std::to_string(keys.size()) + ".",
                    400};
  }
  Status s = store_->SetTags(job->arn, tags);
  if (!s.ok()) return ToApiError(s);
  auto all = store_->GetTags(job->arn);
  if (!all.ok()) return ToApiError(all.status());
  json out = {{"Tags", json::array()}};
  for (const auto& t : *all) out["Tags"].push_back({{"Key", t.key}, {"Value", t.value}});
  return out;
}

SageMakerService::Outcome SageMakerService::ListTags(const Caller& caller, const json& body) {
  auto job = JobForArn(caller, body.at("ResourceArn").get<std::string>());
  if (!job.ok()) return ToApiError(job.status());
  auto tags = store_->GetTags(job->arn);
  if (!tags.ok()) return ToApiError(tags.status());
  int64_t offset = 0;
  if (!ParseToken(body, "lt", &offset)) return Validation("Invalid pagination token.");
  int64_t max_results = body.value("MaxResults", 50);
  json out = {{"Tags", json::array()}};
  for (int64_t i = offset; i < static_cast<int64_t>(tags->size()) && i < offset + max_results;
       ++i) {
    out["Tags"].push_back({{"Key", (*tags)[i].key}, {"Value", (*tags)[i].value}});
  }
  if (offset + max_results < static_cast<int64_t>(tags->size())) {
    out["NextToken"] = MakeToken("lt", offset + max_results);
  }
  return out;
}

SageMakerService::Outcome SageMakerService::DeleteTags(const Caller& caller, const json& body) {
  auto job = JobForArn(caller, body.at("ResourceArn").get<std::string>());
  if (!job.ok()) return ToApiError(job.status());
  std::vector<std::string> keys = body.at("TagKeys").get<std::vector<std::string>>();
  Status s = store_->DeleteTags(job->arn, keys);
  if (!s.ok()) return ToApiError(s);
  return json::object();
}

SageMakerService::Outcome SageMakerService::Search(const Caller& caller, const json& body) {
  std::string resource = body.at("Resource").get<std::string>();
  if (resource != "TrainingJob") {
    return Validation("Search of resource type " + resource +
                      " is not supported by Trainyard; only TrainingJob.");
  }
  json expression = body.value("SearchExpression", json());
  Status s = CheckSearchExpression(expression);
  if (!s.ok()) return ToApiError(s);
  if (body.value("CrossAccountFilterOption", "SameAccount") == "CrossAccount") {
    return Validation("CrossAccountFilterOption CrossAccount is not supported by Trainyard.");
  }
  if (body.contains("VisibilityConditions")) {
    return Validation("VisibilityConditions are not supported by Trainyard yet.");
  }
  auto jobs = store_->AllJobs(caller.account_id);
  if (!jobs.ok()) return ToApiError(jobs.status());
  std::vector<json> matches;
  for (const auto& job : *jobs) {
    auto tags = store_->GetTags(job.arn);
    if (!tags.ok()) return ToApiError(tags.status());
    std::vector<model::RuleEvaluation> rules;
    if (!job.spec.debug_rules.empty() || !job.spec.profiler_rules.empty()) {
      auto stored = store_->RuleEvaluations(job.arn);
      if (!stored.ok()) return ToApiError(stored.status());
      rules = std::move(stored).value();
    }
    json record = SearchRecordJson(job, *tags, rules);
    if (MatchesSearchExpression(record, expression)) matches.push_back(std::move(record));
  }
  SortSearchRecords(&matches, body.value("SortBy", "LastModifiedTime"),
                    body.value("SortOrder", "Descending") == "Ascending");
  int64_t offset = 0;
  if (!ParseToken(body, "s", &offset)) return Validation("Invalid pagination token.");
  int64_t max_results = body.value("MaxResults", 10);
  json out = {{"Results", json::array()}};
  for (int64_t i = offset; i < static_cast<int64_t>(matches.size()) && i < offset + max_results;
       ++i) {
    out["Results"].push_back({{"TrainingJob", std::move(matches[i])}});
  }
  if (offset + max_results < static_cast<int64_t>(matches.size())) {
    out["NextToken"] = MakeToken("s", offset + max_results);
  }
  return out;
}

}  // namespace ty::services
