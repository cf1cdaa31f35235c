#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/fs.h"
#include "model/serialization.h"
#include "testing/temp_dir.h"

namespace ty::store {
namespace {

using model::JobRecord;
using model::SecondaryStatus;
using model::TrainingJobStatus;
using testing::TempDir;

constexpr const char* kAccount = "123456789012";

JobRecord MakeJob(const std::string& name, int64_t creation_ms,
                  TrainingJobStatus status = TrainingJobStatus::kCompleted,
                  const std::string& account = kAccount) {
  JobRecord r;
  r.account = account;
  r.arn = model::TrainingJobArn("us-east-1", account, name);
  r.request_json = R"({"TrainingJobName":")" + name + R"("})";
  r.spec.name = name;
  r.spec.training_image = "img:latest";
  r.status = status;
  r.creation_time = FromEpochMillis(creation_ms);
  r.last_modified_time = FromEpochMillis(creation_ms + 1000);
  return r;
}

JobRecord FullJob() {
  JobRecord r = MakeJob("full-job", 1700000000123, TrainingJobStatus::kStopping);
  r.spec.training_input_mode = "Pipe";
  r.spec.container_entrypoint = {"python3", "train.py"};
  r.spec.container_arguments = {"--epochs", "3"};
  r.spec.metric_definitions = {{"loss", "loss=([0-9.]+)"}, {"acc", "acc=(\\S+)"}};
  r.spec.hyperparameters = {{"lr", "0.1"}, {"batch", "32"}};
  r.spec.environment = {{"FOO", "bar"}};
  r.spec.channels = {
      {"train", "s3://b/train", "text/csv", "File", "ShardedByS3Key", "RecordIO", "Gzip"}};
  r.spec.output_path = "s3://b/out";
  r.spec.compress_output = false;
  r.spec.instance_type = "ml.m5.xlarge";
  r.spec.instance_count = 2;
  r.spec.volume_size_gb = 30;
  r.spec.max_runtime = std::chrono::seconds(3600);
  r.spec.max_wait = std::chrono::seconds(7200);
  r.spec.managed_spot = true;
  r.spec.checkpoint_uri = "s3://b/ckpt";
  r.spec.checkpoint_local_path = "/opt/ml/ck";
  r.spec.max_retry_attempts = 3;
  r.secondary = SecondaryStatus::kMaxRuntimeExceeded;
  r.transitions = {
      {SecondaryStatus::kStarting, FromEpochMillis(1700000000123), FromEpochMillis(1700000001000),
       "Starting the training job"},
      {SecondaryStatus::kTraining, FromEpochMillis(1700000001000), std::nullopt, "Training"},
  };
  r.failure_reason = "boom";
  r.model_artifacts = "s3://b/out/full-job/output/model";
  r.training_start_time = FromEpochMillis(1700000001000);
  r.training_end_time = FromEpochMillis(1700000009000);
  r.training_time_seconds = 8;
  r.billable_time_seconds = 16;
  r.final_metrics = {{"loss", 0.25, FromEpochMillis(1700000008000)},
                     {"acc", 0.875, FromEpochMillis(1700000008500)}};
  r.stop_reason = model::StopReason::kMaxRuntime;
  r.attempt = 2;
  r.agent_token = "tok-abc";
  r.attempt_handle = "local:4242/987654321,4321/99,0/0";
  r.instance_dir = "/var/lib/trainyard/instances/full-job";
  r.queued = true;
  r.retries = 2;
  r.run_ms = 123456;
  r.billable_ms = 37036.8;
  r.attempt_run_start = FromEpochMillis(1'700'000'100'000);
  r.attempt_on_spot = true;
  r.attempt_price_fraction = 0.3;
  r.attempt_notice_ms = 120000;
  r.interruption_at = FromEpochMillis(1'700'000'200'000);
  r.notice_deadline = FromEpochMillis(1'700'000'300'000);
  r.last_checkpoint = FromEpochMillis(1'700'000'150'000);
  r.interruptions = {{1, FromEpochMillis(1'700'000'050'000), "spot capacity reclaimed", 4200},
                     {2, FromEpochMillis(1'700'000'090'000), "instance lost", 0}};
  r.instances_exited = {false, false, true};
  return r;
}

void ExpectSameJob(const JobRecord& want, const JobRecord& got) {
  EXPECT_EQ(want.id, got.id);
  EXPECT_EQ(want.account, got.account);
  EXPECT_EQ(want.arn, got.arn);
  EXPECT_EQ(want.request_json, got.request_json);
  EXPECT_EQ(model::SpecToJson(want.spec), model::SpecToJson(got.spec));
  EXPECT_EQ(want.spec.name, got.spec.name);
  EXPECT_EQ(want.spec.hyperparameters, got.spec.hyperparameters);
  EXPECT_EQ(want.spec.container_entrypoint, got.spec.container_entrypoint);
  EXPECT_EQ(want.spec.max_wait, got.spec.max_wait);
  EXPECT_EQ(want.spec.checkpoint_uri, got.spec.checkpoint_uri);
  EXPECT_EQ(want.spec.instance_count, got.spec.instance_count);
  EXPECT_EQ(want.status, got.status);
  EXPECT_EQ(want.secondary, got.secondary);
  ASSERT_EQ(want.transitions.size(), got.transitions.size());
  for (size_t i = 0; i < want.transitions.size(); ++i) {
    EXPECT_EQ(want.transitions[i].status, got.transitions[i].status);
    EXPECT_EQ(want.transitions[i].start, got.transitions[i].start);
    EXPECT_EQ(want.transitions[i].end, got.transitions[i].end);
    EXPECT_EQ(want.transitions[i].message, got.transitions[i].message);
  }
  EXPECT_EQ(want.failure_reason, got.failure_reason);
  EXPECT_EQ(want.model_artifacts, got.model_artifacts);
  EXPECT_EQ(want.creation_time, got.creation_time);
  EXPECT_EQ(want.last_modified_time, got.last_modified_time);
  EXPECT_EQ(want.training_start_time, got.training_start_time);
  EXPECT_EQ(want.training_end_time, got.training_end_time);
  EXPECT_EQ(want.training_time_seconds, got.training_time_seconds);
  EXPECT_EQ(want.billable_time_seconds, got.billable_time_seconds);
  ASSERT_EQ(want.final_metrics.size(), got.final_metrics.size());
  for (size_t i = 0; i < want.final_metrics.size(); ++i) {
    EXPECT_EQ(want.final_metrics[i].name, got.final_metrics[i].name);
    EXPECT_EQ(want.final_metrics[i].value, got.final_metrics[i].value);
    EXPECT_EQ(want.final_metrics[i].timestamp, got.final_metrics[i].timestamp);
  }
  EXPECT_EQ(want.stop_reason, got.stop_reason);
  EXPECT_EQ(want.attempt, got.attempt);
  EXPECT_EQ(want.agent_token, got.agent_token);
  EXPECT_EQ(want.attempt_handle, got.attempt_handle);
  EXPECT_EQ(want.instance_dir, got.instance_dir);
  EXPECT_EQ(want.queued, got.queued);
  EXPECT_EQ(want.retries, got.retries);
  EXPECT_EQ(want.run_ms, got.run_ms);
  EXPECT_DOUBLE_EQ(want.billable_ms, got.billable_ms);
  EXPECT_EQ(want.attempt_run_start, got.attempt_run_start);
  EXPECT_EQ(want.attempt_on_spot, got.attempt_on_spot);
  EXPECT_DOUBLE_EQ(want.attempt_price_fraction, got.attempt_price_fraction);
  EXPECT_EQ(want.attempt_notice_ms, got.attempt_notice_ms);
  EXPECT_EQ(want.interruption_at, got.interruption_at);
  EXPECT_EQ(want.notice_deadline, got.notice_deadline);
  EXPECT_EQ(want.last_checkpoint, got.last_checkpoint);
  EXPECT_EQ(want.instances_exited, got.instances_exited);
  ASSERT_EQ(want.interruptions.size(), got.interruptions.size());
  for (size_t i = 0; i < want.interruptions.size(); ++i) {
    EXPECT_EQ(want.interruptions[i].attempt, got.interruptions[i].attempt);
    EXPECT_EQ(want.interruptions[i].time, got.interruptions[i].time);
    EXPECT_EQ(want.interruptions[i].cause, got.interruptions[i].cause);
    EXPECT_EQ(want.interruptions[i].lost_ms, got.interruptions[i].lost_ms);
  }
}

std::vector<std::string> Names(const std::vector<JobRecord>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.spec.name);
  return out;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.Sub("data");  // Open must create the directory itself
    Reopen();
  }
  void TearDown() override { store_.reset(); }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  JobRecord Insert(JobRecord r) {
    Status st = store_->InsertJob(&r);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return r;
  }

  TempDir tmp_{"ty_store_"};
  std::string dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, InsertGetRoundTripsEveryField) {
  JobRecord r = FullJob();
  ASSERT_TRUE(store_->InsertJob(&r).ok());
  EXPECT_GT(r.id, 0);
  auto got = store_->GetJob(kAccount, "full-job");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ExpectSameJob(r, *got);

  // A minimal record keeps its absent optionals absent.
  JobRecord m = Insert(MakeJob("minimal", 5));
  auto gm = store_->GetJob(kAccount, "minimal");
  ASSERT_TRUE(gm.ok());
  ExpectSameJob(m, *gm);
  EXPECT_FALSE(gm->training_start_time.has_value());
  EXPECT_FALSE(gm->billable_time_seconds.has_value());
  EXPECT_FALSE(gm->spec.max_wait.has_value());
}

TEST_F(StoreTest, EnumsArePersistedByName) {
  Insert(FullJob());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/trainyard.db").c_str(), &db), SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  ASSERT_EQ(
      sqlite3_prepare_v2(db, "SELECT status, secondary, stop_reason FROM jobs", -1, &s, nullptr),
      SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "Stopping");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 1)), "MaxRuntimeExceeded");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 2)), "MaxRuntime");
  sqlite3_finalize(s);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(s, 0)), "wal");
  sqlite3_finalize(s);
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT version FROM schema_version", -1, &s, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(s), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(s, 0), 8);  // the number of migrations
  EXPECT_EQ(sqlite3_step(s), SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_F(StoreTest, UpdateJobBumpsTheVersion) {
  model::JobRecord job = FullJob();
  Insert(job);
  auto before = store_->GetJobVersion(job.account, job.spec.name);
  ASSERT_TRUE(before.ok());
  auto stored = store_->GetJob(job.account, job.spec.name);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(before->id, stored->id);
  ASSERT_TRUE(store_->UpdateJob(*stored).ok());
  ASSERT_TRUE(store_->UpdateJob(*stored).ok());
  auto after = store_->GetJobVersion(job.account, job.spec.name);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->version, before->version + 2);
  EXPECT_EQ(store_->GetJobVersion(job.account, "nope").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, RuleEvaluationsRoundTripBumpTheJobAndGoWithIt) {
  JobRecord job = MakeJob("ruled", 1700000000000, TrainingJobStatus::kInProgress);
  job.spec.debug_rules.push_back({.configuration_name = "Vanishing"});
  job = Insert(job);
  model::RuleEvaluation r = model::InitialRuleEvaluation(job, model::RuleKind::kDebug, "Vanishing");
  model::RuleEvaluation p =
      model::InitialRuleEvaluation(job, model::RuleKind::kProfiler, "Vanishing");
  ASSERT_TRUE(store_->InsertRuleEvaluations({r, p}).ok());
  r.status = "Error";
  ASSERT_TRUE(store_->InsertRuleEvaluations({r}).ok());  // already there: left as it is
  auto rows = store_->RuleEvaluations(job.arn);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].status, "InProgress");
  EXPECT_EQ((*rows)[1].kind, model::RuleKind::kProfiler);
  EXPECT_NE((*rows)[0].evaluation_name, (*rows)[1].evaluation_name);

  auto v0 = store_->GetJobVersion(job.account, "ruled");
  r.status = "IssuesFound";
  r.details = "fired";
  r.fired_step = 12;
  r.findings_json = R"({"abs_mean":1e-9})";
  r.steps_evaluated = 13;
  r.last_step = 12;
  r.end_time = FromEpochMillis(1700000005000);
  OutboxEvent e;
  e.account = job.account;
  e.ordering_key = job.arn;
  e.event_json = "{}";
  ASSERT_TRUE(store_->UpdateRuleEvaluation(r, {e}, /*describe_changed=*/true).ok());
  auto v1 = store_->GetJobVersion(job.account, "ruled");
  EXPECT_EQ(v1->version, v0->version + 1);  // DescribeTrainingJob's cache sees the change
  EXPECT_EQ(store_->ReadOutbox(0, 10)->size(), 1u);
  auto got = store_->RuleEvaluationByName(job.account, r.evaluation_name);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "IssuesFound");
  EXPECT_EQ(got->fired_step, 12);
  EXPECT_EQ(got->findings_json, R"({"abs_mean":1e-9})");
  EXPECT_EQ(got->steps_evaluated, 13);
  EXPECT_EQ(got->last_step, 12);
  EXPECT_EQ(got->end_time, r.end_time);
  // Never across accounts; only unfinished rows restart.
  EXPECT_EQ(store_->RuleEvaluationByName("999999999999", r.evaluation_name).status().code(),
            StatusCode::kNotFound);
  auto unfinished = store_->UnfinishedRuleEvaluations();
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].kind, model::RuleKind::kProfiler);
  // The rows go with the job.
  ASSERT_TRUE(store_->DeleteJob(job.account, "ruled").ok());
  EXPECT_TRUE(store_->RuleEvaluations(job.arn)->empty());
  EXPECT_EQ(store_->UpdateRuleEvaluation(r, {}, false).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, OutboxEventsCommitWithTheJobChangeAndComeBackInOrder) {
  model::JobRecord job = FullJob();
  Insert(job);
  auto stored = store_->GetJob(job.account, job.spec.name);
  ASSERT_TRUE(stored.ok());
  std::vector<OutboxEvent> events = {{0, job.account, job.arn, R"({"n":1})", 5},
                                     {0, job.account, job.arn, R"({"n":2})", 6}};
  ASSERT_TRUE(store_->UpdateJob(*stored, events).ok());
  ASSERT_TRUE(store_->AppendOutbox({{0, "222222222222", "other", R"({"n":3})", 7}}).ok());
  auto read = store_->ReadOutbox(0, 10);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->size(), 3u);
  EXPECT_EQ((*read)[0].event_json, R"({"n":1})");
  EXPECT_EQ((*read)[1].ordering_key, job.arn);
  EXPECT_EQ((*read)[2].account, "222222222222");
  EXPECT_LT((*read)[0].seq, (*read)[1].seq);
  ASSERT_TRUE(store_->DeleteOutbox((*read)[0].seq).ok());
  auto rest = store_->ReadOutbox((*read)[0].seq, 10);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->size(), 2u);
  EXPECT_EQ(store_->ReadOutbox(0, 10)->size(), 2u);

  // A change to a job that is gone stores no event either.
  model::JobRecord ghost = *stored;
  ghost.id = 999999;
  EXPECT_EQ(store_->UpdateJob(ghost, events).code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->ReadOutbox(0, 10)->size(), 2u);
}

TEST_F(StoreTest, MigratesAVersion1DatabaseKeepingItsJobs) {
  model::JobRecord job = FullJob();
  Insert(job);
  store_.reset();
  // Take the database back to schema v1, as an older Trainyard left it.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/trainyard.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "ALTER TABLE jobs DROP COLUMN version; ALTER TABLE jobs DROP COLUMN "
                         "runtime_json; ALTER TABLE jobs DROP COLUMN attempt_handle; DROP TABLE "
                         "stream_events; DROP TABLE log_streams; "
                         "DROP TABLE log_groups; DROP TABLE event_outbox; DROP TABLE "
                         "event_deliveries; DROP TABLE event_targets; DROP TABLE event_rules; "
                         "DROP TABLE rule_evaluations; "
                         "CREATE TABLE log_events "
                         "(seq INTEGER PRIMARY "
                         "KEY AUTOINCREMENT, job_id INTEGER NOT NULL REFERENCES jobs (id) ON "
                         "DELETE CASCADE, stream TEXT NOT NULL, ts_ms INTEGER NOT NULL, message "
                         "TEXT NOT NULL); UPDATE schema_version SET version = 1",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto reopened = store::Store::Open(dir_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(reopened).value();
  auto v = store_->GetJobVersion(job.account, job.spec.name);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->version, 0);
  EXPECT_TRUE(store_->GetJob(job.account, job.spec.name).ok());
}

TEST_F(StoreTest, RefusesSchemaNewerThanItKnows) {
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/trainyard.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Store::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabaseNamingIt) {
  store_.reset();
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/trainyard.db", std::string(8192, 'x')).ok());
  ::unlink((dir_ + "/trainyard.db-wal").c_str());
  ::unlink((dir_ + "/trainyard.db-shm").c_str());
  auto s = Store::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find(dir_ + "/trainyard.db is damaged"), std::string::npos)
      << s.status().message();
  EXPECT_NE(s.status().message().find("trainyard admin backup"), std::string::npos);
}

TEST_F(StoreTest, RefusesADamagedPage) {
  for (int i = 0; i < 200; ++i) Insert(MakeJob("job" + std::to_string(i), i));
  store_.reset();  // checkpoints the WAL into the database file
  // Garbage over a page in the middle of the file (a b-tree page of the jobs table).
  std::string path = dir_ + "/trainyard.db";
  auto text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  ASSERT_GT(text->size(), 8 * 4096u);
  std::string damaged = *text;
  for (size_t i = 3 * 4096; i < 4 * 4096; ++i) damaged[i] = static_cast<char>(i * 7 + 3);
  ASSERT_TRUE(WriteFileAtomic(path, damaged).ok());
  auto s = Store::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status().ToString();
  EXPECT_NE(s.status().message().find("is damaged"), std::string::npos) << s.status().message();
}

TEST_F(StoreTest, DatabaseFilesAreTheServersOnly) {
  Insert(MakeJob("a", 1));
  for (const char* f : {"/trainyard.db", "/trainyard.db-wal", "/trainyard.db-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + f).c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
}

TEST_F(StoreTest, BackupIsAConsistentCopyTakenWhileInUse) {
  for (int i = 0; i < 50; ++i) Insert(MakeJob("job" + std::to_string(i), i));
  EXPECT_EQ(*store_->CountJobs(), 50);
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 50; !stop; ++i) Insert(MakeJob("job" + std::to_string(i), i));
  });
  std::string out = tmp_.Sub("backup.db");
  Status st = BackupDatabase(dir_, out);
  stop = true;
  writer.join();
  ASSERT_TRUE(st.ok()) << st.ToString();
  struct stat sb {};
  ASSERT_EQ(::stat(out.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  EXPECT_FALSE(PathExists(out + ".partial"));
  // Restored into a fresh data dir, the copy opens and holds at least the jobs written before.
  std::string restored = tmp_.Sub("restored");
  ASSERT_TRUE(MakeDirs(restored).ok());
  ASSERT_EQ(::rename(out.c_str(), (restored + "/trainyard.db").c_str()), 0);
  auto copy = Store::Open(restored);
  ASSERT_TRUE(copy.ok()) << copy.status().ToString();
  auto n = (*copy)->CountJobs();
  ASSERT_TRUE(n.ok());
  EXPECT_GE(*n, 50);
  EXPECT_TRUE((*copy)->GetJob(kAccount, "job49").ok());
}

TEST_F(StoreTest, BackupOfAMissingDatabaseIsNotFound) {
  EXPECT_EQ(BackupDatabase(tmp_.Sub("nowhere"), tmp_.Sub("out.db")).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, DuplicateInsertIsAlreadyExists) {
  Insert(MakeJob("dup", 1));
  JobRecord again = MakeJob("dup", 2);
  EXPECT_EQ(store_->InsertJob(&again).code(), StatusCode::kAlreadyExists);
  // Same name in another account is a different job.
  JobRecord other = MakeJob("dup", 3, TrainingJobStatus::kCompleted, "210987654321");
  EXPECT_TRUE(store_->InsertJob(&other).ok());
}

TEST_F(StoreTest, GetMissingIsNotFound) {
  EXPECT_EQ(store_->GetJob(kAccount, "nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->GetJobByArn("arn:nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteJob(kAccount, "nope").code(), StatusCode::kNotFound);
  JobRecord ghost = MakeJob("ghost", 1);
  ghost.id = 999;
  EXPECT_EQ(store_->UpdateJob(ghost).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, UpdateJobPersists) {
  JobRecord r = Insert(MakeJob("upd", 100, TrainingJobStatus::kInProgress));
  JobRecord full = FullJob();
  full.id = r.id;
  full.account = r.account;
  full.arn = r.arn;
  full.spec.name = "upd";
  full.creation_time = r.creation_time;
  full.status = TrainingJobStatus::kFailed;
  ASSERT_TRUE(store_->UpdateJob(full).ok());
  auto got = store_->GetJob(kAccount, "upd");
  ASSERT_TRUE(got.ok());
  ExpectSameJob(full, *got);
}

TEST_F(StoreTest, EverythingSurvivesReopen) {
  JobRecord r = Insert(FullJob());
  ASSERT_TRUE(store_->SetTags(r.arn, {{"team", "ml"}}).ok());
  ASSERT_TRUE(store_->AppendLogEvents(r.id, {{0, "s/algo-1", 10, "hello"}}).ok());
  ASSERT_TRUE(store_->AppendMetricSamples(r.id, {{"loss", 11, 0.5}}).ok());
  ASSERT_TRUE(store_->PutSetting("k", "v").ok());
  r.status = TrainingJobStatus::kStopped;
  ASSERT_TRUE(store_->UpdateJob(r).ok());

  Reopen();
  auto got = store_->GetJob(kAccount, "full-job");
  ASSERT_TRUE(got.ok());
  ExpectSameJob(r, *got);
  auto tags = store_->GetTags(r.arn);
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 1u);
  EXPECT_EQ((*tags)[0].value, "ml");
  auto logs = store_->ReadLogEvents(r.id, 0, 10);
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_EQ((*logs)[0].message, "hello");
  auto metrics = store_->ReadMetricSamples(r.id);
  ASSERT_TRUE(metrics.ok());
  ASSERT_EQ(metrics->size(), 1u);
  EXPECT_EQ((*metrics)[0].value, 0.5);
  auto setting = store_->GetSetting("k");
  ASSERT_TRUE(setting.ok());
  EXPECT_EQ(*setting, std::optional<std::string>("v"));

  // Ids keep increasing after a restart and a second reopen is a no-op migration.
  JobRecord next = Insert(MakeJob("after-restart", 1));
  EXPECT_GT(next.id, r.id);
  Reopen();
  EXPECT_TRUE(store_->GetJob(kAccount, "after-restart").ok());
}

class ListJobsTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    // name, creation_ms (last_modified = creation + 1000), status
    Insert(MakeJob("alpha", 1000, TrainingJobStatus::kCompleted));
    Insert(MakeJob("Beta-%", 2000, TrainingJobStatus::kInProgress));
    Insert(MakeJob("gamma_x", 3000, TrainingJobStatus::kFailed));
    Insert(MakeJob("delta", 4000, TrainingJobStatus::kStopping));
    Insert(MakeJob("other-acct", 2500, TrainingJobStatus::kInProgress, "999999999999"));
  }
  std::vector<std::string> List(JobQuery q) {
    q.account = kAccount;
    auto r = store_->ListJobs(q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? Names(*r) : std::vector<std::string>{};
  }
  using V = std::vector<std::string>;
};

TEST_F(ListJobsTest, DefaultIsNewestFirstWithinAccount) {
  EXPECT_EQ(List({}), (V{"delta", "gamma_x", "Beta-%", "alpha"}));
}

TEST_F(ListJobsTest, TimeFilters) {
  JobQuery q;
  q.created_after_ms = 1000;  // strictly after
  q.created_before_ms = 4000;
  EXPECT_EQ(List(q), (V{"gamma_x", "Beta-%"}));
  JobQuery m;
  m.modified_after_ms = 3500;
  EXPECT_EQ(List(m), (V{"delta", "gamma_x"}));
  JobQuery mb;
  mb.modified_before_ms = 3000;
  EXPECT_EQ(List(mb), (V{"alpha"}));
}

TEST_F(ListJobsTest, NameContainsIsCaseInsensitiveAndLiteral) {
  JobQuery q;
  q.name_contains = "BETA";
  EXPECT_EQ(List(q), (V{"Beta-%"}));
  q.name_contains = "%";  // not a LIKE wildcard
  EXPECT_EQ(List(q), (V{"Beta-%"}));
  q.name_contains = "_";
  EXPECT_EQ(List(q), (V{"gamma_x"}));
  q.name_contains = "-%";
  EXPECT_EQ(List(q), (V{"Beta-%"}));
  q.name_contains = "zzz";
  EXPECT_EQ(List(q), V{});
}

TEST_F(ListJobsTest, StatusFilter) {
  JobQuery q;
  q.status = TrainingJobStatus::kInProgress;
  EXPECT_EQ(List(q), (V{"Beta-%"}));
  q.status = TrainingJobStatus::kStopped;
  EXPECT_EQ(List(q), V{});
}

TEST_F(ListJobsTest, SortOrders) {
  JobQuery q;
  q.sort_by = JobQuery::SortBy::kName;
  q.ascending = true;  // binary collation: upper case first
  EXPECT_EQ(List(q), (V{"Beta-%", "alpha", "delta", "gamma_x"}));
  q.ascending = false;
  EXPECT_EQ(List(q), (V{"gamma_x", "delta", "alpha", "Beta-%"}));
  q.sort_by = JobQuery::SortBy::kStatus;
  q.ascending = true;  // Completed, Failed, InProgress, Stopping
  EXPECT_EQ(List(q), (V{"alpha", "gamma_x", "Beta-%", "delta"}));
  q.ascending = false;
  EXPECT_EQ(List(q), (V{"delta", "Beta-%", "gamma_x", "alpha"}));
  q.sort_by = JobQuery::SortBy::kCreationTime;
  q.ascending = true;
  EXPECT_EQ(List(q), (V{"alpha", "Beta-%", "gamma_x", "delta"}));
  q.ascending = false;
  EXPECT_EQ(List(q), (V{"delta", "gamma_x", "Beta-%", "alpha"}));
}

TEST_F(ListJobsTest, TiesAreBrokenByIdForStablePaging) {
  Insert(MakeJob("tie-1", 5000));
  Insert(MakeJob("tie-2", 5000));
  Insert(MakeJob("tie-3", 5000));
  JobQuery q;
  q.ascending = true;
  q.created_after_ms = 4500;
  q.limit = 2;
  EXPECT_EQ(List(q), (V{"tie-1", "tie-2"}));
  q.offset = 2;
  EXPECT_EQ(List(q), (V{"tie-3"}));
}

TEST_F(ListJobsTest, Paging) {
  JobQuery q;
  q.ascending = true;
  q.limit = 2;
  EXPECT_EQ(List(q), (V{"alpha", "Beta-%"}));
  q.offset = 2;
  EXPECT_EQ(List(q), (V{"gamma_x", "delta"}));
  q.offset = 3;
  EXPECT_EQ(List(q), (V{"delta"}));
  q.offset = 4;
  EXPECT_EQ(List(q), V{});
}

TEST_F(ListJobsTest, AllJobsAndActiveJobs) {
  auto all = store_->AllJobs(kAccount);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Names(*all), (V{"delta", "gamma_x", "Beta-%", "alpha"}));
  auto active = store_->ActiveJobs();
  ASSERT_TRUE(active.ok());
  // Across accounts; InProgress and Stopping only.
  EXPECT_EQ(Names(*active), (V{"Beta-%", "delta", "other-acct"}));
}

TEST_F(StoreTest, GetJobByArnIsCaseInsensitive) {
  JobRecord r = Insert(MakeJob("MyJob", 1));
  std::string upper = r.arn;
  for (auto& c : upper) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  auto got = store_->GetJobByArn(upper);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, r.id);
  EXPECT_EQ(got->arn, r.arn);  // stored as given
}

TEST_F(StoreTest, TagsAddOverwriteDelete) {
  const std::string arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/t";
  ASSERT_TRUE(store_->SetTags(arn, {{"a", "1"}, {"b", "2"}}).ok());
  ASSERT_TRUE(store_->SetTags(arn, {{"a", "10"}, {"c", "3"}}).ok());
  auto tags = store_->GetTags(arn);
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 3u);
  EXPECT_EQ((*tags)[0].key, "a");
  EXPECT_EQ((*tags)[0].value, "10");
  EXPECT_EQ((*tags)[1].key, "b");
  EXPECT_EQ((*tags)[2].key, "c");
  ASSERT_TRUE(store_->DeleteTags(arn, {"b", "missing"}).ok());
  tags = store_->GetTags(arn);
  ASSERT_TRUE(tags.ok());
  ASSERT_EQ(tags->size(), 2u);
  EXPECT_EQ((*tags)[1].key, "c");
  auto none = store_->GetTags(arn + "-other");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(StoreTest, DeleteJobCascades) {
  JobRecord gone = Insert(MakeJob("gone", 1));
  JobRecord kept = Insert(MakeJob("kept", 2));
  for (const auto& r : {gone, kept}) {
    ASSERT_TRUE(store_->SetTags(r.arn, {{"k", "v"}}).ok());
    ASSERT_TRUE(store_->AppendLogEvents(r.id, {{0, "s", 1, "m"}}).ok());
    ASSERT_TRUE(store_->AppendMetricSamples(r.id, {{"loss", 1, 1.0}}).ok());
  }
  ASSERT_TRUE(store_->DeleteJob(kAccount, "gone").ok());
  EXPECT_EQ(store_->GetJob(kAccount, "gone").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetTags(gone.arn)->empty());
  EXPECT_TRUE(store_->ReadLogEvents(gone.id, 0, 100)->empty());
  // The log outlives the job, as in CloudWatch: its stream stays in the group.
  auto group = store_->GetLogGroup(kAccount, kTrainingJobLogGroup);
  ASSERT_TRUE(group.ok());
  auto stream = store_->GetLogStream(group->id, "gone/s");
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  StreamRead read;
  read.stream_id = stream->id;
  EXPECT_EQ(store_->ReadStreamEvents(read)->size(), 1u);
  EXPECT_TRUE(store_->ReadMetricSamples(gone.id)->empty());
  EXPECT_EQ(store_->GetTags(kept.arn)->size(), 1u);
  EXPECT_EQ(store_->ReadLogEvents(kept.id, 0, 100)->size(), 1u);
  EXPECT_EQ(store_->ReadMetricSamples(kept.id)->size(), 1u);
  // The name is free again.
  JobRecord again = MakeJob("gone", 3);
  EXPECT_TRUE(store_->InsertJob(&again).ok());
}

TEST_F(StoreTest, LogEventsReadWithCursor) {
  JobRecord a = Insert(MakeJob("a", 1));
  JobRecord b = Insert(MakeJob("b", 2));
  std::vector<LogEvent> events;
  for (int i = 0; i < 5; ++i)
    events.push_back({0, "a/algo-1-1", 100 + i, "line " + std::to_string(i)});
  ASSERT_TRUE(store_->AppendLogEvents(a.id, events).ok());
  ASSERT_TRUE(store_->AppendLogEvents(b.id, {{0, "b/algo-1-1", 1, "other"}}).ok());
  ASSERT_TRUE(store_->AppendLogEvents(a.id, {{0, "a/algo-2-1", 200, "late"}}).ok());

  auto first = store_->ReadLogEvents(a.id, 0, 3);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 3u);
  EXPECT_EQ((*first)[0].message, "line 0");
  EXPECT_EQ((*first)[0].stream, "a/algo-1-1");
  EXPECT_EQ((*first)[0].timestamp_ms, 100);
  EXPECT_LT((*first)[0].seq, (*first)[1].seq);
  auto rest = store_->ReadLogEvents(a.id, first->back().seq, 100);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->size(), 3u);
  EXPECT_EQ((*rest)[0].message, "line 3");
  EXPECT_EQ((*rest)[2].message, "late");  // b's event is skipped
  auto end = store_->ReadLogEvents(a.id, rest->back().seq, 100);
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->empty());
}

TEST_F(StoreTest, LogEventsForUnknownJobAreRejected) {
  EXPECT_EQ(store_->AppendLogEvents(12345, {{0, "s", 1, "m"}}).code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, MetricSamples) {
  JobRecord a = Insert(MakeJob("a", 1));
  ASSERT_TRUE(store_->AppendMetricSamples(a.id, {{"loss", 20, 0.5}, {"loss", 10, 0.9}}).ok());
  ASSERT_TRUE(store_->AppendMetricSamples(a.id, {{"acc", 30, 0.75}}).ok());
  auto got = store_->ReadMetricSamples(a.id);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].timestamp_ms, 10);
  EXPECT_EQ((*got)[0].value, 0.9);
  EXPECT_EQ((*got)[1].value, 0.5);
  EXPECT_EQ((*got)[2].name, "acc");
}

TEST_F(StoreTest, Settings) {
  auto missing = store_->GetSetting("x");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  ASSERT_TRUE(store_->PutSetting("x", "1").ok());
  ASSERT_TRUE(store_->PutSetting("x", "2").ok());
  auto got = store_->GetSetting("x");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, std::optional<std::string>("2"));
}

TEST_F(StoreTest, ConcurrentReadersAndWriter) {
  // A second connection on the same file exercises WAL + busy_timeout too.
  auto other = Store::Open(dir_);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  JobRecord base = Insert(MakeJob("base", 1, TrainingJobStatus::kInProgress));
  constexpr int kIters = 150;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {  // writer
    JobRecord r = base;
    for (int i = 0; i < kIters; ++i) {
      r.attempt = i;
      if (!store_->UpdateJob(r).ok()) ++errors;
      if (!store_->AppendLogEvents(r.id, {{0, "s", i, "m" + std::to_string(i)}}).ok()) ++errors;
      JobRecord n = MakeJob("w-" + std::to_string(i), 10 + i);
      if (!store_->InsertJob(&n).ok()) ++errors;
    }
  });
  for (int t = 0; t < 3; ++t) {
    Store* s = t == 0 ? other->get() : store_.get();
    threads.emplace_back([&, s] {
      int last_attempt = -1;
      for (int i = 0; i < kIters; ++i) {
        auto j = s->GetJob(kAccount, "base");
        if (!j.ok() || j->attempt < last_attempt) ++errors;
        if (j.ok()) last_attempt = j->attempt;
        JobQuery q;
        q.account = kAccount;
        q.limit = 10;
        if (!s->ListJobs(q).ok()) ++errors;
        if (!s->ReadLogEvents(base.id, 0, 50).ok()) ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  auto logs = (*other)->ReadLogEvents(base.id, 0, 1000);
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->size(), static_cast<size_t>(kIters));
  EXPECT_EQ((*other)->AllJobs(kAccount)->size(), static_cast<size_t>(kIters + 1));
  EXPECT_EQ((*other)->GetJob(kAccount, "base")->attempt, kIters - 1);
}

// ---- CloudWatch Logs --------------------------------------------------------------------

TEST_F(StoreTest, JobLogLinesLandInTheAccountsTrainingJobGroup) {
  JobRecord a = Insert(MakeJob("a", 1));
  JobRecord other = Insert(MakeJob("a", 1, TrainingJobStatus::kCompleted, "999999999999"));
  ASSERT_TRUE(store_
                  ->AppendLogEvents(a.id, {{0, "a/algo-1-100", 10, "one"},
                                           {0, "a/algo-1-100", 12, "two"},
                                           {0, "a/algo-2-100", 11, "other host"},
                                           {0, "", 13, "note"}})
                  .ok());
  ASSERT_TRUE(store_->AppendLogEvents(other.id, {{0, "a/algo-1-100", 10, "theirs"}}).ok());
  auto group = store_->GetLogGroup(kAccount, kTrainingJobLogGroup);
  ASSERT_TRUE(group.ok());
  EXPECT_EQ(group->stored_bytes, 3 + 3 + 10 + 4);
  StreamQuery q;
  q.group_id = group->id;
  q.prefix = "a/";
  auto streams = store_->ListLogStreams(q);
  ASSERT_TRUE(streams.ok());
  ASSERT_EQ(streams->size(), 3u);
  EXPECT_EQ((*streams)[0].name, "a/algo-1-100");
  EXPECT_EQ((*streams)[1].name, "a/algo-2-100");
  EXPECT_EQ((*streams)[2].name, "a/trainyard");  // a line with no stream stays the job's
  EXPECT_EQ((*streams)[0].first_event_ms, 10);
  EXPECT_EQ((*streams)[0].last_event_ms, 12);
  EXPECT_EQ((*streams)[0].stored_bytes, 6);
  EXPECT_TRUE((*streams)[0].last_ingestion_ms.has_value());
  StreamRead read;
  read.stream_id = (*streams)[0].id;
  auto events = store_->ReadStreamEvents(read);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].message, "one");
  EXPECT_EQ((*events)[1].message, "two");
  EXPECT_LT((*events)[0].seq, (*events)[1].seq);
  // The other account's group is its own.
  auto theirs = store_->GetLogGroup("999999999999", kTrainingJobLogGroup);
  ASSERT_TRUE(theirs.ok());
  EXPECT_NE(theirs->id, group->id);
  EXPECT_EQ(store_->ListLogGroups(kAccount, "", "", "", 50)->size(), 1u);
}

TEST_F(StoreTest, StreamReadsPageByCursorTimeAndBytes) {
  auto g = store_->CreateLogGroup(kAccount, "g", 1);
  ASSERT_TRUE(g.ok());
  auto s = store_->CreateLogStream(g->id, "s", 1);
  ASSERT_TRUE(s.ok());
  std::vector<std::pair<int64_t, std::string>> batch;
  for (int i = 0; i < 10; ++i) batch.emplace_back(100 + i, std::string(100, 'a' + i));
  ASSERT_TRUE(store_->PutStreamEvents(s->id, batch, 5000).ok());
  StreamRead r;
  r.stream_id = s->id;
  r.limit = 3;
  auto head = store_->ReadStreamEvents(r);
  ASSERT_EQ(head->size(), 3u);
  EXPECT_EQ((*head)[0].timestamp_ms, 100);
  EXPECT_EQ((*head)[0].ingestion_ms, 5000);
  r.newest_first = true;
  auto tail = store_->ReadStreamEvents(r);
  ASSERT_EQ(tail->size(), 3u);
  EXPECT_EQ((*tail)[0].timestamp_ms, 107);  // the last three, oldest first
  EXPECT_EQ((*tail)[2].timestamp_ms, 109);
  r.newest_first = false;
  r.limit = 100;
  r.start_ms = 103;  // inclusive
  r.end_ms = 106;    // exclusive
  auto window = store_->ReadStreamEvents(r);
  ASSERT_EQ(window->size(), 3u);
  EXPECT_EQ((*window)[0].timestamp_ms, 103);
  EXPECT_EQ((*window)[2].timestamp_ms, 105);
  r.start_ms.reset();
  r.end_ms.reset();
  r.max_bytes = 2 * 126 + 10;  // two events of 100 bytes + 26
  EXPECT_EQ(store_->ReadStreamEvents(r)->size(), 2u);
  r.max_bytes = 1;  // a page holds at least one event
  EXPECT_EQ(store_->ReadStreamEvents(r)->size(), 1u);
  auto row = store_->GetLogStream(g->id, "s");
  EXPECT_EQ(row->last_seq, (*head)[0].seq + 9);
  EXPECT_EQ(row->stored_bytes, 1000);
}

TEST_F(StoreTest, GroupsAndStreamsAreCreatedListedAndDeleted) {
  EXPECT_TRUE(store_->CreateLogGroup(kAccount, "/b", 1).ok());
  EXPECT_TRUE(store_->CreateLogGroup(kAccount, "/a/x", 1).ok());
  EXPECT_TRUE(store_->CreateLogGroup(kAccount, "/a/y", 1).ok());
  EXPECT_EQ(store_->CreateLogGroup(kAccount, "/b", 1).status().code(), StatusCode::kAlreadyExists);
  EXPECT_TRUE(store_->CreateLogGroup("999999999999", "/b", 1).ok());  // names are per account
  auto a = store_->ListLogGroups(kAccount, "/a/", "", "", 50);
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].name, "/a/x");
  EXPECT_EQ(store_->ListLogGroups(kAccount, "", "Y", "", 50)->size(), 1u);  // case-insensitive
  EXPECT_EQ(store_->ListLogGroups(kAccount, "", "", "/a/x", 50)->size(), 2u);
  auto g = store_->GetLogGroup(kAccount, "/b");
  ASSERT_TRUE(store_->CreateLogStream(g->id, "s1", 1).ok());
  ASSERT_TRUE(store_->CreateLogStream(g->id, "s2", 1).ok());
  EXPECT_EQ(store_->CreateLogStream(g->id, "s1", 1).status().code(), StatusCode::kAlreadyExists);
  auto s2 = store_->GetLogStream(g->id, "s2");
  ASSERT_TRUE(store_->PutStreamEvents(s2->id, {{50, "x"}}, 60).ok());
  StreamQuery q;
  q.group_id = g->id;
  q.by_last_event = true;
  q.descending = true;
  auto by_time = store_->ListLogStreams(q);
  ASSERT_EQ(by_time->size(), 2u);
  EXPECT_EQ((*by_time)[0].name, "s2");
  q.after_time_id = std::make_pair(int64_t{50}, s2->id);
  ASSERT_EQ(store_->ListLogStreams(q)->size(), 1u);
  EXPECT_EQ(store_->ListLogStreams(q)->at(0).name, "s1");
  EXPECT_TRUE(store_->DeleteLogStream(g->id, "s2").ok());
  EXPECT_EQ(store_->DeleteLogStream(g->id, "s2").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->PutStreamEvents(s2->id, {{1, "y"}}, 1).code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->DeleteLogGroup(kAccount, "/b").ok());
  EXPECT_EQ(store_->GetLogGroup(kAccount, "/b").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetLogGroup("999999999999", "/b").ok());
  // A new stream never takes a deleted stream's id (tokens name streams by id).
  ASSERT_TRUE(store_->CreateLogGroup(kAccount, "/b", 1).ok());
  auto again = store_->CreateLogStream(store_->GetLogGroup(kAccount, "/b")->id, "s2", 1);
  EXPECT_GT(again->id, s2->id);
}

TEST_F(StoreTest, GroupScanOrdersByTimeAcrossStreams) {
  auto g = store_->CreateLogGroup(kAccount, "g", 1);
  auto s1 = store_->CreateLogStream(g->id, "s1", 1);
  auto s2 = store_->CreateLogStream(g->id, "s2", 1);
  ASSERT_TRUE(store_->PutStreamEvents(s1->id, {{10, "a"}, {30, "c"}}, 1).ok());
  ASSERT_TRUE(store_->PutStreamEvents(s2->id, {{20, "b"}, {30, "d"}}, 1).ok());
  GroupScan scan;
  scan.group_id = g->id;
  auto all = store_->ScanGroupEvents(scan);
  ASSERT_EQ(all->size(), 4u);
  std::string order;
  for (const auto& e : *all) order += e.message;
  EXPECT_EQ(order, "abcd");
  EXPECT_EQ((*all)[1].stream, "s2");
  scan.after_ts = (*all)[2].timestamp_ms;
  scan.after_seq = (*all)[2].seq;
  auto rest = store_->ScanGroupEvents(scan);
  ASSERT_EQ(rest->size(), 1u);
  EXPECT_EQ((*rest)[0].message, "d");
}

// A database written by a server before CloudWatch Logs (schema v3): its job log lines become
// stream events with their seq, and the counter goes on from there.
TEST_F(StoreTest, V3DatabaseMigratesJobLogsIntoStreams) {
  store_.reset();
  TempDir old_tmp("ty_store_v3_");
  const std::string dir = old_tmp.Sub("data");
  ASSERT_TRUE(MakeDirs(dir).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DatabasePath(dir).c_str(), &db), SQLITE_OK);
  const char* v3 = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (3);
CREATE TABLE jobs (id INTEGER PRIMARY KEY, account TEXT NOT NULL, name TEXT NOT NULL,
  arn TEXT NOT NULL UNIQUE COLLATE NOCASE, request_json TEXT NOT NULL, spec_json TEXT NOT NULL,
  status TEXT NOT NULL, secondary TEXT NOT NULL, transitions_json TEXT NOT NULL,
  failure_reason TEXT NOT NULL, model_artifacts TEXT NOT NULL, creation_ms INTEGER NOT NULL,
  last_modified_ms INTEGER NOT NULL, start_ms INTEGER, end_ms INTEGER, training_s INTEGER,
  billable_s INTEGER, final_metrics_json TEXT NOT NULL, stop_reason TEXT NOT NULL,
  attempt INTEGER NOT NULL, agent_token TEXT NOT NULL, agent_pid INTEGER NOT NULL,
  agent_start_ticks INTEGER NOT NULL, instance_dir TEXT NOT NULL,
  version INTEGER NOT NULL DEFAULT 0, runtime_json TEXT NOT NULL DEFAULT '{}',
  UNIQUE (account, name));
CREATE TABLE tags (arn TEXT NOT NULL COLLATE NOCASE, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (arn, key));
CREATE TABLE log_events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE, stream TEXT NOT NULL,
  ts_ms INTEGER NOT NULL, message TEXT NOT NULL);
CREATE INDEX log_events_job_seq ON log_events (job_id, seq);
CREATE TABLE metric_samples (job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  name TEXT NOT NULL, ts_ms INTEGER NOT NULL, value REAL NOT NULL);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO jobs VALUES (1, '123456789012', 'old', 'arn:aws:sagemaker:us-east-1:123456789012:training-job/old',
  '{}', '{}', 'Completed', 'Completed', '[]', '', '', 1, 2, NULL, NULL, NULL, NULL, '{}',
  'None', 1, '', 0, 0, '', 0, '{}');
INSERT INTO log_events (seq, job_id, stream, ts_ms, message) VALUES
  (5, 1, 'old/algo-1-7', 1000, 'first'), (6, 1, 'old/algo-1-7', 1001, 'second'),
  (9, 1, '', 1002, 'a note');
)sql";
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, v3, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);

  auto opened = Store::Open(dir);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  Store& st = **opened;
  auto lines = st.ReadLogEvents(1, 0, 100);
  ASSERT_TRUE(lines.ok()) << lines.status().ToString();
  ASSERT_EQ(lines->size(), 3u);
  EXPECT_EQ((*lines)[0].seq, 5);
  EXPECT_EQ((*lines)[1].message, "second");
  EXPECT_EQ((*lines)[2].stream, "old/trainyard");
  auto group = st.GetLogGroup(kAccount, kTrainingJobLogGroup);
  ASSERT_TRUE(group.ok());
  auto stream = st.GetLogStream(group->id, "old/algo-1-7");
  ASSERT_TRUE(stream.ok());
  EXPECT_EQ(stream->first_event_ms, 1000);
  EXPECT_EQ(stream->last_event_ms, 1001);
  EXPECT_EQ(stream->stored_bytes, 11);
  EXPECT_EQ(stream->last_seq, 6);
  StreamRead read;
  read.stream_id = stream->id;
  auto events = st.ReadStreamEvents(read);
  ASSERT_EQ(events->size(), 2u);
  EXPECT_EQ((*events)[0].ingestion_ms, 1000);  // unknown before v4: the event's own time
  // New lines go after the old ones.
  ASSERT_TRUE(st.AppendLogEvents(1, {{0, "old/algo-1-7", 2000, "new"}}).ok());
  auto after = st.ReadLogEvents(1, 9, 100);
  ASSERT_EQ(after->size(), 1u);
  EXPECT_GT((*after)[0].seq, 9);
}

// A database of a server before launcher handles (schema v7): the agent pids of a running
// attempt become the LocalLauncher handle "local:<pid>/<ticks>,..." (algo-1 first, 0/0 for an
// exited instance) and the exited instances are remembered; jobs without agents get no handle.
TEST_F(StoreTest, V7AgentPidsBecomeALocalAttemptHandle) {
  JobRecord multi = MakeJob("multi", 1000, TrainingJobStatus::kInProgress);
  multi.spec.instance_count = 3;
  multi.retries = 1;
  JobRecord single = MakeJob("single", 2000, TrainingJobStatus::kInProgress);
  JobRecord done = MakeJob("done", 3000);
  Insert(multi);
  Insert(single);
  Insert(done);
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/trainyard.db").c_str(), &db), SQLITE_OK);
  // As a v7 server left them: pids in the columns and in runtime_json.other_agents.
  const char* v7 = R"sql(
ALTER TABLE jobs DROP COLUMN attempt_handle;
UPDATE jobs SET agent_pid = 4242, agent_start_ticks = 987,
  runtime_json = json_set(runtime_json, '$.other_agents', json('[[4343,988],[0,0]]'))
  WHERE name = 'multi';
UPDATE jobs SET agent_pid = 77, agent_start_ticks = 5 WHERE name = 'single';
UPDATE schema_version SET version = 7;
)sql";
  char* err = nullptr;
  ASSERT_EQ(sqlite3_exec(db, v7, nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_close(db);
  auto reopened = Store::Open(dir_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  store_ = std::move(reopened).value();
  auto m = store_->GetJob(kAccount, "multi");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->attempt_handle, "local:4242/987,4343/988,0/0");
  EXPECT_EQ(m->instances_exited, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(m->retries, 1);  // the rest of the runtime is kept
  auto s = store_->GetJob(kAccount, "single");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->attempt_handle, "local:77/5");
  EXPECT_EQ(s->instances_exited, std::vector<bool>{false});
  auto d = store_->GetJob(kAccount, "done");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->attempt_handle, "");
  EXPECT_TRUE(d->instances_exited.empty());
  // New rows and updates go on working with the legacy columns in place.
  JobRecord fresh = MakeJob("fresh", 4000, TrainingJobStatus::kInProgress);
  fresh.attempt_handle = "slurm:12";
  Insert(fresh);
  EXPECT_EQ(store_->GetJob(kAccount, "fresh")->attempt_handle, "slurm:12");
}

}  // namespace
}  // namespace ty::store
