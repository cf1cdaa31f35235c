#include "storage/directory_sync.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "common/mutex.h"
#include "storage/uri.h"

namespace ty::storage {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstRetry{500};
// A final flush gives up on a file after this many failed attempts.
constexpr int kFlushAttempts = 3;
constexpr milliseconds kMaxRetry{5000};
// A failure that keeps recurring is reported again at most this often.
constexpr std::chrono::seconds kReportAgainAfter{30};
// Files found in a directory that appeared after its creation event was read have no writer
// history; they are rescanned this soon rather than a whole scan_interval later.
constexpr milliseconds kEarlyRescan{1000};

// Lease breaks are signalled; SIGURG is ignored by default and is aimed at the sync thread,
// which blocks it: a break is read back through F_GETLEASE instead.
constexpr int kLeaseSignal = SIGURG;

constexpr uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_CREATE | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                                IN_DONT_FOLLOW | IN_EXCL_UNLINK;

// One version of a local file, as far as stat(2) can tell them apart.
struct FileVersion {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileVersion&) const = default;
};

FileVersion VersionOf(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec};
}

std::string JoinRel(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// True when `rel` lies strictly beneath directory `dir` ("" is the root).
bool IsUnder(const std::string& rel, const std::string& dir) {
  if (dir.empty()) return !rel.empty();
  return rel.size() > dir.size() && rel.compare(0, dir.size(), dir) == 0 && rel[dir.size()] == '/';
}

std::string Seconds(milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

int64_t WallNanos() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

enum class Lease { kHeld, kWriterOpen, kUnavailable };

// A read lease proves, kernel-side, that nobody has the file open for writing now (the lease
// is refused while anyone does, a truncating open(2) included) and tells, through F_GETLEASE,
// whether a writer opened it since (the lease is then being broken). It is the one check that
// needs no timing: inotify and stat both lag the inode by a moment.
Lease TakeReadLease(int fd) {
  if (::fcntl(fd, F_SETSIG, kLeaseSignal) != 0) return Lease::kUnavailable;
  if (::fcntl(fd, F_SETLEASE, F_RDLCK) != 0) {
    // EACCES: not the file's owner and no CAP_LEASE; EINVAL: leases off or unsupported here.
    return errno == EAGAIN ? Lease::kWriterOpen : Lease::kUnavailable;
  }
  struct f_owner_ex owner = {F_OWNER_TID, ::gettid()};
  (void)::fcntl(fd, F_SETOWN_EX, &owner);
  return Lease::kHeld;
}

bool LeaseIntact(int fd) { return ::fcntl(fd, F_GETLEASE) == F_RDLCK; }

int64_t WallMillis() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the sync knows about one relative path.
struct Entry {
  bool known = false;                    // its object exists because of us (restored or uploaded)
  std::optional<FileVersion> stored;     // the local version that object was copied from
  bool pending = false;                  // may differ from the store: look at it next batch
  bool closed = false;                   // a writer closed it (or it was renamed in) since its
                                         // last change: it is whole
  bool writing = false;                  // a write was seen and no close since
  std::optional<FileVersion> last_scan;  // as the latest scan saw it
  SteadyClock::time_point last_scan_since{};  // when scans first saw that version
  bool scan_stable = false;                   // two scans far enough apart saw the same version
  uint64_t generation = 0;                    // bumped by every inotify event naming the path
  SteadyClock::time_point pending_since{};    // when events made it pending
  int failures = 0;                           // consecutive failed attempts
  milliseconds backoff{0};
  SteadyClock::time_point retry_at{};  // not before this (failure backoff)
  SteadyClock::time_point reported_at{};
};

struct BatchResult {
  SyncProgress progress;
  Status first_error;
  bool root_missing = false;
};

}  // namespace

struct DirectorySync::Impl {
  Impl(DirectorySyncOptions o, std::unique_ptr<ObjectStore> s)
      : options(std::move(o)), store(std::move(s)) {}

  // --- Set once by Start(), then read-only.
  DirectorySyncOptions options;
  std::unique_ptr<ObjectStore> store;
  std::string root;      // local_dir, resolved
  std::string base_uri;  // ends with '/'
  bool file_scheme = false;
  UniqueFd inotify;  // invalid when inotify is unavailable: scans only
  UniqueFd wake;     // eventfd: Flush() and Stop() poke the thread through it

  // --- Owned by the sync thread (or by Flush() once the thread is gone).
  ino_t root_ino = 0;
  std::map<int, std::string> wd_to_dir;
  std::map<std::string, int> dir_to_wd;
  std::map<std::string, Entry> entries;
  std::map<std::string, bool> dirs_to_scan;  // dir -> its files are whole (moved in)
  bool full_scan_wanted = false;
  std::optional<SteadyClock::time_point> batch_due;
  std::optional<SteadyClock::time_point> retry_due;
  SteadyClock::time_point next_scan{};
  std::set<std::string> reported;  // one-time reports already made (symlinks, limits)

  // --- Shared between the thread and Flush()/Stop().
  std::thread thread;
  std::atomic<bool> stop{false};
  bool started = false;
  struct FlushRequest {
    SteadyClock::time_point deadline;
    bool done = false;
    Status result;
  };
  Mutex mu;
  CondVar cv;
  // The request's fields too are read and written under `mu` only.
  std::shared_ptr<FlushRequest> flush_request TY_GUARDED_BY(mu);

  std::string Abs(const std::string& rel) const { return rel.empty() ? root : root + "/" + rel; }

  std::string ObjectUri(const std::string& rel) const {
    if (!file_scheme) return base_uri + rel;
    // FileUriFromPath("/a b") is "file:///a%20b": keep the encoded relative part.
    return base_uri + FileUriFromPath("/" + rel).substr(8);
  }

  void Error(const std::string& message) {
    if (options.on_error) options.on_error(message);
  }

  void ReportOnce(const std::string& key, const std::string& message) {
    if (reported.insert(key).second) Error(message);
  }

  void Poke() {
    uint64_t one = 1;
    (void)!::write(wake.get(), &one, sizeof(one));
  }

  // ---------------------------------------------------------------- watches

  void AddWatch(const std::string& rel_dir) {
    if (!inotify.valid()) return;
    int wd = ::inotify_add_watch(inotify.get(), Abs(rel_dir).c_str(), kWatchMask);
    if (wd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return;  // gone again; its parent's events tell
      if (errno == ENOSPC) {
        ReportOnce("watch-limit",
                   "checkpoint sync: the inotify watch limit is reached (fs.inotify."
                   "max_user_watches); directories beyond it are synced by the rescan every " +
                       Seconds(options.scan_interval));
      } else {
        ReportOnce("watch:" + rel_dir, "checkpoint sync: cannot watch " + Abs(rel_dir) + ": " +
                                           std::strerror(errno) +
                                           "; it is synced by the periodic rescan only");
      }
      return;
    }
    auto by_dir = dir_to_wd.find(rel_dir);
    if (by_dir != dir_to_wd.end() && by_dir->second != wd) wd_to_dir.erase(by_dir->second);
    auto by_wd = wd_to_dir.find(wd);
    if (by_wd != wd_to_dir.end() && by_wd->second != rel_dir) dir_to_wd.erase(by_wd->second);
    wd_to_dir[wd] = rel_dir;
    dir_to_wd[rel_dir] = wd;
  }

  // `rel_dir` left its place (moved or deleted): its watches would report under a stale path.
  void ForgetDirTree(const std::string& rel_dir) {
    for (auto it = dir_to_wd.begin(); it != dir_to_wd.end();) {
      if (it->first == rel_dir || IsUnder(it->first, rel_dir)) {
        if (inotify.valid()) ::inotify_rm_watch(inotify.get(), it->second);
        wd_to_dir.erase(it->second);
        it = dir_to_wd.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& [rel, e] : entries) {
      if (!IsUnder(rel, rel_dir)) continue;
      e.pending = true;
      e.closed = e.writing = false;
      ++e.generation;
    }
    dirs_to_scan.erase(rel_dir);
  }

  // ----------------------------------------------------------------- events

  void MarkBatchDue() {
    if (!batch_due) batch_due = SteadyClock::now() + options.settle;
  }

  void ApplyEvent(const struct inotify_event& ev) {
    if (ev.mask & IN_Q_OVERFLOW) {
      // Events were lost, and with them any close that would clear a writer flag: fall back on
      // what scans can tell for everything.
      for (auto& [rel, e] : entries) e.closed = e.writing = false;
      full_scan_wanted = true;
      return;
    }
    auto wd = wd_to_dir.find(ev.wd);
    if (wd == wd_to_dir.end()) return;  // a watch we already dropped
    const std::string dir = wd->second;
    if (ev.mask & IN_IGNORED) {
      auto d = dir_to_wd.find(dir);
      if (d != dir_to_wd.end() && d->second == ev.wd) dir_to_wd.erase(d);
      wd_to_dir.erase(wd);
      if (dir.empty()) full_scan_wanted = true;
      return;
    }
    if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
      // Subdirectories are handled through their parent's events; the root has no parent here.
      if (dir.empty()) full_scan_wanted = true;
      return;
    }
    if (ev.len == 0) return;
    const std::string rel = JoinRel(dir, ev.name);
    MarkBatchDue();
    if (ev.mask & IN_ISDIR) {
      if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) ForgetDirTree(rel);
      if (ev.mask & (IN_CREATE | IN_MOVED_TO)) {
        // Watch it now: files written into a new directory right away must not be missed.
        AddWatch(rel);
        dirs_to_scan[rel] = dirs_to_scan[rel] || (ev.mask & IN_MOVED_TO) != 0;
      }
      return;
    }
    Entry& e = entries[rel];
    ++e.generation;
    if (!e.pending) e.pending_since = SteadyClock::now();
    e.pending = true;
    if (ev.mask & IN_CREATE) {
      // A new name for an existing inode (link(2)) has no writer; a file just created has one.
      struct stat st;
      e.writing =
          !(::lstat(Abs(rel).c_str(), &st) == 0 && (!S_ISREG(st.st_mode) || st.st_nlink > 1));
      e.closed = false;
    }
    if (ev.mask & IN_MODIFY) {
      e.writing = true;
      e.closed = false;
    }
    if (ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
      e.writing = false;
      e.closed = true;
      e.retry_at = {};  // a new whole version deserves a prompt attempt, backoff or not
      // Its events have settled already (a batch found it mid-rewrite): upload this whole
      // version now. Waiting a full settle again would keep a file rewritten every `settle`
      // phase-locked with the batches and never stored.
      auto now = SteadyClock::now();
      if (now - e.pending_since >= options.settle)
        batch_due = std::min(batch_due.value_or(now), now);
    }
    if (ev.mask & (IN_DELETE | IN_MOVED_FROM)) e.writing = e.closed = false;
  }

  // Reads and applies every queued event without blocking.
  void DrainEvents() {
    if (!inotify.valid()) return;
    alignas(struct inotify_event) char buf[64 * 1024];
    for (;;) {
      ssize_t n = ::read(inotify.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
        ApplyEvent(*ev);
        off += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      }
    }
  }

  // ------------------------------------------------------------------ scans

  struct WalkOut {
    std::map<std::string, FileVersion> files;
    std::vector<std::string> unreadable_dirs;
  };

  // Records every regular file under `rel_dir` (symlinks are not followed), watching each
  // directory before reading it so nothing created meanwhile goes unnoticed.
  void Walk(const std::string& rel_dir, WalkOut* out) {
    AddWatch(rel_dir);
    int fd = ::open(Abs(rel_dir).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
        out->unreadable_dirs.push_back(rel_dir);
        ReportOnce("read:" + rel_dir, "checkpoint sync: cannot read " + Abs(rel_dir) + ": " +
                                          std::strerror(errno) + "; its files are not synced");
      }
      return;
    }
    std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd), &::closedir);
    if (!d) {
      ::close(fd);
      out->unreadable_dirs.push_back(rel_dir);
      return;
    }
    std::vector<std::string> subdirs;
    while (struct dirent* de = ::readdir(d.get())) {
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      std::string rel = JoinRel(rel_dir, name);
      struct stat st;
      if (::fstatat(::dirfd(d.get()), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        subdirs.push_back(rel);
      } else if (S_ISREG(st.st_mode)) {
        out->files[rel] = VersionOf(st);
      } else if (S_ISLNK(st.st_mode)) {
        ReportOnce("symlink:" + rel, "checkpoint sync: skipping symlink " + Abs(rel) +
                                         " (symlinks are not followed or uploaded)");
      }
    }
    d.reset();
    for (const std::string& sub : subdirs) Walk(sub, out);
  }

  // Checks that local_dir is still there; re-watches it when it was replaced.
  bool CheckRoot() {
    struct stat st;
    if (::lstat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      ReportOnce("root-gone", "checkpoint sync: " + root + " is gone; no object is deleted from " +
                                  base_uri + " while it is missing");
      return false;
    }
    reported.erase("root-gone");
    if (st.st_ino != root_ino) {
      root_ino = st.st_ino;
      ForgetDirTree("");
      full_scan_wanted = true;
    }
    return true;
  }

  // How long a version must hold between two scans to count as stable.
  milliseconds StableFor() const { return std::min(kEarlyRescan, options.scan_interval); }

  // A scan saw `version` of `e`'s file now.
  static void Observe(Entry& e, const FileVersion& version, SteadyClock::time_point now,
                      milliseconds stable_for) {
    if (e.last_scan != version) {
      e.last_scan = version;
      e.last_scan_since = now;
      e.scan_stable = false;
      return;
    }
    e.scan_stable = now - e.last_scan_since >= stable_for;
  }

  void FullScan() {
    full_scan_wanted = false;
    if (!CheckRoot()) return;
    ScanNewDirs();  // first, so a moved-in directory's files count as whole
    const auto now = SteadyClock::now();
    WalkOut out;
    Walk("", &out);
    auto in_unreadable = [&](const std::string& rel) {
      return std::any_of(out.unreadable_dirs.begin(), out.unreadable_dirs.end(),
                         [&](const std::string& d) { return d.empty() || IsUnder(rel, d); });
    };
    for (auto it = entries.begin(); it != entries.end();) {
      Entry& e = it->second;
      auto f = out.files.find(it->first);
      if (f == out.files.end()) {
        if (in_unreadable(it->first)) {
          ++it;
          continue;
        }
        e.last_scan.reset();
        e.scan_stable = false;
        if (!e.known && e.failures == 0) {
          it = entries.erase(it);
          continue;
        }
        e.pending = true;  // processing finds it gone and deletes its object
      } else {
        Observe(e, f->second, now, StableFor());
        if (!(e.known && e.stored == f->second)) e.pending = true;
      }
      ++it;
    }
    for (const auto& [rel, version] : out.files) {
      if (entries.count(rel) != 0) continue;
      Entry& e = entries[rel];
      Observe(e, version, now, StableFor());
      e.pending = true;
    }
  }

  // Scans directories that appeared since the last batch (created or moved in).
  void ScanNewDirs() {
    auto dirs = std::move(dirs_to_scan);
    dirs_to_scan.clear();
    const auto now = SteadyClock::now();
    bool early_rescan = false;
    for (const auto& [dir, moved_in] : dirs) {
      WalkOut out;
      Walk(dir, &out);
      for (const auto& [rel, version] : out.files) {
        Entry& e = entries[rel];
        if (e.known && e.stored == version) continue;
        e.pending = true;
        if (moved_in) {
          e.closed = true;
          e.writing = false;
        } else if (!e.closed && !e.writing) {
          // Written before its directory was watched: no writer history, so it must hold still
          // across two scans; the next one comes early.
          Observe(e, version, now, StableFor());
          early_rescan = true;
        }
      }
    }
    if (early_rescan) {
      next_scan = std::min(next_scan, now + StableFor());
    }
  }

  // ---------------------------------------------------------------- batches

  void Fail(const std::string& rel, Entry& e, const std::string& what, const Status& s,
            BatchResult* result) {
    auto now = SteadyClock::now();
    ++e.failures;
    e.backoff = e.failures == 1 ? kFirstRetry : std::min(e.backoff * 2, kMaxRetry);
    e.retry_at = now + e.backoff;
    std::string message =
        "checkpoint sync: " + what + ": " + s.message() + "; will retry in " + Seconds(e.backoff);
    if (result->first_error.ok())
      result->first_error = Status(s.code(), "checkpoint sync: " + what + ": " + s.message());
    if (e.failures == 1 || now - e.reported_at >= kReportAgainAfter) {
      e.reported_at = now;
      Error(message);
    }
  }

  void Succeeded(Entry& e) {
    e.failures = 0;
    e.backoff = milliseconds(0);
    e.retry_at = {};
  }

  bool Ready(const Entry& e, const FileVersion& v, bool flushing) const {
    if (flushing) return true;
    if (e.writing) return false;
    return e.closed || (e.scan_stable && e.last_scan == v);
  }

  // Without a lease: the file counts as quiet once its last change is `settle` old. (A clock
  // that went backwards cannot tell; the other checks still apply.)
  bool QuietLongEnough(const FileVersion& v) const {
    int64_t age_ns = WallNanos() - v.ctime_ns;
    return age_ns < 0 ||
           age_ns >= std::chrono::duration_cast<std::chrono::nanoseconds>(options.settle).count();
  }

  // Copies one file to its object, committing only if nobody wrote it meanwhile. The read
  // lease is the proof; the writer flag, the event generation and the re-stat by path and by
  // fd back it up (and stand alone, with a quiet period, where leases are unavailable).
  void Upload(const std::string& rel, bool flushing, BatchResult* result) {
    // Every event up to now is applied before the file is opened: a writer that reopened it
    // since the batch began makes it not ready; a later write bumps the generation.
    DrainEvents();
    Entry& e = entries[rel];
    if (!flushing && e.writing) return;
    const std::string abs = Abs(rel);
    UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st;
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0) {
      if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) return;  // next batch deletes
      Fail(rel, e, "cannot read " + abs, ErrnoStatus("cannot open " + abs, errno), result);
      return;
    }
    if (!S_ISREG(st.st_mode)) return;
    const FileVersion version = VersionOf(st);
    if (e.known && e.stored == version) {
      e.pending = false;
      Succeeded(e);
      return;
    }
    const Lease lease = TakeReadLease(fd.get());
    if (!flushing) {  // once the writers are gone (Flush), a stray open fd must not hold it up
      if (lease == Lease::kWriterOpen) {
        if (e.closed) {
          // IN_CLOSE_WRITE is queued before the closing writer's open count drops: right after
          // the event the kernel may still see a writer. Look again shortly.
          e.retry_at = SteadyClock::now() + options.settle;
          return;
        }
        // Not whole yet. Its IN_CLOSE_WRITE clears the flag; without inotify, the next scan
        // tries again.
        if (inotify.valid()) e.writing = true;
        return;
      }
      if (lease == Lease::kUnavailable && !QuietLongEnough(version)) {
        e.retry_at = SteadyClock::now() + options.settle;
        return;
      }
    }
    const uint64_t generation = e.generation;
    bool changed = false;
    auto still_valid = [&]() {
      DrainEvents();  // events of writes before now, as far as they are queued
      struct stat by_path;
      struct stat by_fd;
      changed = (lease == Lease::kHeld && !LeaseIntact(fd.get())) ||
                entries[rel].generation != generation || ::lstat(abs.c_str(), &by_path) != 0 ||
                VersionOf(by_path) != version || ::fstat(fd.get(), &by_fd) != 0 ||
                VersionOf(by_fd) != version;
      return !changed;
    };
    const std::string uri = ObjectUri(rel);
    Status s = store->UploadFileIf(abs, uri, still_valid);
    if (lease == Lease::kHeld) (void)::fcntl(fd.get(), F_SETLEASE, F_UNLCK);  // unblock writers
    Entry& after = entries[rel];  // still the same element: events never erase entries
    if (s.ok()) {
      after.known = true;
      after.stored = version;
      after.pending = after.generation != generation;
      after.closed = after.closed && after.pending;
      Succeeded(after);
      ++result->progress.files_uploaded;
      result->progress.bytes_uploaded += static_cast<uint64_t>(version.size);
      return;
    }
    if (changed || s.code() == StatusCode::kNotFound) {
      // Not a failure: the file moved on while it was read (or vanished). Its next close, the
      // next scan, or (when it vanished) the deletion takes over; look again after `settle`.
      after.retry_at = SteadyClock::now() + options.settle;
      return;
    }
    Fail(rel, after, "cannot upload " + rel + " to " + uri, s, result);
  }

  void Remove(const std::string& rel, BatchResult* result) {
    Entry& e = entries[rel];
    const std::string uri = ObjectUri(rel);
    Status s = store->Delete(uri);
    if (!s.ok()) {
      Fail(rel, e, "cannot delete " + uri, s, result);
      return;
    }
    ++result->progress.objects_deleted;
    entries.erase(rel);
  }

  // Uploads what is ready and deletes what is gone, deletions first (a file replaced by a
  // directory of the same name must leave the store before the directory's files arrive).
  // Stops early at `deadline` or Stop().
  BatchResult RunBatch(bool flushing, SteadyClock::time_point deadline) {
    BatchResult result;
    DrainEvents();
    ScanNewDirs();
    const auto now = SteadyClock::now();
    std::vector<std::string> gone;
    std::vector<std::string> ready;
    std::vector<std::string> forget;
    for (auto& [rel, e] : entries) {
      if (!e.pending || e.retry_at > now) continue;
      struct stat st;
      const bool exists = ::lstat(Abs(rel).c_str(), &st) == 0;
      if (!exists && errno != ENOENT && errno != ENOTDIR) {
        Fail(rel, e, "cannot stat " + Abs(rel), ErrnoStatus("cannot stat " + Abs(rel), errno),
             &result);
        continue;
      }
      if (!exists || !S_ISREG(st.st_mode)) {
        // No file by that name any more (a directory's files come through its own events).
        if (exists && S_ISLNK(st.st_mode)) {
          ReportOnce("symlink:" + rel, "checkpoint sync: skipping symlink " + Abs(rel) +
                                           " (symlinks are not followed or uploaded)");
        }
        if (e.known) {
          gone.push_back(rel);
        } else {
          forget.push_back(rel);
        }
        continue;
      }
      FileVersion v = VersionOf(st);
      if (e.known && e.stored == v) {
        e.pending = false;
        Succeeded(e);
        continue;
      }
      if (Ready(e, v, flushing)) ready.push_back(rel);
    }
    for (const std::string& rel : forget) entries.erase(rel);
    if (!gone.empty() && !CheckRoot()) {
      // Everything looks deleted when local_dir itself went away: keep the objects.
      result.root_missing = true;
      gone.clear();
    }
    auto out_of_time = [&] { return stop.load() || SteadyClock::now() >= deadline; };
    for (const std::string& rel : gone) {
      if (out_of_time()) break;
      Remove(rel, &result);
    }
    for (const std::string& rel : ready) {
      if (out_of_time()) break;
      Upload(rel, flushing, &result);
    }
    retry_due.reset();
    const auto later = SteadyClock::now();
    for (const auto& [rel, e] : entries) {
      if (e.pending && e.retry_at > later && (!retry_due || e.retry_at < *retry_due)) {
        retry_due = e.retry_at;
      }
    }
    if (result.progress.files_uploaded > 0 || result.progress.objects_deleted > 0) {
      result.progress.synced_at_ms = WallMillis();
      if (options.on_progress) options.on_progress(result.progress);
    }
    return result;
  }

  size_t CountPending() const {
    return static_cast<size_t>(std::count_if(entries.begin(), entries.end(),
                                             [](const auto& kv) { return kv.second.pending; }));
  }

  // Waits until `until` unless woken (Stop(), Flush()) or, with `events`, an event arrives.
  void WaitUntil(SteadyClock::time_point until, bool events) {
    auto left = std::chrono::ceil<milliseconds>(until - SteadyClock::now());
    if (left.count() <= 0) return;
    struct pollfd fds[2] = {{wake.get(), POLLIN, 0}, {inotify.get(), POLLIN, 0}};
    int nfds = events && inotify.valid() ? 2 : 1;
    int timeout = static_cast<int>(std::min<int64_t>(left.count(), 60'000));
    if (::poll(fds, static_cast<nfds_t>(nfds), timeout) > 0 && (fds[0].revents & POLLIN)) {
      uint64_t value;
      (void)!::read(wake.get(), &value, sizeof(value));
    }
  }

  Status DoFlush(SteadyClock::time_point deadline) {
    DrainEvents();
    FullScan();
    std::map<std::string, int> failures_before;
    for (auto& [rel, e] : entries) {
      e.retry_at = {};
      failures_before[rel] = e.failures;
    }
    Status first_error;
    for (;;) {
      BatchResult r = RunBatch(/*flushing=*/true, deadline);
      if (first_error.ok() && !r.first_error.ok()) first_error = r.first_error;
      if (r.root_missing) {
        return IoError("checkpoint sync: " + root + " is gone; its objects were kept");
      }
      size_t left = CountPending();
      if (left == 0) return Status::Ok();
      // Writers are gone, so nothing will change: once every file left has
      // failed a few times in this flush (a full disk, permissions), more
      // retries only hold the job up.
      bool hopeless = !first_error.ok();
      for (const auto& [rel, e] : entries) {
        if (e.pending && e.failures - failures_before[rel] < kFlushAttempts) hopeless = false;
      }
      if (hopeless) return first_error;
      auto next = retry_due.value_or(SteadyClock::now() + options.settle);
      if (stop.load() || SteadyClock::now() >= deadline || next >= deadline) {
        if (!first_error.ok()) return first_error;
        return Unavailable("checkpoint sync: " + std::to_string(left) +
                           " file(s) still changing or not synced when the flush ran out of time");
      }
      WaitUntil(next, /*events=*/true);
      DrainEvents();
    }
  }

  void ServeFlush() {
    std::shared_ptr<FlushRequest> request;
    {
      MutexLock lock(&mu);
      request = std::move(flush_request);
      flush_request.reset();
    }
    if (!request) return;
    Status s = DoFlush(request->deadline);
    MutexLock lock(&mu);
    request->result = std::move(s);
    request->done = true;
    cv.SignalAll();
  }

  void Run() {
    sigset_t lease_signal;
    sigemptyset(&lease_signal);
    sigaddset(&lease_signal, kLeaseSignal);
    pthread_sigmask(SIG_BLOCK, &lease_signal, nullptr);
    while (!stop.load()) {
      ServeFlush();
      auto now = SteadyClock::now();
      auto wake_at = next_scan;
      if (batch_due) wake_at = std::min(wake_at, *batch_due);
      if (retry_due) wake_at = std::min(wake_at, *retry_due);
      if (full_scan_wanted) wake_at = now;
      // Once a batch is due, later events can wait in the kernel's queue (where a writer's
      // stream of IN_MODIFY coalesces) instead of waking this thread once per write.
      WaitUntil(wake_at, /*events=*/!batch_due);
      if (stop.load()) break;
      DrainEvents();
      now = SteadyClock::now();
      bool scan = full_scan_wanted || now >= next_scan;
      if (scan) {
        FullScan();
        next_scan = now + options.scan_interval;
      }
      bool due = scan || (batch_due && now >= *batch_due) || (retry_due && now >= *retry_due);
      if (due) {
        batch_due.reset();
        (void)RunBatch(/*flushing=*/false, SteadyClock::time_point::max());
      }
    }
  }
};

DirectorySync::DirectorySync(DirectorySyncOptions options, std::unique_ptr<ObjectStore> store)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(store))) {}

DirectorySync::~DirectorySync() { Stop(); }

Status DirectorySync::Start() {
  Impl& m = *impl_;
  if (m.started) return FailedPrecondition("checkpoint sync: already started");
  const std::string& dir = m.options.local_dir;
  Result<std::string> root = RealPath(dir);
  if (!root.ok())
    return IoError("checkpoint sync: cannot watch " + dir + ": " + root.status().message());
  m.root = *root;
  struct stat st;
  if (::lstat(m.root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return IoError("checkpoint sync: cannot watch " + dir + ": not a directory");
  }
  m.root_ino = st.st_ino;
  m.base_uri = m.options.uri;
  if (m.base_uri.empty() || m.base_uri.back() != '/') m.base_uri += '/';
  Result<StorageUri> parsed = ParseStorageUri(m.base_uri);
  if (!parsed.ok()) return parsed.status();
  m.file_scheme = parsed->scheme == "file";

  m.wake = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!m.wake.valid()) return ErrnoStatus("checkpoint sync: cannot create an eventfd", errno);
  m.inotify = UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!m.inotify.valid()) {
    m.Error(std::string("checkpoint sync: inotify is unavailable (") + std::strerror(errno) +
            "); changes are found by a rescan every " + Seconds(m.options.scan_interval));
  }

  Impl::WalkOut out;
  m.Walk("", &out);
  if (!out.unreadable_dirs.empty() && out.unreadable_dirs.front().empty()) {
    return IoError("checkpoint sync: cannot scan " + m.root);
  }
  // The restored files are in sync when the store holds an object of the same size; anything
  // else here (a local file the store lacks, a size mismatch) is uploaded.
  std::map<std::string, uint64_t> stored_sizes;
  Result<std::vector<ObjectInfo>> listed = m.store->List(m.base_uri);
  if (!listed.ok()) {
    m.Error("checkpoint sync: cannot list " + m.base_uri + ": " + listed.status().message() +
            "; assuming the restored files are in sync");
  } else {
    for (const ObjectInfo& o : *listed) stored_sizes[o.key] = o.size;
  }
  for (const auto& [rel, version] : out.files) {
    Entry& e = m.entries[rel];
    e.last_scan = version;
    e.last_scan_since = SteadyClock::now();
    auto object = stored_sizes.find(rel);
    if (!listed.ok() ||
        (object != stored_sizes.end() && object->second == static_cast<uint64_t>(version.size))) {
      e.known = true;
      e.stored = version;
      continue;
    }
    e.known = object != stored_sizes.end();
    e.pending = true;
    e.closed = true;  // there before the job started: nobody is writing it
    m.batch_due = SteadyClock::now();
  }
  m.next_scan = SteadyClock::now() + m.options.scan_interval;
  m.started = true;
  m.thread = std::thread([&m] { m.Run(); });
  return Status::Ok();
}

Status DirectorySync::Flush(std::chrono::milliseconds budget) {
  Impl& m = *impl_;
  if (!m.started) return FailedPrecondition("checkpoint sync: not started");
  auto deadline = SteadyClock::now() + budget;
  if (!m.thread.joinable()) return m.DoFlush(deadline);  // stopped: nobody else owns the state
  auto request = std::make_shared<Impl::FlushRequest>();
  request->deadline = deadline;
  const auto wait_until = deadline + std::chrono::milliseconds(100);
  MutexLock lock(&m.mu);
  m.flush_request = request;
  m.Poke();
  while (!request->done) {
    if (!m.cv.WaitUntil(&m.mu, wait_until) && !request->done) {
      // The thread is still inside one transfer; it finishes the flush on its own.
      return Unavailable("checkpoint sync: the flush did not finish within " + Seconds(budget));
    }
  }
  return request->result;
}

void DirectorySync::Stop() {
  Impl& m = *impl_;
  if (!m.thread.joinable()) return;
  m.stop.store(true);
  m.Poke();
  m.thread.join();
  m.stop.store(false);  // a later Flush() runs on the caller's thread
}

}  // namespace ty::storage
