#include "telemetry/metric_extractor.h"

#include <re2/re2.h>

#include <cmath>
#include <cstdlib>

namespace ty::telemetry {

MetricExtractor::MetricExtractor(const std::vector<model::MetricDefinition>& definitions) {
  for (const auto& d : definitions) {
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_unique<RE2>(d.regex, options);
    if (!re->ok() || re->NumberOfCapturingGroups() < 1) {
      invalid_.push_back(d.name);
      continue;
    }
    regexes_.push_back({d.name, std::move(re)});
  }
}

MetricExtractor::~MetricExtractor() = default;

namespace {

bool ParseNumber(const std::string& text, double* out) {
  // Accept surrounding blanks and the forms Python prints (1e-05, nan, inf).
  const char* begin = text.c_str();
  while (*begin == ' ' || *begin == '\t') ++begin;
  if (*begin == '\0') return false;
  char* end = nullptr;
  double v = std::strtod(begin, &end);
  if (end == begin) return false;
  while (*end == ' ' || *end == '\t') ++end;
  if (*end != '\0') return false;
  *out = v;
  return true;
}

}  // namespace

void MetricExtractor::Extract(const std::string& line, int64_t timestamp_ms,
                              std::vector<Sample>* out) const {
  for (const auto& c : regexes_) {
    std::string group;
    if (!RE2::PartialMatch(line, *c.re, &group)) continue;
    double value = 0;
    if (!ParseNumber(group, &value) || !std::isfinite(value)) continue;
    out->push_back({c.name, value, timestamp_ms});
  }
}

void MergeFinalMetrics(const std::vector<Sample>& samples,
                       std::vector<model::FinalMetric>* finals) {
  for (const auto& s : samples) {
    bool found = false;
    for (auto& f : *finals) {
      if (f.name == s.name) {
        f.value = s.value;
        f.timestamp = FromEpochMillis(s.timestamp_ms);
        found = true;
        break;
      }
    }
    if (!found) finals->push_back({s.name, s.value, FromEpochMillis(s.timestamp_ms)});
  }
}

}  // namespace ty::telemetry
