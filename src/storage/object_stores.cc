#include "storage/object_stores.h"

#include "storage/file_object_store.h"
#include "storage/s3_object_store.h"
#include "storage/uri.h"

namespace ty::storage {

nlohmann::json StorageConfigToJson(const StorageConfig& c) {
  nlohmann::json j = {{"file_roots", c.file_roots}};
  if (c.s3) j["s3"] = S3SettingsToJson(*c.s3);
  return j;
}

Result<StorageConfig> StorageConfigFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return InvalidArgument("storage config must be a JSON object");
  StorageConfig c;
  if (j.contains("file_roots") && j["file_roots"].is_array()) {
    for (const auto& r : j["file_roots"]) {
      if (r.is_string()) c.file_roots.push_back(r.get<std::string>());
    }
  }
  if (j.contains("s3") && !j["s3"].is_null()) {
    TY_ASSIGN_OR_RETURN(S3Settings s3, S3SettingsFromJson(j["s3"]));
    c.s3 = std::move(s3);
  }
  return c;
}

Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const std::string& uri,
                                                     const StorageConfig& config) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme == "file") {
    return std::unique_ptr<ObjectStore>(std::make_unique<FileObjectStore>(config.file_roots));
  }
  if (!config.s3) return FailedPrecondition("cannot use " + uri + ": no S3 store is configured");
  return std::unique_ptr<ObjectStore>(std::make_unique<S3ObjectStore>(*config.s3));
}

ObjectStores::ObjectStores(StorageConfig config) : config_(std::move(config)) {}
ObjectStores::~ObjectStores() = default;

Result<ObjectStore*> ObjectStores::For(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  MutexLock lock(&mu_);
  if (parsed.scheme == "file") {
    if (!file_) file_ = std::make_unique<FileObjectStore>(config_.file_roots);
    return file_.get();
  }
  if (!config_.s3) {
    return FailedPrecondition("cannot use " + uri + ": no S3 store is configured");
  }
  if (!s3_) s3_ = std::make_unique<S3ObjectStore>(*config_.s3);
  return s3_.get();
}

}  // namespace ty::storage
