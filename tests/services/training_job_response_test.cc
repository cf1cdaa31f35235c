#include "services/sagemaker/training_job_response.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ty::services {
namespace {

using nlohmann::json;

const int64_t kCreated = 1704067200123;  // 2024-01-01T00:00:00.123Z

model::JobRecord BaseJob() {
  model::JobRecord job;
  job.arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job";
  job.spec.name = "my-job";
  job.request_json =
      json{{"TrainingJobName", "my-job"},
           {"AlgorithmSpecification",
            {{"TrainingImage", "pytorch-training:2.1"}, {"TrainingInputMode", "File"}}},
           {"RoleArn", "arn:aws:iam::123456789012:role/R"},
           {"HyperParameters", {{"epochs", "2"}}},
           {"InputDataConfig",
            {{{"ChannelName", "train"},
              {"DataSource",
               {{"S3DataSource", {{"S3DataType", "S3Prefix"}, {"S3Uri", "file:///d/train"}}}}}}}},
           {"OutputDataConfig", {{"S3OutputPath", "file:///d/out"}}},
           {"ResourceConfig", {{"InstanceType", "ml.m5.large"}}},
           {"StoppingCondition", json::object()},
           {"Tags", {{{"Key", "team"}, {"Value", "vision"}}}}}
          .dump();
  job.status = model::TrainingJobStatus::kInProgress;
  job.secondary = model::SecondaryStatus::kStarting;
  job.creation_time = FromEpochMillis(kCreated);
  job.last_modified_time = FromEpochMillis(kCreated + 877);  // .000 -> whole seconds
  job.model_artifacts = "file:///d/out/my-job/output/model.tar.gz";
  return job;
}

TEST(JsonTimeTest, EpochSecondsWithMilliseconds) {
  EXPECT_EQ(JsonTime(FromEpochMillis(1704067200000)), json(1704067200));
  EXPECT_TRUE(JsonTime(FromEpochMillis(1704067200000)).is_number_integer());
  json t = JsonTime(FromEpochMillis(1704067200123));
  ASSERT_TRUE(t.is_number_float());
  EXPECT_DOUBLE_EQ(t.get<double>(), 1704067200.123);
  EXPECT_DOUBLE_EQ(JsonTime(FromEpochMillis(1500)).get<double>(), 1.5);
}

TEST(DescribeJsonTest, FillsDefaultsAndDropsTags) {
  json d = DescribeJson(BaseJob());
  EXPECT_FALSE(d.contains("Tags"));
  EXPECT_EQ(d["StoppingCondition"]["MaxRuntimeInSeconds"], 86400);
  const json& channel = d["InputDataConfig"][0];
  EXPECT_EQ(channel["DataSource"]["S3DataSource"]["S3DataDistributionType"], "FullyReplicated");
  EXPECT_EQ(channel["RecordWrapperType"], "None");
  EXPECT_EQ(channel["CompressionType"], "None");
  EXPECT_EQ(d["EnableManagedSpotTraining"], false);
  EXPECT_EQ(d["EnableNetworkIsolation"], false);
  EXPECT_EQ(d["EnableInterContainerTrafficEncryption"], false);
  EXPECT_EQ(d["OutputDataConfig"]["KmsKeyId"], "");
  EXPECT_EQ(d["OutputDataConfig"]["S3OutputPath"], "file:///d/out");
  EXPECT_FALSE(d.contains("CheckpointConfig"));
  // Request members are echoed.
  EXPECT_EQ(d["RoleArn"], "arn:aws:iam::123456789012:role/R");
  EXPECT_EQ(d["HyperParameters"]["epochs"], "2");
  EXPECT_EQ(d["AlgorithmSpecification"]["TrainingImage"], "pytorch-training:2.1");
}

TEST(DescribeJsonTest, KeepsValuesTheCallerGave) {
  model::JobRecord job = BaseJob();
  json request = json::parse(job.request_json);
  request["StoppingCondition"]["MaxRuntimeInSeconds"] = 600;
  request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] =
      "ShardedByS3Key";
  request["InputDataConfig"][0]["CompressionType"] = "Gzip";
  request["EnableNetworkIsolation"] = true;
  request["CheckpointConfig"] = {{"S3Uri", "file:///d/ckpt"}};
  request["OutputDataConfig"]["KmsKeyId"] = "alias/my-key";
  request["EnableInterContainerTrafficEncryption"] = true;
  job.request_json = request.dump();
  json d = DescribeJson(job);
  EXPECT_EQ(d["OutputDataConfig"]["KmsKeyId"], "alias/my-key");
  EXPECT_EQ(d["EnableInterContainerTrafficEncryption"], true);
  EXPECT_EQ(d["StoppingCondition"]["MaxRuntimeInSeconds"], 600);
  EXPECT_EQ(d["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"],
            "ShardedByS3Key");
  EXPECT_EQ(d["InputDataConfig"][0]["CompressionType"], "Gzip");
  EXPECT_EQ(d["EnableNetworkIsolation"], true);
  EXPECT_EQ(d["CheckpointConfig"]["LocalPath"], "/opt/ml/checkpoints/");
}

// Every member the SageMaker Python SDK 2.230 reads without a default: Estimator.attach
// (_prepare_init_params_from_job_description), logs_for_job, _check_job_status and
// secondary_training_status_message. A missing one is a KeyError in the user's program.
TEST(DescribeJsonTest, HasEveryMemberTheSageMakerSdkReads) {
  model::JobRecord job = BaseJob();
  json request = json::parse(job.request_json);
  request["ResourceConfig"] = {
      {"InstanceType", "ml.m5.large"}, {"InstanceCount", 1}, {"VolumeSizeInGB", 30}};
  request["AlgorithmSpecification"]["MetricDefinitions"] = {
      {{"Name", "loss"}, {"Regex", "l=(.*)"}}};
  job.request_json = request.dump();
  job.transitions = {{model::SecondaryStatus::kStarting, FromEpochMillis(kCreated), std::nullopt,
                      "Preparing the instances for training"}};
  json d = DescribeJson(job);
  for (const char* path :
       {"/TrainingJobName", "/TrainingJobArn", "/TrainingJobStatus", "/RoleArn",
        "/LastModifiedTime", "/ModelArtifacts/S3ModelArtifacts", "/ResourceConfig/InstanceCount",
        "/ResourceConfig/InstanceType", "/ResourceConfig/VolumeSizeInGB",
        "/StoppingCondition/MaxRuntimeInSeconds", "/AlgorithmSpecification/TrainingImage",
        "/AlgorithmSpecification/TrainingInputMode", "/AlgorithmSpecification/MetricDefinitions",
        "/OutputDataConfig/S3OutputPath", "/OutputDataConfig/KmsKeyId",
        "/InputDataConfig/0/ChannelName", "/SecondaryStatusTransitions/0/Status",
        "/SecondaryStatusTransitions/0/StatusMessage"}) {
    EXPECT_TRUE(d.contains(json::json_pointer(path))) << path;
  }
  EXPECT_TRUE(d["EnableNetworkIsolation"].is_boolean());
  EXPECT_TRUE(d["EnableInterContainerTrafficEncryption"].is_boolean());
  EXPECT_TRUE(d["EnableManagedSpotTraining"].is_boolean());
}

TEST(DescribeJsonTest, RuntimeStateOfARunningJob) {
  json d = DescribeJson(BaseJob());
  EXPECT_EQ(d["TrainingJobName"], "my-job");
  EXPECT_EQ(d["TrainingJobArn"], "arn:aws:sagemaker:us-east-1:123456789012:training-job/my-job");
  EXPECT_EQ(d["TrainingJobStatus"], "InProgress");
  EXPECT_EQ(d["SecondaryStatus"], "Starting");
  EXPECT_EQ(d["ModelArtifacts"]["S3ModelArtifacts"], "file:///d/out/my-job/output/model.tar.gz");
  EXPECT_DOUBLE_EQ(d["CreationTime"].get<double>(), 1704067200.123);
  EXPECT_EQ(d["LastModifiedTime"], 1704067201);
  EXPECT_EQ(d["SecondaryStatusTransitions"], json::array());
  for (const char* absent :
       {"FailureReason", "TrainingStartTime", "TrainingEndTime", "FinalMetricDataList",
        "TrainingTimeInSeconds", "BillableTimeInSeconds"}) {
    EXPECT_FALSE(d.contains(absent)) << absent;
  }
}

TEST(DescribeJsonTest, FinishedJobHasTransitionsMetricsAndTimes) {
  model::JobRecord job = BaseJob();
  job.status = model::TrainingJobStatus::kFailed;
  job.secondary = model::SecondaryStatus::kFailed;
  job.failure_reason = "AlgorithmError: exit code 1";
  job.training_start_time = FromEpochMillis(kCreated + 1000);
  job.training_end_time = FromEpochMillis(kCreated + 5500);
  job.training_time_seconds = 4;
  job.billable_time_seconds = 5;
  job.transitions = {
      {model::SecondaryStatus::kStarting, FromEpochMillis(kCreated),
       FromEpochMillis(kCreated + 1000), "Preparing the instances for training"},
      {model::SecondaryStatus::kTraining, FromEpochMillis(kCreated + 1000),
       FromEpochMillis(kCreated + 5000), "Training image download completed."},
      {model::SecondaryStatus::kFailed, FromEpochMillis(kCreated + 5500), std::nullopt,
       "Training job failed"},
  };
  job.final_metrics = {{"loss", 0.25, FromEpochMillis(kCreated + 4000)}};
  json d = DescribeJson(job);
  EXPECT_EQ(d["TrainingJobStatus"], "Failed");
  EXPECT_EQ(d["SecondaryStatus"], "Failed");
  EXPECT_EQ(d["FailureReason"], "AlgorithmError: exit code 1");
  EXPECT_DOUBLE_EQ(d["TrainingStartTime"].get<double>(), 1704067201.123);
  EXPECT_DOUBLE_EQ(d["TrainingEndTime"].get<double>(), 1704067205.623);
  EXPECT_EQ(d["TrainingTimeInSeconds"], 4);
  EXPECT_EQ(d["BillableTimeInSeconds"], 5);

  const json& tr = d["SecondaryStatusTransitions"];
  ASSERT_EQ(tr.size(), 3u);
  EXPECT_EQ(tr[0]["Status"], "Starting");
  EXPECT_EQ(tr[0]["StatusMessage"], "Preparing the instances for training");
  EXPECT_DOUBLE_EQ(tr[0]["StartTime"].get<double>(), 1704067200.123);
  EXPECT_DOUBLE_EQ(tr[0]["EndTime"].get<double>(), 1704067201.123);
  EXPECT_EQ(tr[1]["Status"], "Training");
  EXPECT_EQ(tr[1]["StatusMessage"], "Training image download completed.");
  EXPECT_TRUE(tr[1].contains("EndTime"));
  EXPECT_EQ(tr[2]["Status"], "Failed");
  EXPECT_EQ(tr[2]["StatusMessage"], "Training job failed");
  EXPECT_FALSE(tr[2].contains("EndTime"));

  ASSERT_EQ(d["FinalMetricDataList"].size(), 1u);
  EXPECT_EQ(d["FinalMetricDataList"][0]["MetricName"], "loss");
  EXPECT_DOUBLE_EQ(d["FinalMetricDataList"][0]["Value"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(d["FinalMetricDataList"][0]["Timestamp"].get<double>(), 1704067204.123);
}

TEST(DescribeJsonTest, UnparsableRequestStillRendersState) {
  model::JobRecord job = BaseJob();
  job.request_json = "not json";
  json d = DescribeJson(job);
  EXPECT_EQ(d["TrainingJobName"], "my-job");
  EXPECT_EQ(d["StoppingCondition"]["MaxRuntimeInSeconds"], 86400);
  EXPECT_EQ(d["EnableManagedSpotTraining"], false);
}

TEST(SummaryJsonTest, TrainingEndTimeOnlyWhenSet) {
  model::JobRecord job = BaseJob();
  json s = SummaryJson(job);
  EXPECT_EQ(s["TrainingJobName"], "my-job");
  EXPECT_EQ(s["TrainingJobArn"], job.arn);
  EXPECT_EQ(s["TrainingJobStatus"], "InProgress");
  EXPECT_EQ(s["SecondaryStatus"], "Starting");
  EXPECT_DOUBLE_EQ(s["CreationTime"].get<double>(), 1704067200.123);
  EXPECT_EQ(s["LastModifiedTime"], 1704067201);
  EXPECT_FALSE(s.contains("TrainingEndTime"));
  EXPECT_FALSE(s.contains("HyperParameters"));
  EXPECT_EQ(s.size(), 6u);

  job.status = model::TrainingJobStatus::kCompleted;
  job.secondary = model::SecondaryStatus::kCompleted;
  job.training_end_time = FromEpochMillis(1704067300000);
  s = SummaryJson(job);
  EXPECT_EQ(s["TrainingJobStatus"], "Completed");
  EXPECT_EQ(s["TrainingEndTime"], 1704067300);
}

TEST(SearchRecordJsonTest, DescribePlusTags) {
  model::JobRecord job = BaseJob();
  json r = SearchRecordJson(job, {{"team", "nlp"}, {"env", "dev"}});
  ASSERT_TRUE(r.contains("Tags"));
  EXPECT_EQ(r["Tags"],
            (json{{{"Key", "team"}, {"Value", "nlp"}}, {{"Key", "env"}, {"Value", "dev"}}}));
  EXPECT_EQ(r["TrainingJobStatus"], "InProgress");
  EXPECT_EQ(r["StoppingCondition"]["MaxRuntimeInSeconds"], 86400);

  json empty = SearchRecordJson(job, {});
  EXPECT_EQ(empty["Tags"], json::array());
}

}  // namespace
}  // namespace ty::services
