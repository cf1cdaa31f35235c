#include "debugger/profiler_report.h"

#include <algorithm>
#include <cstdio>
#include <string_view>

#include "common/clock.h"

namespace ty::debugger {

namespace {

std::string Escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      case '=':
        out += "&#61;";
        break;  // so quoted text never reads as an attribute
      default:
        out += c;
    }
  }
  return out;
}

std::string Time(double seconds) {
  if (seconds <= 0) return "-";
  return FormatIso8601(FromEpochMillis(static_cast<int64_t>(seconds * 1000)));
}

std::string Num(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.2f", v.get<double>());
    return buf;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* StatusClass(const std::string& status) {
  if (status == "IssuesFound") return "issues";
  if (status == "NoIssuesFound") return "ok";
  return "pending";
}

// One inline SVG per node: every dimension's per-minute means on a 0-100 scale.
std::string Chart(const std::string& node, const nlohmann::json& dims) {
  static const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                        "#ff7f0e", "#9467bd", "#8c564b"};
  double t0 = 0, t1 = 0;
  bool any = false;
  for (const auto& [dim, points] : dims.items()) {
    for (const auto& p : points) {
      const double t = p[0].get<double>();
      if (!any || t < t0) t0 = t;
      if (!any || t > t1) t1 = t;
      any = true;
    }
  }
  if (!any) return "";
  constexpr double kW = 720, kH = 200, kPad = 30;
  const double span = std::max(t1 - t0, 60.0);
  std::string svg = "<h3>" + Escape(node) + "</h3>\n<svg " +
                    "width=\"780\" height=\"240\" role=\"img\">\n" +
                    "<rect x=\"30\" y=\"10\" width=\"720\" height=\"200\" fill=\"none\" "
                    "stroke=\"#999\"/>\n<text x=\"2\" y=\"18\" font-size=\"10\">100</text>"
                    "<text x=\"14\" y=\"212\" font-size=\"10\">0</text>\n";
  size_t i = 0;
  std::string legend;
  for (const auto& [dim, points] : dims.items()) {
    const char* color = kColors[i++ % 6];
    std::string pts;
    char buf[64];
    for (const auto& p : points) {
      const double x = kPad + (p[0].get<double>() - t0) / span * kW;
      const double y = 10 + kH - std::clamp(p[1].get<double>(), 0.0, 100.0) / 100.0 * kH;
      std::snprintf(buf, sizeof(buf), "%.1f,%.1f ", x, y);
      pts += buf;
    }
    svg +=
        "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" points=\"" + pts + "\"/>\n";
    legend +=
        "<span style=\"color:" + std::string(color) + "\">&#9632; " + Escape(dim) + "</span> ";
  }
  svg += "<text x=\"30\" y=\"228\" font-size=\"10\">" + Escape(Time(t0)) +
         "</text><text x=\"750\" y=\"228\" font-size=\"10\" text-anchor=\"end\">" +
         Escape(Time(t1)) + "</text>\n</svg>\n<p>" + legend + "(per-minute means, %)</p>\n";
  return svg;
}

}  // namespace

std::string ProfilerReportOutputUri(const std::string& profiler_uri,
                                    const std::string& configuration_name) {
  std::string base = profiler_uri;
  if (!base.empty() && base.back() != '/') base += '/';
  constexpr std::string_view kLeaf = "profiler-output/";
  if (base.size() > kLeaf.size() &&
      base.compare(base.size() - kLeaf.size(), kLeaf.size(), kLeaf) == 0 &&
      base[base.size() - kLeaf.size() - 1] == '/') {
    base.resize(base.size() - kLeaf.size());
  }
  return base + "rule-output/" + configuration_name + "/profiler-output/";
}

nlohmann::json RenderProfilerReportJson(const ProfilerReportData& d) {
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : d.rules) {
    rules.push_back({{"RuleName", r.rule},
                     {"RuleEvaluationStatus", r.status},
                     {"StatusDetails", r.details},
                     {"Parameters", r.parameters},
                     {"Findings", r.findings}});
  }
  return {
      {"TrainingJobName", d.job_name},
      {"RuleConfigurationName", d.configuration_name},
      {"ProfilerOutput", d.profiler_uri},
      {"Final", d.final},
      {"Nodes", d.nodes},
      {"Samples", d.samples},
      {"Files", d.files},
      {"FirstSampleTime", d.first_timestamp > 0 ? Time(d.first_timestamp) : ""},
      {"LastSampleTime", d.last_timestamp > 0 ? Time(d.last_timestamp) : ""},
      {"GpuPresent", d.gpu_present},
      {"Rules", rules},
      {"SystemUsage", d.system_usage},
      {"NotEvaluated", d.not_evaluated},
      {"Timeline", d.timeline},
  };
}

std::string RenderProfilerReportHtml(const ProfilerReportData& d) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  h += "<title>Profiler report: " + Escape(d.job_name) + "</title>\n";
  h += "<style>body{font-family:sans-serif;margin:2em;color:#222}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
       "text-align:left;vertical-align:top}th{background:#eee}.issues{color:#b00;font-weight:bold}"
       ".ok{color:#070}.pending{color:#850}pre{margin:0;white-space:pre-wrap;font-size:90%}"
       "</style>\n</head><body>\n";
  h += "<h1>Profiler report</h1>\n";
  if (!d.final)
    h += "<p class=\"pending\">Training is still running: this report is partial.</p>\n";

  h += "<h2>Training job summary</h2>\n<table>\n";
  auto row = [&](const std::string& k, const std::string& v) {
    h += "<tr><th>" + Escape(k) + "</th><td>" + Escape(v) + "</td></tr>\n";
  };
  row("Training job", d.job_name);
  row("Rule configuration", d.configuration_name);
  row("Profiler output", d.profiler_uri);
  std::string nodes;
  for (const auto& n : d.nodes) nodes += (nodes.empty() ? "" : ", ") + n;
  row("Nodes", nodes.empty() ? "-" : nodes);
  row("First sample", Time(d.first_timestamp));
  row("Last sample", Time(d.last_timestamp));
  if (d.first_timestamp > 0 && d.last_timestamp >= d.first_timestamp) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.0f s", d.last_timestamp - d.first_timestamp);
    row("Duration covered", buf);
  }
  row("Samples read", std::to_string(d.samples) + " from " + std::to_string(d.files) + " files");
  row("GPU", d.gpu_present ? "present" : "none reported (GPU rules do not apply)");
  h += "</table>\n";

  h += "<h2>Rules summary</h2>\n<table>\n<tr><th>Rule</th><th>Status</th><th>Details</th>"
       "<th>Parameters</th></tr>\n";
  for (const auto& r : d.rules) {
    h += "<tr id=\"rule-" + Escape(r.rule) + "\"><td>" + Escape(r.rule) + "</td><td class=\"" +
         StatusClass(r.status) + "\">" + Escape(r.status) + "</td><td>" + Escape(r.details) +
         "</td><td><pre>" +
         Escape(r.parameters.dump(1, ' ', false, nlohmann::json::error_handler_t::replace)) +
         "</pre></td></tr>\n";
  }
  h += "</table>\n";
  if (!d.not_evaluated.empty()) {
    std::string names;
    for (const auto& n : d.not_evaluated) names += (names.empty() ? "" : ", ") + n;
    h += "<p>Not evaluated (they need framework metrics or analyses Trainyard does not run): " +
         Escape(names) + ".</p>\n";
  }

  h += "<h2>System usage</h2>\n";
  if (d.system_usage.empty()) {
    h += "<p>No system metrics were read.</p>\n";
  } else {
    h += "<table>\n<tr><th>Node</th><th>Metric</th><th>Samples</th><th>Min</th><th>p50</th>"
         "<th>p95</th><th>p99</th><th>Max</th><th>Mean</th></tr>\n";
    for (const auto& [node, dims] : d.system_usage.items()) {
      if (!dims.is_object()) continue;
      for (const auto& [dim, s] : dims.items()) {
        if (!s.is_object()) continue;
        h += "<tr><td>" + Escape(node) + "</td><td>" + Escape(dim) + "</td>";
        for (const char* k : {"samples", "min", "p50", "p95", "p99", "max", "mean"}) {
          h += "<td>" + Escape(s.contains(k) ? Num(s[k]) : "-") + "</td>";
        }
        h += "</tr>\n";
      }
    }
    h += "</table>\n";
  }

  if (!d.timeline.empty()) {
    h += "<h2>System utilization over time</h2>\n";
    for (const auto& [node, dims] : d.timeline.items()) {
      if (dims.is_object()) h += Chart(node, dims);
    }
  }

  h += "<h2>Rule findings</h2>\n";
  for (const auto& r : d.rules) {
    h += "<h3>" + Escape(r.rule) + ": <span class=\"" + StatusClass(r.status) + "\">" +
         Escape(r.status) + "</span></h3>\n<p>" + Escape(r.details) + "</p>\n";
    if (!r.findings.empty() && r.rule != "OverallSystemUsage") {
      h += "<pre>" +
           Escape(r.findings.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)) +
           "</pre>\n";
    }
  }
  h += "<p><small>Written by Trainyard's ProfilerReport rule; what each rule computes is "
       "described in Trainyard's README, section \"Profiler rules\".</small></p>\n";
  h += "</body></html>\n";
  return h;
}

}  // namespace ty::debugger
