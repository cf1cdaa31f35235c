// FileObjectStore: the file:// ObjectStore. Objects are files on the local file system, confined
// to a set of allowed roots: every operation resolves its target (symlinks included) and refuses
// anything outside the roots with InvalidArgument.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "storage/object_store.h"

namespace ty::storage {

// Owns only the list of roots; stateless otherwise, so safe to use from several threads.
class FileObjectStore : public ObjectStore {
 public:
  // roots: absolute directories; they need not exist yet (they are resolved on every call).
  explicit FileObjectStore(std::vector<std::string> roots);

  // The local copies are scratch (an instance's channel or checkpoint directory): they are not
  // fsynced, so a restore runs at the speed of cp -r.
  Status DownloadPrefix(const std::string& uri, const std::string& local_dir) override;
  // Copies into a hidden temp file beside `local_path` (as UploadFile does) and renames it into
  // place; like DownloadPrefix, nothing is fsynced. NotFound also when `uri` is a directory.
  Status DownloadFile(const std::string& uri, const std::string& local_path) override;
  // Copies into a hidden temp file beside the destination (".<name>.ty-tmp-XXXXXX", which List
  // and DownloadPrefix never show), fsyncs it, asks `still_valid`, then rename(2)s it into place
  // and fsyncs the directory. Any failure (ENOSPC, a false `still_valid`) removes the temp file.
  Status UploadFile(const std::string& local_file, const std::string& uri) override;
  Status UploadFileIf(const std::string& local_file, const std::string& uri,
                      const std::function<bool()>& still_valid) override;
  // Each file as UploadFile; the directories are fsynced once each, after all their files.
  Status UploadDirectory(const std::string& local_dir, const std::string& uri) override;
  // Also refuses (InvalidArgument) to delete an allowed root itself.
  Status Delete(const std::string& uri) override;
  // One unlink(2) per key, each key's directory resolved (within the roots) once for all the
  // keys in it; no listing. A key naming a directory is left alone (it is not an object).
  // InvalidArgument for a malformed key ("", "/a", "a/../b", "a//b") before anything is deleted.
  Status DeleteObjects(const std::string& base_uri, const std::vector<std::string>& keys) override;
  Result<std::vector<ObjectInfo>> List(const std::string& uri) override;
  Result<std::string> Read(const std::string& uri, uint64_t offset, std::optional<uint64_t> length,
                           uint64_t max_bytes) override;
  Result<std::string> ResolveLocalPath(const std::string& uri) override;

  const std::vector<std::string>& roots() const { return roots_; }

 private:
  // Parses a file:// URI and resolves it within the roots.
  Result<std::string> ResolveUri(const std::string& uri) const;

  std::vector<std::string> roots_;
};

}  // namespace ty::storage
