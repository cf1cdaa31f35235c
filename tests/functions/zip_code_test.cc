#include "functions/zip_code.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <vector>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::functions {
namespace {

struct Entry {
  std::string name;
  std::string data;
  mode_t type = AE_IFREG;
  std::string link;  // symlink target
};

// A zip holding `entries`, written by libarchive (names are not checked on the way in).
std::string MakeZip(const std::vector<Entry>& entries) {
  std::vector<char> buf(1 << 20);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  archive_write_open_memory(a, buf.data(), buf.size(), &used);
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_filetype(ae, e.type);
    archive_entry_set_perm(ae, e.type == AE_IFDIR ? 0755 : 0644);
    if (e.type == AE_IFLNK) archive_entry_set_symlink(ae, e.link.c_str());
    archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
    archive_write_header(a, ae);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buf.data(), used);
}

TEST(SafeEntryPathTest, Table) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"app.py", "app.py"},
      {"./pkg/mod.py", "pkg/mod.py"},
      {"pkg//a/./b.py", "pkg/a/b.py"},
      {"../evil.py", ""},
      {"pkg/../../evil", ""},
      {"/etc/passwd", ""},
      {"", ""},
      {std::string("a\0b", 3), ""},
      {"..", ""},
      {"a/..b", "a/..b"},
  };
  for (const auto& c : cases) EXPECT_EQ(SafeEntryPath(c.in), c.out) << c.in;
}

TEST(UnpackZipTest, UnpacksFilesAndDirectories) {
  testing::TempDir tmp;
  std::string zip = MakeZip({{"app.py", "def handler(e, c):\n    return 1\n"},
                             {"pkg/", "", AE_IFDIR},
                             {"pkg/__init__.py", ""},
                             {"pkg/sub/deep.py", "x = 1\n"}});
  auto sum = UnpackZip(zip, tmp.Sub("code"));
  ASSERT_TRUE(sum.ok()) << sum.status().ToString();
  EXPECT_EQ(sum->entries, 4);
  EXPECT_EQ(*ReadFile(tmp.Sub("code/app.py")), "def handler(e, c):\n    return 1\n");
  EXPECT_EQ(*ReadFile(tmp.Sub("code/pkg/sub/deep.py")), "x = 1\n");
}

TEST(UnpackZipTest, RefusesEscapesLinksAndGarbage) {
  struct Case {
    const char* what;
    std::string zip;
  } cases[] = {
      {"dotdot", MakeZip({{"../evil.py", "x"}})},
      {"absolute", MakeZip({{"/tmp/evil.py", "x"}})},
      {"symlink", MakeZip({{"link", "", AE_IFLNK, "/etc/passwd"}})},
      {"duplicate", MakeZip({{"a.py", "1"}, {"a.py", "2"}})},
      {"not a zip", std::string("PK\x03\x04 this is not really a zip file")},
      {"empty", std::string()},
  };
  for (const auto& c : cases) {
    testing::TempDir tmp;
    auto r = UnpackZip(c.zip, tmp.Sub("code"));
    EXPECT_FALSE(r.ok()) << c.what;
    if (!r.ok()) EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.what;
    EXPECT_FALSE(PathExists(tmp.Sub("evil.py"))) << c.what;
  }
}

TEST(UnpackZipTest, CountsWhatIsWrittenAgainstTheLimits) {
  ZipLimits limits;
  limits.max_entries = 3;
  limits.max_total_bytes = 1000;
  limits.max_zip_bytes = 1 << 20;
  testing::TempDir tmp;
  // Highly compressible: small zip, large content.
  EXPECT_FALSE(UnpackZip(MakeZip({{"big", std::string(5000, 'a')}}), tmp.Sub("a"), limits).ok());
  EXPECT_FALSE(
      UnpackZip(MakeZip({{"1", "a"}, {"2", "b"}, {"3", "c"}, {"4", "d"}}), tmp.Sub("b"), limits)
          .ok());
  EXPECT_TRUE(UnpackZip(MakeZip({{"1", "a"}, {"2", "b"}}), tmp.Sub("c"), limits).ok());
  limits.max_zip_bytes = 10;
  EXPECT_FALSE(UnpackZip(MakeZip({{"1", "a"}}), tmp.Sub("d"), limits).ok());
}

}  // namespace
}  // namespace ty::functions
