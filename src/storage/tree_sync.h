// TreeSync: one-shot mirroring of a local directory and a store prefix, in either direction,
// incrementally like `aws s3 sync` (the engine behind `trainyard storage sync`).
//
// What moves: a source file is copied when the destination lacks it, when the sizes differ, or
// when the source is newer (upload: local mtime > the object's mtime/LastModified; download: the
// object's mtime > local mtime). A download sets the local file's mtime to the object's, so the
// next run finds nothing to do. With `delete_extra`, destination entries the source lacks are
// removed (stores: ObjectStore::DeleteObjects, 1000 keys per call; local: unlink(2), directories
// are left). Deletions run after every copy has finished.
//
// Guarantees:
//  - Every file lands whole or not at all (ObjectStore::UploadFile / DownloadFile are atomic), so
//    a sync killed at any point leaves the destination a mix of old and new whole files, and a
//    rerun finishes the job.
//  - Bounded parallelism: at most `workers` transfers at once (a large file may use more
//    connections inside the store). Bounded memory: file contents are never held here; only the
//    two listings (key, size, mtime per file) are.
//  - A failing file does not stop the others: each failure is reported through `on_event` and
//    counted, and the overall status names the first few.
//
// Local side: regular files under `local_dir`, recursively, with '/'-separated relative paths as
// keys. Symlinks to files are followed; symlinked directories, special files and the hidden temp
// files of in-flight transfers (".<name>.ty-tmp-XXXXXX") are skipped. An upload needs
// `local_dir` to exist (so a typo cannot empty the destination with `delete_extra`); a download
// creates it.
// Store side: every object ObjectStore::List returns under `uri` + "/". On download, keys ending
// in '/' (folder markers) are skipped and keys with "", "." or ".." components fail (per file).
// Unlike `aws s3 sync`, a download compares times in the same direction as an upload (the
// object newer than the local file), as the first paragraph says.
//
// Threads: SyncTree blocks the caller and runs up to `workers` threads of its own; `on_event` is
// called from them, one call at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "storage/object_store.h"

namespace ty::storage {

enum class SyncDirection {
  kUpload,    // local_dir -> uri
  kDownload,  // uri -> local_dir
};

enum class SyncAction { kUpload, kDownload, kDelete };

// One file's outcome, as `aws s3 sync` prints it ("upload: a to s3://b/a").
struct SyncEvent {
  SyncAction action = SyncAction::kUpload;
  std::string source;       // local path (local_dir joined with the key) or URI; for kDelete, ""
  std::string destination;  // for kDelete, what was (or would be) deleted
  uint64_t bytes = 0;       // the source's listed size (0 for kDelete)
  bool dry_run = false;     // planned, not done
  Status status;            // not ok: this file failed (and nothing else happened to it)
};

struct TreeSyncOptions {
  SyncDirection direction = SyncDirection::kUpload;
  std::string local_dir;      // as the user wrote it (relative to the cwd is fine); shown in events
  std::string uri;            // the store prefix; a trailing '/' is optional
  bool delete_extra = false;  // remove destination entries absent at the source (default off)
  bool dry_run = false;       // report what would happen, change nothing (default off)
  int workers = 16;           // transfers at once (default 16; values < 1 mean 1)
  // Called once per file copied, deleted or failed (and per planned action in a dry run).
  std::function<void(const SyncEvent&)> on_event;
};

// In a dry run, copied and deleted count what would have been.
struct TreeSyncStats {
  int64_t files_copied = 0;
  uint64_t bytes_copied = 0;
  int64_t files_deleted = 0;
  int64_t files_unchanged = 0;
  int64_t files_failed = 0;
  int64_t files_skipped = 0;  // local entries that are not syncable (special files, bad keys)
};

// Runs one sync of `store` (which must serve options.uri). `stats`, when given, is filled in
// whatever happens. Errors, before anything is changed: InvalidArgument for an empty local_dir
// or a malformed uri, an upload from something that is not a directory; NotFound for an upload
// from a missing local_dir; listing either side failed (that error, e.g. NotFound for a missing
// bucket). After: when some files failed, the first failure's code with the message
// "N of M files failed: <action> <path>: <why>; ..." naming at most 3.
Status SyncTree(ObjectStore& store, const TreeSyncOptions& options, TreeSyncStats* stats = nullptr);

}  // namespace ty::storage
