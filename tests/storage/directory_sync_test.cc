#include "storage/directory_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "storage/file_object_store.h"
#include "storage/storage_test_util.h"
#include "storage/uri.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using namespace std::chrono_literals;
using testing::AllFilesUnder;
using testing::ReadIfExists;
using testing::TinyTmpfs;
using testing::WaitFor;
using testing::WriteInPlace;
using ty::testing::TempDir;

// What the tests steer in FaultyStore (shared: the sync owns the store itself).
struct StoreControls {
  std::atomic<bool> fail_uploads{false};
  std::atomic<int> upload_calls{0};
  std::atomic<int> commits{0};
  // Runs between the copy and the still_valid check of each upload, on the sync thread.
  std::function<void(const std::string& local_file)> before_commit;  // set before Start()
};

// A FileObjectStore that can fail uploads with "No space left on device" and run a hook at
// the commit point.
class FaultyStore : public ObjectStore {
 public:
  FaultyStore(std::vector<std::string> roots, std::shared_ptr<StoreControls> controls)
      : inner_(std::move(roots)), controls_(std::move(controls)) {}

  Status DownloadPrefix(const std::string& uri, const std::string& local_dir) override {
    return inner_.DownloadPrefix(uri, local_dir);
  }
  Status UploadFile(const std::string& local_file, const std::string& uri) override {
    return UploadFileIf(local_file, uri, [] { return true; });
  }
  Status UploadFileIf(const std::string& local_file, const std::string& uri,
                      const std::function<bool()>& still_valid) override {
    ++controls_->upload_calls;
    if (controls_->fail_uploads) {
      return IoError("cannot write " + uri + ": No space left on device");
    }
    Status s = inner_.UploadFileIf(local_file, uri, [&] {
      if (controls_->before_commit) controls_->before_commit(local_file);
      return still_valid();
    });
    if (s.ok()) ++controls_->commits;
    return s;
  }
  Status UploadDirectory(const std::string& local_dir, const std::string& uri) override {
    return inner_.UploadDirectory(local_dir, uri);
  }
  Status DownloadFile(const std::string& uri, const std::string& local_path) override {
    return inner_.DownloadFile(uri, local_path);
  }
  Status Delete(const std::string& uri) override { return inner_.Delete(uri); }
  Result<std::vector<ObjectInfo>> List(const std::string& uri) override { return inner_.List(uri); }
  Result<std::string> ResolveLocalPath(const std::string& uri) override {
    return inner_.ResolveLocalPath(uri);
  }

 private:
  FileObjectStore inner_;
  std::shared_ptr<StoreControls> controls_;
};

class DirectorySyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    local_ = tmp_.path() + "/ckpt";
    bucket_ = tmp_.path() + "/bucket";
    ASSERT_TRUE(MakeDirs(local_).ok());
    ASSERT_TRUE(MakeDirs(bucket_).ok());
  }
  void TearDown() override {
    if (sync_) sync_->Stop();
  }

  std::string Local(const std::string& rel) const { return local_ + "/" + rel; }
  std::string ObjectPath(const std::string& rel) const { return bucket_ + "/ckpt/" + rel; }
  std::optional<std::string> Object(const std::string& rel) const {
    return ReadIfExists(ObjectPath(rel));
  }
  std::string Uri() const { return FileUriFromPath(bucket_ + "/ckpt/"); }

  DirectorySyncOptions Options() {
    DirectorySyncOptions o;
    o.local_dir = local_;
    o.uri = Uri();
    o.settle = 20ms;
    o.scan_interval = 200ms;
    o.on_progress = [this](const SyncProgress& p) {
      std::lock_guard<std::mutex> lock(mu_);
      progress_.push_back(p);
    };
    o.on_error = [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu_);
      errors_.push_back(m);
    };
    return o;
  }

  void StartSync(DirectorySyncOptions o) {
    sync_ = std::make_unique<DirectorySync>(
        std::move(o), std::make_unique<FaultyStore>(std::vector<std::string>{bucket_}, controls_));
    Status s = sync_->Start();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  void StartSync() { StartSync(Options()); }

  std::vector<std::string> Errors() {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  bool ErrorMentions(const std::string& needle) {
    for (const std::string& e : Errors()) {
      if (e.find(needle) != std::string::npos) return true;
    }
    return false;
  }
  std::vector<SyncProgress> Progress() {
    std::lock_guard<std::mutex> lock(mu_);
    return progress_;
  }
  bool ObjectIs(const std::string& rel, const std::string& contents) {
    return Object(rel) == contents;
  }
  bool ObjectGone(const std::string& rel) { return !PathExists(ObjectPath(rel)); }
  // Temp files of in-flight uploads anywhere in the bucket.
  std::vector<std::string> TempFilesInBucket() {
    std::vector<std::string> out;
    for (const std::string& f : AllFilesUnder(bucket_)) {
      if (f.find(".ty-tmp-") != std::string::npos) out.push_back(f);
    }
    return out;
  }

  TempDir tmp_{"ty-directory-sync-"};
  std::string local_;
  std::string bucket_;
  std::shared_ptr<StoreControls> controls_ = std::make_shared<StoreControls>();
  std::unique_ptr<DirectorySync> sync_;
  std::mutex mu_;
  std::vector<SyncProgress> progress_;
  std::vector<std::string> errors_;
};

TEST_F(DirectorySyncTest, CreatedFileIsUploaded) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("epoch-1.pt"), "weights-1"));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("epoch-1.pt", "weights-1"); }));
  EXPECT_TRUE(WaitFor([&] { return !Progress().empty(); }));
  SyncProgress p = Progress().front();
  EXPECT_EQ(p.files_uploaded, 1);
  EXPECT_EQ(p.bytes_uploaded, 9u);
  EXPECT_GT(p.synced_at_ms, 0);
  EXPECT_TRUE(Errors().empty());
}

TEST_F(DirectorySyncTest, OverwrittenFileIsUploadedAgain) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("last.pt"), "v1"));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("last.pt", "v1"); }));
  ASSERT_TRUE(WriteInPlace(Local("last.pt"), "version two"));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("last.pt", "version two"); }));
}

TEST_F(DirectorySyncTest, FileNamesAreEncodedIntoTheUri) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("step 10%#?.pt"), "odd"));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("step 10%#?.pt", "odd"); }));
}

TEST_F(DirectorySyncTest, FileHeldOpenByItsWriterIsNotUploadedUntilClosed) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("model.pt"), "old-complete-version"));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("model.pt", "old-complete-version"); }));

  const std::string chunk(64 * 1024, 'n');
  const std::string full_new = chunk + chunk + chunk + chunk;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> seen{0};
  std::thread reader([&] {
    while (!done) {
      std::optional<std::string> o = Object("model.pt");
      if (o) {
        ++seen;
        if (*o != "old-complete-version" && *o != full_new) ++torn;
      }
    }
  });
  int fd = ::open(Local("model.pt").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(::write(fd, chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    // Longer than the settle time and two scan intervals: a scan-only sync would upload now.
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(Object("model.pt"), "old-complete-version") << "uploaded while open, chunk " << i;
  }
  ASSERT_EQ(::close(fd), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("model.pt", full_new); }));
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GT(seen.load(), 0);
}

TEST_F(DirectorySyncTest, StoredCopyIsNeverTornByInPlaceRewrites) {
  StartSync();
  constexpr size_t kSize = 1 << 20;
  constexpr int kVersions = 40;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> seen{0};
  std::string first_torn;  // written by the reader only, read after join
  std::thread reader([&] {
    while (!done) {
      std::optional<std::string> o = Object("rolling.pt");
      if (!o) continue;
      ++seen;
      bool uniform = o->size() == kSize && o->find_first_not_of((*o)[0]) == std::string::npos;
      if (!uniform && torn++ == 0) {
        first_torn = "size " + std::to_string(o->size()) + ", first byte " +
                     std::to_string((*o)[0]) + ", last byte " + std::to_string(o->back());
      }
    }
  });
  for (int k = 1; k <= kVersions; ++k) {
    int fd = ::open(Local("rolling.pt").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    std::string piece(64 * 1024, static_cast<char>(k));
    for (size_t off = 0; off < kSize; off += piece.size()) {
      ASSERT_EQ(::write(fd, piece.data(), piece.size()), static_cast<ssize_t>(piece.size()));
    }
    ASSERT_EQ(::close(fd), 0);
    if (k % 8 == 0) std::this_thread::sleep_for(30ms);  // let some versions settle and commit
  }
  const std::string last(kSize, static_cast<char>(kVersions));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("rolling.pt", last); }));
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0) << "first torn copy: " << first_torn;
  EXPECT_GT(seen.load(), 0);
  EXPECT_TRUE(TempFilesInBucket().empty());
}

TEST_F(DirectorySyncTest, AFileRewrittenEverySettlePeriodKeepsBeingStored) {
  // A script checkpointing in place exactly as often as the sync settles must not be
  // phase-locked out: every batch would otherwise find it mid-rewrite.
  DirectorySyncOptions o = Options();
  o.settle = 100ms;
  o.scan_interval = 60s;  // inotify only
  StartSync(std::move(o));
  std::set<std::string> stored;
  for (int k = 1; k <= 30; ++k) {
    ASSERT_TRUE(WriteInPlace(Local("state.json"), "{\"step\": " + std::to_string(k) + "}"));
    std::this_thread::sleep_for(100ms);
    if (auto obj = Object("state.json")) stored.insert(*obj);
  }
  // About one version in one or two periods is stored (phase-locked: only the first).
  EXPECT_GE(stored.size(), 8u);
}

TEST_F(DirectorySyncTest, RenameIntoPlaceIsUploadedUnderTheFinalName) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("ckpt.pt.tmp"), "renamed-in"));
  ASSERT_EQ(::rename(Local("ckpt.pt.tmp").c_str(), Local("ckpt.pt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("ckpt.pt", "renamed-in"); }));
  EXPECT_TRUE(WaitFor([&] { return ObjectGone("ckpt.pt.tmp"); }));
  // A file moved in from outside the watched directory counts as whole, too.
  ASSERT_TRUE(WriteInPlace(tmp_.path() + "/outside.pt", "moved-in"));
  ASSERT_EQ(::rename((tmp_.path() + "/outside.pt").c_str(), Local("inside.pt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("inside.pt", "moved-in"); }));
}

TEST_F(DirectorySyncTest, LocalDeleteDeletesTheObject) {
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("old.pt"), "x"));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("old.pt", "x"); }));
  ASSERT_EQ(::unlink(Local("old.pt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectGone("old.pt"); }));
  EXPECT_TRUE(WaitFor([&] {
    for (const SyncProgress& p : Progress()) {
      if (p.objects_deleted == 1) return true;
    }
    return false;
  }));
}

TEST_F(DirectorySyncTest, RestoredFilesAreNotUploadedAgainButTheirDeletionPropagates) {
  ASSERT_TRUE(MakeDirs(ObjectPath("sub")).ok());
  ASSERT_TRUE(WriteFileAtomic(ObjectPath("a.pt"), "aaa").ok());
  ASSERT_TRUE(WriteFileAtomic(ObjectPath("sub/b.pt"), "bbb").ok());
  ASSERT_TRUE(WriteFileAtomic(ObjectPath("other-host.pt"), "theirs").ok());
  FileObjectStore restore({bucket_});
  ASSERT_TRUE(restore.DownloadPrefix(Uri(), local_).ok());
  // Not this host's file: gone locally before the sync starts, so never known to it.
  ASSERT_EQ(::unlink(Local("other-host.pt").c_str()), 0);

  StartSync();
  Status flushed = sync_->Flush(5s);
  ASSERT_TRUE(flushed.ok()) << flushed.ToString();
  EXPECT_EQ(controls_->upload_calls.load(), 0);

  ASSERT_EQ(::unlink(Local("sub/b.pt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectGone("sub/b.pt"); }));
  ASSERT_EQ(::unlink(Local("a.pt").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectGone("a.pt"); }));
  ASSERT_TRUE(sync_->Flush(5s).ok());
  EXPECT_EQ(Object("other-host.pt"), "theirs");
  EXPECT_EQ(controls_->upload_calls.load(), 0);
}

TEST_F(DirectorySyncTest, LocalFileTheStoreLacksAtStartIsUploaded) {
  ASSERT_TRUE(WriteInPlace(Local("only-local.pt"), "local"));
  StartSync();
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("only-local.pt", "local"); }));
}

TEST_F(DirectorySyncTest, SubdirectoriesCreatedAfterStartAreWatched) {
  auto o = Options();
  o.scan_interval = 60s;  // only inotify (and the early rescan of new directories) can find them
  StartSync(std::move(o));
  ASSERT_TRUE(MakeDirs(Local("epoch-1/shards")).ok());
  ASSERT_TRUE(WriteInPlace(Local("epoch-1/shards/0.pt"), "zero"));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("epoch-1/shards/0.pt", "zero"); }));
  // A file written later in the now-watched directory comes through its events.
  ASSERT_TRUE(WriteInPlace(Local("epoch-1/shards/1.pt"), "one"));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("epoch-1/shards/1.pt", "one"); }));
  // A directory renamed into place: its files are whole.
  ASSERT_TRUE(MakeDirs(Local(".staging")).ok());
  ASSERT_TRUE(WriteInPlace(Local(".staging/w.pt"), "w"));
  ASSERT_EQ(::rename(Local(".staging").c_str(), Local("epoch-2").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("epoch-2/w.pt", "w"); }));
  EXPECT_TRUE(WaitFor([&] { return ObjectGone(".staging/w.pt"); }));
}

TEST_F(DirectorySyncTest, FlushUploadsAFileWhoseWriterNeverClosedIt) {
  auto o = Options();
  o.scan_interval = 60s;
  StartSync(std::move(o));
  int fd = ::open(Local("open.pt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "final", 5), 5);
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(Object("open.pt").has_value());  // still open: not whole yet
  Status s = sync_->Flush(5s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Object("open.pt"), "final");
  ::close(fd);
}

TEST_F(DirectorySyncTest, FlushAfterStopStillWorks) {
  StartSync();
  sync_->Stop();
  ASSERT_TRUE(WriteInPlace(Local("late.pt"), "late"));
  Status s = sync_->Flush(5s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Object("late.pt"), "late");
}

TEST_F(DirectorySyncTest, FileDeletedDuringUploadLeavesTheStoreConsistent) {
  std::atomic<bool> delete_during_upload{false};
  controls_->before_commit = [&](const std::string& local_file) {
    if (delete_during_upload) ::unlink(local_file.c_str());
  };
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("gone.pt"), "v1"));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("gone.pt", "v1"); }));
  delete_during_upload = true;
  ASSERT_TRUE(WriteInPlace(Local("gone.pt"), "v2"));
  // The copy of v2 is dropped; the local file is gone, so the known object goes too.
  EXPECT_TRUE(WaitFor([&] { return ObjectGone("gone.pt"); }));
  ASSERT_TRUE(WriteInPlace(Local("never.pt"), "n"));
  Status s = sync_->Flush(5s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(ObjectGone("never.pt"));
  EXPECT_TRUE(ObjectGone("gone.pt"));
  EXPECT_TRUE(TempFilesInBucket().empty());
  EXPECT_GE(controls_->upload_calls.load(), 3);
  EXPECT_TRUE(Errors().empty()) << Errors().front();  // a vanished file is not a failure
}

TEST_F(DirectorySyncTest, UploadFailureIsReportedAndRetriedUntilItSucceeds) {
  controls_->fail_uploads = true;
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("epoch-3.pt"), "three"));
  ASSERT_TRUE(WaitFor([&] { return ErrorMentions("No space left on device"); }));
  ASSERT_TRUE(WaitFor([&] { return controls_->upload_calls.load() >= 2; }));  // retried
  std::vector<std::string> errors = Errors();
  EXPECT_NE(
      errors.front().find("checkpoint sync: cannot upload epoch-3.pt to " + Uri() + "epoch-3.pt"),
      std::string::npos)
      << errors.front();
  EXPECT_NE(errors.front().find("will retry"), std::string::npos) << errors.front();
  EXPECT_FALSE(Object("epoch-3.pt").has_value());

  // Flush reports the failure it could not get past.
  Status s = sync_->Flush(1s);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();

  controls_->fail_uploads = false;
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("epoch-3.pt", "three"); }));
  EXPECT_TRUE(sync_->Flush(5s).ok());
}

TEST_F(DirectorySyncTest, FlushGivesUpOnAPersistentFailureInsteadOfUsingItsWholeBudget) {
  controls_->fail_uploads = true;
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("epoch-4.pt"), "four"));
  ASSERT_TRUE(WaitFor([&] { return ErrorMentions("No space left on device"); }));
  int before = controls_->upload_calls.load();
  auto start = std::chrono::steady_clock::now();
  Status s = sync_->Flush(std::chrono::minutes(10));
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  // A few attempts (0.5 s, 1 s, 2 s apart), then the error: not ten minutes.
  EXPECT_GE(controls_->upload_calls.load() - before, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST_F(DirectorySyncTest, RealDiskFullKeepsTheLastWholeVersionAndLeavesNoTempFile) {
  TinyTmpfs tmpfs(bucket_, "64k");
  if (!tmpfs.mounted()) GTEST_SKIP() << "needs root and mount(2) to make a tiny tmpfs";
  StartSync();
  const std::string small(10 * 1024, 's');
  ASSERT_TRUE(WriteInPlace(Local("ckpt.pt"), small));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("ckpt.pt", small); }));

  const std::string big(200 * 1024, 'B');
  ASSERT_TRUE(WriteInPlace(Local("ckpt.pt"), big));
  ASSERT_TRUE(WaitFor([&] { return ErrorMentions("No space left on device"); }));
  EXPECT_TRUE(ErrorMentions("cannot upload ckpt.pt to " + Uri() + "ckpt.pt")) << Errors().front();
  Status s = sync_->Flush(1s);
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.ToString();
  EXPECT_EQ(Object("ckpt.pt"), small);
  EXPECT_TRUE(TempFilesInBucket().empty());

  // Space comes back (a smaller checkpoint fits): the retry succeeds.
  const std::string medium(20 * 1024, 'm');
  ASSERT_TRUE(WriteInPlace(Local("ckpt.pt"), medium));
  EXPECT_TRUE(WaitFor([&] { return ObjectIs("ckpt.pt", medium); }));
  EXPECT_TRUE(TempFilesInBucket().empty());
  sync_->Stop();
}

TEST_F(DirectorySyncTest, SymlinksAreSkippedAndReportedOnce) {
  ASSERT_TRUE(WriteInPlace(tmp_.path() + "/secret", "do not upload"));
  StartSync();
  ASSERT_EQ(::symlink((tmp_.path() + "/secret").c_str(), Local("link.pt").c_str()), 0);
  ASSERT_TRUE(WriteInPlace(Local("real.pt"), "real"));
  ASSERT_TRUE(WaitFor([&] { return ObjectIs("real.pt", "real"); }));
  ASSERT_TRUE(sync_->Flush(5s).ok());
  ASSERT_TRUE(sync_->Flush(5s).ok());
  EXPECT_FALSE(PathExists(ObjectPath("link.pt")));
  int reports = 0;
  for (const std::string& e : Errors()) {
    if (e.find("symlink") != std::string::npos && e.find("link.pt") != std::string::npos) {
      ++reports;
    }
  }
  EXPECT_EQ(reports, 1);
}

TEST_F(DirectorySyncTest, ScanFindsWhatInotifyDidNotSee) {
  // Written before Start() and missing from the store: found by the initial scan; then a
  // file changed only in its timestamps (no write event) is found by a rescan.
  ASSERT_TRUE(WriteInPlace(Local("pre.pt"), "pre"));
  StartSync();
  ASSERT_TRUE(WaitFor([&] { return controls_->commits.load() == 1; }));
  EXPECT_EQ(Object("pre.pt"), "pre");
  std::this_thread::sleep_for(500ms);  // two rescans: nothing changed, nothing is uploaded
  ASSERT_EQ(controls_->commits.load(), 1);
  struct timespec times[2] = {{0, UTIME_NOW}, {1000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, Local("pre.pt").c_str(), times, 0), 0);
  EXPECT_TRUE(WaitFor([&] { return controls_->commits.load() == 2; }));
}

TEST_F(DirectorySyncTest, StartFailsForAMissingDirectory) {
  auto o = Options();
  o.local_dir = tmp_.path() + "/missing";
  DirectorySync sync(std::move(o),
                     std::make_unique<FileObjectStore>(std::vector<std::string>{bucket_}));
  Status s = sync.Start();
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(sync.Flush(1s).code(), StatusCode::kFailedPrecondition);
}

TEST_F(DirectorySyncTest, StopIsPromptAndIdempotent) {
  controls_->fail_uploads = true;  // a retry loop with backoff must not hold Stop()
  StartSync();
  ASSERT_TRUE(WriteInPlace(Local("x.pt"), "x"));
  ASSERT_TRUE(WaitFor([&] { return controls_->upload_calls.load() >= 1; }));
  auto before = std::chrono::steady_clock::now();
  sync_->Stop();
  sync_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);
}

}  // namespace
}  // namespace ty::storage
