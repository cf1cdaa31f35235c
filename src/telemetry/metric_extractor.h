// MetricExtractor: turns training log lines into metric samples using the
// job's MetricDefinitions. Every line is matched against every regex (RE2:
// linear time, so a user's regex never stalls the server); the first capture
// group, parsed as a number, is a sample. Not thread-safe (one per job).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/training_job.h"

namespace re2 {
class RE2;
}

namespace ty::telemetry {

struct Sample {
  std::string name;
  double value = 0;
  int64_t timestamp_ms = 0;
};

class MetricExtractor {
 public:
  explicit MetricExtractor(const std::vector<model::MetricDefinition>& definitions);
  ~MetricExtractor();

  // Appends the samples found in `line` to `out`.
  void Extract(const std::string& line, int64_t timestamp_ms, std::vector<Sample>* out) const;
  // Definitions whose regex RE2 could not compile (they never match).
  const std::vector<std::string>& invalid() const { return invalid_; }
  bool empty() const { return regexes_.empty(); }

 private:
  struct Compiled {
    std::string name;
    std::unique_ptr<re2::RE2> re;
  };
  std::vector<Compiled> regexes_;
  std::vector<std::string> invalid_;
};

// Merges samples into the final metric list: the last value of each metric.
void MergeFinalMetrics(const std::vector<Sample>& samples, std::vector<model::FinalMetric>* finals);

}  // namespace ty::telemetry
