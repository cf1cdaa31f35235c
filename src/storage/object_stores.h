// ObjectStores: the one place that turns a URI into the store serving it. Built once per process
// (server, agent, CLI) from a StorageConfig; the S3 store is created on first use and kept, so
// its connections are reused across channels, checkpoints and artifacts.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "storage/object_store.h"
#include "storage/s3_settings.h"

namespace ty::storage {

struct StorageConfig {
  std::vector<std::string> file_roots;  // where file:// URIs may point
  std::optional<S3Settings> s3;         // nullopt: s3:// URIs are refused
};

nlohmann::json StorageConfigToJson(const StorageConfig& c);  // carries the S3 secret
Result<StorageConfig> StorageConfigFromJson(const nlohmann::json& j);

// A new store for `uri`'s scheme (its own connections), for callers that own one store per use
// (the agent: a channel, the checkpoint sync, the artifacts). Errors as ObjectStores::For.
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const std::string& uri,
                                                     const StorageConfig& config);

class ObjectStores {
 public:
  explicit ObjectStores(StorageConfig config);
  ~ObjectStores();

  // The store for `uri`'s scheme. InvalidArgument for a malformed URI; FailedPrecondition for
  // s3:// without S3 settings. The pointer lives as long as this object. Thread-safe.
  Result<ObjectStore*> For(const std::string& uri);

  const StorageConfig& config() const { return config_; }

 private:
  StorageConfig config_;
  Mutex mu_;
  std::unique_ptr<ObjectStore> file_ TY_GUARDED_BY(mu_);
  std::unique_ptr<ObjectStore> s3_ TY_GUARDED_BY(mu_);
};

}  // namespace ty::storage
