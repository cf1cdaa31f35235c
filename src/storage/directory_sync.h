// DirectorySync: mirrors a local directory to an object-store URI while files
// in it are created, changed and deleted (the checkpoint sync of managed spot
// training: CheckpointConfig.LocalPath -> CheckpointConfig.S3Uri).
//
// What it promises:
//  - A file is uploaded only once it is whole: after its writer closed it
//    (inotify IN_CLOSE_WRITE / IN_MOVED_TO), or, in the fallback scan, once its
//    size and mtime held still across two scans and no writer was seen.
//  - The stored copy is never torn: each object is committed atomically
//    (ObjectStore::UploadFileIf) and only if the local file did not change while
//    it was copied; a file that changed is retried after its next close.
//    While it copies a file the sync holds a read lease on it (fcntl
//    F_SETLEASE, granted to the file's owner or with CAP_LEASE; without one a
//    file must also have been quiet for `settle`): a writer that opens the
//    file meanwhile waits until that one copy ends (at most the kernel's
//    lease-break-time, 45 s by default), and the copy is discarded.
//  - Deleting a local file deletes its object; only objects this sync knows
//    (restored at start or uploaded by it) are ever deleted, so several hosts
//    may share one URI with distinct file names. Nothing is deleted while
//    local_dir itself is missing.
//  - Symlinks are neither followed nor uploaded (reported once each).
//  - Failures (disk full, permissions, a file vanishing mid-upload) never stop
//    the sync: they are reported through `on_error` and retried with backoff.
//
// Threads: Start() runs a background thread that does all the work (inotify,
// rescans, transfers one file at a time); Flush() and Stop() may be called
// from another thread (not concurrently with each other). on_progress and
// on_error run on that background thread (on Flush()'s caller after Stop()).
// Lease breaks are signalled with SIGURG (ignored by default), aimed at that
// thread, which blocks it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "storage/object_store.h"

namespace ty::storage {

struct SyncProgress {
  int64_t synced_at_ms = 0;  // wall-clock time the batch was committed
  int files_uploaded = 0;
  int objects_deleted = 0;
  uint64_t bytes_uploaded = 0;
};

struct DirectorySyncOptions {
  std::string local_dir;  // watched recursively
  std::string uri;        // destination prefix (ends with '/')
  // Events are gathered this long before a batch is uploaded (debounce).
  std::chrono::milliseconds settle{100};
  // Full rescan interval: catches anything inotify missed (or everything,
  // when inotify is unavailable).
  std::chrono::milliseconds scan_interval{5000};
  // Called after each batch that uploaded or deleted something.
  std::function<void(const SyncProgress&)> on_progress;
  // Called with a human-readable message for each failure (retried later).
  std::function<void(const std::string&)> on_error;
};

class DirectorySync {
 public:
  DirectorySync(DirectorySyncOptions options, std::unique_ptr<ObjectStore> store);
  ~DirectorySync();  // Stop()s
  DirectorySync(const DirectorySync&) = delete;
  DirectorySync& operator=(const DirectorySync&) = delete;

  // Records the current contents of local_dir as already in sync (they were
  // just restored from `uri`) and as known objects, then starts watching. A
  // local file the store lacks, or holds with another size, is uploaded (when
  // the store cannot be listed, everything counts as in sync). IoError when
  // the directory cannot be watched or scanned at all; FailedPrecondition when
  // called twice.
  Status Start();
  // Uploads everything that differs from the stored copy and deletes what was
  // removed, treating every file as complete (call it once the writers are
  // gone: after the training process exited). Waits at most `budget`
  // (failures are retried with backoff within it). OK when everything is in
  // sync at the end; otherwise the first error of this flush (e.g. IoError
  // "... No space left on device"), or Unavailable when time ran out first.
  // FailedPrecondition before Start(). Also works after Stop(), on the
  // caller's thread.
  Status Flush(std::chrono::milliseconds budget);
  // Stops the thread. Waits for the one transfer in progress, if any, never
  // for retries or backoff. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ty::storage
