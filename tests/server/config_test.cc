#include "server/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "common/fs.h"

namespace ty::server {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/ty_server_config_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)RemoveAll(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class LoadConfigFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& yaml) {
    std::string path = dir_.path() + "/config.yaml";
    EXPECT_TRUE(WriteFileAtomic(path, yaml).ok());
    return path;
  }
  TempDir dir_;
};

TEST_F(LoadConfigFileTest, FullConfig) {
  std::string path = Write(R"(
listen: "0.0.0.0:8080"
data_dir: /var/lib/trainyard
region: eu-west-1
file_roots: [/data, /home/me/datasets]
credentials_file: /etc/trainyard/credentials
isolation: none
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
  EXPECT_EQ(c.stop_grace, std::chrono::seconds(30));
  EXPECT_EQ(c.max_body_bytes, 2097152u);
  EXPECT_EQ(c.http_threads, 4);
  ASSERT_EQ(c.images.size(), 3u);

  const launch::ImageRule& cmd = c.images[0];
  EXPECT_EQ(cmd.match, "my-registry/trainer:*");
  EXPECT_EQ(cmd.entry.runtime, model::ImageEntry::Runtime::kCommand);
  EXPECT_EQ(cmd.entry.command, (std::vector<std::string>{"/usr/bin/python3", "/srv/train.py"}));
  EXPECT_EQ(cmd.entry.workdir, "/srv");
  EXPECT_EQ(cmd.entry.env, (std::map<std::string, std::string>{{"MODE", "local"}, {"THREADS", "2"}}));

  const launch::ImageRule& py = c.images[1];
  EXPECT_EQ(py.match, "*/tensorflow-training:*");
  EXPECT_EQ(py.entry.runtime, model::ImageEntry::Runtime::kPythonFramework);
  EXPECT_TRUE(py.entry.command.empty());
  EXPECT_TRUE(py.entry.workdir.empty());

  EXPECT_EQ(c.images[2].entry.command, std::vector<std::string>{"/bin/tool"});
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
  EXPECT_EQ(c.stop_grace, std::chrono::seconds(120));
  EXPECT_TRUE(c.images.empty());
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
        BadConfigCase{"BadIsolation", "isolation: docker\n", "isolation must be auto, bwrap or none"},
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
        BadConfigCase{"ListForString", "region: [a, b]\n", ""}),
    [](const ::testing::TestParamInfo<BadConfigCase>& p) { return p.param.label; });

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
                      ListenCase{"127.0.0.1", false, "", 0},
                      ListenCase{"127.0.0.1:", false, "", 0},
                      ListenCase{":8080", false, "", 0},
                      ListenCase{"host:http", false, "", 0},
                      ListenCase{"host:80x", false, "", 0},
                      ListenCase{"host:-1", false, "", 0},
                      ListenCase{"host:65536", false, "", 0},
                      ListenCase{"host: 80", false, "", 0},
                      ListenCase{"host:+80", false, "", 0},
                      ListenCase{"host:99999999999", false, "", 0}));

}  // namespace
}  // namespace ty::server
