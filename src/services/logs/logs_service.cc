#include "services/logs/logs_service.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <unordered_set>
#include <variant>

#include "api/api_error.h"
#include "services/logs/filter_pattern.h"

namespace ty::services {

using api::ApiError;
using nlohmann::json;

namespace {

constexpr int64_t kDefaultEventsLimit = 10000;
constexpr int64_t kMaxPageBytes = 1 << 20;   // GetLogEvents / FilterLogEvents pages
constexpr int64_t kMaxBatchBytes = 1048576;  // PutLogEvents, messages + 26 per event
constexpr int64_t kEventOverheadBytes = 26;
constexpr int64_t kMaxAgeMs = 14LL * 24 * 3600 * 1000;
constexpr int64_t kMaxFutureMs = 2LL * 3600 * 1000;
constexpr int64_t kMaxBatchSpanMs = 24LL * 3600 * 1000;
constexpr size_t kMaxTokenBytes = 2048;
constexpr size_t kMaxFilterStreams = 10000;  // a prefix naming more streams is refused

ApiError InvalidParameter(std::string message) {
  return {"InvalidParameterException", std::move(message), 400};
}
ApiError NotFound(std::string message) {
  return {"ResourceNotFoundException", std::move(message), 400};
}
ApiError BadToken() { return InvalidParameter("The specified nextToken is invalid."); }

ApiError FromStatus(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound:
      return NotFound(s.message());
    case StatusCode::kAlreadyExists:
      return {"ResourceAlreadyExistsException", s.message(), 400};
    case StatusCode::kInvalidArgument:
      return InvalidParameter(s.message());
    case StatusCode::kUnavailable:
      return {"ServiceUnavailableException", "The service cannot complete the request.", 503};
    default:
      return api::ToApiError(s);
  }
}

std::string Str(const json& in, const char* key) {
  auto it = in.find(key);
  return it != in.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::optional<int64_t> Int(const json& in, const char* key) {
  auto it = in.find(key);
  if (it == in.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}
bool Bool(const json& in, const char* key, bool fallback) {
  auto it = in.find(key);
  return it != in.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

// ---- tokens: '/'-separated fields; names travel hex-encoded -----------------------------------

std::string Hex(std::string_view s) {
  static constexpr const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return std::nullopt;
    out += static_cast<char>(v);
  }
  return out;
}

std::optional<std::vector<std::string_view>> SplitToken(std::string_view t, size_t fields) {
  if (t.empty() || t.size() > kMaxTokenBytes) return std::nullopt;
  std::vector<std::string_view> out;
  size_t b = 0;
  for (;;) {
    size_t e = t.find('/', b);
    out.push_back(t.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) break;
    b = e + 1;
    if (out.size() > fields) return std::nullopt;
  }
  if (out.size() != fields) return std::nullopt;
  return out;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Appends `s` as a JSON string. Job output need not be valid UTF-8: a byte that starts no valid
// sequence becomes U+FFFD, as the JSON codec's serializer does.
void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr const char* kHex = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == '"' || c == '\\') {
        out->push_back('\\');
        out->push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        switch (c) {
          case '\n':
            out->append("\\n");
            break;
          case '\t':
            out->append("\\t");
            break;
          case '\r':
            out->append("\\r");
            break;
          default:
            out->append("\\u00");
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 15]);
        }
      } else {
        out->push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    size_t len = c >= 0xC2 && c <= 0xDF   ? 2
                 : c >= 0xE0 && c <= 0xEF ? 3
                 : c >= 0xF0 && c <= 0xF4 ? 4
                                          : 0;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      unsigned char lo = 0x80, hi = 0xBF;
      if (k == 1) {  // no overlong forms, no surrogates, nothing past U+10FFFF
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      ok = b >= lo && b <= hi;
    }
    if (ok) {
      out->append(s.data() + i, len);
      i += len;
    } else {
      out->append("\\ufffd");
      ++i;
    }
  }
  out->push_back('"');
}

struct EventCursor {
  bool forward = true;
  int64_t stream_id = 0;
  int64_t seq = 0;
};

std::string EventToken(bool forward, int64_t stream_id, int64_t seq) {
  return std::string(forward ? "f/" : "b/") + std::to_string(stream_id) + "/" + std::to_string(seq);
}

std::optional<EventCursor> ParseEventToken(std::string_view t) {
  auto f = SplitToken(t, 3);
  if (!f || ((*f)[0] != "f" && (*f)[0] != "b")) return std::nullopt;
  auto stream = ParseInt((*f)[1]);
  auto seq = ParseInt((*f)[2]);
  if (!stream || !seq || *seq < 0) return std::nullopt;
  return EventCursor{(*f)[0] == "f", *stream, *seq};
}

json StreamToJson(const store::LogStreamRow& s, const std::string& group_arn_base) {
  json o = {{"logStreamName", s.name},
            {"creationTime", s.creation_ms},
            {"arn", group_arn_base + ":log-stream:" + s.name},
            {"storedBytes", s.stored_bytes}};
  if (s.first_event_ms) o["firstEventTimestamp"] = *s.first_event_ms;
  if (s.last_event_ms) o["lastEventTimestamp"] = *s.last_event_ms;
  if (s.last_ingestion_ms) o["lastIngestionTime"] = *s.last_ingestion_ms;
  return o;
}

}  // namespace

LogsService::LogsService(LogsOptions options, store::Store* store, const Clock* clock)
    : options_(std::move(options)),
      model_(api::ServiceModel::Embedded("logs")),
      store_(store),
      clock_(clock) {}

std::string LogsService::GroupArn(const std::string& account, const std::string& group) const {
  return "arn:aws:logs:" + options_.region + ":" + account + ":log-group:" + group;
}

namespace {

// The group a request names by logGroupName or logGroupIdentifier (a name, or the ARN of a
// group of the caller's account).
std::variant<store::LogGroupRow, ApiError> ResolveGroup(store::Store* store,
                                                        const std::string& account,
                                                        const json& in) {
  std::string name = Str(in, "logGroupName");
  std::string ident = Str(in, "logGroupIdentifier");
  if (!name.empty() && !ident.empty()) {
    return InvalidParameter("LogGroup name and LogGroup ARN are mutually exclusive parameters.");
  }
  if (name.empty() && ident.empty()) {
    return InvalidParameter("Should provide either a LogGroup name or a LogGroup ARN.");
  }
  if (name.empty()) {
    name = ident;
    if (ident.rfind("arn:", 0) == 0) {
      // arn:aws:logs:<region>:<account>:log-group:<name>[:*]
      size_t at = ident.find(":log-group:");
      std::vector<std::string> parts;
      size_t b = 0;
      for (int i = 0; i < 5 && b != std::string::npos; ++i) {
        size_t e = ident.find(':', b);
        parts.push_back(ident.substr(b, e == std::string::npos ? std::string::npos : e - b));
        b = e == std::string::npos ? e : e + 1;
      }
      if (at == std::string::npos || parts.size() < 5) {
        return InvalidParameter("The specified logGroupIdentifier is not a valid ARN.");
      }
      if (parts[4] != account) return NotFound("The specified log group does not exist.");
      name = ident.substr(at + sizeof(":log-group:") - 1);
      if (name.size() >= 2 && name.compare(name.size() - 2, 2, ":*") == 0)
        name.resize(name.size() - 2);
    }
  }
  auto group = store->GetLogGroup(account, name);
  if (!group.ok()) return FromStatus(group.status());
  return std::move(group).value();
}

}  // namespace

api::ServiceOutcome LogsService::Call(const api::CallContext& ctx, const api::Operation& op,
                                      const json& input) {
  using Handler = Outcome (LogsService::*)(const std::string&, const Json&);
  static const std::pair<const char*, Handler> kOps[] = {
      {"DescribeLogGroups", &LogsService::DescribeLogGroups},
      {"DescribeLogStreams", &LogsService::DescribeLogStreams},
      {"GetLogEvents", &LogsService::GetLogEvents},
      {"FilterLogEvents", &LogsService::FilterLogEvents},
      {"CreateLogGroup", &LogsService::CreateLogGroup},
      {"CreateLogStream", &LogsService::CreateLogStream},
      {"PutLogEvents", &LogsService::PutLogEvents},
      {"DeleteLogGroup", &LogsService::DeleteLogGroup},
      {"DeleteLogStream", &LogsService::DeleteLogStream},
  };
  for (const auto& [name, handler] : kOps) {
    if (op.name == name) return (this->*handler)(ctx.caller.account_id, input);
  }
  return ApiError{"UnknownOperationException", "Unknown operation '" + op.name + "'.", 400};
}

LogsService::Outcome LogsService::DescribeLogGroups(const std::string& account, const Json& in) {
  std::string prefix = Str(in, "logGroupNamePrefix");
  std::string pattern = Str(in, "logGroupNamePattern");
  if (!prefix.empty() && !pattern.empty()) {
    return InvalidParameter(
        "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.");
  }
  if (in.contains("logGroupIdentifiers") || in.contains("accountIdentifiers")) {
    return InvalidParameter("logGroupIdentifiers and accountIdentifiers are not supported.");
  }
  int64_t limit = Int(in, "limit").value_or(50);
  std::string after;
  if (std::string token = Str(in, "nextToken"); !token.empty()) {
    auto f = SplitToken(token, 2);
    auto name = f && (*f)[0] == "g" ? Unhex((*f)[1]) : std::nullopt;
    if (!name) return BadToken();
    after = *name;
  }
  auto rows = store_->ListLogGroups(account, prefix, pattern, after, limit + 1);
  if (!rows.ok()) return FromStatus(rows.status());
  json groups = json::array();
  for (int64_t i = 0; i < std::min<int64_t>(limit, static_cast<int64_t>(rows->size())); ++i) {
    const auto& g = (*rows)[static_cast<size_t>(i)];
    std::string arn = GroupArn(account, g.name);
    groups.push_back({{"logGroupName", g.name},
                      {"creationTime", g.creation_ms},
                      {"metricFilterCount", 0},
                      {"arn", arn + ":*"},
                      {"logGroupArn", arn},
                      {"storedBytes", g.stored_bytes},
                      {"logGroupClass", "STANDARD"}});
  }
  json out = {{"logGroups", std::move(groups)}};
  if (static_cast<int64_t>(rows->size()) > limit) {
    out["nextToken"] = "g/" + Hex((*rows)[static_cast<size_t>(limit - 1)].name);
  }
  return out;
}

LogsService::Outcome LogsService::DescribeLogStreams(const std::string& account, const Json& in) {
  auto group = ResolveGroup(store_, account, in);
  if (auto* e = std::get_if<ApiError>(&group)) return *e;
  const auto& g = std::get<store::LogGroupRow>(group);
  store::StreamQuery q;
  q.group_id = g.id;
  q.prefix = Str(in, "logStreamNamePrefix");
  q.by_last_event = Str(in, "orderBy") == "LastEventTime";
  q.descending = Bool(in, "descending", false);
  q.limit = Int(in, "limit").value_or(50);
  if (q.by_last_event && !q.prefix.empty()) {
    return InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.");
  }
  // n/<group>/<desc>/<hex name>  or  t/<group>/<desc>/<time>/<id>
  const std::string mode = std::string(q.by_last_event ? "t" : "n") + "/" + std::to_string(g.id) +
                           "/" + (q.descending ? "1" : "0") + "/";
  if (std::string token = Str(in, "nextToken"); !token.empty()) {
    if (token.rfind(mode, 0) != 0 || token.size() > kMaxTokenBytes) return BadToken();
    std::string_view rest = std::string_view(token).substr(mode.size());
    if (q.by_last_event) {
      size_t slash = rest.find('/');
      auto t = ParseInt(rest.substr(0, slash));
      auto id = slash == std::string_view::npos ? std::nullopt : ParseInt(rest.substr(slash + 1));
      if (!t || !id) return BadToken();
      q.after_time_id = std::make_pair(*t, *id);
    } else {
      auto name = Unhex(rest);
      if (!name) return BadToken();
      q.after_name = *name;
    }
  }
  const int64_t limit = q.limit;
  q.limit = limit + 1;  // one more tells whether another page remains
  auto rows = store_->ListLogStreams(q);
  if (!rows.ok()) return FromStatus(rows.status());
  const std::string base = GroupArn(account, g.name);
  json streams = json::array();
  for (int64_t i = 0; i < std::min<int64_t>(limit, static_cast<int64_t>(rows->size())); ++i) {
    streams.push_back(StreamToJson((*rows)[static_cast<size_t>(i)], base));
  }
  json out = {{"logStreams", std::move(streams)}};
  if (static_cast<int64_t>(rows->size()) > limit) {
    const auto& last = (*rows)[static_cast<size_t>(limit - 1)];
    out["nextToken"] = mode + (q.by_last_event ? std::to_string(last.last_event_ms.value_or(0)) +
                                                     "/" + std::to_string(last.id)
                                               : Hex(last.name));
  }
  return out;
}

LogsService::Outcome LogsService::GetLogEvents(const std::string& account, const Json& in) {
  auto group = ResolveGroup(store_, account, in);
  if (auto* e = std::get_if<ApiError>(&group)) return *e;
  auto stream =
      store_->GetLogStream(std::get<store::LogGroupRow>(group).id, Str(in, "logStreamName"));
  if (!stream.ok()) return FromStatus(stream.status());
  std::optional<EventCursor> cursor;
  if (std::string token = Str(in, "nextToken"); !token.empty()) {
    cursor = ParseEventToken(token);
    // A token names its stream: one from another stream (so from another account) is refused.
    if (!cursor || cursor->stream_id != stream->id) return BadToken();
  }
  const bool head = Bool(in, "startFromHead", false);
  store::StreamRead r;
  r.stream_id = stream->id;
  r.start_ms = Int(in, "startTime");
  r.end_ms = Int(in, "endTime");
  r.limit = Int(in, "limit").value_or(kDefaultEventsLimit);
  r.max_bytes = kMaxPageBytes;
  if (cursor) {
    if (cursor->forward) {
      r.after_seq = cursor->seq;
    } else {
      r.before_seq = cursor->seq;
      r.newest_first = true;
    }
  } else {
    r.newest_first = !head;
  }
  auto events = store_->ReadStreamEvents(r);
  if (!events.ok()) return FromStatus(events.status());
  std::string forward, backward;
  const int64_t id = stream->id;
  if (!events->empty()) {
    forward = EventToken(true, id, events->back().seq);
    backward = EventToken(false, id, events->front().seq);
  } else if (cursor) {
    // Nothing beyond the cursor: the same token comes back (the end of the stream, so far).
    forward = cursor->forward ? EventToken(true, id, cursor->seq)
                              : EventToken(true, id, std::max<int64_t>(cursor->seq - 1, 0));
    backward = cursor->forward ? EventToken(false, id, cursor->seq + 1)
                               : EventToken(false, id, cursor->seq);
  } else if (head) {
    forward = EventToken(true, id, 0);
    backward = EventToken(false, id, 0);
  } else {
    // Nothing to show at the tail: the forward token waits for events appended from now on.
    forward = EventToken(true, id, stream->last_seq);
    backward = EventToken(false, id, stream->last_seq + 1);
  }
  // Rendered here rather than as a document: a page holds up to 10,000 events, and this is the
  // call every log reader repeats.
  std::string body;
  size_t bytes = 128;
  for (const auto& e : *events) bytes += e.message.size() + 72;
  body.reserve(bytes);
  body += "{\"events\":[";
  for (size_t i = 0; i < events->size(); ++i) {
    const auto& e = (*events)[i];
    if (i > 0) body += ',';
    body += "{\"timestamp\":";
    body += std::to_string(e.timestamp_ms);
    body += ",\"message\":";
    AppendJsonString(&body, e.message);
    body += ",\"ingestionTime\":";
    body += std::to_string(e.ingestion_ms);
    body += '}';
  }
  body += "],\"nextForwardToken\":";
  AppendJsonString(&body, forward);
  body += ",\"nextBackwardToken\":";
  AppendJsonString(&body, backward);
  body += '}';
  return api::RawJson{std::move(body)};
}

LogsService::Outcome LogsService::FilterLogEvents(const std::string& account, const Json& in) {
  auto group = ResolveGroup(store_, account, in);
  if (auto* e = std::get_if<ApiError>(&group)) return *e;
  const auto& g = std::get<store::LogGroupRow>(group);
  const bool by_names = in.contains("logStreamNames");
  const std::string prefix = Str(in, "logStreamNamePrefix");
  if (by_names && in.contains("logStreamNamePrefix")) {
    return InvalidParameter("logStreamNames and logStreamNamePrefix are mutually exclusive.");
  }
  auto pattern = FilterPattern::Compile(Str(in, "filterPattern"));
  if (!pattern.ok()) return InvalidParameter(pattern.status().message());
  // The streams searched, when the request narrows them.
  std::optional<std::unordered_set<int64_t>> streams;
  if (by_names) {
    streams.emplace();
    for (const auto& n : in.at("logStreamNames")) {
      if (!n.is_string()) continue;
      auto s = store_->GetLogStream(g.id, n.get<std::string>());
      if (s.ok()) {
        streams->insert(s->id);
      } else if (s.status().code() != StatusCode::kNotFound) {
        return FromStatus(s.status());
      }
    }
  } else if (!prefix.empty()) {
    streams.emplace();
    store::StreamQuery q;
    q.group_id = g.id;
    q.prefix = prefix;
    q.limit = 1000;
    for (;;) {
      auto rows = store_->ListLogStreams(q);
      if (!rows.ok()) return FromStatus(rows.status());
      for (const auto& s : *rows) streams->insert(s.id);
      if (streams->size() > kMaxFilterStreams) {
        return InvalidParameter("logStreamNamePrefix matches more than 10000 streams.");
      }
      if (static_cast<int64_t>(rows->size()) < q.limit) break;
      q.after_name = rows->back().name;
    }
  }
  store::GroupScan scan;
  scan.group_id = g.id;
  scan.start_ms = Int(in, "startTime");
  scan.end_ms = Int(in, "endTime");
  const std::string mode = "x/" + std::to_string(g.id) + "/";
  if (std::string token = Str(in, "nextToken"); !token.empty()) {
    auto f = SplitToken(token, 4);
    auto gid = f ? ParseInt((*f)[1]) : std::nullopt;
    auto ts = f ? ParseInt((*f)[2]) : std::nullopt;
    auto seq = f ? ParseInt((*f)[3]) : std::nullopt;
    if (!f || (*f)[0] != "x" || !gid || *gid != g.id || !ts || !seq) return BadToken();
    scan.after_ts = *ts;
    scan.after_seq = *seq;
  }
  const int64_t limit = Int(in, "limit").value_or(kDefaultEventsLimit);
  json events = json::array();
  int64_t matched = 0, bytes = 0, scanned = 0;
  bool more = false;
  bool full = false;  // the page is complete; scanning on only to learn whether more match
  std::optional<std::pair<int64_t, int64_t>> resume;  // where the next page starts
  const int64_t budget = options_.filter_scan_budget;
  while (!more) {
    scan.limit = std::min<int64_t>(2000, budget - scanned);
    if (scan.limit <= 0) {
      more = true;  // out of budget: what remains is unknown, so say there may be more
      if (!resume) resume = std::make_pair(scan.after_ts, scan.after_seq);
      break;
    }
    auto rows = store_->ScanGroupEvents(scan);
    if (!rows.ok()) return FromStatus(rows.status());
    for (const auto& e : *rows) {
      ++scanned;
      scan.after_ts = e.timestamp_ms;
      scan.after_seq = e.seq;
      if (streams && streams->count(e.stream_id) == 0) continue;
      if (!(*pattern)->Matches(e.message)) continue;
      int64_t size = static_cast<int64_t>(e.message.size()) + kEventOverheadBytes;
      if (full || (matched > 0 && bytes + size > kMaxPageBytes)) {
        more = true;
        break;
      }
      events.push_back({{"logStreamName", e.stream},
                        {"timestamp", e.timestamp_ms},
                        {"message", e.message},
                        {"ingestionTime", e.ingestion_ms},
                        {"eventId", std::to_string(e.seq)}});
      bytes += size;
      resume = std::make_pair(e.timestamp_ms, e.seq);
      if (++matched >= limit) full = true;
    }
    if (!more && static_cast<int64_t>(rows->size()) < scan.limit) break;  // the end
  }
  json out = {{"events", std::move(events)}, {"searchedLogStreams", json::array()}};
  if (more && resume) {
    out["nextToken"] = mode + std::to_string(resume->first) + "/" + std::to_string(resume->second);
  }
  return out;
}

LogsService::Outcome LogsService::CreateLogGroup(const std::string& account, const Json& in) {
  if (in.contains("kmsKeyId")) return InvalidParameter("kmsKeyId is not supported.");
  auto g = store_->CreateLogGroup(account, Str(in, "logGroupName"), ToEpochMillis(clock_->Now()));
  if (!g.ok()) return FromStatus(g.status());
  return json::object();
}

LogsService::Outcome LogsService::CreateLogStream(const std::string& account, const Json& in) {
  auto g = store_->GetLogGroup(account, Str(in, "logGroupName"));
  if (!g.ok()) return FromStatus(g.status());
  auto s = store_->CreateLogStream(g->id, Str(in, "logStreamName"), ToEpochMillis(clock_->Now()));
  if (!s.ok()) return FromStatus(s.status());
  return json::object();
}

LogsService::Outcome LogsService::PutLogEvents(const std::string& account, const Json& in) {
  auto g = store_->GetLogGroup(account, Str(in, "logGroupName"));
  if (!g.ok()) return FromStatus(g.status());
  auto stream = store_->GetLogStream(g->id, Str(in, "logStreamName"));
  if (!stream.ok()) return FromStatus(stream.status());
  const json& list = in.at("logEvents");
  std::vector<std::pair<int64_t, std::string>> events;
  events.reserve(list.size());
  int64_t batch_bytes = 0;
  for (const auto& e : list) {
    int64_t ts = e.value("timestamp", int64_t{0});
    if (!events.empty() && ts < events.back().first) {
      return InvalidParameter(
          "Log events in a single PutLogEvents request must be in chronological order.");
    }
    events.emplace_back(ts, e.value("message", std::string()));
    batch_bytes += static_cast<int64_t>(events.back().second.size()) + kEventOverheadBytes;
  }
  if (batch_bytes > kMaxBatchBytes) {
    return InvalidParameter("Upload too large: " + std::to_string(batch_bytes) +
                            " bytes exceeds limit of " + std::to_string(kMaxBatchBytes));
  }
  if (!events.empty() && events.back().first - events.front().first > kMaxBatchSpanMs) {
    return InvalidParameter(
        "The batch of log events in a single PutLogEvents request cannot span more than 24 "
        "hours.");
  }
  const int64_t now = ToEpochMillis(clock_->Now());
  // Chronological, so the too old are a prefix and the too new a suffix.
  size_t old_end = 0;
  while (old_end < events.size() && events[old_end].first < now - kMaxAgeMs) ++old_end;
  size_t new_start = events.size();
  while (new_start > old_end && events[new_start - 1].first > now + kMaxFutureMs) --new_start;
  std::vector<std::pair<int64_t, std::string>> accepted(
      std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(old_end)),
      std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(new_start)));
  if (!accepted.empty()) {
    Status s = store_->PutStreamEvents(stream->id, accepted, now);
    if (!s.ok()) return FromStatus(s);
  }
  // sequenceToken is accepted and ignored, as CloudWatch does since 2023; the token returned
  // is for clients that still pass one.
  json out = {{"nextSequenceToken", std::to_string(stream->last_seq + 1)}};
  if (old_end > 0 || new_start < events.size()) {
    json info = json::object();
    if (old_end > 0) info["tooOldLogEventEndIndex"] = static_cast<int64_t>(old_end);
    if (new_start < events.size())
      info["tooNewLogEventStartIndex"] = static_cast<int64_t>(new_start);
    out["rejectedLogEventsInfo"] = std::move(info);
  }
  return out;
}

LogsService::Outcome LogsService::DeleteLogGroup(const std::string& account, const Json& in) {
  Status s = store_->DeleteLogGroup(account, Str(in, "logGroupName"));
  if (!s.ok()) return FromStatus(s);
  return json::object();
}

LogsService::Outcome LogsService::DeleteLogStream(const std::string& account, const Json& in) {
  auto g = store_->GetLogGroup(account, Str(in, "logGroupName"));
  if (!g.ok()) return FromStatus(g.status());
  Status s = store_->DeleteLogStream(g->id, Str(in, "logStreamName"));
  if (!s.ok()) return FromStatus(s);
  return json::object();
}

}  // namespace ty::services
