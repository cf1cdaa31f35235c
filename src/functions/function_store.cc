#include "functions/function_store.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/json.h"

namespace ty::functions {

using nlohmann::json;

namespace {

constexpr size_t kMaxConfigFileBytes = 1 << 20;

json ToJson(const FunctionConfig& c) {
  json policy = json::array();
  for (const auto& s : c.policy) {
    policy.push_back({{"sid", s.sid},
                      {"action", s.action},
                      {"principal", s.principal},
                      {"source_arn", s.source_arn},
                      {"source_account", s.source_account}});
  }
  return {{"account", c.account},
          {"name", c.name},
          {"runtime", c.runtime},
          {"handler", c.handler},
          {"role", c.role},
          {"description", c.description},
          {"timeout_seconds", c.timeout_seconds},
          {"memory_mb", c.memory_mb},
          {"environment", c.environment},
          {"tags", c.tags},
          {"code_sha256", c.code_sha256},
          {"code_size", c.code_size},
          {"code_version", c.code_version},
          {"last_modified_ms", c.last_modified_ms},
          {"revision_id", c.revision_id},
          {"policy", policy},
          {"policy_revision_id", c.policy_revision_id}};
}

Result<FunctionConfig> FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("not an object");
  FunctionConfig c;
  try {
    c.account = j.at("account").get<std::string>();
    c.name = j.at("name").get<std::string>();
    c.runtime = j.at("runtime").get<std::string>();
    c.handler = j.at("handler").get<std::string>();
    c.role = j.value("role", "");
    c.description = j.value("description", "");
    c.timeout_seconds = j.value("timeout_seconds", 3);
    c.memory_mb = j.value("memory_mb", 128);
    c.environment = j.value("environment", std::map<std::string, std::string>{});
    c.tags = j.value("tags", std::map<std::string, std::string>{});
    c.code_sha256 = j.value("code_sha256", "");
    c.code_size = j.value("code_size", int64_t{0});
    c.code_version = j.value("code_version", int64_t{1});
    c.last_modified_ms = j.value("last_modified_ms", int64_t{0});
    c.revision_id = j.value("revision_id", "");
    c.policy_revision_id = j.value("policy_revision_id", "");
    for (const auto& s : j.value("policy", json::array())) {
      c.policy.push_back({s.value("sid", ""), s.value("action", ""), s.value("principal", ""),
                          s.value("source_arn", ""), s.value("source_account", "")});
    }
  } catch (const json::exception& e) {
    return InvalidArgument(e.what());
  }
  return c;
}

Status Unpack(const std::string& zip, const std::string& dir, const ZipLimits& limits) {
  (void)RemoveAll(dir);
  auto r = UnpackZip(zip, dir, limits);
  if (!r.ok()) {
    (void)RemoveAll(dir);
    return r.status();
  }
  return Status::Ok();
}

}  // namespace

std::string Base64Sha256(const std::string& bytes) {
  std::string hex = Sha256Hex(bytes);
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    raw += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  }
  return Base64Encode(raw);
}

Status FunctionStore::NotFoundError(const std::string& account, const std::string& name) {
  return NotFound("Function not found: " + account + ":" + name);
}

std::string FunctionStore::Dir(const std::string& account, const std::string& name) const {
  return JoinPath(JoinPath(root_, account), name);
}

std::string FunctionStore::CodeDir(const FunctionConfig& c) const {
  return JoinPath(Dir(c.account, c.name), "code-" + std::to_string(c.code_version));
}

Result<std::unique_ptr<FunctionStore>> FunctionStore::Open(const std::string& data_dir,
                                                           std::vector<std::string>* warnings) {
  namespace fs = std::filesystem;
  std::string root = JoinPath(data_dir, "functions");
  TY_RETURN_IF_ERROR(MakeDirs(root, 0700));
  std::unique_ptr<FunctionStore> store(new FunctionStore(root));
  std::error_code ec;
  MutexLock lock(&store->mu_);
  for (fs::directory_iterator acc(root, ec), end; !ec && acc != end; acc.increment(ec)) {
    if (!acc->is_directory(ec)) continue;
    for (fs::directory_iterator fn(acc->path(), ec); !ec && fn != end; fn.increment(ec)) {
      std::string file = JoinPath(fn->path().string(), "function.json");
      if (!PathExists(file)) continue;
      auto text = ReadFile(file);
      auto parsed = text.ok() && text->size() <= kMaxConfigFileBytes
                        ? ParseJson(*text)
                        : Result<json>(IoError("read"));
      auto config = parsed.ok() ? FromJson(*parsed) : Result<FunctionConfig>(parsed.status());
      if (!config.ok()) {
        if (warnings != nullptr) {
          warnings->push_back("skipped the function in " + file + ": " + config.status().message());
        }
        continue;
      }
      // Code trees of older versions (kept while their workers ran) go now.
      const std::string live = "code-" + std::to_string(config->code_version);
      for (fs::directory_iterator f(fn->path(), ec); !ec && f != end; f.increment(ec)) {
        std::string leaf = f->path().filename().string();
        if (leaf.rfind("code-", 0) == 0 && leaf != live) (void)RemoveAll(f->path().string());
      }
      ec.clear();
      std::string key = Key(config->account, config->name);
      store->functions_[key] = std::move(config).value();
    }
    ec.clear();
  }
  return store;
}

Result<FunctionConfig> FunctionStore::SaveLocked(FunctionConfig config, bool touch) {
  config.revision_id = RandomUuid();
  if (touch) config.last_modified_ms = ToEpochMillis(SystemClock::Default()->Now());
  const std::string dir = Dir(config.account, config.name);
  TY_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(dir, "function.json"), ToJson(config).dump(2) + "\n", 0600));
  functions_[Key(config.account, config.name)] = config;
  return config;
}

Result<FunctionConfig> FunctionStore::Create(FunctionConfig config, const std::string& zip,
                                             const ZipLimits& limits) {
  const std::string key = Key(config.account, config.name);
  {
    MutexLock lock(&mu_);
    if (functions_.count(key) > 0 || creating_.count(key) > 0) {
      return AlreadyExists("Function already exist: " + config.name);
    }
    creating_[key] = 1;
  }
  config.code_version = 1;
  config.code_sha256 = Base64Sha256(zip);
  config.code_size = static_cast<int64_t>(zip.size());
  const std::string dir = Dir(config.account, config.name);
  Status s = MakeDirs(dir, 0700);
  if (s.ok()) s = Unpack(zip, CodeDir(config), limits);
  if (s.ok()) s = WriteFileAtomic(JoinPath(dir, "code.zip"), zip, 0600);
  MutexLock lock(&mu_);
  creating_.erase(key);
  if (!s.ok()) {
    (void)RemoveAll(dir);
    return s;
  }
  return SaveLocked(std::move(config), true);
}

std::optional<FunctionConfig> FunctionStore::Get(const std::string& account,
                                                 const std::string& name) const {
  MutexLock lock(&mu_);
  auto it = functions_.find(Key(account, name));
  if (it == functions_.end()) return std::nullopt;
  return it->second;
}

std::vector<FunctionConfig> FunctionStore::List(const std::string& account) const {
  MutexLock lock(&mu_);
  std::vector<FunctionConfig> out;
  const std::string prefix = account + "/";
  for (auto it = functions_.lower_bound(prefix);
       it != functions_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    out.push_back(it->second);
  }
  return out;
}

Result<FunctionConfig> FunctionStore::UpdateCode(const std::string& account,
                                                 const std::string& name, const std::string& zip,
                                                 const ZipLimits& limits) {
  auto current = Get(account, name);
  if (!current) return NotFoundError(account, name);
  // Unpacked beside the live code (a version no worker uses yet), then switched to.
  FunctionConfig next = *current;
  next.code_version = current->code_version + 1;
  TY_RETURN_IF_ERROR(Unpack(zip, CodeDir(next), limits));
  const std::string dir = Dir(account, name);
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(dir, "code.zip"), zip, 0600));
  const int64_t version = next.code_version;
  const std::string sha = Base64Sha256(zip);
  const auto size = static_cast<int64_t>(zip.size());
  auto saved = Update(account, name, [&](FunctionConfig& c) {
    c.code_version = version;
    c.code_sha256 = sha;
    c.code_size = size;
    return Status::Ok();
  });
  // Older trees stay while warm workers may still run them: Open removes them.
  return saved;
}

Status FunctionStore::Delete(const std::string& account, const std::string& name) {
  {
    MutexLock lock(&mu_);
    if (functions_.erase(Key(account, name)) == 0) return NotFoundError(account, name);
  }
  // Files are removed by the caller's runtime once its workers are gone (RemoveFiles); moved
  // aside now so that a new function of the same name starts clean.
  const std::string dir = Dir(account, name);
  const std::string trash = JoinPath(root_, ".deleted-" + RandomUuid());
  if (::rename(dir.c_str(), trash.c_str()) == 0) (void)RemoveAll(trash);
  return Status::Ok();
}

}  // namespace ty::functions
