#include "capacity/spot_market.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

namespace ty::capacity {
namespace {

using std::chrono::milliseconds;

// FNV-1a over (seed, type, stream, key), each field length-prefixed so
// ("ab", "c") and ("a", "bc") differ, then splitmix64's finalizer to spread
// FNV's weak high bits. std::hash would tie replays to one standard library.
class DrawHash {
 public:
  explicit DrawHash(uint64_t seed) { Bytes(&seed, sizeof seed); }
  DrawHash& Add(std::string_view s) {
    uint64_t size = s.size();
    Bytes(&size, sizeof size);
    Bytes(s.data(), s.size());
    return *this;
  }
  DrawHash& Add(uint64_t n) {
    Bytes(&n, sizeof n);
    return *this;
  }
  uint64_t Finish() const {
    uint64_t z = h_ + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  void Bytes(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) {
      h_ ^= p[i];
      h_ *= 0x100000001b3ULL;
    }
  }
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

// An exponential duration with the given mean from 64 random bits, at
// least 1 ms so alternating periods always move time forward.
milliseconds Exponential(std::chrono::seconds mean, uint64_t bits) {
  // 53 bits, centred in their bucket: u is in (0, 1), so log(u) is finite.
  double u = (static_cast<double>(bits >> 11) + 0.5) * 0x1.0p-53;
  double ms = -std::log(u) * static_cast<double>(milliseconds(mean).count());
  // Capped at ~30,000 years so that absurd configured means cannot overflow
  // TimePoint arithmetic.
  return std::max(milliseconds(1), milliseconds(std::llround(std::min(ms, 1e15))));
}

// Trace times: non-negative decimal seconds, at most ~31 years so that
// epoch + time stays far inside TimePoint's range.
bool ParseSeconds(std::string_view s, milliseconds* out) {
  double seconds = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), seconds);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(seconds) || seconds < 0 ||
      seconds > 1e9) {
    return false;
  }
  *out = milliseconds(std::llround(seconds * 1000));
  return true;
}

}  // namespace

Result<std::vector<TraceEvent>> ParseTrace(const std::string& text) {
  std::vector<TraceEvent> events;
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream fields(line);
    std::vector<std::string> words;
    for (std::string w; fields >> w;) words.push_back(std::move(w));
    if (words.empty()) continue;

    auto error = [&](const std::string& what) {
      return InvalidArgument("trace line " + std::to_string(number) + ": " + what);
    };
    TraceEvent event;
    if (!ParseSeconds(words[0], &event.at)) {
      return error("bad time '" + words[0] + "' (want seconds since start, e.g. 90 or 12.5)");
    }
    if (words.size() < 2) return error("missing event (interrupt or unavailable)");
    if (words[1] == "interrupt") {
      if (words.size() != 3) return error("want '<seconds> interrupt <instance type>'");
      event.kind = TraceEvent::Kind::kInterrupt;
    } else if (words[1] == "unavailable") {
      if (words.size() != 4) {
        return error("want '<seconds> unavailable <instance type> <duration seconds>'");
      }
      event.kind = TraceEvent::Kind::kUnavailable;
      if (!ParseSeconds(words[3], &event.duration) || event.duration <= milliseconds(0)) {
        return error("bad duration '" + words[3] + "' (want seconds > 0)");
      }
    } else {
      return error("unknown event '" + words[1] + "' (want interrupt or unavailable)");
    }
    event.instance_type = words[2];
    events.push_back(std::move(event));
  }
  return events;
}

SpotMarket::SpotMarket(SpotMarketConfig config, TimePoint epoch)
    : config_(std::move(config)), epoch_(epoch) {
  // Stable: events at the same time keep the file's order.
  std::stable_sort(config_.trace.begin(), config_.trace.end(),
                   [](const TraceEvent& a, const TraceEvent& b) { return a.at < b.at; });
  for (const TraceEvent& e : config_.trace) {
    if (e.kind == TraceEvent::Kind::kUnavailable) {
      outages_[e.instance_type].emplace_back(epoch_ + e.at, epoch_ + e.at + e.duration);
    }
  }
}

const SpotModel& SpotMarket::ModelFor(const std::string& type) const {
  auto it = config_.types.find(type);
  return it == config_.types.end() ? config_.defaults : it->second;
}

SpotMarket::Availability& SpotMarket::AvailabilityFor(const std::string& type, TimePoint until) {
  auto [it, inserted] = availability_.try_emplace(type);
  Availability& a = it->second;
  if (inserted) a.generated_until = epoch_;
  const SpotModel& model = ModelFor(type);
  if (!model.mean_available || !model.mean_unavailable) return a;
  // Period i is available when i is even: capacity starts available at the
  // epoch. Each period's length is its own draw, so the timeline does not
  // depend on how far earlier queries reached.
  while (a.generated_until <= until) {
    bool available = a.draws % 2 == 0;
    uint64_t bits = DrawHash(config_.seed).Add(type).Add("availability").Add(a.draws).Finish();
    milliseconds length =
        Exponential(available ? *model.mean_available : *model.mean_unavailable, bits);
    if (!available) a.windows.emplace_back(a.generated_until, a.generated_until + length);
    a.generated_until += length;
    ++a.draws;
  }
  return a;
}

bool SpotMarket::Available(const std::string& type, TimePoint now) {
  return !UnavailableUntil(type, now).has_value();
}

std::optional<TimePoint> SpotMarket::UnavailableUntil(const std::string& type, TimePoint now) {
  static const std::vector<std::pair<TimePoint, TimePoint>> kNone;
  auto outages_it = outages_.find(type);
  const auto& outages = outages_it == outages_.end() ? kNone : outages_it->second;

  // Walk forward from `now` through every window covering the current point:
  // overlapping and back-to-back windows of any source form one outage.
  TimePoint point = now;
  bool covered = false;
  for (;;) {
    TimePoint end = point;
    const auto& windows = AvailabilityFor(type, point).windows;
    // The generated windows are sorted and disjoint: only the last one
    // starting at or before `point` can cover it.
    auto after = std::upper_bound(windows.begin(), windows.end(), point,
                                  [](TimePoint t, const auto& w) { return t < w.first; });
    if (after != windows.begin()) end = std::max(end, std::prev(after)->second);
    for (const auto& [start, stop] : outages) {
      if (start <= point && point < stop) end = std::max(end, stop);
    }
    if (end == point) break;
    point = end;
    covered = true;
  }
  if (!covered) return std::nullopt;
  return point;
}

void SpotMarket::MakeUnavailable(const std::string& type, std::chrono::milliseconds duration,
                                 TimePoint now) {
  if (duration <= milliseconds(0)) return;
  outages_[type].emplace_back(now, now + duration);
}

std::optional<TimePoint> SpotMarket::DrawInterruption(const std::string& type,
                                                      const std::string& key, TimePoint start) {
  const SpotModel& model = ModelFor(type);
  if (!model.mean_time_between_interruptions) return std::nullopt;
  uint64_t bits = DrawHash(config_.seed).Add(type).Add("interruption").Add(key).Finish();
  return start + Exponential(*model.mean_time_between_interruptions, bits);
}

std::vector<std::string> SpotMarket::DueTraceInterruptions(TimePoint now) {
  std::vector<std::string> due;
  for (; next_trace_ < config_.trace.size() && epoch_ + config_.trace[next_trace_].at <= now;
       ++next_trace_) {
    const TraceEvent& e = config_.trace[next_trace_];
    if (e.kind == TraceEvent::Kind::kInterrupt) due.push_back(e.instance_type);
  }
  return due;
}

std::vector<SpotTypeStatus> SpotMarket::Status(TimePoint now,
                                               const std::vector<std::string>& extra_types) {
  std::set<std::string> names(extra_types.begin(), extra_types.end());
  for (const auto& [type, model] : config_.types) names.insert(type);
  for (const TraceEvent& e : config_.trace) names.insert(e.instance_type);
  for (const auto& [type, windows] : outages_) names.insert(type);

  std::vector<SpotTypeStatus> status;
  status.reserve(names.size());
  for (const std::string& type : names) {
    SpotTypeStatus s;
    s.instance_type = type;
    s.unavailable_until = UnavailableUntil(type, now);
    s.available = !s.unavailable_until.has_value();
    s.model = ModelFor(type);
    status.push_back(std::move(s));
  }
  return status;
}

}  // namespace ty::capacity
