#include "services/events/events_service.h"

#include <charconv>
#include <optional>
#include <set>
#include <variant>

#include "api/api_error.h"
#include "common/crypto.h"
#include "common/json.h"
#include "control/delivery.h"
#include "events/event_pattern.h"
#include "events/job_event.h"
#include "events/schedule.h"

namespace ty::services {

using api::ApiError;
using nlohmann::json;

namespace {

constexpr size_t kMaxPutEventsBytes = 256 * 1024;
constexpr size_t kMaxTokenBytes = 256;

ApiError ValidationError(std::string message) {
  return {"ValidationException", std::move(message), 400};
}
ApiError RuleNotFound(const std::string& name) {
  return {"ResourceNotFoundException", "Rule " + name + " does not exist on EventBus default.",
          400};
}
ApiError BadPattern(const std::string& message) {
  return {"InvalidEventPatternException", message, 400};
}
ApiError FromStatus(const Status& s) {
  if (s.code() == StatusCode::kUnavailable) {
    return {"InternalException", "The service is busy; try again.", 500};
  }
  if (s.code() == StatusCode::kNotFound) return {"ResourceNotFoundException", s.message(), 400};
  return api::ToApiError(s);
}

std::string Str(const json& in, const char* key) {
  auto it = in.find(key);
  return it != in.end() && it->is_string() ? it->get<std::string>() : std::string();
}
bool Has(const json& in, const char* key) {
  auto it = in.find(key);
  return it != in.end() && !it->is_null();
}

std::string Hex(std::string_view s) {
  static constexpr const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view s) {
  if (s.size() % 2 != 0 || s.size() > kMaxTokenBytes) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < s.size(); i += 2) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return std::nullopt;
    out += static_cast<char>(v);
  }
  return out;
}

// The only bus is the account's "default": by name or by its ARN. An error for any other.
std::optional<ApiError> CheckBus(const json& in, const char* key, const std::string& account,
                                 const std::string& region) {
  const std::string bus = Str(in, key);
  if (bus.empty() || bus == "default" ||
      bus == "arn:aws:events:" + region + ":" + account + ":event-bus/default") {
    return std::nullopt;
  }
  return ApiError{"ResourceNotFoundException",
                  "Event bus " + bus +
                      " does not exist. (Trainyard serves each account's default event bus only.)",
                  400};
}

json RuleJson(const store::RuleRow& r, const std::string& arn) {
  json out = {{"Name", r.name}, {"Arn", arn}, {"State", r.state}, {"EventBusName", r.bus}};
  if (!r.event_pattern.empty()) out["EventPattern"] = r.event_pattern;
  if (!r.schedule.empty()) out["ScheduleExpression"] = r.schedule;
  if (!r.description.empty()) out["Description"] = r.description;
  if (!r.role_arn.empty()) out["RoleArn"] = r.role_arn;
  return out;
}

// The bytes EventBridge counts for a PutEvents entry (its "calculating PutEvents event entry
// size" rules): Time 14, Source, DetailType, Detail and each Resource as UTF-8.
size_t EntrySize(const json& e) {
  size_t n = Has(e, "Time") ? 14 : 0;
  n += Str(e, "Source").size() + Str(e, "DetailType").size() + Str(e, "Detail").size();
  if (auto it = e.find("Resources"); it != e.end() && it->is_array()) {
    for (const auto& r : *it) n += r.is_string() ? r.get_ref<const std::string&>().size() : 0;
  }
  return n;
}

}  // namespace

EventsService::EventsService(EventsOptions options, store::Store* store, const Clock* clock,
                             std::function<void()> wake)
    : options_(std::move(options)),
      model_(api::ServiceModel::Embedded("events")),
      store_(store),
      clock_(clock),
      wake_(std::move(wake)) {}

std::string EventsService::RuleArn(const std::string& account, const std::string& name) const {
  return "arn:aws:events:" + options_.region + ":" + account + ":rule/" + name;
}

api::ServiceOutcome EventsService::Call(const api::CallContext& ctx, const api::Operation& op,
                                        const json& input) {
  const std::string& account = ctx.caller.account_id;
  const std::string& name = op.name;
  if (name != "PutEvents" && name != "TestEventPattern") {
    if (auto err = CheckBus(input, "EventBusName", account, options_.region)) return *err;
  }
  if (name == "PutRule") return PutRule(account, input);
  if (name == "DescribeRule") return DescribeRule(account, input);
  if (name == "ListRules") return ListRules(account, input);
  if (name == "EnableRule") return SetState(account, input, "ENABLED");
  if (name == "DisableRule") return SetState(account, input, "DISABLED");
  if (name == "DeleteRule") return DeleteRule(account, input);
  if (name == "PutTargets") return PutTargets(account, input);
  if (name == "RemoveTargets") return RemoveTargets(account, input);
  if (name == "ListTargetsByRule") return ListTargetsByRule(account, input);
  if (name == "PutEvents") return PutEvents(account, input);
  if (name == "TestEventPattern") return TestEventPattern(account, input);
  return ApiError{"UnknownOperationException", "Unknown operation '" + name + "'.", 400};
}

EventsService::Outcome EventsService::PutRule(const std::string& account, const Json& in) {
  store::RuleRow row;
  row.account = account;
  row.name = Str(in, "Name");
  row.event_pattern = Str(in, "EventPattern");
  row.schedule = Str(in, "ScheduleExpression");
  if (row.event_pattern.empty() && row.schedule.empty()) {
    return ValidationError("Parameter(s) EventPattern or ScheduleExpression must be specified.");
  }
  if (!row.event_pattern.empty()) {
    auto pattern = events::EventPattern::Parse(row.event_pattern);
    if (!pattern.ok()) return BadPattern(pattern.status().message());
  }
  if (!row.schedule.empty()) {
    auto schedule = events::Schedule::Parse(row.schedule);
    if (!schedule.ok()) return ValidationError(schedule.status().message());
  }
  auto existing = store_->GetRule(account, row.bus, row.name);
  if (!existing.ok() && existing.status().code() != StatusCode::kNotFound) {
    return FromStatus(existing.status());
  }
  // PutRule without State keeps an existing rule's state; a new rule starts ENABLED.
  row.state = Has(in, "State") ? Str(in, "State") : existing.ok() ? existing->state : "ENABLED";
  if (row.state == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS") row.state = "ENABLED";
  row.description = Str(in, "Description");
  row.role_arn = Str(in, "RoleArn");
  if (!existing.ok()) {
    auto count = store_->ListRules(account, row.bus, "", "", options_.max_rules);
    if (!count.ok()) return FromStatus(count.status());
    if (static_cast<int>(count->size()) >= options_.max_rules) {
      return ApiError{"LimitExceededException",
                      "The requested resource exceeds the maximum number allowed.", 400};
    }
  }
  Status s = store_->PutRule(&row, ToEpochMillis(clock_->Now()));
  if (!s.ok()) return FromStatus(s);
  if (wake_) wake_();  // a new schedule is fired from the dispatcher's next pass
  return json{{"RuleArn", RuleArn(account, row.name)}};
}

EventsService::Outcome EventsService::DescribeRule(const std::string& account, const Json& in) {
  const std::string name = Str(in, "Name");
  auto rule = store_->GetRule(account, "default", name);
  if (!rule.ok()) {
    return rule.status().code() == StatusCode::kNotFound ? RuleNotFound(name)
                                                         : FromStatus(rule.status());
  }
  json out = RuleJson(*rule, RuleArn(account, name));
  out["CreatedBy"] = account;
  return out;
}

EventsService::Outcome EventsService::ListRules(const std::string& account, const Json& in) {
  std::string after;
  if (Has(in, "NextToken")) {
    auto t = Unhex(Str(in, "NextToken"));
    if (!t || t->empty()) return ValidationError("The NextToken provided is invalid.");
    after = *t;
  }
  int64_t limit = in.value("Limit", 100);
  auto rows = store_->ListRules(account, "default", Str(in, "NamePrefix"), after, limit + 1);
  if (!rows.ok()) return FromStatus(rows.status());
  json out = {{"Rules", json::array()}};
  for (size_t i = 0; i < rows->size() && static_cast<int64_t>(i) < limit; ++i) {
    out["Rules"].push_back(RuleJson((*rows)[i], RuleArn(account, (*rows)[i].name)));
  }
  if (static_cast<int64_t>(rows->size()) > limit) {
    out["NextToken"] = Hex((*rows)[static_cast<size_t>(limit - 1)].name);
  }
  return out;
}

EventsService::Outcome EventsService::SetState(const std::string& account, const Json& in,
                                               const char* state) {
  const std::string name = Str(in, "Name");
  Status s = store_->SetRuleState(account, "default", name, state);
  if (s.code() == StatusCode::kNotFound) return RuleNotFound(name);
  if (!s.ok()) return FromStatus(s);
  if (wake_) wake_();
  return json::object();
}

EventsService::Outcome EventsService::DeleteRule(const std::string& account, const Json& in) {
  Status s = store_->DeleteRule(account, "default", Str(in, "Name"));
  if (s.code() == StatusCode::kFailedPrecondition) return ValidationError(s.message());
  if (!s.ok()) return FromStatus(s);
  return json::object();
}

EventsService::Outcome EventsService::PutTargets(const std::string& account, const Json& in) {
  const std::string name = Str(in, "Rule");
  auto rule = store_->GetRule(account, "default", name);
  if (!rule.ok()) {
    return rule.status().code() == StatusCode::kNotFound ? RuleNotFound(name)
                                                         : FromStatus(rule.status());
  }
  auto current = store_->ListTargets(rule->id, "", 1000);
  if (!current.ok()) return FromStatus(current.status());
  std::set<std::string> ids;
  for (const auto& t : *current) ids.insert(t.target_id);
  std::vector<store::TargetRow> rows;
  json failed = json::array();
  for (const auto& t : in.at("Targets")) {
    const std::string id = Str(t, "Id");
    const std::string arn = Str(t, "Arn");
    auto fail = [&](const char* code, std::string message) {
      failed.push_back({{"TargetId", id}, {"ErrorCode", code}, {"ErrorMessage", message}});
    };
    int inputs = (Has(t, "Input") ? 1 : 0) + (Has(t, "InputPath") ? 1 : 0) +
                 (Has(t, "InputTransformer") ? 1 : 0);
    if (inputs > 1) {
      return ValidationError(
          "Only one of Input, InputPath, or InputTransformer must be provided for the target " +
          id + ".");
    }
    if (Has(t, "Input")) {
      auto parsed = ParseJson(Str(t, "Input"));
      if (!parsed.ok())
        return ValidationError("Input is not valid JSON text for target " + id + ".");
    }
    if (Has(t, "InputPath")) {
      Status valid = events::ValidateInputPath(Str(t, "InputPath"));
      if (!valid.ok()) {
        return ValidationError("InputPath for target " + id + " is invalid: " + valid.message());
      }
    }
    if (Has(t, "InputTransformer")) {
      const json& tr = t.at("InputTransformer");
      Status valid = events::ValidateInputTransformer(tr.value("InputPathsMap", json::object()),
                                                      Str(tr, "InputTemplate"));
      if (!valid.ok()) {
        return ValidationError("InputTransformer for target " + id +
                               " is invalid: " + valid.message());
      }
    }
    if (arn.rfind("arn:", 0) != 0 || control::ArnService(arn).empty()) {
      fail("ValidationException", "Parameter " + arn + " is not valid.");
      continue;
    }
    ids.insert(id);
    rows.push_back({rule->id, id, arn, t.dump()});
  }
  if (static_cast<int>(ids.size()) > options_.max_targets) {
    return ApiError{"LimitExceededException",
                    "The requested resource exceeds the maximum number allowed.", 400};
  }
  if (!rows.empty()) {
    Status s = store_->PutTargets(rule->id, rows);
    if (s.code() == StatusCode::kNotFound) return RuleNotFound(name);
    if (!s.ok()) return FromStatus(s);
  }
  return json{{"FailedEntryCount", failed.size()}, {"FailedEntries", failed}};
}

EventsService::Outcome EventsService::RemoveTargets(const std::string& account, const Json& in) {
  const std::string name = Str(in, "Rule");
  auto rule = store_->GetRule(account, "default", name);
  if (!rule.ok()) {
    return rule.status().code() == StatusCode::kNotFound ? RuleNotFound(name)
                                                         : FromStatus(rule.status());
  }
  std::vector<std::string> ids;
  for (const auto& id : in.at("Ids")) ids.push_back(id.get<std::string>());
  Status s = store_->RemoveTargets(rule->id, ids);
  if (!s.ok()) return FromStatus(s);
  return json{{"FailedEntryCount", 0}, {"FailedEntries", json::array()}};
}

EventsService::Outcome EventsService::ListTargetsByRule(const std::string& account,
                                                        const Json& in) {
  const std::string name = Str(in, "Rule");
  auto rule = store_->GetRule(account, "default", name);
  if (!rule.ok()) {
    return rule.status().code() == StatusCode::kNotFound ? RuleNotFound(name)
                                                         : FromStatus(rule.status());
  }
  std::string after;
  if (Has(in, "NextToken")) {
    auto t = Unhex(Str(in, "NextToken"));
    if (!t || t->empty()) return ValidationError("The NextToken provided is invalid.");
    after = *t;
  }
  int64_t limit = in.value("Limit", 100);
  auto rows = store_->ListTargets(rule->id, after, limit + 1);
  if (!rows.ok()) return FromStatus(rows.status());
  json out = {{"Targets", json::array()}};
  for (size_t i = 0; i < rows->size() && static_cast<int64_t>(i) < limit; ++i) {
    auto t = ParseJson((*rows)[i].target_json);
    out["Targets"].push_back(t.ok() ? *t
                                    : json{{"Id", (*rows)[i].target_id}, {"Arn", (*rows)[i].arn}});
  }
  if (static_cast<int64_t>(rows->size()) > limit) {
    out["NextToken"] = Hex((*rows)[static_cast<size_t>(limit - 1)].target_id);
  }
  return out;
}

EventsService::Outcome EventsService::PutEvents(const std::string& account, const Json& in) {
  const json& entries = in.at("Entries");
  size_t total = 0;
  for (const auto& e : entries) total += EntrySize(e);
  if (total > kMaxPutEventsBytes) {
    return ValidationError("Total size of the entries in the request is over the limit.");
  }
  const TimePoint now = clock_->Now();
  json results = json::array();
  std::vector<store::OutboxEvent> events;
  int failed = 0;
  for (const auto& e : entries) {
    auto fail = [&](const char* code, const std::string& message) {
      results.push_back({{"ErrorCode", code}, {"ErrorMessage", message}});
      ++failed;
    };
    const std::string source = Str(e, "Source");
    const std::string detail_type = Str(e, "DetailType");
    if (CheckBus(e, "EventBusName", account, options_.region)) {
      fail("InvalidArgument",
           "Parameter EventBusName is not valid. Reason: Trainyard serves "
           "each account's default event bus only.");
      continue;
    }
    if (source.empty()) {
      fail("InvalidArgument",
           "Parameter Source is not valid. Reason: Source is a required argument.");
      continue;
    }
    if (detail_type.empty()) {
      fail("InvalidArgument",
           "Parameter DetailType is not valid. Reason: DetailType is a required argument.");
      continue;
    }
    if (!Has(e, "Detail")) {
      fail("InvalidArgument",
           "Parameter Detail is not valid. Reason: Detail is a required argument.");
      continue;
    }
    if (source.rfind("aws.", 0) == 0) {
      fail("NotAuthorizedForSourceException", "Not authorized for the source.");
      continue;
    }
    auto detail = ParseJson(Str(e, "Detail"));
    if (!detail.ok() || !detail->is_object()) {
      fail("MalformedDetail", "Detail is malformed.");
      continue;
    }
    TimePoint time = now;
    if (auto t = e.find("Time"); t != e.end() && t->is_number()) {
      time = FromEpochMillis(static_cast<int64_t>(t->get<double>() * 1000));
    }
    std::vector<std::string> resources;
    if (auto r = e.find("Resources"); r != e.end() && r->is_array()) {
      for (const auto& x : *r) resources.push_back(x.get<std::string>());
    }
    const std::string id = RandomUuid();
    json event = events::EventEnvelope(id, detail_type, source, account, options_.region, time,
                                       std::move(resources), std::move(detail).value());
    events.push_back({0, account, "", event.dump(-1, ' ', false, json::error_handler_t::replace),
                      ToEpochMillis(now)});
    results.push_back({{"EventId", id}});
  }
  if (!events.empty()) {
    Status s = store_->AppendOutbox(events);
    if (!s.ok()) return FromStatus(s);
    if (wake_) wake_();
  }
  return json{{"FailedEntryCount", failed}, {"Entries", std::move(results)}};
}

EventsService::Outcome EventsService::TestEventPattern(const std::string& account, const Json& in) {
  auto pattern = events::EventPattern::Parse(Str(in, "EventPattern"));
  if (!pattern.ok()) return BadPattern(pattern.status().message());
  auto event = ParseJson(Str(in, "Event"));
  if (!event.ok() || !event->is_object()) {
    return ValidationError("Parameter Event is not valid.");
  }
  // EventBridge checks the event is a whole envelope before matching it.
  for (const char* field : {"id", "account", "source", "time", "region", "detail-type"}) {
    auto it = event->find(field);
    if (it == event->end() || !it->is_string()) {
      return ValidationError(std::string("Parameter Event is not valid. Reason: Field ") + field +
                             " is missing or not a string.");
    }
  }
  if (auto r = event->find("resources"); r == event->end() || !r->is_array()) {
    return ValidationError(
        "Parameter Event is not valid. Reason: Field resources is missing or "
        "not an array.");
  }
  return json{{"Result", pattern->Matches(*event)}};
}

}  // namespace ty::services
