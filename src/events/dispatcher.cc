#include "events/dispatcher.h"

#include <algorithm>
#include <cstdio>

#include "common/crypto.h"
#include "common/json.h"
#include "events/job_event.h"
#include "events/schedule.h"

namespace ty::events {

using nlohmann::json;

namespace {

int64_t Ms(std::chrono::milliseconds d) { return d.count(); }

std::string LaneKey(const store::DeliveryRow& row) {
  return row.lane.empty() ? "#" + std::to_string(row.id) : row.lane;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

json ScheduledEvent(const std::string& id, const std::string& account, const std::string& region,
                    const std::string& rule_arn, TimePoint time) {
  return EventEnvelope(id, "Scheduled Event", "aws.events", account, region, time, {rule_arn},
                       json::object());
}

Result<std::string> TargetInput(const json& event, const json& target,
                                const InputContext& context) {
  if (auto it = target.find("Input"); it != target.end() && it->is_string()) {
    return it->get<std::string>();
  }
  if (auto it = target.find("InputPath"); it != target.end() && it->is_string()) {
    TY_ASSIGN_OR_RETURN(json part, SelectInputPath(event, it->get<std::string>()));
    return Dump(part);
  }
  if (auto it = target.find("InputTransformer"); it != target.end() && it->is_object()) {
    json paths = it->value("InputPathsMap", json::object());
    std::string tmpl = it->value("InputTemplate", std::string());
    return TransformInput(event, paths, tmpl, context);
  }
  return Dump(event);
}

EventDispatcher::EventDispatcher(DispatcherOptions options, store::Store* store,
                                 control::Deliverer* deliverer, const Clock* clock)
    : options_(std::move(options)), store_(store), deliverer_(deliverer), clock_(clock) {}

EventDispatcher::~EventDispatcher() { Shutdown(); }

Status EventDispatcher::Start() {
  if (options_.paused) return Status::Ok();
  TY_RETURN_IF_ERROR(LoadPending());
  router_ = std::thread([this] { RouterLoop(); });
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  return Status::Ok();
}

void EventDispatcher::Shutdown() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  router_cv_.SignalAll();
  if (router_.joinable()) router_.join();
  for (auto& w : workers_) {
    if (w.joinable()) w.join();
  }
  workers_.clear();
}

void EventDispatcher::Wake() {
  {
    MutexLock lock(&mu_);
    woken_ = true;
  }
  router_cv_.Signal();
}

Status EventDispatcher::LoadPending() {
  TY_ASSIGN_OR_RETURN(auto rows, store_->PendingDeliveries());
  Enqueue(std::move(rows));
  return Status::Ok();
}

size_t EventDispatcher::pending() const {
  MutexLock lock(&mu_);
  return pending_;
}

void EventDispatcher::Enqueue(std::vector<store::DeliveryRow> rows) {
  size_t added = 0;
  {
    MutexLock lock(&mu_);
    for (auto& row : rows) {
      if (row.dead_ms) continue;
      std::string key = LaneKey(row);
      lanes_[key].queue.push_back(std::move(row));
      ++added;
    }
    pending_ += added;
  }
  if (added > 0) work_cv_.SignalAll();
}

std::string EventDispatcher::RuleArn(const store::RuleRow& rule) const {
  std::string arn = "arn:aws:events:" + options_.region + ":" + rule.account + ":rule/";
  if (rule.bus != "default") arn += rule.bus + "/";
  return arn + rule.name;
}

const EventPattern* EventDispatcher::PatternOf(const store::RuleRow& rule) {
  auto it = patterns_.find(rule.id);
  if (it != patterns_.end() && it->second.first == rule.event_pattern) {
    return it->second.second.get();
  }
  auto parsed = EventPattern::Parse(rule.event_pattern);
  // PutRule refused invalid patterns; one that no longer parses (a stricter matcher) matches
  // nothing rather than everything.
  std::unique_ptr<EventPattern> p =
      parsed.ok() ? std::make_unique<EventPattern>(std::move(parsed).value()) : nullptr;
  auto& slot = patterns_[rule.id];
  slot = {rule.event_pattern, std::move(p)};
  return slot.second.get();
}

void EventDispatcher::AddDeliveries(const json& event, const std::string& account,
                                    const std::string& ordering_key, const store::RuleRow& rule,
                                    const std::vector<store::TargetRow>& targets, int64_t now_ms,
                                    std::vector<store::DeliveryRow>* out) {
  const std::string rule_arn = RuleArn(rule);
  for (const auto& t : targets) {
    store::DeliveryRow d;
    d.account = account;
    d.rule_arn = rule_arn;
    d.target_id = t.target_id;
    d.target_arn = t.arn;
    if (!ordering_key.empty()) d.lane = ordering_key + "|" + rule_arn + "|" + t.target_id;
    d.event_id = event.value("id", std::string());
    d.created_ms = now_ms;
    d.next_ms = now_ms;
    d.max_attempts = options_.max_retries + 1;
    d.max_age_ms = Ms(options_.max_event_age);
    auto target = ParseJson(t.target_json);
    json tj = target.ok() && target->is_object() ? std::move(target).value() : json::object();
    if (auto rp = tj.find("RetryPolicy"); rp != tj.end() && rp->is_object()) {
      if (auto n = rp->find("MaximumRetryAttempts"); n != rp->end() && n->is_number_integer()) {
        d.max_attempts = std::clamp(n->get<int>(), 0, 185) + 1;
      }
      if (auto a = rp->find("MaximumEventAgeInSeconds"); a != rp->end() && a->is_number_integer()) {
        d.max_age_ms = std::clamp<int64_t>(a->get<int64_t>(), 60, 86400) * 1000;
      }
    }
    auto input = TargetInput(event, tj, {rule.name, rule_arn, FormatIso8601(clock_->Now())});
    if (input.ok()) {
      d.payload = std::move(input).value();
    } else {
      d.payload = Dump(event);
      d.dead_ms = now_ms;
      d.last_error = "the target's input could not be made: " + input.status().message();
    }
    out->push_back(std::move(d));
  }
}

Result<int> EventDispatcher::RouteOnce() {
  int routed = 0;
  // Rules are read once per pass: a pass sees one state of each account's rules.
  std::map<std::string, std::vector<std::pair<store::RuleRow, std::vector<store::TargetRow>>>>
      rules;
  for (;;) {
    TY_ASSIGN_OR_RETURN(auto batch, store_->ReadOutbox(0, options_.outbox_batch));
    if (batch.empty()) break;
    for (const auto& ev : batch) {
      const int64_t now_ms = ToEpochMillis(clock_->Now());
      std::vector<store::DeliveryRow> rows;
      auto event = ParseJson(ev.event_json);
      if (event.ok() && event->is_object()) {
        auto it = rules.find(ev.account);
        if (it == rules.end()) {
          TY_ASSIGN_OR_RETURN(auto account_rules, store_->EnabledPatternRules(ev.account));
          it = rules.emplace(ev.account, std::move(account_rules)).first;
        }
        for (const auto& [rule, targets] : it->second) {
          const EventPattern* pattern = PatternOf(rule);
          if (pattern == nullptr || targets.empty() || !pattern->Matches(*event)) continue;
          AddDeliveries(*event, ev.account, ev.ordering_key, rule, targets, now_ms, &rows);
        }
      }
      // A store error (busy, full disk) leaves the event in the outbox for the next pass, so
      // events are still routed in order.
      TY_RETURN_IF_ERROR(store_->RouteOutboxEvent(ev.seq, &rows));
      Enqueue(std::move(rows));
      ++routed;
    }
  }
  return routed;
}

Result<int> EventDispatcher::FireSchedulesOnce() {
  TY_ASSIGN_OR_RETURN(auto rules, store_->EnabledScheduledRules());
  const TimePoint now = clock_->Now();
  int fired = 0;
  for (const auto& rule : rules) {
    auto schedule = Schedule::Parse(rule.schedule);
    if (!schedule.ok()) continue;
    const TimePoint origin = FromEpochMillis(rule.created_ms);
    const TimePoint last = FromEpochMillis(rule.last_fired_ms.value_or(rule.created_ms));
    auto next = schedule->NextAfter(last, origin);
    if (!next || *next > now) continue;
    // Missed firings (the server was down) are one firing now, at the latest due time.
    TimePoint at = *next;
    for (int i = 0; i < 100000; ++i) {
      auto after = schedule->NextAfter(at, origin);
      if (!after || *after > now) break;
      at = *after;
    }
    TY_ASSIGN_OR_RETURN(auto targets, store_->ListTargets(rule.id, "", 100));
    const json event =
        ScheduledEvent(RandomUuid(), rule.account, options_.region, RuleArn(rule), at);
    std::vector<store::DeliveryRow> rows;
    AddDeliveries(event, rule.account, "", rule, targets, ToEpochMillis(now), &rows);
    TY_RETURN_IF_ERROR(store_->FireScheduledRule(rule.id, ToEpochMillis(at), &rows));
    Enqueue(std::move(rows));
    ++fired;
  }
  return fired;
}

std::string EventDispatcher::TakeDueLocked(int64_t now_ms, int64_t* next_due_ms) {
  for (auto& [key, lane] : lanes_) {
    if (lane.busy || lane.queue.empty()) continue;
    const int64_t due = lane.queue.front().next_ms;
    if (due <= now_ms) {
      lane.busy = true;
      return key;
    }
    *next_due_ms = std::min(*next_due_ms, due);
  }
  return "";
}

void EventDispatcher::DeliverHead(const std::string& key, const store::DeliveryRow& row) {
  control::Delivery d;
  d.account = row.account;
  d.target_arn = row.target_arn;
  d.payload = row.payload;
  d.principal = "events.amazonaws.com";
  d.source_arn = row.rule_arn;
  control::DeliveryResult result = deliverer_->Deliver(d);

  const int64_t now_ms = ToEpochMillis(clock_->Now());
  const int attempts = row.attempts + 1;
  bool done = result.ok();
  int64_t next_ms = 0;
  Status st;
  if (done) {
    st = store_->DeleteDelivery(row.id);
  } else {
    std::string why = result.error.empty() ? "the target did not take the event" : result.error;
    bool dead = result.kind == control::DeliveryResult::Kind::kFailed;
    if (!dead && attempts >= row.max_attempts) {
      dead = true;
      why += " (gave up after " + std::to_string(attempts) + " attempts)";
    } else if (!dead && now_ms - row.created_ms >= row.max_age_ms) {
      dead = true;
      why += " (gave up: the event is older than " + std::to_string(row.max_age_ms / 1000) + " s)";
    }
    if (dead) {
      done = true;
      st = store_->BuryDelivery(row.id, attempts, now_ms, why, options_.keep_dead_letters);
    } else {
      int64_t backoff = Ms(options_.backoff_initial);
      for (int i = 1; i < attempts && backoff < Ms(options_.backoff_max); ++i) backoff *= 2;
      next_ms = now_ms + std::min(backoff, Ms(options_.backoff_max));
      st = store_->RetryDelivery(row.id, attempts, next_ms, why);
    }
  }
  if (!st.ok()) {
    // The outcome is kept in memory; after a restart the stored row is tried again (at least
    // once).
    std::fprintf(stderr, "trainyard: events: cannot record the delivery of %s to %s: %s\n",
                 row.event_id.c_str(), row.target_arn.c_str(), st.ToString().c_str());
  }
  {
    MutexLock lock(&mu_);
    auto it = lanes_.find(key);
    if (it != lanes_.end()) {
      Lane& lane = it->second;
      lane.busy = false;
      if (done) {
        lane.queue.pop_front();
        --pending_;
        if (lane.queue.empty()) lanes_.erase(it);
      } else {
        lane.queue.front().attempts = attempts;
        lane.queue.front().next_ms = next_ms;
      }
    }
  }
  work_cv_.SignalAll();
}

int EventDispatcher::DeliverDueOnce() {
  const int64_t now_ms = ToEpochMillis(clock_->Now());
  std::vector<std::pair<std::string, store::DeliveryRow>> due;
  {
    MutexLock lock(&mu_);
    for (auto& [key, lane] : lanes_) {
      if (lane.busy || lane.queue.empty() || lane.queue.front().next_ms > now_ms) continue;
      lane.busy = true;
      due.emplace_back(key, lane.queue.front());
    }
  }
  for (auto& [key, row] : due) DeliverHead(key, row);
  return static_cast<int>(due.size());
}

void EventDispatcher::RouterLoop() {
  for (;;) {
    {
      MutexLock lock(&mu_);
      if (!stopping_ && !woken_) router_cv_.WaitFor(&mu_, options_.poll);
      if (stopping_) return;
      woken_ = false;
    }
    auto routed = RouteOnce();
    if (!routed.ok()) {
      std::fprintf(stderr, "trainyard: events: routing the outbox: %s\n",
                   routed.status().ToString().c_str());
    }
    auto fired = FireSchedulesOnce();
    if (!fired.ok()) {
      std::fprintf(stderr, "trainyard: events: firing scheduled rules: %s\n",
                   fired.status().ToString().c_str());
    }
  }
}

void EventDispatcher::WorkerLoop() {
  MutexLock lock(&mu_);
  while (!stopping_) {
    const int64_t now_ms = ToEpochMillis(clock_->Now());
    int64_t next_due = INT64_MAX;
    std::string key = TakeDueLocked(now_ms, &next_due);
    if (key.empty()) {
      auto wait = options_.poll;
      if (next_due != INT64_MAX) {
        wait = std::min(wait, std::chrono::milliseconds(std::max<int64_t>(1, next_due - now_ms)));
      }
      work_cv_.WaitFor(&mu_, wait);
      continue;
    }
    store::DeliveryRow row = lanes_[key].queue.front();
    lock.Unlock();  // no lock across the delivery (it may block for a function's timeout)
    DeliverHead(key, row);
    lock.Lock();
  }
}

}  // namespace ty::events
