#include "storage/tree_sync.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <thread>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "storage/uri.h"

namespace ty::storage {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

constexpr size_t kDeleteBatch = 1000;  // S3 DeleteObjects' limit per request
constexpr size_t kErrorsNamed = 3;
constexpr char kTempMarker[] = ".ty-tmp-";  // FileObjectStore's in-flight temp files

struct Entry {
  std::string key;
  uint64_t size = 0;
  Clock::time_point mtime;
};

bool IsTempName(const std::string& name) {
  return !name.empty() && name[0] == '.' && name.find(kTempMarker) != std::string::npos;
}

Clock::time_point MTime(const struct stat& st) {
  return Clock::from_time_t(st.st_mtim.tv_sec) +
         std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

// Relative, '/'-separated, no empty, "." or ".." component: safe to join under a directory.
bool IsSafeKey(const std::string& key) {
  if (key.empty() || key.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    size_t end = key.find('/', start);
    std::string_view part(key.data() + start,
                          (end == std::string::npos ? key.size() : end) - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string::npos) return true;
    start = end + 1;
  }
}

// Regular files under `root` (which exists and is a directory), sorted by key.
Status ListLocal(const std::string& root, std::vector<Entry>* out, int64_t* skipped) {
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return IoError("cannot list " + root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return IoError("cannot list " + root + ": " + ec.message());
    const fs::path& path = it->path();
    if (IsTempName(path.filename().string())) continue;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // removed while we walked
      return ErrnoStatus("cannot stat " + path.string(), errno);
    }
    if (S_ISDIR(st.st_mode)) continue;  // the iterator descends into it
    if (S_ISLNK(st.st_mode) && ::stat(path.c_str(), &st) != 0) {
      ++*skipped;  // dangling
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      ++*skipped;  // special file, or a symlinked directory (not followed: loops)
      continue;
    }
    out->push_back(
        {path.lexically_relative(root).string(), static_cast<uint64_t>(st.st_size), MTime(st)});
  }
  if (ec) return IoError("cannot list " + root + ": " + ec.message());
  std::sort(out->begin(), out->end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  return Status::Ok();
}

// Where each key of the store side lives: URIs built so that List, DownloadFile and
// DeleteObjects agree (file:// paths are percent-encoded, s3:// keys are taken as they are).
class StorePrefix {
 public:
  static Result<StorePrefix> Make(const std::string& uri) {
    TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
    StorePrefix p;
    p.file_path_ = parsed.scheme == "file" ? parsed.path : "";
    p.base_ = uri;
    if (p.base_.back() != '/') p.base_.push_back('/');
    if (parsed.scheme == "file" && p.file_path_.back() != '/') p.file_path_.push_back('/');
    return p;
  }
  const std::string& base() const { return base_; }
  std::string For(const std::string& key) const {
    return file_path_.empty() ? base_ + key : FileUriFromPath(file_path_ + key);
  }

 private:
  std::string base_;       // the URI, ending in '/'
  std::string file_path_;  // file:// only: the decoded path, ending in '/'
};

void SetMTime(const std::string& path, Clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  struct timespec times[2];
  times[0].tv_sec = 0;
  times[0].tv_nsec = UTIME_NOW;
  times[1].tv_sec = static_cast<time_t>(ns / 1000000000);
  times[1].tv_nsec = static_cast<long>(ns % 1000000000);
  if (times[1].tv_nsec < 0) {
    times[1].tv_nsec += 1000000000;
    times[1].tv_sec -= 1;
  }
  // Best effort: without it the next run sees a local file newer than the object, which for a
  // download means "in sync" anyway.
  (void)::utimensat(AT_FDCWD, path.c_str(), times, 0);
}

const char* ActionName(SyncAction a) {
  switch (a) {
    case SyncAction::kUpload:
      return "upload";
    case SyncAction::kDownload:
      return "download";
    case SyncAction::kDelete:
      return "delete";
  }
  return "?";
}

// Collects outcomes from the workers; reports each through on_event, one at a time.
class Ledger {
 public:
  Ledger(const TreeSyncOptions& options, TreeSyncStats* stats) : options_(options), stats_(stats) {}

  void Record(const SyncEvent& event) {
    MutexLock lock(&mu_);
    ++attempted_;
    if (!event.status.ok()) {
      ++stats_->files_failed;
      if (first_error_.ok()) first_error_ = event.status;
      if (named_.size() < kErrorsNamed) {
        const std::string& what =
            event.action == SyncAction::kDelete ? event.destination : event.source;
        named_.push_back(std::string(ActionName(event.action)) + " " + what + ": " +
                         event.status.message());
      }
    } else if (event.action == SyncAction::kDelete) {
      ++stats_->files_deleted;
    } else {
      ++stats_->files_copied;
      stats_->bytes_copied += event.bytes;
    }
    if (options_.on_event) options_.on_event(event);
  }

  Status Overall() {
    MutexLock lock(&mu_);
    if (first_error_.ok()) return Status::Ok();
    std::string msg = std::to_string(stats_->files_failed) + " of " + std::to_string(attempted_) +
                      " files failed: ";
    for (size_t i = 0; i < named_.size(); ++i) msg += (i ? "; " : "") + named_[i];
    if (stats_->files_failed > static_cast<int64_t>(named_.size())) msg += "; ...";
    return Status(first_error_.code(), msg);
  }

 private:
  const TreeSyncOptions& options_;
  Mutex mu_;
  TreeSyncStats* stats_ TY_PT_GUARDED_BY(mu_);
  int64_t attempted_ TY_GUARDED_BY(mu_) = 0;
  Status first_error_ TY_GUARDED_BY(mu_);
  std::vector<std::string> named_ TY_GUARDED_BY(mu_);
};

// Runs fn(i) for i in [0, n) on at most `workers` threads (the caller's included).
void ParallelFor(size_t n, int workers, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) fn(i);
  };
  size_t threads = std::min<size_t>(n, static_cast<size_t>(std::max(workers, 1)));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
}

}  // namespace

Status SyncTree(ObjectStore& store, const TreeSyncOptions& options, TreeSyncStats* stats_out) {
  TreeSyncStats scratch;
  TreeSyncStats* stats = stats_out != nullptr ? stats_out : &scratch;
  *stats = TreeSyncStats();
  if (options.local_dir.empty()) return InvalidArgument("no local directory given");
  if (options.uri.empty()) return InvalidArgument("no store URI given");
  TY_ASSIGN_OR_RETURN(StorePrefix prefix, StorePrefix::Make(options.uri));
  const bool upload = options.direction == SyncDirection::kUpload;
  // Operations use the absolute path (immune to a cwd change); events show the user's.
  const std::string local_abs = Absolutize(options.local_dir, CurrentDir());

  std::vector<Entry> local;
  struct stat st;
  if (::stat(local_abs.c_str(), &st) != 0) {
    if (errno != ENOENT || upload) {
      if (errno == ENOENT)
        return NotFound("The local directory " + options.local_dir + " does not exist");
      return ErrnoStatus("cannot stat " + options.local_dir, errno);
    }
  } else if (!S_ISDIR(st.st_mode)) {
    return InvalidArgument(options.local_dir + " is not a directory");
  } else {
    TY_RETURN_IF_ERROR(ListLocal(local_abs, &local, &stats->files_skipped));
  }
  TY_ASSIGN_OR_RETURN(std::vector<ObjectInfo> listed, store.List(prefix.base()));
  std::vector<Entry> remote;
  remote.reserve(listed.size());
  for (ObjectInfo& o : listed) remote.push_back({std::move(o.key), o.size, o.mtime});
  listed = {};
  std::sort(remote.begin(), remote.end(),
            [](const Entry& a, const Entry& b) { return a.key < b.key; });

  const std::vector<Entry>& src = upload ? local : remote;
  const std::vector<Entry>& dst = upload ? remote : local;
  std::vector<const Entry*> copies;
  std::vector<const Entry*> extras;
  Ledger ledger(options, stats);
  const SyncAction copy_action = upload ? SyncAction::kUpload : SyncAction::kDownload;
  auto local_path = [&](const std::string& key, bool absolute) {
    return JoinPath(absolute ? local_abs : options.local_dir, key);
  };
  auto copy_event = [&](const Entry& e) {
    SyncEvent ev;
    ev.action = copy_action;
    ev.source = upload ? local_path(e.key, false) : prefix.For(e.key);
    ev.destination = upload ? prefix.For(e.key) : local_path(e.key, false);
    ev.bytes = e.size;
    ev.dry_run = options.dry_run;
    return ev;
  };

  size_t i = 0, j = 0;
  while (i < src.size() || j < dst.size()) {
    if (j == dst.size() || (i < src.size() && src[i].key < dst[j].key)) {
      const Entry& s = src[i++];
      if (!upload && !s.key.empty() && s.key.back() == '/') {
        ++stats->files_skipped;  // a "folder" marker object
      } else if (!upload && !IsSafeKey(s.key)) {
        SyncEvent ev = copy_event(s);
        ev.status = InvalidArgument("the key would land outside " + options.local_dir);
        ledger.Record(ev);
      } else {
        copies.push_back(&s);
      }
    } else if (i == src.size() || dst[j].key < src[i].key) {
      extras.push_back(&dst[j++]);
    } else {
      const Entry& s = src[i++];
      const Entry& d = dst[j++];
      if (s.size != d.size || s.mtime > d.mtime) {
        copies.push_back(&s);
      } else {
        ++stats->files_unchanged;
      }
    }
  }
  if (!options.delete_extra) extras.clear();

  if (options.dry_run) {
    for (const Entry* e : copies) ledger.Record(copy_event(*e));
    for (const Entry* e : extras) {
      SyncEvent ev;
      ev.action = SyncAction::kDelete;
      ev.destination = upload ? prefix.For(e->key) : local_path(e->key, false);
      ev.dry_run = true;
      ledger.Record(ev);
    }
    return ledger.Overall();
  }

  ParallelFor(copies.size(), options.workers, [&](size_t n) {
    const Entry& e = *copies[n];
    SyncEvent ev = copy_event(e);
    if (upload) {
      ev.status = store.UploadFile(local_path(e.key, true), prefix.For(e.key));
    } else {
      std::string path = local_path(e.key, true);
      ev.status = store.DownloadFile(prefix.For(e.key), path);
      if (ev.status.ok()) SetMTime(path, e.mtime);
    }
    ledger.Record(ev);
  });

  // Deletions last: an interrupted run never has removed something before its replacement
  // (a renamed file) was copied.
  if (upload) {
    for (size_t start = 0; start < extras.size(); start += kDeleteBatch) {
      size_t end = std::min(extras.size(), start + kDeleteBatch);
      std::vector<std::string> keys;
      keys.reserve(end - start);
      for (size_t k = start; k < end; ++k) keys.push_back(extras[k]->key);
      Status s = store.DeleteObjects(prefix.base(), keys);
      for (const std::string& key : keys) {
        SyncEvent ev;
        ev.action = SyncAction::kDelete;
        ev.destination = prefix.For(key);
        ev.status = s;
        ledger.Record(ev);
      }
    }
  } else {
    for (const Entry* e : extras) {
      SyncEvent ev;
      ev.action = SyncAction::kDelete;
      ev.destination = local_path(e->key, false);
      std::string path = local_path(e->key, true);
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        ev.status = ErrnoStatus("cannot delete " + path, errno);
      }
      ledger.Record(ev);
    }
  }
  return ledger.Overall();
}

}  // namespace ty::storage
