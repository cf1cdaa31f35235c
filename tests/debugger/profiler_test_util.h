// Synthetic system-metric files for the profiler tests: rounds of samples written in the layout
// smdebug reads (tests/debugger/data/make_system_metrics_fixture.py writes the same format).
#pragma once

#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace ty::debugger::testing {

// One sampling round of one node.
struct Round {
  double t = 0;
  std::vector<double> cpu;     // CPUUtilization per core
  std::vector<double> io;      // I/OWaitPercentage per core
  std::vector<double> gpu;     // GPUUtilization per GPU
  std::vector<double> gpumem;  // GPUMemoryUtilization per GPU
};

inline std::string SampleLine(const std::string& node, double t, const std::string& type,
                              const std::string& name, const std::string& dim, double v) {
  nlohmann::json j = {{"Type", type}, {"Name", name},   {"Dimension", dim},
                      {"Value", v},   {"NodeId", node}, {"Timestamp", t}};
  return j.dump() + "\n";
}

inline std::string RoundLines(const std::string& node, const Round& r) {
  std::string out;
  for (size_t i = 0; i < r.cpu.size(); ++i) {
    out += SampleLine(node, r.t, "cpu", "cpu" + std::to_string(i), "CPUUtilization", r.cpu[i]);
  }
  for (size_t i = 0; i < r.io.size(); ++i) {
    out += SampleLine(node, r.t, "cpu", "cpu" + std::to_string(i), "I/OWaitPercentage", r.io[i]);
  }
  for (size_t i = 0; i < r.gpu.size(); ++i) {
    out += SampleLine(node, r.t, "gpu", "gpu" + std::to_string(i), "GPUUtilization", r.gpu[i]);
  }
  for (size_t i = 0; i < r.gpumem.size(); ++i) {
    out += SampleLine(node, r.t, "gpu", "gpu" + std::to_string(i), "GPUMemoryUtilization",
                      r.gpumem[i]);
  }
  return out;
}

inline std::string HourDir(int64_t epoch) {
  std::time_t tt = epoch;
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%Y%m%d%H", &tm);
  return buf;
}

// "<profiler_dir>/system/incremental/<hour>/<minute>.<node>.json" for a sample at `t`.
inline std::string FileFor(const std::string& profiler_dir, const std::string& node, double t) {
  const int64_t minute = static_cast<int64_t>(std::floor(t)) / 60 * 60;
  return profiler_dir + "/system/incremental/" + HourDir(minute) + "/" + std::to_string(minute) +
         "." + node + ".json";
}

// Writes `rounds` (one node) into per-minute files under `profiler_dir`, replacing them.
inline void WriteRounds(const std::string& profiler_dir, const std::string& node,
                        const std::vector<Round>& rounds) {
  std::map<std::string, std::string> files;
  for (const auto& r : rounds) files[FileFor(profiler_dir, node, r.t)] += RoundLines(node, r);
  for (const auto& [path, text] : files) {
    (void)MakeDirs(path.substr(0, path.rfind('/')));
    (void)WriteFileAtomic(path, text, 0644, false);
  }
}

}  // namespace ty::debugger::testing
