// ProfilerReport's output: a JSON summary and a self-contained HTML page (inline CSS, no
// scripts, no external assets), plus one JSON file per rule.
//
// Where it goes: SageMaker puts a rule's output under the job's "rule-output/<rule
// configuration name>/" (its docs fetch the report from
// "<output path>/<job>/rule-output/ProfilerReport-<id>/profiler-output/"), that is next to
// "profiler-output/":
//   <ProfilerConfig.S3OutputPath>/<job>/rule-output/<RuleConfigurationName>/profiler-output/
//       profiler-report.html           the page
//       profiler-report.json           the whole summary (SageMaker writes a notebook instead)
//       profiler-reports/<Rule>.json   one per rule: status, details, parameters, findings
//
// Thread-safe: pure functions.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ty::debugger {

// "<job dir>/rule-output/<configuration_name>/profiler-output/" for a profiler trial URI
// "<job dir>/profiler-output/" (or, for a trial URI not ending so, "<trial>rule-output/...").
std::string ProfilerReportOutputUri(const std::string& profiler_uri,
                                    const std::string& configuration_name);

struct ProfilerRuleSummary {
  std::string rule;     // "CPUBottleneck"
  std::string status;   // RuleEvaluationStatus name: InProgress, IssuesFound, NoIssuesFound
  std::string details;  // the sentence the rule ends with
  nlohmann::json parameters = nlohmann::json::object();  // the values used
  nlohmann::json findings = nlohmann::json::object();    // the values and times that triggered
};

struct ProfilerReportData {
  std::string job_name;
  std::string configuration_name;
  std::string profiler_uri;
  bool final = false;              // the job ended and every file was read
  std::vector<std::string> nodes;  // "algo-1", ...
  int64_t samples = 0;
  int64_t files = 0;
  double first_timestamp = 0;  // seconds since the epoch; 0 when no sample was read
  double last_timestamp = 0;
  bool gpu_present = false;
  std::vector<ProfilerRuleSummary> rules;
  nlohmann::json system_usage = nlohmann::json::object();  // OverallSystemUsage's findings
  // Per-minute means for the charts: {node: {dimension: [[minute epoch seconds, mean], ...]}},
  // points in time order.
  nlohmann::json timeline = nlohmann::json::object();
  std::vector<std::string> not_evaluated;  // rulesconfig rules we do not run
};

nlohmann::json RenderProfilerReportJson(const ProfilerReportData& data);
// Every text from the data is HTML-escaped; the page references nothing outside itself.
std::string RenderProfilerReportHtml(const ProfilerReportData& data);

}  // namespace ty::debugger
