// System metrics as SageMaker's profiler writes them, read incrementally from a job's
// profiler output (file:// or s3://), for the profiler rules.
//
// The layout is the one smdebug's SystemMetricsReader reads (smdebug/profiler/
// system_metrics_reader.py, metrics_reader_base.py, utils.py):
//   <ProfilerConfig.S3OutputPath>/<job>/profiler-output/system/incremental/<YYYYMMDDHH>/
//       <epoch seconds, 10 digits>.<node id>.json
// Each file is JSON lines, one sample per line:
//   {"Type": "cpu", "Name": "cpu0", "Dimension": "CPUUtilization", "Value": 12.5,
//    "NodeId": "algo-1", "Timestamp": 1591160699.457}
// Type, Dimension, Value, NodeId and Timestamp (seconds since the epoch, UTC) are required, Name
// is optional (smdebug reads exactly these keys); other keys are ignored. The rules recognise the
// dimensions below; any other dimension is read and summarised by OverallSystemUsage only.
//
// Every bound is enforced before anything is kept: the line length, a file's size, the number of
// files and of distinct series. A line that is not such a sample is an error naming the file and
// the line; only the unterminated last line of a file whose writer died mid-line is skipped
// (smdebug does the same).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/object_store.h"

namespace ty::debugger {

// Dimensions the profiler rules read (SageMaker's names).
inline constexpr std::string_view kCpuUtilization = "CPUUtilization";              // per core, %
inline constexpr std::string_view kIoWaitPercentage = "I/OWaitPercentage";         // per core, %
inline constexpr std::string_view kGpuUtilization = "GPUUtilization";              // per GPU, %
inline constexpr std::string_view kGpuMemoryUtilization = "GPUMemoryUtilization";  // per GPU, %

inline constexpr size_t kMaxSystemMetricLineBytes = 16 * 1024;
inline constexpr size_t kMaxSystemMetricFiles = 200'000;

// One sample (one line of a system-metrics file).
struct SystemMetricEvent {
  std::string type;       // "cpu", "gpu", "memory", "io", ...
  std::string name;       // "cpu0", "gpu1", ...; empty when the line has no Name
  std::string dimension;  // "CPUUtilization", ...
  double value = 0;
  std::string node_id;   // "algo-1"
  double timestamp = 0;  // seconds since the epoch, UTC
};

// Parses one line (without its newline). InvalidArgument, saying what is wrong, for a line longer
// than kMaxSystemMetricLineBytes, text that is not one flat JSON object, a missing or mistyped
// required key, a string field over 256 bytes, or a Value/Timestamp that is not a finite number
// (Timestamp also within [0, 1e11)). Never throws.
Result<SystemMetricEvent> ParseSystemMetricLine(std::string_view line);

// A system-metrics file named by its key relative to ".../system/".
struct SystemMetricFileKey {
  std::string hour_dir;  // "2020060500"
  int64_t epoch_seconds = 0;
  std::string node_id;  // "algo-1"
};
// "incremental/<10 digits>/<10 digits>.<node>.json" (node: [A-Za-z0-9_-]{1,64}); nullopt for
// anything else (such keys are not system-metric files and are skipped).
std::optional<SystemMetricFileKey> ParseSystemMetricKey(std::string_view key);

// Reads the samples under `<profiler_uri>system/` as they appear. Files are read in key order
// (time order within a node); a file that grew since it was read is read again from where its
// last complete line ended, so no sample is delivered twice. A file that shrank is left as read.
//
// Thread contract: not thread-safe; one thread at a time (the Evaluation that owns it).
class SystemMetricsReader {
 public:
  // `store` must outlive the reader. `scratch_dir` is an existing private directory for
  // downloads (each file is read into memory and its local copy removed).
  SystemMetricsReader(storage::ObjectStore* store, std::string profiler_uri,
                      std::string scratch_dir);

  // Lists the prefix once, then reads changed files until `deadline` (steady clock), calling
  // `sink` for each new sample in order. `final`: the writer is done, so a file's unterminated
  // last line is parsed too (and skipped when it is not a whole sample). Errors:
  // InvalidArgument for malformed data or a file over `max_file_bytes` (the evaluation ends in
  // Error); ResourceExhausted for more than kMaxSystemMetricFiles files; the store's own error
  // when listing or downloading fails (transient: the caller may retry).
  Status Poll(const std::function<Status(const SystemMetricEvent&)>& sink,
              std::chrono::steady_clock::time_point deadline, bool final, uint64_t max_file_bytes);

  // True when the last Poll listed the prefix and read every file it found to its end.
  bool caught_up() const { return caught_up_; }
  int64_t samples_read() const { return samples_read_; }
  size_t files_seen() const { return files_.size(); }
  int64_t skipped_partial_lines() const { return skipped_partial_lines_; }
  // The node ids of the files seen, sorted (for the report).
  std::vector<std::string> node_ids() const;

 private:
  struct FileState {
    uint64_t listed_size = 0;  // size at the last listing
    uint64_t consumed = 0;     // bytes up to the end of the last complete line delivered
    uint64_t read_size = 0;    // size when last read
    int64_t lines = 0;         // lines delivered or skipped so far (for error messages)
    bool final_done = false;   // the unterminated tail was handled after the writer finished
    std::string node_id;
  };
  Status ReadFile(const std::string& key, FileState& st,
                  const std::function<Status(const SystemMetricEvent&)>& sink, bool final,
                  uint64_t max_file_bytes);

  storage::ObjectStore* store_;
  std::string system_uri_;
  std::string scratch_dir_;
  std::map<std::string, FileState> files_;  // by key: key order is time order per node
  bool caught_up_ = false;
  int64_t samples_read_ = 0;
  int64_t skipped_partial_lines_ = 0;
};

}  // namespace ty::debugger
