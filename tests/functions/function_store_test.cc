#include "functions/function_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <vector>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::functions {
namespace {

std::string OneFileZip(const std::string& name, const std::string& data) {
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
  archive_write_header(a, e);
  archive_write_data(a, data.data(), data.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

FunctionConfig Config(const std::string& account, const std::string& name) {
  FunctionConfig c;
  c.account = account;
  c.name = name;
  c.runtime = "python3.12";
  c.handler = "app.handler";
  return c;
}

TEST(FunctionStoreTest, CreatePersistsAcrossOpenPerAccount) {
  testing::TempDir tmp;
  std::string zip = OneFileZip("app.py", "def handler(e, c): return 1\n");
  {
    auto store = FunctionStore::Open(tmp.path());
    ASSERT_TRUE(store.ok());
    auto made = (*store)->Create(Config("111111111111", "f"), zip);
    ASSERT_TRUE(made.ok()) << made.status().ToString();
    EXPECT_EQ(made->code_size, static_cast<int64_t>(zip.size()));
    EXPECT_EQ(made->code_sha256, Base64Sha256(zip));
    EXPECT_EQ(*ReadFile(JoinPath((*store)->CodeDir(*made), "app.py")),
              "def handler(e, c): return 1\n");
    EXPECT_EQ((*store)->Create(Config("111111111111", "f"), zip).status().code(),
              StatusCode::kAlreadyExists);
    EXPECT_TRUE((*store)->Create(Config("222222222222", "f"), zip).ok());
    auto updated = (*store)->Update("111111111111", "f", [](FunctionConfig& c) {
      c.policy.push_back({"sid", "lambda:InvokeFunction", "events.amazonaws.com", "", ""});
      return Status::Ok();
    });
    ASSERT_TRUE(updated.ok());
  }
  auto store = FunctionStore::Open(tmp.path());
  ASSERT_TRUE(store.ok());
  auto f = (*store)->Get("111111111111", "f");
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->policy.size(), 1u);
  EXPECT_EQ(f->policy[0].principal, "events.amazonaws.com");
  EXPECT_EQ((*store)->List("111111111111").size(), 1u);
  EXPECT_EQ((*store)->List("222222222222").size(), 1u);
  EXPECT_TRUE((*store)->List("333333333333").empty());
}

TEST(FunctionStoreTest, UpdateCodeMovesToANewTreeAndDeleteRemoves) {
  testing::TempDir tmp;
  auto store = FunctionStore::Open(tmp.path());
  ASSERT_TRUE(store.ok());
  auto v1 = (*store)->Create(Config("111111111111", "f"), OneFileZip("app.py", "v1"));
  ASSERT_TRUE(v1.ok());
  auto v2 = (*store)->UpdateCode("111111111111", "f", OneFileZip("app.py", "v2"));
  ASSERT_TRUE(v2.ok());
  EXPECT_NE((*store)->CodeDir(*v1), (*store)->CodeDir(*v2));
  EXPECT_EQ(*ReadFile(JoinPath((*store)->CodeDir(*v2), "app.py")), "v2");
  EXPECT_NE(v1->revision_id, v2->revision_id);
  EXPECT_EQ((*store)->UpdateCode("111111111111", "f", "garbage").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Get("111111111111", "f")->code_version, v2->code_version);
  EXPECT_TRUE((*store)->Delete("111111111111", "f").ok());
  EXPECT_FALSE((*store)->Get("111111111111", "f").has_value());
  EXPECT_EQ((*store)->Delete("111111111111", "f").code(), StatusCode::kNotFound);
  EXPECT_FALSE(PathExists((*store)->CodeDir(*v2)));
}

TEST(FunctionStoreTest, ABadPackageLeavesNothing) {
  testing::TempDir tmp;
  auto store = FunctionStore::Open(tmp.path());
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Create(Config("111111111111", "f"), "not a zip").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE((*store)->Get("111111111111", "f").has_value());
  EXPECT_TRUE((*store)->Create(Config("111111111111", "f"), OneFileZip("a.py", "")).ok());
}

}  // namespace
}  // namespace ty::functions
