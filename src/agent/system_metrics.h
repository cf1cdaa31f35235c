// SystemMetricsWriter: the profiler's system metrics of one instance (ProfilerConfig), written
// in the layout smdebug's SystemMetricsReader / LocalSystemMetricsReader read
// (smdebug/profiler/system_metrics_reader.py, system_profiler_file_parser.py, utils.py):
//   <dir>/system/incremental/<YYYYMMDDHH>/<T>.<node>.json
// where T is the epoch second of the minute the file covers (10 digits; the reader takes it as
// the earliest time in the file) and YYYYMMDDHH that minute's UTC hour. Each line is one event:
//   {"Dimension":"CPUUtilization","Name":"cpu0","NodeId":"algo-1","Timestamp":1591160699.457,
//    "Type":"cpu","Value":12.5}
// Events, every `interval`:
//   cpu     cpu<i> and total (all cores)  CPUUtilization, I/OWaitPercentage (percent, /proc/stat)
//   memory  total                         MemoryUsedPercent (the instance's, InstanceSampler)
//   gpu     total                         GPUUtilization, GPUMemoryUtilization (percent of the
//                                         instance's GPUs; only where NVML reports them)
//   i/o     <disk>                        ReadBytesPerSecond, WriteBytesPerSecond (/proc/diskstats)
//   network <interface>                   ReceiveBytesPerSecond, TransmitBytesPerSecond
//                                         (/proc/net/dev, loopback left out)
// A file is written in `staging_dir` and moved whole into `dir` once its minute is over (or at
// Stop()), so a sync of `dir` never uploads a torn file. A metric that cannot be read is left
// out; the writer never fails the job.
//
// Thread contract: Start() and Stop() from one thread; the writer samples on its own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/instance_sampler.h"
#include "common/clock.h"

namespace ty::agent {

struct SystemMetricsOptions {
  std::string dir;          // finished files go under <dir>/system/incremental/
  std::string staging_dir;  // the file being written (same file system as dir)
  std::string node_id = "algo-1";
  std::chrono::milliseconds interval{500};
  std::chrono::seconds rotate{60};  // file span; the reader's files cover one minute
  std::string proc_root = "/proc";
  SamplerOptions sampler;        // memory and GPU (its CPU is not used)
  const Clock* clock = nullptr;  // nullptr: SystemClock::Default()
};

// The cumulative times of one /proc/stat cpu line (in ticks).
struct CpuTimes {
  uint64_t busy = 0;  // user + nice + system + irq + softirq + steal
  uint64_t iowait = 0;
  uint64_t total = 0;  // busy + idle + iowait
};
// "cpu" (as "total") and "cpu<i>" lines of /proc/stat text, by name.
std::map<std::string, CpuTimes> ParseProcStat(const std::string& text);

// One event line (no newline).
std::string SystemEventLine(const std::string& type, const std::string& name,
                            const std::string& dimension, double value, const std::string& node,
                            double timestamp_s);
// "system/incremental/<YYYYMMDDHH>/<T>.<node>.json" for the file starting at epoch second T.
std::string SystemMetricsFile(int64_t start_s, const std::string& node);

class SystemMetricsWriter {
 public:
  explicit SystemMetricsWriter(SystemMetricsOptions options);
  ~SystemMetricsWriter();  // Stop()s
  SystemMetricsWriter(const SystemMetricsWriter&) = delete;
  SystemMetricsWriter& operator=(const SystemMetricsWriter&) = delete;

  // Starts sampling (the first sample is a baseline for the rates). IoError when the
  // directories cannot be made.
  Status Start();
  // Stops sampling and moves the current file into place. Idempotent.
  void Stop();
  // One sample now, written to the current file (rotating first when its span is over); for
  // tests, which call it without Start().
  void SampleOnce();
  // Moves the current file into place (Stop() does this).
  void Publish();
  // Lines written so far (tests).
  int64_t lines_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ty::agent
