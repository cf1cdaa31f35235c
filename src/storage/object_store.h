// ObjectStore: the one interface behind which every storage backend sits (ARCHITECTURE.md
// decision 6). Channel download, artifact upload and checkpoint sync are written against it.
// Objects are named by URIs; "everything under a URI" means the object itself or, for a
// prefix/directory, every object beneath it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace ty::storage {

struct ObjectInfo {
  std::string key;  // relative to the listed URI ("a/b.txt"); for a single object, its base name
  uint64_t size = 0;
  std::chrono::system_clock::time_point mtime;  // S3: LastModified
  std::string etag;                             // S3: the ETag without quotes; empty for file://
};

// Thread contract: implementations are safe to call from several threads at once (the transfer
// pool); concurrent writers of the same destination race, the last rename wins.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Copies everything under `uri` (one object or a tree) into `local_dir`, which is created.
  // Files keep their paths relative to `uri`; a single object lands as local_dir/<base name>.
  // NotFound "No objects found under <uri>" when nothing is there; InvalidArgument for an entry
  // that would land outside `local_dir` or a source outside the store's allowed area.
  virtual Status DownloadPrefix(const std::string& uri, const std::string& local_dir) = 0;

  // Copies the one object `uri` to the file `local_path` (parents created), atomically: a temp
  // file beside it renamed into place, so an interrupted download leaves no partial file under
  // that name. NotFound when the object does not exist. The file's mtime is left as written
  // (callers that compare times, like the sync engine, set it).
  virtual Status DownloadFile(const std::string& uri, const std::string& local_path) = 0;

  // Stores `local_file` as the object `uri`, atomically: readers see the old object or the
  // whole new one. Missing parent "directories" are created.
  virtual Status UploadFile(const std::string& local_file, const std::string& uri) = 0;

  // UploadFile with a last word before the commit: `still_valid` runs after the bytes are
  // copied and before the object becomes visible; when it returns false nothing is committed
  // and the result is Unavailable (the checkpoint sync uses it to drop a copy of a file that
  // changed while it was read). Stores without a cheap commit point may copy to a scratch
  // object first.
  virtual Status UploadFileIf(const std::string& local_file, const std::string& uri,
                              const std::function<bool()>& still_valid) = 0;

  // Uploads every file under `local_dir` to `uri`/<relative path>, each one atomically (the set
  // is not atomic). Symlinks are followed only when they resolve inside `local_dir`; others are
  // refused with InvalidArgument. An empty directory uploads nothing and succeeds.
  virtual Status UploadDirectory(const std::string& local_dir, const std::string& uri) = 0;

  // Removes everything under `uri`: the object `uri` itself and every object below `uri` + "/"
  // (never a sibling such as `uri` + "2"). Nothing there is not an error.
  virtual Status Delete(const std::string& uri) = 0;

  // Removes exactly the objects `base_uri`/<key> for each key (keys as List returns them, relative
  // to `base_uri`), in as few requests as the store allows (S3: DeleteObjects, 1000 per request).
  // Missing objects are not an error. The default calls Delete once per key.
  virtual Status DeleteObjects(const std::string& base_uri, const std::vector<std::string>& keys);

  // Every object under `uri`, sorted by key; empty when nothing is there.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& uri) = 0;

  // Reads the bytes [offset, offset + length) of the object `uri` into memory (fewer when the
  // object ends sooner; none at or past its end); nullopt length: to the end of the object.
  // NotFound when the object does not exist; ResourceExhausted, before anything is read, when
  // more than `max_bytes` would be returned. The default is FailedPrecondition (a store that
  // cannot read in place); S3 uses a ranged GET.
  virtual Result<std::string> Read(const std::string& uri, uint64_t offset,
                                   std::optional<uint64_t> length, uint64_t max_bytes);

  // For stores whose objects are local files: the resolved local path of `uri` (used to
  // bind-mount a channel read-only instead of copying). NotFound when it does not exist;
  // FailedPrecondition for stores without local paths.
  virtual Result<std::string> ResolveLocalPath(const std::string& uri) = 0;
};

// The store serving `uri`'s scheme. file:// gives a FileObjectStore confined to `file_roots`;
// s3:// is FailedPrecondition (this overload has no S3 settings; use ObjectStores); a malformed
// URI is InvalidArgument from ParseStorageUri.
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const std::string& uri,
                                                     const std::vector<std::string>& file_roots);

}  // namespace ty::storage
