#include "storage/s3_settings.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

class S3SettingsTest : public ::testing::Test {
 protected:
  // An environment with HOME pointing at an empty temp dir, so the real ~/.aws never leaks in.
  EnvLookup Env() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto it = env_.find(name);
      if (it != env_.end()) return it->second;
      if (name == "HOME") return dir_.path();
      return std::nullopt;
    };
  }
  void Write(const std::string& rel, const std::string& text) {
    ASSERT_TRUE(MakeDirs(std::filesystem::path(dir_.Sub(rel)).parent_path().string()).ok());
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub(rel), text).ok());
  }

  ty::testing::TempDir dir_;
  std::map<std::string, std::string> env_;
};

TEST_F(S3SettingsTest, DefaultsAreAwsUsEast1Unsigned) {
  Result<S3Settings> s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->endpoint, "");
  EXPECT_EQ(EffectiveEndpoint(*s), "https://s3.us-east-1.amazonaws.com");
  EXPECT_EQ(s->region, "us-east-1");
  EXPECT_EQ(s->credentials.access_key_id, "");
  EXPECT_EQ(s->credentials_source, "none (unsigned requests)");
  EXPECT_FALSE(UsesPathStyle(*s, "my-bucket"));
}

TEST_F(S3SettingsTest, EnvironmentLikeTheAwsCli) {
  env_ = {{"AWS_ENDPOINT_URL", "http://other:1"}, {"AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4568/"},
          {"AWS_DEFAULT_REGION", "eu-west-1"},    {"AWS_REGION", "eu-central-1"},
          {"AWS_ACCESS_KEY_ID", "AKID"},          {"AWS_SECRET_ACCESS_KEY", "SECRET"},
          {"AWS_SESSION_TOKEN", "TOKEN"}};
  Result<S3Settings> s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->endpoint, "http://127.0.0.1:4568");  // the S3-specific variable wins; no slash
  EXPECT_EQ(s->region, "eu-central-1");
  EXPECT_EQ(s->credentials.access_key_id, "AKID");
  EXPECT_EQ(s->credentials.secret_access_key, "SECRET");
  EXPECT_EQ(s->credentials.session_token, "TOKEN");
  EXPECT_EQ(s->credentials_source, "the environment");
  EXPECT_TRUE(UsesPathStyle(*s, "bucket"));  // an IP endpoint

  env_.erase("AWS_ENDPOINT_URL_S3");
  env_.erase("AWS_REGION");
  s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->endpoint, "http://other:1");
  EXPECT_EQ(s->region, "eu-west-1");
  EXPECT_FALSE(UsesPathStyle(*s, "bucket"));  // a host name: virtual-hosted
}

TEST_F(S3SettingsTest, SharedFilesWithProfiles) {
  Write(".aws/credentials",
        "[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = DEFSECRET\n"
        "[minio]\naws_access_key_id=MINIOKEY\naws_secret_access_key=MINIOSECRET\n");
  Write(".aws/config",
        "[default]\nregion = us-west-2\n"
        "[profile minio]\nregion = local\nendpoint_url = http://ignored:1\n"
        "s3 =\n  endpoint_url = http://localhost:9000\n  addressing_style = virtual\n");
  Result<S3Settings> s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, "DEFKEY");
  EXPECT_EQ(s->region, "us-west-2");
  EXPECT_NE(s->credentials_source.find("shared credentials file"), std::string::npos);
  EXPECT_NE(s->credentials_source.find("profile default"), std::string::npos);

  env_["AWS_PROFILE"] = "minio";
  s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, "MINIOKEY");
  EXPECT_EQ(s->credentials.secret_access_key, "MINIOSECRET");
  EXPECT_EQ(s->region, "local");
  EXPECT_EQ(s->endpoint, "http://localhost:9000");  // the nested s3 block beats endpoint_url
  EXPECT_EQ(s->addressing, S3Addressing::kVirtual);
  EXPECT_FALSE(UsesPathStyle(*s, "bucket"));  // explicit style beats the localhost rule

  // Environment keys beat the profile's; explicit overrides beat both.
  env_["AWS_ACCESS_KEY_ID"] = "ENVKEY";
  env_["AWS_SECRET_ACCESS_KEY"] = "ENVSECRET";
  S3SettingsOverrides o;
  o.region = "ap-south-1";
  s = ResolveS3Settings(o, Env());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->credentials.access_key_id, "ENVKEY");
  EXPECT_EQ(s->region, "ap-south-1");
  o.access_key_id = "CFGKEY";
  o.secret_access_key = "CFGSECRET";
  o.profile = "default";
  s = ResolveS3Settings(o, Env());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->credentials.access_key_id, "CFGKEY");
  EXPECT_EQ(s->credentials_source, "the server config");
}

TEST_F(S3SettingsTest, FilesNamedByVariables) {
  Write("elsewhere/creds", "[p]\naws_access_key_id = K\naws_secret_access_key = S\n");
  Write("elsewhere/conf", "[profile p]\nregion = sa-east-1\n");
  env_ = {{"AWS_SHARED_CREDENTIALS_FILE", dir_.Sub("elsewhere/creds")},
          {"AWS_CONFIG_FILE", dir_.Sub("elsewhere/conf")},
          {"AWS_DEFAULT_PROFILE", "p"}};
  Result<S3Settings> s = ResolveS3Settings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->credentials.access_key_id, "K");
  EXPECT_EQ(s->region, "sa-east-1");
}

TEST_F(S3SettingsTest, ErrorsNameTheCulprit) {
  env_ = {{"AWS_PROFILE", "nope"}};
  Result<S3Settings> s = ResolveS3Settings({}, Env());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("profile 'nope'"), std::string::npos) << s.status().message();

  env_ = {{"AWS_ACCESS_KEY_ID", "K"}};
  s = ResolveS3Settings({}, Env());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("without its secret"), std::string::npos);

  env_ = {{"AWS_ENDPOINT_URL_S3", "localhost:9000"}};
  s = ResolveS3Settings({}, Env());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("AWS_ENDPOINT_URL_S3"), std::string::npos);

  env_ = {{"AWS_ENDPOINT_URL_S3", "http://h:1/path"}};
  EXPECT_EQ(ResolveS3Settings({}, Env()).status().code(), StatusCode::kInvalidArgument);

  S3SettingsOverrides o;
  o.addressing = "sideways";
  env_.clear();
  EXPECT_EQ(ResolveS3Settings(o, Env()).status().code(), StatusCode::kInvalidArgument);
  o = {};
  o.part_size = 1 << 20;
  s = ResolveS3Settings(o, Env());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("5 MiB"), std::string::npos);
}

TEST_F(S3SettingsTest, PathStyleRule) {
  S3Settings s;
  s.endpoint = "http://localhost:4568";
  EXPECT_TRUE(UsesPathStyle(s, "bucket"));
  s.endpoint = "http://[::1]:4568";
  EXPECT_TRUE(UsesPathStyle(s, "bucket"));
  s.endpoint = "https://minio.example.com";
  EXPECT_FALSE(UsesPathStyle(s, "bucket"));
  EXPECT_TRUE(UsesPathStyle(s, "my.dotted.bucket"));  // would break the TLS wildcard
  EXPECT_TRUE(UsesPathStyle(s, "Upper_Case"));        // not a DNS name
  s.addressing = S3Addressing::kPath;
  EXPECT_TRUE(UsesPathStyle(s, "bucket"));
}

TEST_F(S3SettingsTest, JsonRoundTripKeepsEverything) {
  S3Settings s;
  s.endpoint = "http://127.0.0.1:1";
  s.region = "r";
  s.addressing = S3Addressing::kPath;
  s.credentials = {"A", "S", "T"};
  s.credentials_source = "the environment";
  s.max_concurrency = 3;
  s.part_size = 6 << 20;
  s.multipart_threshold = 7 << 20;
  s.max_attempts = 2;
  Result<S3Settings> back = S3SettingsFromJson(S3SettingsToJson(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->endpoint, s.endpoint);
  EXPECT_EQ(back->region, "r");
  EXPECT_EQ(back->addressing, S3Addressing::kPath);
  EXPECT_EQ(back->credentials.session_token, "T");
  EXPECT_EQ(back->max_concurrency, 3);
  EXPECT_EQ(back->part_size, 6u << 20);
  EXPECT_EQ(back->multipart_threshold, 7u << 20);
  EXPECT_EQ(back->max_attempts, 2);
  EXPECT_FALSE(S3SettingsFromJson(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace ty::storage
