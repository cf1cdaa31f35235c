#include "storage/object_store.h"

#include "storage/file_object_store.h"
#include "storage/uri.h"

namespace ty::storage {

Status ObjectStore::DeleteObjects(const std::string& base_uri,
                                  const std::vector<std::string>& keys) {
  std::string base = base_uri;
  if (!base.empty() && base.back() != '/') base.push_back('/');
  for (const std::string& key : keys) TY_RETURN_IF_ERROR(Delete(base + key));
  return Status::Ok();
}

Result<std::string> ObjectStore::Read(const std::string& uri, uint64_t, std::optional<uint64_t>,
                                      uint64_t) {
  return FailedPrecondition("this store cannot read " + uri + " in place");
}

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const std::string& uri,
                                                     const std::vector<std::string>& file_roots) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme == "file") {
    return std::unique_ptr<ObjectStore>(std::make_unique<FileObjectStore>(file_roots));
  }
  return FailedPrecondition("s3:// URIs need S3 settings (use ObjectStores)");
}

}  // namespace ty::storage
