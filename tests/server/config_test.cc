#include "server/config.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::server {
namespace {

using testing::TempDir;

class LoadConfigFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& yaml, const std::string& name = "config.yaml") {
    std::string path = dir_.path() + "/" + name;
    EXPECT_TRUE(WriteFileAtomic(path, yaml).ok());
    return path;
  }
  TempDir dir_{"ty_server_config_test_"};
};

TEST_F(LoadConfigFileTest, FullConfig) {
  std::string path = Write(R"(
listen: "0.0.0.0:8080"
data_dir: /var/lib/trainyard
region: eu-west-1
file_roots: [/data, /home/me/datasets]
credentials_file: /etc/trainyard/credentials
isolation: none
sandbox: {uid: 1500, gid: 1600}
network: loopback
instance_limits: false
instance_volumes: watch
stop_grace_seconds: 30
max_body_bytes: 2097152
http_threads: 4
images:
  - match: "my-registry/trainer:*"
    command: [/usr/bin/python3, /srv/train.py]
    workdir: /srv
    env:
      MODE: local
      THREADS: 2
  - match: "*/tensorflow-training:*"
    runtime: python-framework
  - match: "tool:*"
    runtime: command
    command: [/bin/tool]
)");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.listen, "0.0.0.0:8080");
  EXPECT_EQ(c.data_dir, "/var/lib/trainyard");
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.file_roots, (std::vector<std::string>{"/data", "/home/me/datasets"}));
  EXPECT_EQ(c.credentials_file, "/etc/trainyard/credentials");
  EXPECT_EQ(c.isolation, "none");
  EXPECT_EQ(c.sandbox_uid, 1500u);
  EXPECT_EQ(c.sandbox_gid, 1600u);
  EXPECT_EQ(c.network, "loopback");
  EXPECT_FALSE(c.instance_limits);
  EXPECT_EQ(c.instance_volumes, "watch");
  EXPECT_EQ(c.stop_grace, std::chrono::seconds(30));
  EXPECT_EQ(c.max_body_bytes, 2097152u);
  EXPECT_EQ(c.http_threads, 4);
  ASSERT_EQ(c.images.size(), 3u);

  const launch::ImageRule& cmd = c.images[0];
  EXPECT_EQ(cmd.match, "my-registry/trainer:*");
  EXPECT_EQ(cmd.entry.runtime, model::ImageEntry::Runtime::kCommand);
  EXPECT_EQ(cmd.entry.command, (std::vector<std::string>{"/usr/bin/python3", "/srv/train.py"}));
  EXPECT_EQ(cmd.entry.workdir, "/srv");
  EXPECT_EQ(cmd.entry.env,
            (std::map<std::string, std::string>{{"MODE", "local"}, {"THREADS", "2"}}));

  const launch::ImageRule& py = c.images[1];
  EXPECT_EQ(py.match, "*/tensorflow-training:*");
  EXPECT_EQ(py.entry.runtime, model::ImageEntry::Runtime::kPythonFramework);
  EXPECT_TRUE(py.entry.command.empty());
  EXPECT_TRUE(py.entry.workdir.empty());

  EXPECT_EQ(c.images[2].entry.command, std::vector<std::string>{"/bin/tool"});
}

TEST_F(LoadConfigFileTest, DeeplyNestedConfigIsRefusedWhileParsing) {
  ServerConfig c;
  Status s = LoadConfigFile(Write("storage: " + std::string(100000, '{') + "\n"), &c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("deeper than 64 levels"), std::string::npos) << s.message();
}

TEST_F(LoadConfigFileTest, KeysLeftOutKeepTheirValues) {
  ServerConfig c;
  c.data_dir = "/from/flags";
  c.listen = "127.0.0.1:9000";
  ASSERT_TRUE(LoadConfigFile(Write("region: ap-south-1\nimages:\n"), &c).ok());
  EXPECT_EQ(c.region, "ap-south-1");
  EXPECT_EQ(c.data_dir, "/from/flags");
  EXPECT_EQ(c.listen, "127.0.0.1:9000");
  EXPECT_EQ(c.isolation, "auto");
  EXPECT_EQ(c.sandbox_uid, 65534u);
  EXPECT_EQ(c.sandbox_gid, 65534u);
  EXPECT_EQ(c.network, "auto");
  EXPECT_TRUE(c.instance_limits);
  EXPECT_EQ(c.instance_volumes, "auto");
  EXPECT_EQ(c.stop_grace, std::chrono::seconds(120));
  EXPECT_TRUE(c.images.empty());
}

TEST_F(LoadConfigFileTest, CapacityAndSpot) {
  ASSERT_TRUE(MakeDirs(dir_.path() + "/etc/traces").ok());
  Write("# replayed\n30 interrupt ml.g5.xlarge\n12.5 unavailable ml.m5.large 60\n",
        "etc/traces/spot.txt");
  std::string path = Write(R"(
instance_types:
  ml.m5.large: {on_demand_price: 0.2}
  ml.local.big: {vcpus: 32, memory_gib: 125.5, gpus: 2, on_demand_price: 3.5}
  ml.local.cpu: {vcpus: 4, memory_gib: 8, on_demand_price: 0, max_processes: 64}
capacity:
  ml.m5.large: 4
  ml.p4d.24xlarge: 0
  "*": 16
spot:
  types:
    ml.g5.xlarge: {price_fraction: 0.4, notice_seconds: 30,
                   mean_time_between_interruptions_seconds: 600,
                   availability: {mean_available_seconds: 900, mean_unavailable_seconds: 60}}
    ml.p3.2xlarge: {mean_time_between_interruptions_seconds: 0, availability: null}
    ml.c5.xlarge:
  seed: 42
  price_fraction: 0.25
  notice_seconds: 0
  mean_time_between_interruptions_seconds: 3600
  availability: {mean_available_seconds: 3600, mean_unavailable_seconds: 300}
  trace_file: traces/spot.txt
)",
                           "etc/config.yaml");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();

  ASSERT_EQ(c.instance_types.size(), 3u);
  // A partial entry keeps the built-in type's other fields.
  EXPECT_EQ(c.instance_types[0].name, "ml.m5.large");
  EXPECT_EQ(c.instance_types[0].vcpus, 2);
  EXPECT_EQ(c.instance_types[0].memory_gib, 8);
  EXPECT_EQ(c.instance_types[0].gpus, 0);
  EXPECT_DOUBLE_EQ(c.instance_types[0].on_demand_price, 0.2);
  EXPECT_EQ(c.instance_types[1].name, "ml.local.big");
  EXPECT_EQ(c.instance_types[1].vcpus, 32);
  EXPECT_DOUBLE_EQ(c.instance_types[1].memory_gib, 125.5);
  EXPECT_EQ(c.instance_types[1].gpus, 2);
  EXPECT_DOUBLE_EQ(c.instance_types[1].on_demand_price, 3.5);
  EXPECT_EQ(c.instance_types[2].gpus, 0);
  EXPECT_EQ(c.instance_types[2].max_processes, 64);
  EXPECT_EQ(c.instance_types[1].max_processes, 0);  // unset: capacity::DefaultMaxProcesses

  EXPECT_EQ(c.capacity.counts,
            (std::map<std::string, int>{{"ml.m5.large", 4}, {"ml.p4d.24xlarge", 0}}));
  EXPECT_EQ(c.capacity.default_count, 16);

  EXPECT_EQ(c.spot.seed, 42u);
  const capacity::SpotModel& d = c.spot.defaults;
  EXPECT_DOUBLE_EQ(d.price_fraction, 0.25);
  EXPECT_EQ(d.notice, std::chrono::seconds(0));
  EXPECT_EQ(d.mean_time_between_interruptions, std::chrono::seconds(3600));
  EXPECT_EQ(d.mean_available, std::chrono::seconds(3600));
  EXPECT_EQ(d.mean_unavailable, std::chrono::seconds(300));

  ASSERT_EQ(c.spot.types.size(), 3u);
  const capacity::SpotModel& g5 = c.spot.types.at("ml.g5.xlarge");
  EXPECT_DOUBLE_EQ(g5.price_fraction, 0.4);
  EXPECT_EQ(g5.notice, std::chrono::seconds(30));
  EXPECT_EQ(g5.mean_time_between_interruptions, std::chrono::seconds(600));
  EXPECT_EQ(g5.mean_available, std::chrono::seconds(900));
  EXPECT_EQ(g5.mean_unavailable, std::chrono::seconds(60));
  // Listed before the defaults in the file, and still inherits them.
  const capacity::SpotModel& p3 = c.spot.types.at("ml.p3.2xlarge");
  EXPECT_DOUBLE_EQ(p3.price_fraction, 0.25);
  EXPECT_EQ(p3.notice, std::chrono::seconds(0));
  EXPECT_EQ(p3.mean_time_between_interruptions, std::nullopt);
  EXPECT_EQ(p3.mean_available, std::nullopt);
  EXPECT_EQ(p3.mean_unavailable, std::nullopt);
  const capacity::SpotModel& c5 = c.spot.types.at("ml.c5.xlarge");
  EXPECT_DOUBLE_EQ(c5.price_fraction, 0.25);
  EXPECT_EQ(c5.mean_time_between_interruptions, std::chrono::seconds(3600));

  // trace_file is relative to the config file's directory.
  ASSERT_EQ(c.spot.trace.size(), 2u);
  EXPECT_EQ(c.spot.trace[0].kind, capacity::TraceEvent::Kind::kInterrupt);
  EXPECT_EQ(c.spot.trace[0].instance_type, "ml.g5.xlarge");
  EXPECT_EQ(c.spot.trace[0].at, std::chrono::seconds(30));
  EXPECT_EQ(c.spot.trace[1].kind, capacity::TraceEvent::Kind::kUnavailable);
  EXPECT_EQ(c.spot.trace[1].at, std::chrono::milliseconds(12500));
  EXPECT_EQ(c.spot.trace[1].duration, std::chrono::seconds(60));
}

TEST_F(LoadConfigFileTest, CapacityAndSpotDefaults) {
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(Write("region: us-east-1\nspot:\n  seed: 7\n"), &c).ok());
  EXPECT_TRUE(c.instance_types.empty());
  EXPECT_TRUE(c.capacity.counts.empty());
  EXPECT_EQ(c.capacity.default_count, 0);
  EXPECT_EQ(c.spot.seed, 7u);
  EXPECT_DOUBLE_EQ(c.spot.defaults.price_fraction, 0.3);
  EXPECT_EQ(c.spot.defaults.notice, std::chrono::seconds(120));
  EXPECT_EQ(c.spot.defaults.mean_time_between_interruptions, std::nullopt);
  EXPECT_EQ(c.spot.defaults.mean_available, std::nullopt);
  EXPECT_TRUE(c.spot.types.empty());
  EXPECT_TRUE(c.spot.trace.empty());
}

TEST_F(LoadConfigFileTest, BadTraceFileNamesFileAndLine) {
  Write("10 interrupt ml.m5.large\n20 vanish ml.m5.large\n", "trace.txt");
  std::string path = Write("spot:\n  trace_file: trace.txt\n");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path + ": spot: trace_file " + dir_.path() + "/trace.txt"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("trace line 2: unknown event 'vanish'"), std::string::npos)
      << s.message();
}

struct BadConfigCase {
  std::string label;
  std::string yaml;
  std::string error;  // substring of the message
};

class BadConfigTest : public LoadConfigFileTest,
                      public ::testing::WithParamInterface<BadConfigCase> {};

TEST_P(BadConfigTest, Refused) {
  std::string path = Write(GetParam().yaml);
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(GetParam().error), std::string::npos) << s.message();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"UnknownKey", "listen: 127.0.0.1:0\nlisten_port: 80\n",
                      "unknown config key 'listen_port'"},
        BadConfigCase{"BadIsolation", "isolation: docker\n",
                      "isolation must be auto, bwrap or none"},
        BadConfigCase{"SandboxAsRoot", "sandbox: {uid: 0, gid: 1000}\n",
                      "sandbox.uid must be a non-root uid/gid"},
        BadConfigCase{"SandboxUnknownKey", "sandbox: {user: nobody}\n", "sandbox.user"},
        BadConfigCase{"SandboxNotAMap", "sandbox: 1000\n", "sandbox must be a mapping {uid, gid}"},
        BadConfigCase{"AccountIdNotTwelveDigits", "accounts:\n  \"123\":\n    file_roots: [/a]\n",
                      "'123' is not a 12-digit account id"},
        BadConfigCase{"AccountUnknownKey", "accounts:\n  \"111111111111\":\n    file_root: [/a]\n",
                      "unknown key 'file_root'"},
        BadConfigCase{"BadNetwork", "network: host\n",
                      "network must be auto, namespaces or loopback"},
        BadConfigCase{"ImageWithoutCommand", "images:\n  - match: \"x:*\"\n",
                      "image 'x:*' needs a command"},
        BadConfigCase{"CommandRuntimeWithoutCommand",
                      "images:\n  - match: \"y:*\"\n    runtime: command\n",
                      "image 'y:*' needs a command"},
        BadConfigCase{"BadRuntime", "images:\n  - match: \"x:*\"\n    runtime: docker\n",
                      "runtime must be command or python-framework"},
        BadConfigCase{"MalformedYaml", "listen: [127.0.0.1:0\n", ""},
        BadConfigCase{"NotAMapping", "- a\n- b\n", "must be a YAML mapping"},
        BadConfigCase{"ImagesNotAList", "images: my-image\n", "images"},
        BadConfigCase{"WrongType", "http_threads: many\n", ""},
        BadConfigCase{"ListForString", "region: [a, b]\n", ""},
        BadConfigCase{"InstanceTypesNotAMap", "instance_types: [ml.m5.large]\n",
                      "instance_types must be a mapping"},
        BadConfigCase{"NewTypeWithoutPrice",
                      "instance_types:\n  ml.mine.big: {vcpus: 4, memory_gib: 16}\n",
                      "instance_types: ml.mine.big: not a built-in type, so it needs "
                      "on_demand_price"},
        BadConfigCase{"NewTypeWithoutVcpus",
                      "instance_types:\n  ml.mine.big: {memory_gib: 16, on_demand_price: 1}\n",
                      "needs vcpus"},
        BadConfigCase{"BadInstanceVolumes", "instance_volumes: quota\n",
                      "instance_volumes must be auto, watch or off"},
        BadConfigCase{"ProcessesPastPidMaxWouldWrap",
                      "instance_types:\n  ml.m5.large: {max_processes: 4294967304}\n",
                      "max_processes must be at most 4194304"},
        BadConfigCase{"TooFewProcesses", "instance_types:\n  ml.m5.large: {max_processes: 2}\n",
                      "instance_types: ml.m5.large: max_processes must be a whole number >= 8"},
        BadConfigCase{"ZeroVcpus", "instance_types:\n  ml.m5.large: {vcpus: 0}\n",
                      "instance_types: ml.m5.large: vcpus must be a whole number >= 1"},
        BadConfigCase{"ZeroMemory", "instance_types:\n  ml.m5.large: {memory_gib: 0}\n",
                      "instance_types: ml.m5.large: memory_gib must be a number > 0"},
        BadConfigCase{"NegativePrice", "instance_types:\n  ml.m5.large: {on_demand_price: -1}\n",
                      "on_demand_price must be a number >= 0"},
        BadConfigCase{"InfinitePrice", "instance_types:\n  ml.m5.large: {on_demand_price: .inf}\n",
                      "on_demand_price must be a number >= 0"},
        BadConfigCase{"FractionalGpus", "instance_types:\n  ml.m5.large: {gpus: 0.5}\n",
                      "instance_types: ml.m5.large: gpus must be a whole number >= 0"},
        BadConfigCase{"UnknownInstanceTypeKey", "instance_types:\n  ml.m5.large: {cpus: 2}\n",
                      "instance_types: ml.m5.large: unknown key 'cpus'"},
        BadConfigCase{"NegativeCount", "capacity:\n  ml.m5.large: -1\n",
                      "capacity: ml.m5.large must be a whole number >= 0"},
        BadConfigCase{"WordCount", "capacity:\n  ml.m5.large: lots\n",
                      "capacity: ml.m5.large must be a whole number >= 0"},
        BadConfigCase{"ZeroStar", "capacity:\n  \"*\": 0\n",
                      "capacity: * must be a whole number >= 1"},
        BadConfigCase{"CapacityNotAMap", "capacity: 4\n", "capacity must be a mapping"},
        BadConfigCase{"SpotNotAMap", "spot: on\n", "spot must be a mapping"},
        BadConfigCase{"ZeroPriceFraction", "spot:\n  price_fraction: 0\n",
                      "spot: price_fraction must be a number in (0, 1]"},
        BadConfigCase{"BigPriceFraction",
                      "spot:\n  types:\n    ml.g5.xlarge: {price_fraction: 1.5}\n",
                      "spot: types: ml.g5.xlarge: price_fraction must be a number in (0, 1]"},
        BadConfigCase{"NegativeNotice", "spot:\n  notice_seconds: -1\n",
                      "spot: notice_seconds must be a whole number >= 0"},
        BadConfigCase{"NegativeMeanTimeBetweenInterruptions",
                      "spot:\n  mean_time_between_interruptions_seconds: -5\n",
                      "spot: mean_time_between_interruptions_seconds must be a whole number >= 0"},
        BadConfigCase{"ZeroMeanAvailable",
                      "spot:\n  availability: {mean_available_seconds: 0, "
                      "mean_unavailable_seconds: 60}\n",
                      "spot: availability: mean_available_seconds must be a whole number >= 1"},
        BadConfigCase{"HalfAvailability", "spot:\n  availability: {mean_unavailable_seconds: 60}\n",
                      "spot: availability needs both"},
        BadConfigCase{"UnknownAvailabilityKey", "spot:\n  availability: {mean_up_seconds: 60}\n",
                      "spot: availability: unknown key 'mean_up_seconds'"},
        BadConfigCase{"UnknownSpotKey", "spot:\n  interruptions: often\n",
                      "spot: unknown key 'interruptions'"},
        BadConfigCase{"UnknownSpotTypeKey", "spot:\n  types:\n    ml.g5.xlarge: {seed: 3}\n",
                      "spot: types: ml.g5.xlarge: unknown key 'seed'"},
        BadConfigCase{"SpotTypesNotAMap", "spot:\n  types: [ml.g5.xlarge]\n",
                      "spot: types must be a mapping"},
        BadConfigCase{"NegativeSeed", "spot:\n  seed: -1\n",
                      "spot: seed must be a whole number >= 0"},
        BadConfigCase{"StorageNotAMap", "storage: s3\n", "storage must be a mapping"},
        BadConfigCase{"UnknownStorageKey", "storage:\n  gcs: {}\n", "storage: unknown key 'gcs'"},
        BadConfigCase{"UnknownS3Key", "storage:\n  s3: {bucket: b}\n",
                      "storage: s3: unknown key 'bucket'"},
        BadConfigCase{"SmallParts", "storage:\n  s3: {part_size_mib: 1}\n",
                      "storage: s3: part_size_mib must be a whole number >= 5"},
        BadConfigCase{"PassNotBool", "storage:\n  pass_credentials_to_jobs: maybe\n",
                      "storage: pass_credentials_to_jobs must be true or false"},
        BadConfigCase{"MissingTraceFile", "spot:\n  trace_file: absent-trace.txt\n",
                      "spot: trace_file: "},
        BadConfigCase{"HttpNotAMap", "http: fast\n", "http must be a mapping"},
        BadConfigCase{"UnknownHttpKey", "http:\n  threads: 3\n", "http: unknown key 'threads'"},
        BadConfigCase{"ZeroHeadTimeout", "http:\n  head_timeout_seconds: 0\n",
                      "http: head_timeout_seconds must be a number > 0"},
        BadConfigCase{"TinyHeaderLimit", "http:\n  max_header_bytes: 10\n",
                      "http: max_header_bytes must be a whole number >= 1024"},
        BadConfigCase{"NoConnections", "http:\n  max_connections: 0\n",
                      "http: max_connections must be a whole number >= 1"},
        BadConfigCase{"GovernanceUnknownPolicy", "governance:\n  idle: {duration_seconds: 5}\n",
                      "governance: idle is not a governance setting"},
        BadConfigCase{"GovernanceBadMetric", "governance:\n  idle_stop: {metric: Disk}\n",
                      "governance: idle_stop.metric must be CPUUtilization or GPUUtilization"},
        BadConfigCase{"GovernanceUpdatesNotABool",
                      "governance:\n  allow_account_updates: sometimes\n",
                      "governance: allow_account_updates must be true or false"},
        BadConfigCase{"GovernanceAliasCycle", "governance: &a\n  x: *a\n", "governance"}),
    [](const ::testing::TestParamInfo<BadConfigCase>& p) { return p.param.label; });

TEST_F(LoadConfigFileTest, Governance) {
  std::string path = Write(R"(
governance:
  allow_account_updates: false
  required_tags: {keys: [team, "2024"], action: refuse}
  max_runtime_seconds: 3600
  idle_stop: {metric: GPUUtilization, threshold_percent: 3, duration_seconds: 900}
  spot_fallback: {after_interruptions: 4}
)");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(c.governance_allow_account_updates);
  ASSERT_TRUE(c.governance.required_tags);
  EXPECT_EQ(c.governance.required_tags->keys, (std::vector<std::string>{"team", "2024"}));
  EXPECT_EQ(c.governance.required_tags->mode, events::RequiredTagsPolicy::Mode::kRefuse);
  EXPECT_EQ(c.governance.max_runtime, std::chrono::seconds(3600));
  EXPECT_EQ(c.governance.idle_stop->metric, events::IdleStopPolicy::Metric::kGpu);
  EXPECT_EQ(c.governance.idle_stop->duration, std::chrono::seconds(900));
  EXPECT_EQ(c.governance.spot_fallback->after_interruptions, 4);
  EXPECT_FALSE(c.governance.auto_resume);
  EXPECT_TRUE(ServerConfig().governance.empty());
  EXPECT_TRUE(ServerConfig().governance_allow_account_updates);
}

TEST_F(LoadConfigFileTest, HttpEdge) {
  ServerConfig defaults;
  EXPECT_EQ(defaults.http.head_timeout, std::chrono::seconds(10));
  EXPECT_EQ(defaults.http.idle_timeout, std::chrono::seconds(60));
  std::string path = Write(R"(
http:
  io_threads: 3
  report_threads: 2
  head_timeout_seconds: 0.5
  body_timeout_seconds: 20
  idle_timeout_seconds: 120
  max_header_bytes: 8192
  max_connections: 500
  max_connections_per_client: 50
)");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.http.io_threads, 3);
  EXPECT_EQ(c.http_report_threads, 2);
  EXPECT_EQ(c.http.head_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c.http.body_timeout, std::chrono::seconds(20));
  EXPECT_EQ(c.http.idle_timeout, std::chrono::seconds(120));
  EXPECT_EQ(c.http.max_header_bytes, 8192u);
  EXPECT_EQ(c.http.max_connections, 500);
  EXPECT_EQ(c.http.max_connections_per_client, 50);
}

TEST_F(LoadConfigFileTest, StorageS3) {
  std::string path = Write(R"(
storage:
  pass_credentials_to_jobs: true
  s3:
    endpoint: http://127.0.0.1:9000
    region: eu-west-1
    addressing: path
    profile: minio
    access_key_id: AKID
    secret_access_key: SECRET
    max_concurrency: 8
    part_size_mib: 16
    multipart_threshold_mib: 64
    max_attempts: 3
)");
  ServerConfig c;
  ASSERT_TRUE(LoadConfigFile(path, &c).ok());
  EXPECT_TRUE(c.pass_s3_credentials_to_jobs);
  EXPECT_EQ(c.s3.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c.s3.region, "eu-west-1");
  EXPECT_EQ(c.s3.addressing, "path");
  EXPECT_EQ(c.s3.profile, "minio");
  EXPECT_EQ(c.s3.access_key_id, "AKID");
  EXPECT_EQ(c.s3.secret_access_key, "SECRET");
  EXPECT_EQ(c.s3.session_token, std::nullopt);
  EXPECT_EQ(c.s3.max_concurrency, 8);
  EXPECT_EQ(c.s3.part_size, 16u << 20);
  EXPECT_EQ(c.s3.multipart_threshold, 64u << 20);
  EXPECT_EQ(c.s3.max_attempts, 3);
}

TEST_F(LoadConfigFileTest, MissingFileIsAnError) {
  ServerConfig c;
  Status s = LoadConfigFile(dir_.path() + "/absent.yaml", &c);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("absent.yaml"), std::string::npos) << s.message();
}

struct ListenCase {
  std::string listen;
  bool ok;
  std::string host;
  int port;
};

class ParseListenTest : public ::testing::TestWithParam<ListenCase> {};

TEST_P(ParseListenTest, Splits) {
  const ListenCase& c = GetParam();
  std::string host;
  int port = -1;
  Status s = ParseListen(c.listen, &host, &port);
  if (!c.ok) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.listen;
    EXPECT_NE(s.message().find(c.listen), std::string::npos) << s.message();
    return;
  }
  ASSERT_TRUE(s.ok()) << c.listen << ": " << s.ToString();
  EXPECT_EQ(host, c.host);
  EXPECT_EQ(port, c.port);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseListenTest,
    ::testing::Values(ListenCase{"127.0.0.1:8080", true, "127.0.0.1", 8080},
                      ListenCase{"localhost:0", true, "localhost", 0},
                      ListenCase{"0.0.0.0:65535", true, "0.0.0.0", 65535},
                      ListenCase{"[::1]:0", true, "::1", 0},
                      ListenCase{"[::]:9000", true, "::", 9000},
                      ListenCase{"127.0.0.1", false, "", 0}, ListenCase{"127.0.0.1:", false, "", 0},
                      ListenCase{":8080", false, "", 0}, ListenCase{"host:http", false, "", 0},
                      ListenCase{"host:80x", false, "", 0}, ListenCase{"host:-1", false, "", 0},
                      ListenCase{"host:65536", false, "", 0}, ListenCase{"host: 80", false, "", 0},
                      ListenCase{"host:+80", false, "", 0},
                      ListenCase{"host:99999999999", false, "", 0}));

TEST_F(LoadConfigFileTest, AccountsAndSharedHost) {
  std::string path = Write(
      "file_roots: [/srv/shared]\n"
      "allow_shared_host: true\n"
      "accounts:\n"
      "  \"111111111111\":\n"
      "    file_roots: [/srv/a, /srv/common]\n"
      "  \"222222222222\":\n"
      "    file_roots: []\n");
  ServerConfig c;
  Status s = LoadConfigFile(path, &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(c.allow_shared_host);
  EXPECT_EQ(c.file_roots, (std::vector<std::string>{"/srv/shared"}));
  ASSERT_EQ(c.accounts.size(), 2u);
  EXPECT_EQ(c.accounts["111111111111"].file_roots,
            (std::vector<std::string>{"/srv/a", "/srv/common"}));
  EXPECT_TRUE(c.accounts["222222222222"].file_roots.empty());
}

TEST(PathsOverlapTest, EitherContainsTheOther) {
  struct Row {
    std::string a, b;
    bool overlap;
  };
  for (const Row& r : {Row{"/srv/data", "/srv/data", true}, Row{"/srv", "/srv/data", true},
                       Row{"/srv/data/x", "/srv/data", true}, Row{"/", "/srv/data", true},
                       Row{"/srv/data2", "/srv/data", false}, Row{"/srv/dat", "/srv/data", false},
                       Row{"/other", "/srv/data", false}}) {
    EXPECT_EQ(PathsOverlap(r.a, r.b), r.overlap) << r.a << " vs " << r.b;
  }
}

TEST(CheckFileRootsTest, RefusesRootsOverlappingTheDataDir) {
  TempDir dir("ty_server_roots_test_");
  ASSERT_TRUE(MakeDirs(dir.Sub("data/jobs")).ok());
  ASSERT_TRUE(MakeDirs(dir.Sub("shared")).ok());
  auto data = RealPath(dir.Sub("data"));
  ASSERT_TRUE(data.ok());
  auto ok = CheckFileRoots({dir.Sub("shared")}, *data, "file root");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, (std::vector<std::string>{*RealPath(dir.Sub("shared"))}));
  for (const std::string& bad : {dir.path(), dir.Sub("data"), dir.Sub("data/jobs")}) {
    auto r = CheckFileRoots({dir.Sub("shared"), bad}, *data, "file root");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("overlaps the data dir " + *data), std::string::npos)
        << r.status().message();
  }
  EXPECT_FALSE(CheckFileRoots({dir.Sub("absent")}, *data, "file root").ok());
}

}  // namespace
}  // namespace ty::server
