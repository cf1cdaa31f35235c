#include "storage/tree_sync.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/fs.h"
#include "storage/file_object_store.h"
#include "storage/storage_test_util.h"
#include "storage/uri.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

using std::chrono::system_clock;
using ty::storage::testing::AllFilesUnder;
using ty::testing::TempDir;

// Forwards to a FileObjectStore; each hook, when set, runs first and may replace the call's
// result (return a non-ok status) or let it through (return ok).
class HookedStore : public ObjectStore {
 public:
  explicit HookedStore(std::vector<std::string> roots) : inner_(std::move(roots)) {}

  std::function<Status(const std::string& uri)> before_transfer;
  std::function<Result<std::vector<ObjectInfo>>(const std::string& uri)> list;
  std::function<void(const std::vector<std::string>& keys)> on_delete_objects;

  Status DownloadPrefix(const std::string& uri, const std::string& local_dir) override {
    return inner_.DownloadPrefix(uri, local_dir);
  }
  Status DownloadFile(const std::string& uri, const std::string& local_path) override {
    if (before_transfer) TY_RETURN_IF_ERROR(before_transfer(uri));
    return inner_.DownloadFile(uri, local_path);
  }
  Status UploadFile(const std::string& local_file, const std::string& uri) override {
    if (before_transfer) TY_RETURN_IF_ERROR(before_transfer(uri));
    return inner_.UploadFile(local_file, uri);
  }
  Status UploadFileIf(const std::string& local_file, const std::string& uri,
                      const std::function<bool()>& still_valid) override {
    return inner_.UploadFileIf(local_file, uri, still_valid);
  }
  Status UploadDirectory(const std::string& local_dir, const std::string& uri) override {
    return inner_.UploadDirectory(local_dir, uri);
  }
  Status Delete(const std::string& uri) override { return inner_.Delete(uri); }
  Status DeleteObjects(const std::string& base_uri, const std::vector<std::string>& keys) override {
    if (on_delete_objects) on_delete_objects(keys);
    return inner_.DeleteObjects(base_uri, keys);
  }
  Result<std::vector<ObjectInfo>> List(const std::string& uri) override {
    if (list) return list(uri);
    return inner_.List(uri);
  }
  Result<std::string> ResolveLocalPath(const std::string& uri) override {
    return inner_.ResolveLocalPath(uri);
  }

  FileObjectStore& inner() { return inner_; }

 private:
  FileObjectStore inner_;
};

void Write(const std::string& path, const std::string& contents) {
  ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
  ASSERT_TRUE(testing::WriteInPlace(path, contents));
}

void SetMTime(const std::string& path, system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  struct timespec times[2] = {{ns / 1000000000, ns % 1000000000},
                              {ns / 1000000000, ns % 1000000000}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

system_clock::time_point MTimeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return system_clock::from_time_t(st.st_mtim.tv_sec) +
         std::chrono::duration_cast<system_clock::duration>(
             std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

// Every file under `dir` with its contents, except the hidden temp files of transfers.
std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const std::string& rel : AllFilesUnder(dir)) {
    if (rel.find(".ty-tmp-") == std::string::npos) out[rel] = *ReadFile(dir + "/" + rel);
  }
  return out;
}

class TreeSyncTest : public ::testing::Test {
 public:
  void SetUp() override {
    local_ = tmp_.Sub("local");
    bucket_ = tmp_.Sub("bucket");
    prefix_dir_ = bucket_ + "/runs/1";
    ASSERT_TRUE(MakeDirs(bucket_).ok());
    store_ = std::make_unique<HookedStore>(std::vector<std::string>{bucket_});
    uri_ = FileUriFromPath(prefix_dir_);
  }

  void WriteLocalTree() {
    Write(local_ + "/a.txt", "alpha");
    Write(local_ + "/sub/b.bin", std::string("\0\1\2\3", 4));
    Write(local_ + "/sub/deep/c with space%.txt", "charlie");
  }

  Status Sync(SyncDirection direction, TreeSyncStats* stats, bool delete_extra = false,
              bool dry_run = false) {
    TreeSyncOptions o;
    o.direction = direction;
    o.local_dir = local_;
    o.uri = uri_;
    o.delete_extra = delete_extra;
    o.dry_run = dry_run;
    o.workers = workers_;
    o.on_event = [this](const SyncEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
    };
    events_.clear();
    return SyncTree(*store_, o, stats);
  }

  TempDir tmp_{"ty-treesync-"};
  std::string local_, bucket_, prefix_dir_, uri_;
  std::unique_ptr<HookedStore> store_;
  int workers_ = 16;
  std::mutex mu_;
  std::vector<SyncEvent> events_;
};

TEST_F(TreeSyncTest, FirstUploadCopiesEverythingSecondCopiesNothing) {
  WriteLocalTree();
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 3);
  EXPECT_EQ(stats.bytes_copied, 5u + 4u + 7u);
  EXPECT_EQ(stats.files_unchanged, 0);
  EXPECT_EQ(Tree(prefix_dir_), Tree(local_));
  ASSERT_EQ(events_.size(), 3u);
  std::set<std::string> shown;
  for (const SyncEvent& e : events_) {
    EXPECT_EQ(e.action, SyncAction::kUpload);
    EXPECT_TRUE(e.status.ok());
    shown.insert(e.source + " -> " + e.destination);
  }
  EXPECT_EQ(shown.count(local_ + "/sub/deep/c with space%.txt -> " + uri_ +
                        "/sub/deep/c%20with%20space%25.txt"),
            1u);

  s = Sync(SyncDirection::kUpload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 0);
  EXPECT_EQ(stats.files_unchanged, 3);
  EXPECT_TRUE(events_.empty());
}

TEST_F(TreeSyncTest, OnlyChangedFilesMove) {
  WriteLocalTree();
  TreeSyncStats stats;
  ASSERT_TRUE(Sync(SyncDirection::kUpload, &stats).ok());
  Write(local_ + "/a.txt", "alpha, longer");  // size differs
  Write(local_ + "/sub/b.bin", "WXYZ");       // same size, newer
  SetMTime(local_ + "/sub/b.bin", system_clock::now() + std::chrono::seconds(5));
  Write(local_ + "/new.txt", "n");                  // new
  SetMTime(local_ + "/sub/deep/c with space%.txt",  // older: stays
           system_clock::now() - std::chrono::hours(1));
  Status s = Sync(SyncDirection::kUpload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 3);
  EXPECT_EQ(stats.files_unchanged, 1);
  EXPECT_EQ(Tree(prefix_dir_), Tree(local_));
}

TEST_F(TreeSyncTest, DeletionsFollowOnlyWithDelete) {
  WriteLocalTree();
  TreeSyncStats stats;
  ASSERT_TRUE(Sync(SyncDirection::kUpload, &stats).ok());
  ASSERT_EQ(::unlink((local_ + "/sub/b.bin").c_str()), 0);
  // A sibling prefix that merely starts the same way is never touched.
  Write(bucket_ + "/runs/10/keep.txt", "other run");

  ASSERT_TRUE(Sync(SyncDirection::kUpload, &stats).ok());
  EXPECT_EQ(stats.files_deleted, 0);
  EXPECT_TRUE(PathExists(prefix_dir_ + "/sub/b.bin"));

  ASSERT_TRUE(Sync(SyncDirection::kUpload, &stats, /*delete_extra=*/true).ok());
  EXPECT_EQ(stats.files_deleted, 1);
  EXPECT_EQ(stats.files_unchanged, 2);
  EXPECT_FALSE(PathExists(prefix_dir_ + "/sub/b.bin"));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].action, SyncAction::kDelete);
  EXPECT_EQ(events_[0].destination, uri_ + "/sub/b.bin");
  EXPECT_EQ(Tree(bucket_ + "/runs/10"),
            (std::map<std::string, std::string>{{"keep.txt", "other run"}}));
  EXPECT_EQ(Tree(prefix_dir_), Tree(local_));
}

TEST_F(TreeSyncTest, UploadDeletesInBatchesOfAThousand) {
  ASSERT_TRUE(MakeDirs(local_).ok());
  for (int i = 0; i < 1001; ++i) Write(prefix_dir_ + "/old/" + std::to_string(i), "x");
  std::vector<size_t> batches;
  store_->on_delete_objects = [&](const std::vector<std::string>& keys) {
    batches.push_back(keys.size());
  };
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats, /*delete_extra=*/true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(batches, (std::vector<size_t>{1000, 1}));
  EXPECT_EQ(stats.files_deleted, 1001);
  EXPECT_TRUE(AllFilesUnder(prefix_dir_).empty());
}

TEST_F(TreeSyncTest, DryRunReportsButChangesNothing) {
  WriteLocalTree();
  Write(prefix_dir_ + "/extra.txt", "e");
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats, /*delete_extra=*/true, /*dry_run=*/true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 3);
  EXPECT_EQ(stats.files_deleted, 1);
  EXPECT_EQ(events_.size(), 4u);
  for (const SyncEvent& e : events_) EXPECT_TRUE(e.dry_run);
  EXPECT_EQ(AllFilesUnder(prefix_dir_), (std::set<std::string>{"extra.txt"}));

  // Downloading dry: nothing lands locally, nothing local is deleted.
  s = Sync(SyncDirection::kDownload, &stats, /*delete_extra=*/true, /*dry_run=*/true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 1);
  EXPECT_EQ(stats.files_deleted, 3);
  EXPECT_EQ(AllFilesUnder(local_).size(), 3u);
  EXPECT_FALSE(PathExists(local_ + "/extra.txt"));
}

TEST_F(TreeSyncTest, DownloadMirrorsAndSetsMTimeSoTheNextRunIsANoOp) {
  Write(prefix_dir_ + "/x.txt", "x-ray");
  Write(prefix_dir_ + "/d/y.txt", "yankee");
  Write(prefix_dir_ + "/d/.y.txt.ty-tmp-Ab12Cd", "half");  // an upload in flight: not an object
  SetMTime(prefix_dir_ + "/x.txt", system_clock::now() - std::chrono::hours(2));
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kDownload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 2);
  EXPECT_EQ(Tree(local_),
            (std::map<std::string, std::string>{{"x.txt", "x-ray"}, {"d/y.txt", "yankee"}}));
  EXPECT_EQ(MTimeOf(local_ + "/x.txt"), MTimeOf(prefix_dir_ + "/x.txt"));

  s = Sync(SyncDirection::kDownload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 0);
  EXPECT_EQ(stats.files_unchanged, 2);

  // The object changes (same size, newer) and a local extra appears.
  Write(prefix_dir_ + "/x.txt", "X-RAY");
  SetMTime(prefix_dir_ + "/x.txt", system_clock::now() + std::chrono::seconds(5));
  Write(local_ + "/mine.txt", "local only");
  s = Sync(SyncDirection::kDownload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 1);
  EXPECT_EQ(*ReadFile(local_ + "/x.txt"), "X-RAY");
  EXPECT_TRUE(PathExists(local_ + "/mine.txt"));

  s = Sync(SyncDirection::kDownload, &stats, /*delete_extra=*/true);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_deleted, 1);
  EXPECT_EQ(stats.files_copied, 0);
  EXPECT_FALSE(PathExists(local_ + "/mine.txt"));
  EXPECT_EQ(Tree(local_), Tree(prefix_dir_));
}

TEST_F(TreeSyncTest, OneFailingFileIsReportedAndTheOthersStillMove) {
  WriteLocalTree();
  store_->before_transfer = [](const std::string& uri) -> Status {
    if (uri.find("b.bin") != std::string::npos) return Unavailable("injected: connection reset");
    return Status::Ok();
  };
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(),
            "1 of 3 files failed: upload " + local_ + "/sub/b.bin: injected: connection reset");
  EXPECT_EQ(stats.files_copied, 2);
  EXPECT_EQ(stats.files_failed, 1);
  EXPECT_EQ(AllFilesUnder(prefix_dir_),
            (std::set<std::string>{"a.txt", "sub/deep/c with space%.txt"}));
  int failed_events = 0;
  for (const SyncEvent& e : events_) failed_events += e.status.ok() ? 0 : 1;
  EXPECT_EQ(failed_events, 1);

  // Once the fault is gone, a rerun moves just that one file.
  store_->before_transfer = nullptr;
  s = Sync(SyncDirection::kUpload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 1);
  EXPECT_EQ(Tree(prefix_dir_), Tree(local_));
}

TEST_F(TreeSyncTest, OverallErrorNamesTheFirstThreeFailures) {
  for (int i = 0; i < 5; ++i) Write(local_ + "/f" + std::to_string(i), "data");
  store_->before_transfer = [](const std::string&) { return IoError("disk full"); };
  workers_ = 1;  // deterministic order
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "5 of 5 files failed: upload " + local_ + "/f0: disk full; upload " +
                             local_ + "/f1: disk full; upload " + local_ + "/f2: disk full; ...");
}

TEST_F(TreeSyncTest, DownloadRefusesKeysThatWouldLeaveTheDirectory) {
  Write(prefix_dir_ + "/ok.txt", "fine");
  store_->list = [this](const std::string& uri) -> Result<std::vector<ObjectInfo>> {
    TY_ASSIGN_OR_RETURN(std::vector<ObjectInfo> v, store_->inner().List(uri));
    v.push_back({"../evil", 4, system_clock::now(), ""});
    v.push_back({"folder/", 0, system_clock::now(), ""});  // a console "folder" marker
    return v;
  };
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kDownload, &stats);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_EQ(stats.files_copied, 1);
  EXPECT_EQ(stats.files_failed, 1);
  EXPECT_EQ(stats.files_skipped, 1);
  EXPECT_FALSE(PathExists(tmp_.path() + "/evil"));
  EXPECT_EQ(Tree(local_), (std::map<std::string, std::string>{{"ok.txt", "fine"}}));
}

TEST_F(TreeSyncTest, ListingFailureStopsBeforeAnythingMoves) {
  WriteLocalTree();
  store_->list = [](const std::string&) -> Result<std::vector<ObjectInfo>> {
    return NotFound("bucket 'b' does not exist (NoSuchBucket)");
  };
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(stats.files_copied, 0);
  EXPECT_TRUE(events_.empty());
  EXPECT_FALSE(PathExists(prefix_dir_));
}

TEST_F(TreeSyncTest, UploadFromAMissingDirectoryIsAnErrorNotAnEmptySource) {
  Write(prefix_dir_ + "/precious", "p");
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats, /*delete_extra=*/true);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(PathExists(prefix_dir_ + "/precious"));
  // A download creates it.
  s = Sync(SyncDirection::kDownload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*ReadFile(local_ + "/precious"), "p");
}

TEST_F(TreeSyncTest, LocalSymlinksToFilesAreFollowedOthersSkipped) {
  Write(local_ + "/real.txt", "real");
  Write(tmp_.Sub("outside/o.txt"), "outside");
  ASSERT_EQ(::symlink(tmp_.Sub("outside/o.txt").c_str(), (local_ + "/link.txt").c_str()), 0);
  ASSERT_EQ(::symlink(tmp_.Sub("outside").c_str(), (local_ + "/dirlink").c_str()), 0);
  ASSERT_EQ(::symlink(tmp_.Sub("nowhere").c_str(), (local_ + "/dangling").c_str()), 0);
  ASSERT_EQ(::mkfifo((local_ + "/fifo").c_str(), 0600), 0);
  TreeSyncStats stats;
  Status s = Sync(SyncDirection::kUpload, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 2);
  EXPECT_EQ(stats.files_skipped, 3);
  EXPECT_EQ(Tree(prefix_dir_),
            (std::map<std::string, std::string>{{"link.txt", "outside"}, {"real.txt", "real"}}));
}

TEST_F(TreeSyncTest, AtMostWorkersTransfersAtOnce) {
  for (int i = 0; i < 24; ++i) Write(local_ + "/f" + std::to_string(i), "data");
  std::atomic<int> running{0}, peak{0};
  store_->before_transfer = [&](const std::string&) {
    int now = ++running;
    int seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    --running;
    return Status::Ok();
  };
  workers_ = 3;
  TreeSyncStats stats;
  ASSERT_TRUE(Sync(SyncDirection::kUpload, &stats).ok());
  EXPECT_EQ(stats.files_copied, 24);
  EXPECT_LE(peak.load(), 3);
  EXPECT_GE(peak.load(), 2);
}

// A child process syncs and is SIGKILLed when its 20th transfer starts (8 workers: at least 12
// have finished, up to 7 are mid-copy); every destination file is then whole, and a rerun in
// this process completes the mirror, copying only what had not landed.
void KillMidwayThenRerun(TreeSyncTest* t, SyncDirection direction, const std::string& src_dir,
                         const std::string& dst_dir) {
  for (int i = 0; i < 64; ++i) {
    std::string data(256 * 1024, static_cast<char>('a' + i % 26));
    Write(src_dir + "/part-" + std::to_string(i / 8) + "/f" + std::to_string(i), data);
  }
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    HookedStore store({t->tmp_.Sub("bucket")});
    std::atomic<int> started{0};
    store.before_transfer = [&](const std::string&) {
      if (++started == 20) ::kill(::getpid(), SIGKILL);
      return Status::Ok();
    };
    TreeSyncOptions o;
    o.direction = direction;
    o.local_dir = t->local_;
    o.uri = t->uri_;
    o.workers = 8;
    (void)SyncTree(store, o);
    ::_exit(0);  // not reached: killed on the 20th transfer
  }
  int wstatus = 0;
  ASSERT_EQ(::waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus));

  // Whatever landed is whole (a partial copy can only be a hidden temp file).
  size_t landed = 0;
  for (const auto& [rel, contents] : Tree(dst_dir)) {
    ++landed;
    EXPECT_EQ(contents, *ReadFile(src_dir + "/" + rel)) << rel;
  }
  EXPECT_GE(landed, 12u);
  EXPECT_LT(landed, 64u);

  TreeSyncStats stats;
  Status s = t->Sync(direction, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_unchanged, static_cast<int64_t>(landed));
  EXPECT_EQ(stats.files_copied, 64 - static_cast<int64_t>(landed));
  EXPECT_EQ(Tree(dst_dir), Tree(src_dir));
  s = t->Sync(direction, &stats);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(stats.files_copied, 0);
}

TEST_F(TreeSyncTest, UploadKilledMidwayThenRerunConverges) {
  KillMidwayThenRerun(this, SyncDirection::kUpload, local_, prefix_dir_);
}

TEST_F(TreeSyncTest, DownloadKilledMidwayThenRerunConverges) {
  KillMidwayThenRerun(this, SyncDirection::kDownload, prefix_dir_, local_);
}

}  // namespace
}  // namespace ty::storage
