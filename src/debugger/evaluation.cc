#include "debugger/evaluation.h"

namespace ty::debugger {

namespace {

constexpr std::pair<RuleStatus, const char*> kNames[] = {
    {RuleStatus::kInProgress, "InProgress"},       {RuleStatus::kIssuesFound, "IssuesFound"},
    {RuleStatus::kNoIssuesFound, "NoIssuesFound"}, {RuleStatus::kError, "Error"},
    {RuleStatus::kStopping, "Stopping"},           {RuleStatus::kStopped, "Stopped"},
};

}  // namespace

const char* Name(RuleStatus s) {
  for (const auto& [status, name] : kNames) {
    if (status == s) return name;
  }
  return "Error";
}

std::optional<RuleStatus> ParseRuleStatus(const std::string& s) {
  for (const auto& [status, name] : kNames) {
    if (s == name) return status;
  }
  return std::nullopt;
}

}  // namespace ty::debugger
