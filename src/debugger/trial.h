// Trial: a C++ reader of the tensors an smdebug-format hook saved (spec debugger.md §1, §5), on
// file:// and s3:// through storage::ObjectStore, while the job is still writing them.
//
// Layout read (relative to the trial URI):
//   collections/000000000/<worker>_collections.json   num_workers and the collections
//   index/<step//1000, 9 digits>/<STEP12>_<worker>.json   one per (saved step, worker)
//   events/<STEP12>/<STEP12>_<worker>.tfevents        TFRecord event files the index points into
//   training_job_end.ts                               the job finished; the output is final
//
// Refresh() lists only index files it has not read yet (their names sort in step order) and
// reads them; values are fetched lazily, one record by (file, offset, length), and cached up to
// TrialOptions::max_cache_bytes. A step is complete exactly as smdebug decides (§1.8): every
// worker wrote its index file, or a later step is complete, or training ended, or more than
// incomplete_step_wait_window steps are pending.
//
// Errors: malformed output (bad JSON, a truncated record, a bad CRC, an index pointing past the
// end of its event file, an oversized tensor) is InvalidArgument with a sentence that names the
// file; a store that failed transiently is Unavailable (try again later); a tensor or step that
// is not there is NotFound; a step that may still arrive is FailedPrecondition.
//
// Thread contract: not thread-safe; one Trial is used by one thread at a time.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "storage/object_store.h"

namespace ty::debugger {

// smdebug's modes (core/modes.py); the numbers are what event files store.
enum class Mode { kTrain = 1, kEval = 2, kPredict = 3, kGlobal = 4 };
const char* ModeName(Mode m);                             // "TRAIN", "EVAL", ...
std::optional<Mode> ParseModeName(const std::string& s);  // the index JSON's meta.mode

// smdebug's StepState: whether a global step can be read.
enum class StepState { kUnavailable, kAvailable, kNotYetAvailable };

// A tensor value: numbers as doubles in C order, plus the shape. String tensors keep their
// strings (values is then empty).
struct NDArray {
  int dtype = 0;               // TensorProto DataType (1 FLOAT, 2 DOUBLE, 3 INT32, ...)
  std::vector<int64_t> shape;  // [] for a 0-d tensor
  std::vector<double> values;  // product(shape) numbers
  std::vector<std::string> strings;
  size_t size() const { return values.size(); }
};

// A collection as the hook exported it (collections JSON, §1.7).
struct Collection {
  std::string name;
  std::vector<std::string> include_regex;
  std::set<std::string> tensor_names;
  std::string reductions;  // "min,abs_max,l2_norm" as written
  bool save_raw_tensor = true;
};

struct TrialOptions {
  // A record (one tensor) larger than this is not read: InvalidArgument.
  uint64_t max_tensor_bytes = 64ull << 20;
  // An index or collections JSON file larger than this is refused.
  uint64_t max_json_bytes = 16ull << 20;
  // Bounds of one index file: tensor entries.
  size_t max_index_entries = 100000;
  // Index files read by one Refresh(); the rest wait for the next call.
  size_t max_index_files_per_refresh = 5000;
  // Decoded values kept for reuse (rules read a tensor at a few neighbouring steps).
  uint64_t max_cache_bytes = 128ull << 20;
  // SMDEBUG_INCOMPLETE_STEP_WAIT_WINDOW.
  int64_t incomplete_step_wait_window = 1000;
};

// Which tensor names: all, those matching `regex` (re.search semantics), or a collection's
// members (its saved tensor_names plus its include_regex matches). At most one of regex and
// collection. `step`: only tensors saved at that global step.
struct TensorFilter {
  std::optional<std::string> regex;
  std::optional<std::string> collection;
  std::optional<int64_t> step;
  bool show_prefixed = false;  // include smdebug/reductions/... names
};

// Read counters (benchmarks, tests).
struct TrialStats {
  uint64_t index_files_read = 0;
  uint64_t records_read = 0;  // tensor records decoded
  uint64_t files_read = 0;    // event-file reads (a small file is read whole, once)
  uint64_t bytes_read = 0;    // event-file bytes read
  uint64_t cache_hits = 0;
};

class Trial;

// A handle on one tensor name of a Trial (valid while the Trial lives).
class Tensor {
 public:
  Tensor(Trial* trial, std::string name) : trial_(trial), name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  // Complete steps where this tensor (raw or a reduction of it) was saved; GLOBAL: global
  // steps, another mode: that mode's steps.
  std::vector<int64_t> steps(Mode mode = Mode::kGlobal) const;
  // The raw value. NotFound when not saved at that step (FailedPrecondition "only reductions
  // were saved" when only reductions exist); worker "" = the lexically first worker.
  Result<NDArray> value(int64_t step, Mode mode = Mode::kGlobal,
                        const std::string& worker = "") const;
  // A reduction (min, max, mean, std, variance, sum, prod, l1, l2; abs: of |x|): the saved
  // one when the hook saved it, else computed from the raw value as numpy does (biased
  // variance/std).
  Result<double> reduction(int64_t step, const std::string& name, bool abs = false,
                           Mode mode = Mode::kGlobal, const std::string& worker = "") const;
  // The workers that saved it at `step`.
  std::vector<std::string> workers(int64_t step, Mode mode = Mode::kGlobal) const;

 private:
  Trial* trial_;
  std::string name_;
};

class Trial {
 public:
  // Opens the trial at `uri` (a directory/prefix URI) read through `store`, which must outlive
  // the Trial. Reads nothing yet: call Refresh().
  static std::unique_ptr<Trial> Open(storage::ObjectStore* store, std::string uri,
                                     TrialOptions options = {});
  ~Trial();
  Trial(const Trial&) = delete;
  Trial& operator=(const Trial&) = delete;

  // Reads what appeared since the last call: training_job_end.ts, the collections files, new
  // index files (at most max_index_files_per_refresh). Step completion is updated. Errors as
  // described at the top; after an error the Trial keeps what it had read before.
  Status Refresh();

  // Treat the output as final from the next Refresh() on, as if training_job_end.ts were there
  // (the caller knows the job ended and its output was synced).
  void AssumeEnded();

  const std::string& uri() const;
  // training_job_end.ts was seen.
  bool training_ended() const;
  // Training ended and every index file present at that time was read.
  bool loaded_all_steps() const;
  // The collections file of at least one worker was read; num_workers comes from it.
  bool collections_loaded() const;
  // All num_workers collections files are present.
  bool all_collections_loaded() const;
  int num_workers() const;
  const std::map<std::string, Collection>& collections() const;
  std::set<std::string> workers() const;

  // Complete steps, ascending: global steps for kGlobal, else that mode's steps.
  std::vector<int64_t> steps(Mode mode = Mode::kGlobal) const;
  // Every global step with at least one index file, complete or not.
  std::vector<int64_t> all_steps() const;
  std::optional<int64_t> last_complete_step() const;
  // kAvailable: complete; kNotYetAvailable: may still be written; kUnavailable: never saved
  // (a later step is complete or training ended).
  StepState step_state(int64_t global_step) const;
  // Mode maps (from the index files' meta).
  std::optional<std::pair<Mode, int64_t>> mode_step(int64_t global_step) const;
  std::optional<int64_t> global_step(Mode mode, int64_t mode_step) const;

  // Sorted tensor names (reduction tensors folded into their base name unless show_prefixed).
  // InvalidArgument for both regex and collection, an unknown collection, or a regex RE2
  // cannot run (lookahead and the like), naming the regex.
  Result<std::vector<std::string>> tensor_names(const TensorFilter& filter = {}) const;
  bool has_tensor(const std::string& name) const;
  // NotFound when no step saved `name`.
  Result<Tensor> tensor(const std::string& name);

  // Forgets where tensors of global steps before `step` are (their values can no longer be
  // read; steps, modes and workers stay known), so a reader that moves forward step by step (a
  // rule evaluation) holds memory for the steps ahead of it only.
  void DropTensorsBefore(int64_t step);

  const TrialStats& stats() const;

  // Internal state (trial.cc); public only so that Tensor can reach it.
  struct State;
  State& state() { return *state_; }
  const State& state() const { return *state_; }

 private:
  Trial();
  std::unique_ptr<State> state_;
};

// Whether `name` matches `pattern` with Python's re.search semantics. The built-in
// collections' lookahead patterns (weights "^(?!gradient).*weight", biases
// "^(?!gradient).*bias", losses "[Ll]oss_(?!input).*output") are evaluated specially;
// any other pattern RE2 cannot compile is InvalidArgument naming it.
Result<bool> RegexSearch(const std::string& pattern, const std::string& name);

}  // namespace ty::debugger
