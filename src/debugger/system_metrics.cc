#include "debugger/system_metrics.h"

#include <cmath>
#include <set>
#include <utility>

#include "common/fs.h"
#include "common/json.h"

namespace ty::debugger {

namespace {

constexpr size_t kMaxFieldBytes = 256;

bool IsDigits(std::string_view s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsNodeId(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status StringField(const nlohmann::json& obj, const char* key, bool required, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || (!required && it->is_null())) {
    if (required) return InvalidArgument(std::string("the sample has no \"") + key + "\"");
    return Status::Ok();
  }
  if (!it->is_string()) return InvalidArgument(std::string("\"") + key + "\" is not a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > kMaxFieldBytes) {
    return InvalidArgument(std::string("\"") + key + "\" is longer than 256 bytes");
  }
  *out = s;
  return Status::Ok();
}

Status NumberField(const nlohmann::json& obj, const char* key, double* out) {
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidArgument(std::string("the sample has no \"") + key + "\"");
  if (!it->is_number()) return InvalidArgument(std::string("\"") + key + "\" is not a number");
  const double v = it->get<double>();
  if (!std::isfinite(v)) return InvalidArgument(std::string("\"") + key + "\" is not finite");
  *out = v;
  return Status::Ok();
}

}  // namespace

Result<SystemMetricEvent> ParseSystemMetricLine(std::string_view line) {
  if (line.size() > kMaxSystemMetricLineBytes) {
    return InvalidArgument("the line is longer than " + std::to_string(kMaxSystemMetricLineBytes) +
                           " bytes");
  }
  // A sample is one flat object: depth 1 is all it may nest.
  auto parsed = ParseJson(line, 1);
  if (!parsed.ok()) return InvalidArgument("not a JSON sample: " + parsed.status().message());
  const nlohmann::json& obj = *parsed;
  if (!obj.is_object()) return InvalidArgument("not a JSON object");
  SystemMetricEvent e;
  TY_RETURN_IF_ERROR(StringField(obj, "Type", true, &e.type));
  TY_RETURN_IF_ERROR(StringField(obj, "Name", false, &e.name));
  TY_RETURN_IF_ERROR(StringField(obj, "Dimension", true, &e.dimension));
  TY_RETURN_IF_ERROR(StringField(obj, "NodeId", true, &e.node_id));
  TY_RETURN_IF_ERROR(NumberField(obj, "Value", &e.value));
  TY_RETURN_IF_ERROR(NumberField(obj, "Timestamp", &e.timestamp));
  if (e.timestamp < 0 || e.timestamp >= 1e11) {
    return InvalidArgument("\"Timestamp\" is not seconds since the epoch");
  }
  return e;
}

std::optional<SystemMetricFileKey> ParseSystemMetricKey(std::string_view key) {
  constexpr std::string_view kPrefix = "incremental/";
  constexpr std::string_view kSuffix = ".json";
  if (key.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  key.remove_prefix(kPrefix.size());
  const size_t slash = key.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view hour = key.substr(0, slash);
  std::string_view base = key.substr(slash + 1);
  if (!IsDigits(hour, 10)) return std::nullopt;
  if (base.size() <= kSuffix.size() || base.substr(base.size() - kSuffix.size()) != kSuffix) {
    return std::nullopt;
  }
  base.remove_suffix(kSuffix.size());
  const size_t dot = base.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view epoch = base.substr(0, dot);
  const std::string_view node = base.substr(dot + 1);
  if (!IsDigits(epoch, 10) || !IsNodeId(node)) return std::nullopt;
  SystemMetricFileKey out;
  out.hour_dir = std::string(hour);
  out.epoch_seconds = std::stoll(std::string(epoch));
  out.node_id = std::string(node);
  return out;
}

SystemMetricsReader::SystemMetricsReader(storage::ObjectStore* store, std::string profiler_uri,
                                         std::string scratch_dir)
    : store_(store), scratch_dir_(std::move(scratch_dir)) {
  if (!profiler_uri.empty() && profiler_uri.back() != '/') profiler_uri += '/';
  system_uri_ = profiler_uri + "system/";
}

std::vector<std::string> SystemMetricsReader::node_ids() const {
  std::set<std::string> ids;
  for (const auto& [key, st] : files_) ids.insert(st.node_id);
  return {ids.begin(), ids.end()};
}

Status SystemMetricsReader::Poll(const std::function<Status(const SystemMetricEvent&)>& sink,
                                 std::chrono::steady_clock::time_point deadline, bool final,
                                 uint64_t max_file_bytes) {
  caught_up_ = false;
  TY_ASSIGN_OR_RETURN(std::vector<storage::ObjectInfo> listed, store_->List(system_uri_));
  for (const auto& info : listed) {
    auto parsed = ParseSystemMetricKey(info.key);
    if (!parsed) continue;
    auto it = files_.find(info.key);
    if (it == files_.end()) {
      if (files_.size() >= kMaxSystemMetricFiles) {
        return ResourceExhausted("more than " + std::to_string(kMaxSystemMetricFiles) +
                                 " system-metrics files under " + system_uri_);
      }
      it = files_.emplace(info.key, FileState{}).first;
      it->second.node_id = parsed->node_id;
    }
    if (info.size > max_file_bytes) {
      return InvalidArgument("system-metrics file " + system_uri_ + info.key + " is " +
                             std::to_string(info.size) + " bytes, more than the " +
                             std::to_string(max_file_bytes) + "-byte limit");
    }
    it->second.listed_size = info.size;
  }
  for (auto& [key, st] : files_) {
    const bool grew = st.listed_size > st.read_size;
    const bool tail_pending = final && !st.final_done && st.consumed < st.listed_size;
    if (!grew && !tail_pending) continue;
    if (std::chrono::steady_clock::now() >= deadline) return Status::Ok();  // not caught up
    TY_RETURN_IF_ERROR(ReadFile(key, st, sink, final, max_file_bytes));
  }
  caught_up_ = true;
  return Status::Ok();
}

Status SystemMetricsReader::ReadFile(const std::string& key, FileState& st,
                                     const std::function<Status(const SystemMetricEvent&)>& sink,
                                     bool final, uint64_t max_file_bytes) {
  const std::string uri = system_uri_ + key;
  const std::string local = JoinPath(scratch_dir_, "metrics.json");
  Status s = store_->DownloadFile(uri, local);
  if (s.code() == StatusCode::kNotFound) {
    // Gone between the listing and now: nothing to read; a later listing decides.
    st.listed_size = st.read_size;
    return Status::Ok();
  }
  TY_RETURN_IF_ERROR(s);
  auto content = ty::ReadFile(local);
  (void)RemoveAll(local);
  if (!content.ok()) return content.status();
  const std::string& text = *content;
  if (text.size() > max_file_bytes) {
    return InvalidArgument("system-metrics file " + uri + " is " + std::to_string(text.size()) +
                           " bytes, more than the " + std::to_string(max_file_bytes) +
                           "-byte limit");
  }
  st.read_size = text.size();
  st.listed_size = std::max<uint64_t>(st.listed_size, text.size());
  if (text.size() < st.consumed) return Status::Ok();  // shrank: what was read stands

  auto deliver = [&](std::string_view line, bool last_unterminated) -> Status {
    ++st.lines;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return Status::Ok();
    auto event = ParseSystemMetricLine(line);
    if (!event.ok()) {
      if (last_unterminated) {
        ++skipped_partial_lines_;
        return Status::Ok();
      }
      return InvalidArgument("system-metrics file " + uri + ", line " + std::to_string(st.lines) +
                             ": " + event.status().message());
    }
    ++samples_read_;
    return sink(*event);
  };

  size_t pos = st.consumed;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    if (nl - pos > kMaxSystemMetricLineBytes) {
      return InvalidArgument("system-metrics file " + uri + ", line " +
                             std::to_string(st.lines + 1) + ": the line is longer than " +
                             std::to_string(kMaxSystemMetricLineBytes) + " bytes");
    }
    TY_RETURN_IF_ERROR(deliver(std::string_view(text).substr(pos, nl - pos), false));
    pos = nl + 1;
  }
  st.consumed = pos;
  if (pos < text.size()) {
    const size_t tail = text.size() - pos;
    if (final) {
      st.final_done = true;
      st.consumed = text.size();
      if (tail > kMaxSystemMetricLineBytes) {
        ++st.lines;
        ++skipped_partial_lines_;
        return Status::Ok();
      }
      return deliver(std::string_view(text).substr(pos), true);
    }
    if (tail > kMaxSystemMetricLineBytes) {
      return InvalidArgument("system-metrics file " + uri + ", line " +
                             std::to_string(st.lines + 1) + ": the line is longer than " +
                             std::to_string(kMaxSystemMetricLineBytes) + " bytes");
    }
  } else if (final) {
    st.final_done = true;
  }
  return Status::Ok();
}

}  // namespace ty::debugger
