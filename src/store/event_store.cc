// The EventBridge half of the Store: rules, targets and deliveries (see store.h).
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_internal.h"

namespace ty::store {

namespace {

constexpr const char* kRuleColumns =
    "id, account, bus, name, event_pattern, schedule, state, description, role_arn, created_ms, "
    "last_fired_ms";

RuleRow RowToRule(const ScopedStmt& s) {
  RuleRow r;
  r.id = s.Int(0);
  r.account = s.Text(1);
  r.bus = s.Text(2);
  r.name = s.Text(3);
  r.event_pattern = s.Text(4);
  r.schedule = s.Text(5);
  r.state = s.Text(6);
  r.description = s.Text(7);
  r.role_arn = s.Text(8);
  r.created_ms = s.Int(9);
  r.last_fired_ms = s.OptInt(10);
  return r;
}

constexpr const char* kDeliveryColumns =
    "id, account, rule_arn, target_id, target_arn, lane, event_id, payload, created_ms, "
    "attempts, next_ms, max_attempts, max_age_ms, last_error, dead_ms";

DeliveryRow RowToDelivery(const ScopedStmt& s) {
  DeliveryRow d;
  d.id = s.Int(0);
  d.account = s.Text(1);
  d.rule_arn = s.Text(2);
  d.target_id = s.Text(3);
  d.target_arn = s.Text(4);
  d.lane = s.Text(5);
  d.event_id = s.Text(6);
  d.payload = s.Text(7);
  d.created_ms = s.Int(8);
  d.attempts = static_cast<int>(s.Int(9));
  d.next_ms = s.Int(10);
  d.max_attempts = static_cast<int>(s.Int(11));
  d.max_age_ms = s.Int(12);
  d.last_error = s.Text(13);
  d.dead_ms = s.OptInt(14);
  return d;
}

std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xFF) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

}  // namespace

Status Store::PutRule(RuleRow* row, int64_t now_ms) {
  MutexLock lock(&mu_);
  {
    TY_STMT(s,
            "INSERT INTO event_rules (account, bus, name, event_pattern, schedule, state, "
            "description, role_arn, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (account, bus, name) DO UPDATE SET event_pattern = "
            "excluded.event_pattern, schedule = excluded.schedule, state = excluded.state, "
            "description = excluded.description, role_arn = excluded.role_arn");
    s.Bind(1, row->account);
    s.Bind(2, row->bus);
    s.Bind(3, row->name);
    s.Bind(4, row->event_pattern);
    s.Bind(5, row->schedule);
    s.Bind(6, row->state);
    s.Bind(7, row->description);
    s.Bind(8, row->role_arn);
    s.Bind(9, now_ms);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  TY_STMT(s, "SELECT id, created_ms FROM event_rules WHERE account = ? AND bus = ? AND name = ?");
  s.Bind(1, row->account);
  s.Bind(2, row->bus);
  s.Bind(3, row->name);
  TY_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return Internal("rule " + row->name + " vanished after it was written");
  row->id = s.Int(0);
  row->created_ms = s.Int(1);
  return Status::Ok();
}

Result<RuleRow> Store::GetRule(const std::string& account, const std::string& bus,
                               const std::string& name) {
  static const std::string kSql = std::string("SELECT ") + kRuleColumns +
                                  " FROM event_rules WHERE account = ? AND bus = ? AND name = ?";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, account);
  s.Bind(2, bus);
  s.Bind(3, name);
  TY_ASSIGN_OR_RETURN(bool found, s.Step());
  if (!found) return NotFound("Rule " + name + " does not exist on EventBus " + bus + ".");
  return RowToRule(s);
}

Result<std::vector<RuleRow>> Store::ListRules(const std::string& account, const std::string& bus,
                                              const std::string& prefix,
                                              const std::string& after_name, int64_t limit) {
  static const std::string kSql =
      std::string("SELECT ") + kRuleColumns +
      " FROM event_rules WHERE account = ? AND bus = ? AND name >= ? AND (? = '' OR name < ?) "
      "AND name > ? ORDER BY name LIMIT ?";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  const std::string end = PrefixEnd(prefix);
  s.Bind(1, account);
  s.Bind(2, bus);
  s.Bind(3, prefix);
  s.Bind(4, end);
  s.Bind(5, end);
  s.Bind(6, after_name);
  s.Bind(7, limit);
  std::vector<RuleRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToRule(s));
  }
  return out;
}

Result<std::vector<std::pair<RuleRow, std::vector<TargetRow>>>> Store::EnabledPatternRules(
    const std::string& account) {
  static const std::string kSql =
      std::string("SELECT ") + kRuleColumns +
      " FROM event_rules WHERE account = ? AND state != 'DISABLED' AND event_pattern != '' "
      "ORDER BY id";
  MutexLock lock(&mu_);
  std::vector<std::pair<RuleRow, std::vector<TargetRow>>> out;
  {
    TY_STMT(s, kSql);
    s.Bind(1, account);
    for (;;) {
      TY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.emplace_back(RowToRule(s), std::vector<TargetRow>{});
    }
  }
  for (auto& [rule, targets] : out) {
    TY_STMT(s,
            "SELECT rule_id, target_id, arn, target_json FROM event_targets WHERE rule_id = ? "
            "ORDER BY seq");
    s.Bind(1, rule.id);
    for (;;) {
      TY_ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      targets.push_back({s.Int(0), s.Text(1), s.Text(2), s.Text(3)});
    }
  }
  return out;
}

Result<std::vector<RuleRow>> Store::EnabledScheduledRules() {
  static const std::string kSql =
      std::string("SELECT ") + kRuleColumns +
      " FROM event_rules WHERE state != 'DISABLED' AND schedule != '' ORDER BY id";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  std::vector<RuleRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToRule(s));
  }
  return out;
}

Status Store::SetRuleState(const std::string& account, const std::string& bus,
                           const std::string& name, const std::string& state) {
  MutexLock lock(&mu_);
  TY_STMT(s, "UPDATE event_rules SET state = ? WHERE account = ? AND bus = ? AND name = ?");
  s.Bind(1, state);
  s.Bind(2, account);
  s.Bind(3, bus);
  s.Bind(4, name);
  TY_RETURN_IF_ERROR(s.Exec());
  if (sqlite3_changes(db_) == 0) {
    return NotFound("Rule " + name + " does not exist on EventBus " + bus + ".");
  }
  return Status::Ok();
}

Status Store::DeleteRule(const std::string& account, const std::string& bus,
                         const std::string& name) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  {
    TY_STMT(s,
            "SELECT COUNT(*) FROM event_targets t JOIN event_rules r ON r.id = t.rule_id "
            "WHERE r.account = ? AND r.bus = ? AND r.name = ?");
    s.Bind(1, account);
    s.Bind(2, bus);
    s.Bind(3, name);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row && s.Int(0) > 0) {
      return FailedPrecondition("Rule can't be deleted since it has targets.");
    }
  }
  {
    TY_STMT(s, "DELETE FROM event_rules WHERE account = ? AND bus = ? AND name = ?");
    s.Bind(1, account);
    s.Bind(2, bus);
    s.Bind(3, name);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Status Store::PutTargets(int64_t rule_id, const std::vector<TargetRow>& targets) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const auto& t : targets) {
    TY_STMT(s,
            "INSERT INTO event_targets (rule_id, target_id, arn, target_json) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (rule_id, target_id) DO UPDATE SET arn = excluded.arn, "
            "target_json = excluded.target_json");
    s.Bind(1, rule_id);
    s.Bind(2, t.target_id);
    s.Bind(3, t.arn);
    s.Bind(4, t.target_json);
    Status st = s.Exec();
    if (st.code() == StatusCode::kNotFound) return NotFound("the rule no longer exists");
    TY_RETURN_IF_ERROR(st);
  }
  return txn.Commit();
}

Status Store::RemoveTargets(int64_t rule_id, const std::vector<std::string>& ids) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const auto& id : ids) {
    TY_STMT(s, "DELETE FROM event_targets WHERE rule_id = ? AND target_id = ?");
    s.Bind(1, rule_id);
    s.Bind(2, id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<TargetRow>> Store::ListTargets(int64_t rule_id, const std::string& after_id,
                                                  int64_t limit) {
  MutexLock lock(&mu_);
  // Paging by Id within insertion order: the cursor is the seq of the last Id returned.
  TY_STMT(s,
          "SELECT rule_id, target_id, arn, target_json FROM event_targets WHERE rule_id = ? AND "
          "seq > COALESCE((SELECT seq FROM event_targets WHERE rule_id = ? AND target_id = ?), 0) "
          "ORDER BY seq LIMIT ?");
  s.Bind(1, rule_id);
  s.Bind(2, rule_id);
  s.Bind(3, after_id);
  s.Bind(4, limit);
  std::vector<TargetRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back({s.Int(0), s.Text(1), s.Text(2), s.Text(3)});
  }
  return out;
}

namespace {

Status InsertDeliveries(sqlite3* db, StatementCache* stmts, std::vector<DeliveryRow>* deliveries) {
  for (auto& d : *deliveries) {
    auto raw = stmts->Get(
        "INSERT INTO event_deliveries (account, rule_arn, target_id, target_arn, lane, event_id, "
        "payload, created_ms, attempts, next_ms, max_attempts, max_age_ms, last_error, dead_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!raw.ok()) return raw.status();
    ScopedStmt s(db, *raw);
    s.Bind(1, d.account);
    s.Bind(2, d.rule_arn);
    s.Bind(3, d.target_id);
    s.Bind(4, d.target_arn);
    s.Bind(5, d.lane);
    s.Bind(6, d.event_id);
    s.Bind(7, d.payload);
    s.Bind(8, d.created_ms);
    s.Bind(9, static_cast<int64_t>(d.attempts));
    s.Bind(10, d.next_ms);
    s.Bind(11, static_cast<int64_t>(d.max_attempts));
    s.Bind(12, d.max_age_ms);
    s.Bind(13, d.last_error);
    s.Bind(14, d.dead_ms);
    TY_RETURN_IF_ERROR(s.Exec());
    d.id = sqlite3_last_insert_rowid(db);
  }
  return Status::Ok();
}

}  // namespace

Status Store::RouteOutboxEvent(int64_t seq, std::vector<DeliveryRow>* deliveries) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  TY_RETURN_IF_ERROR(InsertDeliveries(db_, stmts_.get(), deliveries));
  {
    TY_STMT(s, "DELETE FROM event_outbox WHERE seq = ?");
    s.Bind(1, seq);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Status Store::FireScheduledRule(int64_t rule_id, int64_t fired_ms,
                                std::vector<DeliveryRow>* deliveries) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  TY_RETURN_IF_ERROR(InsertDeliveries(db_, stmts_.get(), deliveries));
  {
    TY_STMT(s, "UPDATE event_rules SET last_fired_ms = ? WHERE id = ?");
    s.Bind(1, fired_ms);
    s.Bind(2, rule_id);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<DeliveryRow>> Store::PendingDeliveries() {
  static const std::string kSql = std::string("SELECT ") + kDeliveryColumns +
                                  " FROM event_deliveries WHERE dead_ms IS NULL ORDER BY id";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  std::vector<DeliveryRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToDelivery(s));
  }
  return out;
}

Status Store::DeleteDelivery(int64_t id) {
  MutexLock lock(&mu_);
  TY_STMT(s, "DELETE FROM event_deliveries WHERE id = ?");
  s.Bind(1, id);
  return s.Exec();
}

Status Store::RetryDelivery(int64_t id, int attempts, int64_t next_ms, const std::string& error) {
  MutexLock lock(&mu_);
  TY_STMT(s, "UPDATE event_deliveries SET attempts = ?, next_ms = ?, last_error = ? WHERE id = ?");
  s.Bind(1, static_cast<int64_t>(attempts));
  s.Bind(2, next_ms);
  s.Bind(3, error);
  s.Bind(4, id);
  return s.Exec();
}

Status Store::BuryDelivery(int64_t id, int attempts, int64_t dead_ms, const std::string& error,
                           int64_t keep) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  std::string account;
  {
    TY_STMT(s,
            "UPDATE event_deliveries SET attempts = ?, dead_ms = ?, last_error = ? WHERE id = ? "
            "RETURNING account");
    s.Bind(1, static_cast<int64_t>(attempts));
    s.Bind(2, dead_ms);
    s.Bind(3, error);
    s.Bind(4, id);
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (row) account = s.Text(0);
  }
  if (!account.empty()) {
    TY_STMT(s,
            "DELETE FROM event_deliveries WHERE account = ? AND dead_ms IS NOT NULL AND id < "
            "COALESCE((SELECT id FROM event_deliveries WHERE account = ? AND dead_ms IS NOT NULL "
            "ORDER BY id DESC LIMIT 1 OFFSET ?), 0)");
    s.Bind(1, account);
    s.Bind(2, account);
    s.Bind(3, keep - 1);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Result<std::vector<DeliveryRow>> Store::DeadLetters(const std::string& account, int64_t before_id,
                                                    int64_t limit) {
  static const std::string kSql =
      std::string("SELECT ") + kDeliveryColumns +
      " FROM event_deliveries WHERE account = ? AND dead_ms IS NOT NULL AND (? = 0 OR id < ?) "
      "ORDER BY id DESC LIMIT ?";
  MutexLock lock(&mu_);
  TY_STMT(s, kSql);
  s.Bind(1, account);
  s.Bind(2, before_id);
  s.Bind(3, before_id);
  s.Bind(4, limit);
  std::vector<DeliveryRow> out;
  for (;;) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToDelivery(s));
  }
  return out;
}

}  // namespace ty::store
