#include "storage/object_store.h"

#include "storage/file_object_store.h"
#include "storage/uri.h"

namespace ty::storage {

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const std::string& uri,
                                                     const std::vector<std::string>& file_roots) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme == "file") {
    return std::unique_ptr<ObjectStore>(std::make_unique<FileObjectStore>(file_roots));
  }
  return InvalidArgument("s3:// URIs are not supported yet (file:// only)");
}

}  // namespace ty::storage
