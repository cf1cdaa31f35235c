// The rule-evaluation half of the Store (see store.h).
#include <sqlite3.h>

#include "store/store.h"
#include "store/store_internal.h"

namespace ty::store {

namespace {

constexpr const char* kRuleEvalColumns =
    "job_arn, account, kind, configuration_name, evaluation_name, evaluation_arn, status, "
    "details, creation_ms, last_modified_ms, end_ms, fired_step, findings_json, "
    "steps_evaluated, last_step";

model::RuleEvaluation RowToRuleEvaluation(const ScopedStmt& s) {
  model::RuleEvaluation r;
  r.job_arn = s.Text(0);
  r.account = s.Text(1);
  r.kind = model::ParseRuleKind(s.Text(2)).value_or(model::RuleKind::kDebug);
  r.configuration_name = s.Text(3);
  r.evaluation_name = s.Text(4);
  r.evaluation_arn = s.Text(5);
  r.status = s.Text(6);
  r.details = s.Text(7);
  r.creation_time = FromEpochMillis(s.Int(8));
  r.last_modified_time = FromEpochMillis(s.Int(9));
  if (auto end = s.OptInt(10)) r.end_time = FromEpochMillis(*end);
  r.fired_step = s.OptInt(11);
  r.findings_json = s.Text(12);
  r.steps_evaluated = s.Int(13);
  r.last_step = s.OptInt(14);
  return r;
}

std::optional<int64_t> OptMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToEpochMillis(*t);
}

}  // namespace

Status Store::InsertRuleEvaluations(const std::vector<model::RuleEvaluation>& rows) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  for (const auto& r : rows) {
    TY_STMT(s, std::string("INSERT INTO rule_evaluations (") + kRuleEvalColumns +
                   ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (job_arn, kind, configuration_name) DO NOTHING");
    s.Bind(1, r.job_arn);
    s.Bind(2, r.account);
    s.Bind(3, model::Name(r.kind));
    s.Bind(4, r.configuration_name);
    s.Bind(5, r.evaluation_name);
    s.Bind(6, r.evaluation_arn);
    s.Bind(7, r.status);
    s.Bind(8, r.details);
    s.Bind(9, ToEpochMillis(r.creation_time));
    s.Bind(10, ToEpochMillis(r.last_modified_time));
    s.Bind(11, OptMillis(r.end_time));
    s.Bind(12, r.fired_step);
    s.Bind(13, r.findings_json);
    s.Bind(14, r.steps_evaluated);
    s.Bind(15, r.last_step);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  return txn.Commit();
}

Status Store::UpdateRuleEvaluation(const model::RuleEvaluation& r,
                                   const std::vector<OutboxEvent>& events, bool describe_changed) {
  MutexLock lock(&mu_);
  Transaction txn(db_);
  TY_RETURN_IF_ERROR(txn.Begin());
  {
    TY_STMT(s,
            "UPDATE rule_evaluations SET status = ?, details = ?, last_modified_ms = ?, "
            "end_ms = ?, fired_step = ?, findings_json = ?, steps_evaluated = ?, last_step = ? "
            "WHERE job_arn = ? AND kind = ? AND configuration_name = ?");
    s.Bind(1, r.status);
    s.Bind(2, r.details);
    s.Bind(3, ToEpochMillis(r.last_modified_time));
    s.Bind(4, OptMillis(r.end_time));
    s.Bind(5, r.fired_step);
    s.Bind(6, r.findings_json);
    s.Bind(7, r.steps_evaluated);
    s.Bind(8, r.last_step);
    s.Bind(9, r.job_arn);
    s.Bind(10, model::Name(r.kind));
    s.Bind(11, r.configuration_name);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  if (sqlite3_changes(db_) == 0) {
    return NotFound("rule evaluation " + r.configuration_name + " of " + r.job_arn +
                    " does not exist");
  }
  if (describe_changed) {
    TY_STMT(s, "UPDATE jobs SET version = version + 1 WHERE arn = ?");
    s.Bind(1, r.job_arn);
    TY_RETURN_IF_ERROR(s.Exec());
  }
  TY_RETURN_IF_ERROR(AppendOutboxLocked(events));
  return txn.Commit();
}

Result<std::vector<model::RuleEvaluation>> Store::RuleEvaluations(const std::string& job_arn) {
  MutexLock lock(&mu_);
  TY_STMT(s, std::string("SELECT ") + kRuleEvalColumns +
                 " FROM rule_evaluations WHERE job_arn = ? ORDER BY id");
  s.Bind(1, job_arn);
  std::vector<model::RuleEvaluation> out;
  while (true) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToRuleEvaluation(s));
  }
  return out;
}

Result<std::vector<model::RuleEvaluation>> Store::UnfinishedRuleEvaluations() {
  MutexLock lock(&mu_);
  TY_STMT(s, std::string("SELECT ") + kRuleEvalColumns +
                 " FROM rule_evaluations WHERE status IN ('InProgress', 'Stopping') ORDER BY id");
  std::vector<model::RuleEvaluation> out;
  while (true) {
    TY_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(RowToRuleEvaluation(s));
  }
  return out;
}

Result<model::RuleEvaluation> Store::RuleEvaluationByName(const std::string& account,
                                                          const std::string& evaluation_name) {
  MutexLock lock(&mu_);
  TY_STMT(s, std::string("SELECT ") + kRuleEvalColumns +
                 " FROM rule_evaluations WHERE account = ? AND evaluation_name = ?");
  s.Bind(1, account);
  s.Bind(2, evaluation_name);
  TY_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFound("processing job " + evaluation_name + " does not exist");
  return RowToRuleEvaluation(s);
}

}  // namespace ty::store
