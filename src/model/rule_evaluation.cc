#include "model/rule_evaluation.h"

#include <cctype>

#include "common/crypto.h"

namespace ty::model {

const char* Name(RuleKind k) { return k == RuleKind::kProfiler ? "profiler" : "debug"; }

std::optional<RuleKind> ParseRuleKind(const std::string& s) {
  if (s == "debug") return RuleKind::kDebug;
  if (s == "profiler") return RuleKind::kProfiler;
  return std::nullopt;
}

bool IsTerminalRuleStatus(const std::string& status) {
  return status == "IssuesFound" || status == "NoIssuesFound" || status == "Error" ||
         status == "Stopped";
}

std::string TruncateStatusDetails(std::string details) {
  if (details.size() <= kMaxRuleStatusDetails) return details;
  size_t n = kMaxRuleStatusDetails;
  // Back off continuation bytes so a multi-byte character is not cut in half.
  while (n > 0 && (static_cast<unsigned char>(details[n]) & 0xC0) == 0x80) --n;
  details.resize(n);
  return details;
}

namespace {

std::string RegionOf(const std::string& arn) {
  // arn:aws:sagemaker:<region>:<account>:...
  size_t a = arn.find(':', arn.find(':', arn.find(':') + 1) + 1);
  if (a == std::string::npos) return "";
  size_t b = arn.find(':', a + 1);
  return b == std::string::npos ? "" : arn.substr(a + 1, b - a - 1);
}

}  // namespace

std::string RuleEvaluationName(const JobRecord& job, RuleKind kind,
                               const std::string& configuration_name) {
  std::string rule;
  for (char c : configuration_name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-') {
      rule += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (rule.empty()) rule = "rule";
  const std::string hex =
      Sha256Hex(job.arn + "\n" + std::to_string(ToEpochMillis(job.creation_time)) + "\n" +
                Name(kind) + "\n" + configuration_name)
          .substr(0, 8);
  return job.spec.name.substr(0, 26) + "-" + rule.substr(0, 26) + "-" + hex;
}

std::string RuleEvaluationArn(const JobRecord& job, const std::string& evaluation_name) {
  return "arn:aws:sagemaker:" + RegionOf(job.arn) + ":" + job.account + ":processing-job/" +
         evaluation_name;
}

RuleEvaluation InitialRuleEvaluation(const JobRecord& job, RuleKind kind,
                                     const std::string& configuration_name) {
  RuleEvaluation e;
  e.job_arn = job.arn;
  e.account = job.account;
  e.kind = kind;
  e.configuration_name = configuration_name;
  e.evaluation_name = RuleEvaluationName(job, kind, configuration_name);
  e.evaluation_arn = RuleEvaluationArn(job, e.evaluation_name);
  e.creation_time = job.creation_time;
  e.last_modified_time = job.creation_time;
  return e;
}

}  // namespace ty::model
