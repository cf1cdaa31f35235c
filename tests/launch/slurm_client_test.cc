#include "launch/slurm_client.h"

#include <gtest/gtest.h>

#include <string>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using testing::TempDir;

TEST(ParseSbatchJobId, PlainAndWithCluster) {
  EXPECT_EQ(*ParseSbatchJobId("42\n"), 42);
  EXPECT_EQ(*ParseSbatchJobId("1234;ci\n"), 1234);
  EXPECT_EQ(*ParseSbatchJobId("  7  "), 7);
}

TEST(ParseSbatchJobId, MalformedIsAnError) {
  for (const char* bad : {"", "\n", "abc", "-3", "0", "12x", ";ci", "99999999999999999999",
                          "Submitted batch job 5"}) {
    auto id = ParseSbatchJobId(bad);
    EXPECT_FALSE(id.ok()) << bad;
    if (!id.ok()) {
      EXPECT_EQ(id.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(ParseSqueue, PaddedRows) {
  auto rows = ParseSqueue(
      "12        |PENDING   |Resources      |0     |2   |N/A|ty-abc-job-1|\n"
      "13        |RUNNING   |None           |1     |1   |N/A|ty-abc-other-2|\n");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].job_id, 12);
  EXPECT_EQ(rows[0].state, "PENDING");
  EXPECT_EQ(rows[0].reason, "Resources");
  EXPECT_EQ(rows[0].restarts, 0);
  EXPECT_EQ(rows[0].nodes, 2);
  EXPECT_EQ(rows[0].name, "ty-abc-job-1");
  EXPECT_EQ(rows[1].restarts, 1);
  EXPECT_EQ(rows[1].state, "RUNNING");
  EXPECT_EQ(rows[1].preempt_time, "");
  auto preempted = ParseSqueue("14|COMPLETED|None|0|2|2026-12-07T23:32:36|ty-abc-x-1|\n");
  ASSERT_EQ(preempted.size(), 1u);
  EXPECT_EQ(preempted[0].preempt_time, "2026-12-07T23:32:36");
}

TEST(ParseSqueue, NameMayHoldBars) {
  auto rows = ParseSqueue("5|RUNNING|None|0|1|N/A|a|b|\n");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].name, "a|b");
}

TEST(ParseSqueue, MalformedLinesAreSkipped) {
  auto rows = ParseSqueue(
      "garbage\n"
      "x|RUNNING|None|0|1|n|\n"            // not a job id
      "7||None|0|1|N/A|n|\n"               // no state
      "8|RUNNING|None\n"                   // too few fields
      "9|RUNNING|None|lots|many|N/A|n|\n"  // bad numbers fall back
      "99999999999999999999|RUNNING|None|0|1|N/A|n|\n"
      "\n");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].job_id, 9);
  EXPECT_EQ(rows[0].restarts, 0);
  EXPECT_EQ(rows[0].nodes, 1);
}

TEST(ParseSqueue, BoundedRowCount) {
  std::string out;
  for (int i = 1; i <= 100010; ++i) out += std::to_string(i) + "|RUNNING|None|0|1|N/A|n|\n";
  EXPECT_EQ(ParseSqueue(out).size(), 100000u);
}

TEST(ParseScontrolRecord, ValuesWithSpaces) {
  auto r = ParseScontrolRecord(
      "JobId=12 JobName=ty-x-1 JobState=PENDING Reason=Resources Dependency=(null) "
      "Command=/tmp/a b/slurm-batch.sh WorkDir=/tmp/a b Partition=spot");
  EXPECT_EQ(r["JobId"], "12");
  EXPECT_EQ(r["JobState"], "PENDING");
  EXPECT_EQ(r["Command"], "/tmp/a b/slurm-batch.sh");
  EXPECT_EQ(r["WorkDir"], "/tmp/a b");
  EXPECT_EQ(r["Partition"], "spot");
}

TEST(ParseScontrolRecord, NodeLineAndMalformed) {
  auto r = ParseScontrolRecord(
      "NodeName=n1 Arch=x86_64 CoresPerSocket=1  CPUAlloc=0 NodeAddr=10.0.0.2 "
      "OS=Linux 6.1 #1 SMP  RealMemory=2000 AllocTRES= Partitions=spot,ondemand");
  EXPECT_EQ(r["NodeName"], "n1");
  EXPECT_EQ(r["NodeAddr"], "10.0.0.2");
  EXPECT_EQ(r["OS"], "Linux 6.1 #1 SMP");
  EXPECT_EQ(r["AllocTRES"], "");
  EXPECT_EQ(r["Partitions"], "spot,ondemand");
  EXPECT_TRUE(ParseScontrolRecord("").empty());
  EXPECT_TRUE(ParseScontrolRecord("no equals here").empty());
  EXPECT_TRUE(ParseScontrolRecord("=x =y").empty());
  // A value longer than the bound is cut.
  auto big = ParseScontrolRecord("A=" + std::string(10000, 'x'));
  EXPECT_EQ(big["A"].size(), 4096u);
  // At most 512 keys.
  std::string many;
  for (int i = 0; i < 1000; ++i) many += "K" + std::to_string(i) + "=v ";
  EXPECT_EQ(ParseScontrolRecord(many).size(), 512u);
}

TEST(ParseHostnames, NamesAndRefusals) {
  auto hosts = ParseHostnames("n1\nn2\n");
  ASSERT_TRUE(hosts.ok());
  EXPECT_EQ(*hosts, (std::vector<std::string>{"n1", "n2"}));
  EXPECT_FALSE(ParseHostnames("").ok());
  EXPECT_FALSE(ParseHostnames("n1\nbad name\n").ok());
  EXPECT_FALSE(ParseHostnames("n1;rm -rf /\n").ok());
  EXPECT_FALSE(ParseHostnames(std::string(300, 'a')).ok());
}

TEST(ParseSlurmSeconds, Forms) {
  EXPECT_EQ(ParseSlurmSeconds("120"), 120);
  EXPECT_EQ(ParseSlurmSeconds("00:02:00"), 120);
  EXPECT_EQ(ParseSlurmSeconds("02:30"), 150);
  EXPECT_EQ(ParseSlurmSeconds("1-00:00:01"), 86401);
  EXPECT_EQ(ParseSlurmSeconds("UNLIMITED"), -1);
  EXPECT_FALSE(ParseSlurmSeconds("").has_value());
  EXPECT_FALSE(ParseSlurmSeconds("1:2:3:4").has_value());
  EXPECT_FALSE(ParseSlurmSeconds("abc").has_value());
  EXPECT_FALSE(ParseSlurmSeconds("-5").has_value());
}

TEST(SlurmErrorLine, StripsToolPrefixes) {
  EXPECT_EQ(SlurmErrorLine("sbatch: error: Batch job submission failed: Invalid partition name "
                           "specified\n",
                           "x"),
            "Batch job submission failed: Invalid partition name specified");
  EXPECT_EQ(SlurmErrorLine("", "exit code 1"), "exit code 1");
  EXPECT_EQ(SlurmErrorLine(std::string(2000, 'e'), "x").size(), 512u);
}

// The client against fake tools: what it runs, and how it reads their answers.
class SlurmClientTest : public ::testing::Test {
 protected:
  void Tool(const std::string& name, const std::string& body) {
    ASSERT_TRUE(WriteFileAtomic(dir_.path() + "/" + name, "#!/bin/sh\n" + body, 0755).ok());
  }
  SlurmClient Client(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    SlurmClientOptions o;
    o.bin_dir = dir_.path();
    o.slurm_conf = "/nonexistent/slurm.conf";
    o.timeout = timeout;
    return SlurmClient(o);
  }
  TempDir dir_{"ty_slurm_client_test_"};
};

TEST_F(SlurmClientTest, SubmitPassesArgvAndReadsTheId) {
  Tool("sbatch",
       "printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"; echo \"$SLURM_CONF\" > "
       "\"$(dirname \"$0\")/conf\"; echo '77;ci'\n");
  auto id = Client().Submit({"-J", "name with spaces; rm -rf /"}, "/x/script.sh");
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 77);
  EXPECT_EQ(*ReadFile(dir_.path() + "/args"),
            "--parsable\n-J\nname with spaces; rm -rf /\n/x/script.sh\n");
  EXPECT_EQ(*ReadFile(dir_.path() + "/conf"), "/nonexistent/slurm.conf\n");
}

TEST_F(SlurmClientTest, RefusedSubmissionCarriesSlurmsMessage) {
  Tool("sbatch",
       "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2; "
       "exit 1\n");
  auto id = Client().Submit({}, "/x/script.sh");
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(id.status().message().find("Invalid partition name specified"), std::string::npos);
}

TEST_F(SlurmClientTest, UnknownJobsAreAbsentNotAnError) {
  Tool("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1\n");
  auto rows = Client().Jobs({1, 2});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_TRUE(rows->empty());
}

TEST_F(SlurmClientTest, ControllerDownIsUnavailable) {
  Tool("squeue",
       "echo 'squeue: error: Unable to contact slurm controller (connect failure)' >&2; exit 1\n");
  auto rows = Client().Jobs({1});
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(rows.status().message().find("Unable to contact slurm controller"), std::string::npos);
}

TEST_F(SlurmClientTest, HangingToolTimesOut) {
  Tool("squeue", "exec sleep 30\n");
  auto rows = Client(std::chrono::milliseconds(200)).Jobs({1});
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kIoError);
  EXPECT_NE(rows.status().message().find("did not answer"), std::string::npos);
}

TEST_F(SlurmClientTest, MissingToolIsIoError) {
  auto rows = Client().Jobs({1});
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kIoError);
}

TEST_F(SlurmClientTest, CancelOfAGoneJobIsNotAnError) {
  Tool("scancel",
       "echo 'scancel: error: Kill job error on job id 5: Invalid job id specified' >&2;"
       " exit 1\n");
  EXPECT_TRUE(Client().Cancel(5, "TERM").ok());
  Tool("scancel", "echo 'scancel: error: Unable to contact slurm controller' >&2; exit 1\n");
  EXPECT_FALSE(Client().Cancel(5).ok());
}

}  // namespace
}  // namespace ty::launch
