// S3ObjectStore: the s3:// ObjectStore, on any S3-compatible service (AWS, MinIO, s3rver),
// built on S3Client.
//
// "Under" a URI s3://b/K (K without a trailing slash) means the object K itself and every
// object whose key starts with K + "/" (never a sibling such as K + "2"); a URI ending in "/"
// names only the prefix; s3://b names the whole bucket. Keys ending in "/" (folder markers made
// by consoles) are not objects here: List and downloads skip them (Delete removes them).
//
// Owns one S3Client (pooled keep-alive connections) and a bounded transfer pool: at most
// settings.max_concurrency requests are in flight per store, across all callers. Large files
// move as parts: uploads of at least settings.multipart_threshold bytes are multipart uploads
// whose parts (settings.part_size, grown so a file needs at most 10,000 parts) are read with
// pread and sent in parallel; downloads of objects that large are parallel ranged GETs
// (If-Match on the ETag, so the object cannot change between ranges) written with pwrite into
// a preallocated temp file beside the destination, renamed into place when complete. Memory is
// bounded by the number of requests in flight, not by file sizes.
//
// Failures: a failed multipart upload is aborted (no orphaned parts); a failed download leaves
// no file under the destination name. Error codes follow S3Client's (s3_client.h).
//
// Thread contract: safe to call from several threads at once.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "storage/object_store.h"
#include "storage/s3_client.h"
#include "storage/s3_settings.h"

namespace ty::storage {

class S3ObjectStore : public ObjectStore {
 public:
  explicit S3ObjectStore(S3Settings settings, S3ClientOptions client_options = {});
  ~S3ObjectStore() override;
  S3ObjectStore(const S3ObjectStore&) = delete;
  S3ObjectStore& operator=(const S3ObjectStore&) = delete;

  // NotFound "No S3 objects found under S3 URL <uri>" (AWS's wording) when nothing is there;
  // InvalidArgument for a key that would land outside `local_dir` ("..", absolute) or a
  // destination path leading through a symlink out of it. The local copies are not fsynced.
  Status DownloadPrefix(const std::string& uri, const std::string& local_dir) override;
  // NotFound when the object does not exist; InvalidArgument for a URI naming no object
  // (bucket only, or ending in "/").
  Status DownloadFile(const std::string& uri, const std::string& local_path) override;
  // Small files: one PUT with Content-MD5. Large files: multipart (see above).
  Status UploadFile(const std::string& local_file, const std::string& uri) override;
  // Small files are read into memory first, `still_valid` is asked, then exactly those bytes are
  // PUT. Large files: `still_valid` is asked (on a transfer thread) after every part is stored
  // and before CompleteMultipartUpload; false aborts the upload (Unavailable).
  Status UploadFileIf(const std::string& local_file, const std::string& uri,
                      const std::function<bool()>& still_valid) override;
  // Every file is uploaded in parallel; the first failure stops the rest (files already stored
  // stay). Symlinks are followed only when they resolve inside `local_dir`.
  Status UploadDirectory(const std::string& local_dir, const std::string& uri) override;
  // Lists and batch-deletes (DeleteObjects, 1000 keys per request, batches in parallel).
  Status Delete(const std::string& uri) override;
  Status DeleteObjects(const std::string& base_uri, const std::vector<std::string>& keys) override;
  Result<std::vector<ObjectInfo>> List(const std::string& uri) override;
  Result<std::string> Read(const std::string& uri, uint64_t offset, std::optional<uint64_t> length,
                           uint64_t max_bytes) override;
  // Always FailedPrecondition: S3 objects have no local path.
  Result<std::string> ResolveLocalPath(const std::string& uri) override;

  S3Client& client() { return *client_; }

 private:
  class Pool;
  struct Listed;
  Result<std::vector<Listed>> ListUnder(const std::string& bucket, const std::string& key,
                                        bool include_markers);

  S3Settings settings_;
  std::unique_ptr<S3Client> client_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace ty::storage
