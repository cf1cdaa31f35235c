#include "events/job_event.h"

#include <gtest/gtest.h>

#include "common/json.h"
#include "model/training_job.h"

namespace ty::events {
namespace {

using nlohmann::json;

model::JobRecord RunningJob() {
  model::JobRecord job;
  job.account = "123456789012";
  job.arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job";
  job.spec.name = "my-job";
  job.request_json =
      R"({"TrainingJobName":"my-job","HyperParameters":{"epochs":"3"},
          "AlgorithmSpecification":{"TrainingImage":"img","TrainingInputMode":"File"},
          "RoleArn":"arn:aws:iam::123456789012:role/SM",
          "ResourceConfig":{"InstanceType":"ml.m5.large","InstanceCount":1,"VolumeSizeInGB":30},
          "OutputDataConfig":{"S3OutputPath":"s3://b/out"},
          "Tags":[{"Key":"Team","Value":"ml"}]})";
  job.status = model::TrainingJobStatus::kInProgress;
  job.secondary = model::SecondaryStatus::kTraining;
  job.creation_time = FromEpochMillis(1696427182554);
  job.last_modified_time = FromEpochMillis(1696427207435);
  job.training_start_time = FromEpochMillis(1696427186229);
  job.transitions = {
      {model::SecondaryStatus::kStarting, FromEpochMillis(1696427182554),
       FromEpochMillis(1696427186229), "Preparing the instances for training"},
      {model::SecondaryStatus::kInterrupted, FromEpochMillis(1696427186229),
       FromEpochMillis(1696427186300), "spot"},
      {model::SecondaryStatus::kTraining, FromEpochMillis(1696427186300), std::nullopt,
       "Training in progress."},
  };
  return job;
}

TEST(JobEventTest, DetailIsDescribeTrainingJobWithMillisTagsMapAndNulls) {
  json d = TrainingJobStateChangeDetail(RunningJob(), {{"Team", "ml"}, {"project", "p1"}});
  EXPECT_EQ(d["TrainingJobName"], "my-job");
  EXPECT_EQ(d["TrainingJobStatus"], "InProgress");
  EXPECT_EQ(d["SecondaryStatus"], "Training");
  // Times are integer epoch milliseconds, not seconds and not strings.
  ASSERT_TRUE(d["CreationTime"].is_number_integer());
  EXPECT_EQ(d["CreationTime"].get<int64_t>(), 1696427182554);
  EXPECT_EQ(d["TrainingStartTime"].get<int64_t>(), 1696427186229);
  EXPECT_EQ(d["LastModifiedTime"].get<int64_t>(), 1696427207435);
  // Unset members are present as null.
  ASSERT_TRUE(d.contains("TrainingEndTime"));
  EXPECT_TRUE(d["TrainingEndTime"].is_null());
  ASSERT_TRUE(d.contains("FailureReason"));
  EXPECT_TRUE(d["FailureReason"].is_null());
  EXPECT_TRUE(d["TuningJobArn"].is_null());
  // Tags are a map; the request's TagList is not echoed.
  EXPECT_EQ(d["Tags"], (json{{"Team", "ml"}, {"project", "p1"}}));
  // Every transition so far, times in ms, EndTime only when ended.
  ASSERT_EQ(d["SecondaryStatusTransitions"].size(), 3u);
  EXPECT_EQ(d["SecondaryStatusTransitions"][1]["Status"], "Interrupted");
  EXPECT_EQ(d["SecondaryStatusTransitions"][0]["EndTime"].get<int64_t>(), 1696427186229);
  EXPECT_FALSE(d["SecondaryStatusTransitions"][2].contains("EndTime"));
  EXPECT_EQ(d["HyperParameters"], (json{{"epochs", "3"}}));
  EXPECT_EQ(d["ResourceConfig"]["InstanceCount"], 1);
}

TEST(JobEventTest, NoTagsIsAnEmptyObjectAndFailureReasonIsSetWhenFailed) {
  model::JobRecord job = RunningJob();
  job.status = model::TrainingJobStatus::kFailed;
  job.secondary = model::SecondaryStatus::kFailed;
  job.failure_reason = "AlgorithmError: boom";
  job.training_end_time = FromEpochMillis(1696427300000);
  json d = TrainingJobStateChangeDetail(job, {});
  EXPECT_TRUE(d["Tags"].is_object());
  EXPECT_TRUE(d["Tags"].empty());
  EXPECT_EQ(d["FailureReason"], "AlgorithmError: boom");
  EXPECT_EQ(d["TrainingEndTime"].get<int64_t>(), 1696427300000);
}

TEST(JobEventTest, EnvelopeIsEventBridgesOrderedByTheJobsArn) {
  model::JobRecord job = RunningJob();
  store::OutboxEvent e =
      TrainingJobStateChangeEvent(job, {}, FromEpochMillis(1696427207435), "the-id");
  EXPECT_EQ(e.account, "123456789012");
  EXPECT_EQ(e.ordering_key, job.arn);
  auto parsed = ParseJson(e.event_json);
  ASSERT_TRUE(parsed.ok());
  const json& ev = *parsed;
  EXPECT_EQ(ev["version"], "0");
  EXPECT_EQ(ev["id"], "the-id");
  EXPECT_EQ(ev["detail-type"], "SageMaker Training Job State Change");
  EXPECT_EQ(ev["source"], "aws.sagemaker");
  EXPECT_EQ(ev["account"], "123456789012");
  EXPECT_EQ(ev["time"], "2023-10-04T13:46:47Z");
  EXPECT_EQ(ev["region"], "us-east-1");
  EXPECT_EQ(ev["resources"], (json{job.arn}));
  EXPECT_EQ(ev["detail"]["TrainingJobArn"], job.arn);
}

TEST(JobEventTest, PublisherGivesEachEventANewIdAndSignalsCommits) {
  int committed = 0;
  JobEventPublisher publisher([&] { ++committed; });
  auto a = publisher.StateChangeEvents(RunningJob(), {}, FromEpochMillis(0));
  auto b = publisher.StateChangeEvents(RunningJob(), {}, FromEpochMillis(0));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE((*ParseJson(a[0].event_json))["id"], (*ParseJson(b[0].event_json))["id"]);
  publisher.Committed();
  EXPECT_EQ(committed, 1);
}

}  // namespace
}  // namespace ty::events
