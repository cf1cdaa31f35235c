#include "api/credentials.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::api {
namespace {

using testing::TempDir;

int FileMode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

TEST(CredentialsTest, EnsureCreatesFileWithMode0600AndProfile) {
  TempDir dir("ty_credentials_test.");
  const std::string data_dir = dir.path() + "/data";
  auto key = EnsureCredentialsFile(data_dir);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->access_key_id.size(), 20u);
  EXPECT_EQ(key->access_key_id.substr(0, 4), "AKIA");
  EXPECT_EQ(key->access_key_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
            std::string::npos);
  EXPECT_EQ(key->secret_access_key.size(), 40u);
  EXPECT_EQ(key->account_id.size(), 12u);
  EXPECT_TRUE(AllDigits(key->account_id));

  const std::string path = data_dir + "/credentials";
  EXPECT_EQ(FileMode(path), 0600);
  auto text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("[trainyard]\n"), std::string::npos);
  EXPECT_NE(text->find("aws_access_key_id = " + key->access_key_id + "\n"), std::string::npos);

  auto store = LoadSharedCredentialsFile(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ASSERT_NE(store->Find(key->access_key_id), nullptr);
  EXPECT_EQ(store->Find(key->access_key_id)->secret_access_key, key->secret_access_key);
  EXPECT_EQ(store->Find(key->access_key_id)->account_id, key->account_id);
}

TEST(CredentialsTest, EnsureIsIdempotentAndFixesMode) {
  TempDir dir("ty_credentials_test.");
  auto first = EnsureCredentialsFile(dir.path());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string path = dir.path() + "/credentials";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto second = EnsureCredentialsFile(dir.path());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->access_key_id, first->access_key_id);
  EXPECT_EQ(second->secret_access_key, first->secret_access_key);
  EXPECT_EQ(second->account_id, first->account_id);
  EXPECT_EQ(FileMode(path), 0600);
}

TEST(CredentialsTest, EnsureWithoutTrainyardProfileIsNotFound) {
  TempDir dir("ty_credentials_test.");
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/credentials",
                              "[default]\naws_access_key_id=A\naws_secret_access_key=B\n", 0600)
                  .ok());
  auto key = EnsureCredentialsFile(dir.path());
  ASSERT_FALSE(key.ok());
  EXPECT_EQ(key.status().code(), StatusCode::kNotFound);
}

TEST(CredentialsTest, LoadParsesMultipleProfiles) {
  TempDir dir("ty_credentials_test.");
  const std::string path = dir.path() + "/credentials";
  ASSERT_TRUE(WriteFileAtomic(path,
                              "# comment\n"
                              "[default]\n"
                              "aws_access_key_id = AKIADEFAULT\n"
                              "aws_secret_access_key = se/cr+et==\n"
                              "region = us-east-1\n"
                              "\n"
                              "; another comment\n"
                              "[ci]\n"
                              "  aws_access_key_id=AKIACI  \n"
                              "aws_secret_access_key=ci-secret\n"
                              "aws_account_id = 000000000042\n"
                              "[temporary]\n"
                              "aws_access_key_id = ASIATEMP\n"
                              "aws_secret_access_key = temp-secret\n"
                              "aws_session_token = tok/en==\n"
                              "[role]\n"
                              "role_arn = arn:aws:iam::123456789012:role/x\n"
                              "source_profile = default\n")
                  .ok());
  auto store = LoadSharedCredentialsFile(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ(store->size(), 3u);
  const AccessKey* def = store->Find("AKIADEFAULT");
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(def->secret_access_key, "se/cr+et==");
  EXPECT_EQ(def->account_id, DeriveAccountId("AKIADEFAULT"));
  const AccessKey* ci = store->Find("AKIACI");
  ASSERT_NE(ci, nullptr);
  EXPECT_EQ(ci->secret_access_key, "ci-secret");
  EXPECT_EQ(ci->account_id, "000000000042");
  EXPECT_EQ(ci->session_token, "");
  const AccessKey* temp = store->Find("ASIATEMP");
  ASSERT_NE(temp, nullptr);
  EXPECT_EQ(temp->session_token, "tok/en==");
  EXPECT_EQ(store->Find("AKIANOPE"), nullptr);
}

TEST(CredentialsTest, DerivedAccountIdsAreTwelveStableDigits) {
  const std::string a = DeriveAccountId("AKIAIOSFODNN7EXAMPLE");
  EXPECT_EQ(a.size(), 12u);
  EXPECT_TRUE(AllDigits(a));
  EXPECT_EQ(a, DeriveAccountId("AKIAIOSFODNN7EXAMPLE"));
  EXPECT_NE(a, DeriveAccountId("AKIAIOSFODNN7EXAMPLF"));
  // Pinned (Python: ''.join(str(b % 10) for b in sha256(akid).digest()[:12])) so the mapping
  // cannot change silently between releases.
  EXPECT_EQ(a, "638201055636");
}

TEST(CredentialsTest, MalformedFilesAreInvalidArgument) {
  struct Bad {
    const char* text;
    const char* want;  // substring of the message
  };
  const Bad cases[] = {
      {"aws_access_key_id = A\n", "line 1: key outside of any [profile] section"},
      {"[p\naws_access_key_id=A\n", "line 1: unterminated section header"},
      {"[p]\njust words\n", "line 2: expected \"key = value\""},
      {"[p]\naws_access_key_id=A\n", "has aws_access_key_id but no aws_secret_access_key"},
      {"[p]\naws_secret_access_key=B\n", "has aws_secret_access_key but no aws_access_key_id"},
      {"[p]\naws_access_key_id=A\naws_secret_access_key=B\naws_account_id=12345\n",
       "line 4: aws_account_id must be exactly 12 digits"},
      {"[p]\naws_access_key_id=\naws_secret_access_key=B\n",
       "line 2: aws_access_key_id has an "
       "empty value"},
      {"[p]\naws_access_key_id=A\naws_secret_access_key=B\n[q]\naws_access_key_id=A\n"
       "aws_secret_access_key=C\n",
       "appears in more than one profile"},
      {"[p]\naws_access_key_id=A\naws_secret_access_key=B\n[p]\n", "duplicate profile [p]"},
      {"", "no profile with aws_access_key_id"},
      {"[]\n", "empty profile name"},
  };
  TempDir dir("ty_credentials_test.");
  const std::string path = dir.path() + "/credentials";
  for (const Bad& c : cases) {
    ASSERT_TRUE(WriteFileAtomic(path, c.text, 0600).ok());
    auto store = LoadSharedCredentialsFile(path);
    ASSERT_FALSE(store.ok()) << c.text;
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(store.status().message().find(c.want), std::string::npos)
        << c.text << " -> " << store.status().message();
    EXPECT_NE(store.status().message().find(path), std::string::npos);
  }
}

TEST(CredentialsTest, MissingFileIsIoError) {
  auto store = LoadSharedCredentialsFile("/nonexistent/ty/credentials");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError);
}

}  // namespace
}  // namespace ty::api
