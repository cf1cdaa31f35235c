#include "debugger/trial.h"

#include <algorithm>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include <re2/re2.h>

#include "debugger/event_file.h"

namespace ty::debugger {

namespace {

constexpr std::string_view kReductionPrefix = "smdebug/reductions/";
constexpr char kEndMarker[] = "training_job_end.ts";

struct Location {
  std::string event_file;  // relative to the trial root
  uint64_t start = 0;
  uint64_t length = 0;
};

// What one worker saved of one tensor at one global step.
struct Saved {
  std::optional<Location> raw;
  std::map<std::pair<std::string, bool>, Location> reductions;  // (name, abs)
};

// Splits "smdebug/reductions/abs_mean/x" into ("x", "mean", true).
std::optional<std::tuple<std::string, std::string, bool>> SplitReductionName(
    const std::string& name) {
  if (name.compare(0, kReductionPrefix.size(), kReductionPrefix) != 0) return std::nullopt;
  size_t slash = name.find('/', kReductionPrefix.size());
  if (slash == std::string::npos || slash + 1 >= name.size()) return std::nullopt;
  std::string red = name.substr(kReductionPrefix.size(), slash - kReductionPrefix.size());
  bool abs = false;
  if (red.rfind("abs_", 0) == 0) {
    abs = true;
    red = red.substr(4);
  }
  if (red.size() > 5 && red.compare(red.size() - 5, 5, "_norm") == 0) red.resize(red.size() - 5);
  return std::make_tuple(name.substr(slash + 1), red, abs);
}

std::string NormalizeReduction(std::string red) {
  if (red.size() > 5 && red.compare(red.size() - 5, 5, "_norm") == 0) red.resize(red.size() - 5);
  return red;
}

// "[Ll]oss_(?!input).*output" with re.search semantics.
bool LossPattern(const std::string& s) {
  for (size_t i = 0; i + 5 <= s.size(); ++i) {
    if ((s[i] == 'L' || s[i] == 'l') && s.compare(i + 1, 4, "oss_") == 0) {
      size_t rest = i + 5;
      if (s.compare(rest, 5, "input") == 0) continue;
      size_t nl = s.find('\n', rest);
      size_t out = s.find("output", rest);
      if (out != std::string::npos && (nl == std::string::npos || out + 6 <= nl)) return true;
    }
  }
  return false;
}

// "^(?!gradient).*<word>": does not start with "gradient" and <word> is on the first line.
bool NotGradientPattern(const std::string& s, const std::string& word) {
  if (s.rfind("gradient", 0) == 0) return false;
  size_t pos = s.find(word);
  size_t nl = s.find('\n');
  return pos != std::string::npos && (nl == std::string::npos || pos + word.size() <= nl);
}

}  // namespace

Result<bool> RegexSearch(const std::string& pattern, const std::string& name) {
  if (pattern == "^(?!gradient).*weight") return NotGradientPattern(name, "weight");
  if (pattern == "^(?!gradient).*bias") return NotGradientPattern(name, "bias");
  if (pattern == "[Ll]oss_(?!input).*output") return LossPattern(name);
  // Compiled patterns are kept per thread (a handful: collections' and rules' regexes).
  thread_local std::unordered_map<std::string, std::unique_ptr<RE2>> cache;
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    if (cache.size() > 256) cache.clear();
    RE2::Options opts;
    opts.set_log_errors(false);
    auto re = std::make_unique<RE2>(pattern, opts);
    if (!re->ok()) {
      return InvalidArgument("regex '" + pattern +
                             "' is not supported (RE2 syntax: no lookahead, lookbehind or "
                             "backreferences): " +
                             re->error());
    }
    it = cache.emplace(pattern, std::move(re)).first;
  }
  return RE2::PartialMatch(name, *it->second);
}

const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kTrain:
      return "TRAIN";
    case Mode::kEval:
      return "EVAL";
    case Mode::kPredict:
      return "PREDICT";
    case Mode::kGlobal:
      return "GLOBAL";
  }
  return "GLOBAL";
}

std::optional<Mode> ParseModeName(const std::string& s) {
  if (s == "TRAIN") return Mode::kTrain;
  if (s == "EVAL") return Mode::kEval;
  if (s == "PREDICT") return Mode::kPredict;
  if (s == "GLOBAL") return Mode::kGlobal;
  return std::nullopt;
}

struct Trial::State {
  storage::ObjectStore* store = nullptr;
  std::string uri;  // ends in '/'
  TrialOptions options;
  TrialStats stats;

  bool training_ended = false;
  bool loaded_all_steps = false;
  int num_workers = 1;
  bool collections_loaded = false;
  bool all_collections_loaded = false;
  std::map<std::string, Collection> collections;

  // Index files read: key -> (size, etag/mtime) so a rewritten file (a spot restart rewrote
  // the step) is read again.
  std::map<std::string, std::pair<uint64_t, std::string>> index_seen;
  std::map<int64_t, std::set<std::string>> workers_for_step;
  std::map<int64_t, std::pair<Mode, int64_t>> mode_of;
  std::map<Mode, std::map<int64_t, int64_t>> global_of;
  std::optional<int64_t> last_complete_step;
  // tensor -> global step -> worker -> what was saved
  std::map<std::string, std::map<int64_t, std::map<std::string, Saved>>> tensors;

  // Decoded records, least recently used first.
  using CacheKey = std::tuple<std::string, uint64_t, uint64_t>;
  std::list<std::pair<CacheKey, NDArray>> lru;
  std::map<CacheKey, std::list<std::pair<CacheKey, NDArray>>::iterator> cache;
  uint64_t cache_bytes = 0;

  static uint64_t Bytes(const NDArray& a) {
    uint64_t b = a.values.size() * sizeof(double) + 64;
    for (const auto& s : a.strings) b += s.size() + 32;
    return b;
  }

  void Forget(int64_t step, const std::string& worker) {
    for (auto& [name, steps] : tensors) {
      auto it = steps.find(step);
      if (it != steps.end()) {
        it->second.erase(worker);
        if (it->second.empty()) steps.erase(it);
      }
    }
    for (auto it = tensors.begin(); it != tensors.end();) {
      it = it->second.empty() ? tensors.erase(it) : std::next(it);
    }
  }

  void DropCached(const std::string& event_file) {
    whole_files.remove_if([&](const auto& f) { return f.first == event_file; });
    large_files.erase(event_file);
    for (auto it = lru.begin(); it != lru.end();) {
      if (std::get<0>(it->first) == event_file) {
        cache_bytes -= Bytes(it->second);
        cache.erase(it->first);
        it = lru.erase(it);
      } else {
        ++it;
      }
    }
  }

  Status AddIndex(const std::string& key, const IndexFile& index) {
    auto& workers = workers_for_step[index.step];
    if (workers.count(index.worker)) Forget(index.step, index.worker);
    workers.insert(index.worker);
    auto old = mode_of.find(index.step);
    if (old != mode_of.end()) global_of[old->second.first].erase(old->second.second);
    mode_of[index.step] = {index.mode, index.mode_step};
    global_of[index.mode][index.mode_step] = index.step;
    if (index.mode != Mode::kGlobal) global_of[Mode::kGlobal][index.step] = index.step;
    DropCached(index.event_file_name);
    for (const IndexEntry& e : index.tensors) {
      Location loc{index.event_file_name, e.start, e.length};
      if (auto red = SplitReductionName(e.tensor_name)) {
        auto& [base, name, abs] = *red;
        tensors[base][index.step][index.worker].reductions[{name, abs}] = loc;
      } else {
        tensors[e.tensor_name][index.step][index.worker].raw = loc;
      }
    }
    (void)key;
    return Status::Ok();
  }

  void UpdateCompletion() {
    if (loaded_all_steps && !workers_for_step.empty()) {
      last_complete_step = workers_for_step.rbegin()->first;
      return;
    }
    for (auto it = workers_for_step.rbegin(); it != workers_for_step.rend(); ++it) {
      if (last_complete_step && it->first <= *last_complete_step) break;
      if (static_cast<int>(it->second.size()) >= num_workers) {
        last_complete_step = it->first;
        break;
      }
    }
    // smdebug's wait window: too many incomplete steps means the missing workers are gone.
    auto first_incomplete = last_complete_step ? workers_for_step.upper_bound(*last_complete_step)
                                               : workers_for_step.begin();
    int64_t pending = std::distance(first_incomplete, workers_for_step.end());
    if (pending > options.incomplete_step_wait_window) {
      std::advance(first_incomplete, options.incomplete_step_wait_window / 2);
      last_complete_step = first_incomplete->first;
    }
  }

  bool Complete(int64_t step) const {
    if (loaded_all_steps) return true;
    return last_complete_step && step <= *last_complete_step;
  }

  Result<NDArray> ReadRecord(const Location& loc, const std::string& tensor_name) {
    CacheKey key{loc.event_file, loc.start, loc.length};
    auto hit = cache.find(key);
    if (hit != cache.end()) {
      ++stats.cache_hits;
      lru.splice(lru.end(), lru, hit->second);
      return hit->second->second;
    }
    const std::string what = "event file " + loc.event_file + " (" + tensor_name + " at offset " +
                             std::to_string(loc.start) + ")";
    if (loc.length > options.max_tensor_bytes + 16) {
      return InvalidArgument(what + " is a record of " + std::to_string(loc.length) +
                             " bytes, more than the limit of " +
                             std::to_string(options.max_tensor_bytes) + " bytes");
    }
    Result<RecordBytes> bytes = ReadRange(loc);
    if (!bytes.ok()) {
      if (bytes.status().code() == StatusCode::kNotFound) {
        // The store receives a step's files in no guaranteed order (the platform's sync uploads
        // what changed; S3 writers race): until training ended, the file may still come.
        if (!loaded_all_steps) return Unavailable(what + " is not in the store yet");
        return InvalidArgument("the index points to a missing " + what);
      }
      return bytes.status().WithPrefix("cannot read " + what);
    }
    ++stats.records_read;
    if (bytes->view.size() < loc.length) {
      return InvalidArgument("the index points past the end of " + what + ": the file holds " +
                             std::to_string(bytes->view.size()) + " of the " +
                             std::to_string(loc.length) + " bytes listed");
    }
    Result<std::string_view> payload = ParseRecord(bytes->view, options.max_tensor_bytes);
    if (!payload.ok()) return InvalidArgument(what + ": " + payload.status().message());
    DecodeLimits limits;
    limits.max_elements = std::max<uint64_t>(1, options.max_tensor_bytes);
    Result<std::vector<EventTensor>> decoded = DecodeEvent(*payload, limits);
    if (!decoded.ok()) return InvalidArgument(what + ": " + decoded.status().message());
    if (decoded->size() != 1) {
      return InvalidArgument(what + " holds " + std::to_string(decoded->size()) +
                             " tensors, expected one");
    }
    NDArray& value = (*decoded)[0].value;
    uint64_t size = Bytes(value);
    if (size > options.max_cache_bytes) return std::move(value);
    while (cache_bytes + size > options.max_cache_bytes && !lru.empty()) {
      cache_bytes -= Bytes(lru.front().second);
      cache.erase(lru.front().first);
      lru.pop_front();
    }
    lru.emplace_back(key, std::move(value));
    cache[key] = std::prev(lru.end());
    cache_bytes += size;
    return lru.back().second;
  }

  // Rules read most tensors of a step, so a small event file is fetched whole, once (one open
  // or GET per step instead of one per tensor); a large one is read record by record.
  static constexpr uint64_t kWholeFileBytes = 8ull << 20;
  static constexpr size_t kFilesKept = 4;
  std::list<std::pair<std::string, std::shared_ptr<const std::string>>> whole_files;  // MRU last
  std::set<std::string> large_files;  // known to exceed kWholeFileBytes

  // Bytes of one record: a view into a buffer kept alive by `owner`.
  struct RecordBytes {
    std::shared_ptr<const std::string> owner;
    std::string_view view;
  };

  Result<RecordBytes> ReadRange(const Location& loc) {
    const std::string file_uri = uri + loc.event_file;
    std::shared_ptr<const std::string> whole;
    for (auto it = whole_files.begin(); it != whole_files.end(); ++it) {
      if (it->first == loc.event_file) {
        whole = it->second;
        whole_files.splice(whole_files.end(), whole_files, it);
        break;
      }
    }
    if (!whole && !large_files.count(loc.event_file)) {
      Result<std::string> r = store->Read(file_uri, 0, std::nullopt, kWholeFileBytes);
      if (r.ok()) {
        ++stats.files_read;
        stats.bytes_read += r->size();
        whole = std::make_shared<const std::string>(std::move(*r));
        whole_files.emplace_back(loc.event_file, whole);
        if (whole_files.size() > kFilesKept) whole_files.pop_front();
      } else if (r.status().code() == StatusCode::kResourceExhausted) {
        if (large_files.size() > 10000) large_files.clear();
        large_files.insert(loc.event_file);
      } else {
        return r.status();
      }
    }
    if (whole) {
      std::string_view all(*whole);
      return RecordBytes{
          whole, loc.start >= all.size() ? std::string_view() : all.substr(loc.start, loc.length)};
    }
    TY_ASSIGN_OR_RETURN(
        std::string r, store->Read(file_uri, loc.start, loc.length, options.max_tensor_bytes + 16));
    ++stats.files_read;
    stats.bytes_read += r.size();
    auto owner = std::make_shared<const std::string>(std::move(r));
    return RecordBytes{owner, std::string_view(*owner)};
  }

  // The global step of (mode, step).
  std::optional<int64_t> Global(Mode mode, int64_t step) const {
    if (mode == Mode::kGlobal) return step;
    auto m = global_of.find(mode);
    if (m == global_of.end()) return std::nullopt;
    auto it = m->second.find(step);
    if (it == m->second.end()) return std::nullopt;
    return it->second;
  }

  // What `worker` ("" = the lexically first) saved of `name` at (mode, step).
  Result<std::pair<std::string, const Saved*>> Find(const std::string& name, int64_t step,
                                                    Mode mode, const std::string& worker) const {
    std::optional<int64_t> g = Global(mode, step);
    auto t = tensors.find(name);
    if (t == tensors.end()) return NotFound("tensor " + name + " was not saved");
    const std::string at = " at step " + std::to_string(step) +
                           (mode == Mode::kGlobal ? "" : std::string(" (") + ModeName(mode) + ")");
    if (!g) return NotFound("tensor " + name + " was not saved" + at);
    if (!Complete(*g))
      return FailedPrecondition("step " + std::to_string(*g) + " is not complete yet");
    auto s = t->second.find(*g);
    if (s == t->second.end() || s->second.empty()) {
      return NotFound("tensor " + name + " was not saved" + at);
    }
    if (worker.empty()) return std::make_pair(s->second.begin()->first, &s->second.begin()->second);
    auto w = s->second.find(worker);
    if (w == s->second.end()) return NotFound("worker " + worker + " did not save " + name + at);
    return std::make_pair(w->first, &w->second);
  }

  Status ReadJson(const std::string& key, std::string* out) {
    Result<std::string> r = store->Read(uri + key, 0, std::nullopt, options.max_json_bytes);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kResourceExhausted) {
        return InvalidArgument(key + " is larger than " + std::to_string(options.max_json_bytes) +
                               " bytes");
      }
      return r.status().WithPrefix("cannot read " + key);
    }
    *out = std::move(*r);
    return Status::Ok();
  }

  Status RefreshCollections() {
    TY_ASSIGN_OR_RETURN(std::vector<storage::ObjectInfo> files, store->List(uri + "collections/"));
    std::vector<std::string> keys;
    for (const auto& f : files) {
      if (f.key.size() > 17 && f.key.compare(f.key.size() - 17, 17, "_collections.json") == 0) {
        keys.push_back("collections/" + f.key);
      }
    }
    if (keys.empty()) return Status::Ok();
    if (!collections_loaded) {
      std::string text;
      TY_RETURN_IF_ERROR(ReadJson(keys.front(), &text));
      Result<CollectionsFile> parsed = ParseCollectionsFile(text);
      if (!parsed.ok()) {
        return InvalidArgument("collections file " + keys.front() +
                               " is malformed: " + parsed.status().message());
      }
      num_workers = parsed->num_workers;
      for (Collection& c : parsed->collections) collections[c.name] = std::move(c);
      collections_loaded = true;
    }
    all_collections_loaded = static_cast<int>(keys.size()) >= num_workers;
    return Status::Ok();
  }

  // Index files are grouped 1000 steps a folder. Most refreshes list only the folder of the
  // newest step read and the next one (new steps land there); every kFullListEvery-th refresh,
  // and every refresh once training ended, lists them all (a step past the next folder, a
  // rewritten older file).
  static constexpr int kFullListEvery = 20;

  Status RefreshIndex(bool full) {
    std::vector<storage::ObjectInfo> files;
    if (full || workers_for_step.empty()) {
      TY_ASSIGN_OR_RETURN(files, store->List(uri + "index/"));
      listed_all = true;
    } else {
      const int64_t folder = workers_for_step.rbegin()->first / 1000;
      for (int64_t f : {folder, folder + 1}) {
        std::string dir = FolderName(f);
        TY_ASSIGN_OR_RETURN(std::vector<storage::ObjectInfo> part,
                            store->List(uri + "index/" + dir + "/"));
        for (auto& o : part) o.key = dir + "/" + o.key;
        files.insert(files.end(), std::make_move_iterator(part.begin()),
                     std::make_move_iterator(part.end()));
      }
      listed_all = false;
    }
    size_t read = 0;
    for (const auto& f : files) {
      if (f.key.size() < 5 || f.key.compare(f.key.size() - 5, 5, ".json") != 0) continue;
      const std::string key = "index/" + f.key;
      std::string version = f.etag.empty() ? std::to_string(ToEpochMillisCompat(f.mtime)) : f.etag;
      auto seen = index_seen.find(key);
      if (seen != index_seen.end() && seen->second == std::make_pair(f.size, version)) continue;
      if (read >= options.max_index_files_per_refresh) return Status::Ok();
      std::string text;
      TY_RETURN_IF_ERROR(ReadJson(key, &text));
      Result<IndexFile> index = ParseIndexFile(key, text, options.max_index_entries);
      if (!index.ok()) {
        return InvalidArgument("index file " + key + " is malformed: " + index.status().message());
      }
      TY_RETURN_IF_ERROR(AddIndex(key, *index));
      index_seen[key] = {f.size, version};
      ++stats.index_files_read;
      ++read;
    }
    complete_listing = true;
    return Status::Ok();
  }

  static int64_t ToEpochMillisCompat(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  static std::string FolderName(int64_t folder) {
    std::string d = std::to_string(folder);
    return std::string(d.size() < 9 ? 9 - d.size() : 0, '0') + d;
  }

  bool complete_listing = false;  // the last RefreshIndex read every listed file
  bool listed_all = false;        // ... and it listed every folder
  uint64_t refreshes = 0;
  bool assume_ended = false;
};

Trial::Trial() : state_(std::make_unique<State>()) {}
Trial::~Trial() = default;

std::unique_ptr<Trial> Trial::Open(storage::ObjectStore* store, std::string uri,
                                   TrialOptions options) {
  std::unique_ptr<Trial> t(new Trial());
  if (uri.empty() || uri.back() != '/') uri.push_back('/');
  t->state_->store = store;
  t->state_->uri = std::move(uri);
  t->state_->options = options;
  return t;
}

Status Trial::Refresh() {
  State& s = *state_;
  // The end marker is looked for first: index files listed after seeing it are all there are.
  bool ended = s.training_ended || s.assume_ended;
  if (!ended) {
    TY_ASSIGN_OR_RETURN(std::vector<storage::ObjectInfo> end, s.store->List(s.uri + kEndMarker));
    for (const auto& e : end) {
      if (e.key == kEndMarker) ended = true;
    }
  }
  if (!s.all_collections_loaded) TY_RETURN_IF_ERROR(s.RefreshCollections());
  s.complete_listing = false;
  TY_RETURN_IF_ERROR(s.RefreshIndex(ended || s.refreshes++ % State::kFullListEvery == 0));
  s.training_ended = ended;
  if (ended && s.complete_listing && s.listed_all) s.loaded_all_steps = true;
  s.UpdateCompletion();
  return Status::Ok();
}

void Trial::AssumeEnded() { state_->assume_ended = true; }
const std::string& Trial::uri() const { return state_->uri; }
bool Trial::training_ended() const { return state_->training_ended; }
bool Trial::loaded_all_steps() const { return state_->loaded_all_steps; }
bool Trial::collections_loaded() const { return state_->collections_loaded; }
bool Trial::all_collections_loaded() const { return state_->all_collections_loaded; }
int Trial::num_workers() const { return state_->num_workers; }
const std::map<std::string, Collection>& Trial::collections() const { return state_->collections; }
const TrialStats& Trial::stats() const { return state_->stats; }

std::set<std::string> Trial::workers() const {
  std::set<std::string> out;
  for (const auto& [step, ws] : state_->workers_for_step) out.insert(ws.begin(), ws.end());
  return out;
}

std::vector<int64_t> Trial::steps(Mode mode) const {
  std::vector<int64_t> out;
  for (const auto& [step, ws] : state_->workers_for_step) {
    if (!state_->Complete(step)) break;
    if (mode == Mode::kGlobal) {
      out.push_back(step);
      continue;
    }
    auto m = state_->mode_of.find(step);
    if (m != state_->mode_of.end() && m->second.first == mode) out.push_back(m->second.second);
  }
  if (mode != Mode::kGlobal) std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> Trial::all_steps() const {
  std::vector<int64_t> out;
  for (const auto& [step, ws] : state_->workers_for_step) out.push_back(step);
  return out;
}

std::optional<int64_t> Trial::last_complete_step() const {
  if (state_->loaded_all_steps) {
    if (state_->workers_for_step.empty()) return std::nullopt;
    return state_->workers_for_step.rbegin()->first;
  }
  return state_->last_complete_step;
}

StepState Trial::step_state(int64_t global_step) const {
  bool saved = state_->workers_for_step.count(global_step) > 0;
  if (state_->Complete(global_step)) return saved ? StepState::kAvailable : StepState::kUnavailable;
  return StepState::kNotYetAvailable;
}

std::optional<std::pair<Mode, int64_t>> Trial::mode_step(int64_t global_step) const {
  auto it = state_->mode_of.find(global_step);
  if (it == state_->mode_of.end()) return std::nullopt;
  return it->second;
}

std::optional<int64_t> Trial::global_step(Mode mode, int64_t step) const {
  return state_->Global(mode, step);
}

Result<std::vector<std::string>> Trial::tensor_names(const TensorFilter& filter) const {
  if (filter.regex && filter.collection) {
    return InvalidArgument("give either a regex or a collection, not both");
  }
  const Collection* collection = nullptr;
  if (filter.collection) {
    auto it = state_->collections.find(*filter.collection);
    if (it == state_->collections.end()) {
      return InvalidArgument("the trial has no collection named '" + *filter.collection + "'");
    }
    collection = &it->second;
  }
  std::vector<std::string> out;
  for (const auto& [name, steps] : state_->tensors) {
    if (filter.step) {
      auto s = steps.find(*filter.step);
      if (s == steps.end()) continue;
    }
    bool keep = true;
    if (filter.regex) {
      TY_ASSIGN_OR_RETURN(keep, RegexSearch(*filter.regex, name));
    } else if (collection) {
      keep = collection->tensor_names.count(name) > 0;
      for (size_t i = 0; !keep && i < collection->include_regex.size(); ++i) {
        TY_ASSIGN_OR_RETURN(keep, RegexSearch(collection->include_regex[i], name));
      }
    }
    if (!keep) continue;
    std::set<std::pair<std::string, bool>> reds;
    if (filter.show_prefixed) {
      auto add = [&](const std::map<std::string, Saved>& ws) {
        for (const auto& [w, saved] : ws) {
          for (const auto& [r, loc] : saved.reductions) reds.insert(r);
        }
      };
      if (filter.step) {
        add(steps.at(*filter.step));
      } else {
        for (const auto& [step, ws] : steps) add(ws);
      }
    }
    out.push_back(name);
    for (const auto& [r, abs] : reds) {
      out.push_back(std::string(kReductionPrefix) + (abs ? "abs_" : "") + r + "/" + name);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void Trial::DropTensorsBefore(int64_t step) {
  auto& tensors = state_->tensors;
  for (auto it = tensors.begin(); it != tensors.end();) {
    auto& steps = it->second;
    steps.erase(steps.begin(), steps.lower_bound(step));
    it = steps.empty() ? tensors.erase(it) : std::next(it);
  }
}

bool Trial::has_tensor(const std::string& name) const { return state_->tensors.count(name) > 0; }

Result<Tensor> Trial::tensor(const std::string& name) {
  if (!has_tensor(name)) return NotFound("tensor " + name + " was not saved");
  return Tensor(this, name);
}

std::vector<int64_t> Tensor::steps(Mode mode) const {
  std::vector<int64_t> out;
  const Trial::State& s = trial_->state();
  auto t = s.tensors.find(name_);
  if (t == s.tensors.end()) return out;
  for (const auto& [step, ws] : t->second) {
    if (!s.Complete(step)) break;
    if (mode == Mode::kGlobal) {
      out.push_back(step);
      continue;
    }
    auto m = s.mode_of.find(step);
    if (m != s.mode_of.end() && m->second.first == mode) out.push_back(m->second.second);
  }
  if (mode != Mode::kGlobal) std::sort(out.begin(), out.end());
  return out;
}

Result<NDArray> Tensor::value(int64_t step, Mode mode, const std::string& worker) const {
  Trial::State& s = trial_->state();
  TY_ASSIGN_OR_RETURN(auto found, s.Find(name_, step, mode, worker));
  if (!found.second->raw) {
    return FailedPrecondition("only reductions of " + name_ + " were saved at step " +
                              std::to_string(step));
  }
  return s.ReadRecord(*found.second->raw, name_);
}

Result<double> Tensor::reduction(int64_t step, const std::string& name, bool abs, Mode mode,
                                 const std::string& worker) const {
  Trial::State& s = trial_->state();
  TY_ASSIGN_OR_RETURN(auto found, s.Find(name_, step, mode, worker));
  const std::string red = NormalizeReduction(name);
  auto it = found.second->reductions.find({red, abs});
  if (it != found.second->reductions.end()) {
    TY_ASSIGN_OR_RETURN(NDArray v, s.ReadRecord(it->second, name_));
    if (v.values.size() != 1) {
      return InvalidArgument("reduction " + red + " of " + name_ + " at step " +
                             std::to_string(step) + " is not a single number");
    }
    return v.values[0];
  }
  if (!found.second->raw) {
    return NotFound("neither the raw value nor the " + std::string(abs ? "abs_" : "") + red +
                    " reduction of " + name_ + " was saved at step " + std::to_string(step));
  }
  TY_ASSIGN_OR_RETURN(NDArray v, s.ReadRecord(*found.second->raw, name_));
  return ComputeReduction(v.values, red, abs);
}

std::vector<std::string> Tensor::workers(int64_t step, Mode mode) const {
  std::vector<std::string> out;
  const Trial::State& s = trial_->state();
  std::optional<int64_t> g = s.Global(mode, step);
  auto t = s.tensors.find(name_);
  if (!g || t == s.tensors.end()) return out;
  auto it = t->second.find(*g);
  if (it == t->second.end()) return out;
  for (const auto& [w, saved] : it->second) out.push_back(w);
  return out;
}

}  // namespace ty::debugger
