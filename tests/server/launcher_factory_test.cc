#include "server/launcher_factory.h"

#include <gtest/gtest.h>

#include <string>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::server {
namespace {

using testing::TempDir;

class SlurmConfigTest : public ::testing::Test {
 protected:
  Status Load(const std::string& yaml, ServerConfig* c) {
    std::string path = dir_.path() + "/config.yaml";
    EXPECT_TRUE(WriteFileAtomic(path, yaml).ok());
    return LoadConfigFile(path, c);
  }
  TempDir dir_{"ty_slurm_config_test_"};
};

TEST_F(SlurmConfigTest, FullSection) {
  ServerConfig c;
  Status s = Load(R"(
launcher: slurm
slurm:
  spot_partition: spot
  on_demand_partition: ondemand
  server_url: http://10.0.0.1:8080/
  bin_dir: /opt/slurm/bin
  slurm_conf: /etc/slurm/slurm.conf
  timeout_seconds: 5
  unknown_grace_seconds: 12
  require_instance_types: true
  sbatch_args: [--account=ml, --qos=low]
  instance_types:
    ml.m5.large: {cpus: 2, memory_mb: 1000, gres: "gpu:1", constraint: fast, partition: big}
    ml.m5.xlarge: {}
)",
                  &c);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.launcher, "slurm");
  EXPECT_EQ(c.slurm.spot_partition, "spot");
  EXPECT_EQ(c.slurm.on_demand_partition, "ondemand");
  EXPECT_EQ(c.slurm.client.bin_dir, "/opt/slurm/bin");
  EXPECT_EQ(c.slurm.client.slurm_conf, "/etc/slurm/slurm.conf");
  EXPECT_EQ(c.slurm.client.timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.slurm.unknown_grace, std::chrono::seconds(12));
  EXPECT_TRUE(c.slurm.require_instance_types);
  EXPECT_EQ(c.slurm.extra_sbatch_args, (std::vector<std::string>{"--account=ml", "--qos=low"}));
  const auto& r = c.slurm.instance_types.at("ml.m5.large");
  EXPECT_EQ(r.cpus, 2);
  EXPECT_EQ(r.memory_mb, 1000);
  EXPECT_EQ(r.gres, "gpu:1");
  EXPECT_EQ(r.constraint, "fast");
  EXPECT_EQ(r.partition, "big");
  EXPECT_EQ(c.slurm.instance_types.at("ml.m5.xlarge").cpus, 0);

  c.agent_binary = "/usr/bin/trainyard";
  auto o = SlurmOptionsFor(c, "0123456789abcdef");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->server_url, "http://10.0.0.1:8080");
  EXPECT_EQ(o->job_name_prefix, "ty-0123456789ab-");
  EXPECT_EQ(o->agent_binary, "/usr/bin/trainyard");
}

TEST_F(SlurmConfigTest, BadValuesNameTheKey) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"launcher: kubernetes\n", "launcher must be local or slurm"},
      {"slurm: [a]\n", "slurm must be a mapping"},
      {"slurm: {partition: x}\n", "slurm: unknown key 'partition'"},
      {"slurm: {timeout_seconds: 0}\n", "slurm: timeout_seconds must be"},
      {"slurm: {instance_types: {ml.m5.large: {cpus: 0}}}\n", "ml.m5.large: cpus must be"},
      {"slurm: {instance_types: {ml.m5.large: {memory: 5}}}\n", "unknown key 'memory'"},
      {"slurm: {instance_types: {ml.m5.large: {gres: \"gpu:1 --wrap=x\"}}}\n", "one word"},
      {"slurm: {job_name_prefix: \"a b\"}\n", "job_name_prefix must be"},
      {"slurm: {sbatch_args: notalist}\n", "sbatch_args must be"},
      {"slurm: {require_instance_types: maybe}\n", "require_instance_types must be"},
  };
  for (const auto& k : cases) {
    ServerConfig c;
    Status s = Load(k.yaml, &c);
    ASSERT_FALSE(s.ok()) << k.yaml;
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << k.yaml;
    EXPECT_NE(s.message().find(k.expect), std::string::npos) << k.yaml << " -> " << s.message();
  }
}

TEST_F(SlurmConfigTest, ServerUrlRequiredWhenListenIsLocal) {
  ServerConfig c;
  c.agent_binary = "/usr/bin/trainyard";
  c.slurm.spot_partition = "spot";
  c.slurm.on_demand_partition = "ondemand";
  for (const char* listen : {"127.0.0.1:8080", "0.0.0.0:8080", "10.0.0.1:0"}) {
    c.listen = listen;
    auto o = SlurmOptionsFor(c, "x");
    ASSERT_FALSE(o.ok()) << listen;
    EXPECT_NE(o.status().message().find("slurm.server_url is required"), std::string::npos);
  }
  c.listen = "10.0.0.1:8080";
  auto o = SlurmOptionsFor(c, "x");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->server_url, "http://10.0.0.1:8080");
  c.slurm.spot_partition = "";
  EXPECT_NE(SlurmOptionsFor(c, "x").status().message().find("slurm.spot_partition is required"),
            std::string::npos);
}

}  // namespace
}  // namespace ty::server
