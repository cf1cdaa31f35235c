// FunctionStore: the Lambda functions of every account, and their code, on disk under
// <data_dir>/functions/<account>/<name>/:
//   function.json   the configuration (FunctionConfig) and resource policy, written atomically
//   code.zip        the deployment package as uploaded
//   code-<n>/       the package unpacked (n = code_version); the runtime binds it at /var/task
// Loaded into memory at Open; every change is written through before it is acknowledged.
//
// Thread contract: every method may be called from any thread (one mutex; unpacking a
// package happens outside it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "functions/zip_code.h"

namespace ty::functions {

// One statement of a function's resource policy (AddPermission).
struct PolicyStatement {
  std::string sid;
  std::string action;          // "lambda:InvokeFunction"
  std::string principal;       // "events.amazonaws.com", "sns.amazonaws.com", an account id, ARN
  std::string source_arn;      // empty: any
  std::string source_account;  // empty: any
};

struct FunctionConfig {
  std::string account;
  std::string name;
  std::string runtime;  // "python3.12"
  std::string handler;  // "module.function"
  std::string role;
  std::string description;
  int timeout_seconds = 3;
  int memory_mb = 128;
  std::map<std::string, std::string> environment;
  std::map<std::string, std::string> tags;
  std::string code_sha256;  // base64 SHA-256 of code.zip, as Lambda reports it
  int64_t code_size = 0;
  int64_t code_version = 1;  // bumped by UpdateFunctionCode: warm workers of older code retire
  int64_t last_modified_ms = 0;
  std::string revision_id;  // a new UUID on every change
  std::vector<PolicyStatement> policy;
  std::string policy_revision_id;
};

class FunctionStore {
 public:
  // Loads every function under <data_dir>/functions. A function.json that does not parse is
  // skipped and named in `warnings`. IoError when the directory cannot be made.
  static Result<std::unique_ptr<FunctionStore>> Open(const std::string& data_dir,
                                                     std::vector<std::string>* warnings = nullptr);

  // Unpacks `zip` and records `config` (code_sha256, code_size, code_version, revision filled
  // in). AlreadyExists when the account has a function of that name; InvalidArgument for a bad
  // package (zip_code.h); IoError.
  Result<FunctionConfig> Create(FunctionConfig config, const std::string& zip,
                                const ZipLimits& limits = {});
  std::optional<FunctionConfig> Get(const std::string& account, const std::string& name) const;
  // The account's functions, by name.
  std::vector<FunctionConfig> List(const std::string& account) const;
  // Replaces the code; NotFound, InvalidArgument, IoError.
  Result<FunctionConfig> UpdateCode(const std::string& account, const std::string& name,
                                    const std::string& zip, const ZipLimits& limits = {});
  // Applies `change` to the stored config and saves it (a new revision id; the last-modified
  // time when `touch`). `change` may return an error to abort (nothing is saved). NotFound.
  template <typename F>
  Result<FunctionConfig> Update(const std::string& account, const std::string& name, F change,
                                bool touch = true) {
    MutexLock lock(&mu_);
    auto it = functions_.find(Key(account, name));
    if (it == functions_.end()) return NotFoundError(account, name);
    FunctionConfig next = it->second;
    TY_RETURN_IF_ERROR(change(next));
    return SaveLocked(std::move(next), touch);
  }
  // Removes the function and its files. NotFound.
  Status Delete(const std::string& account, const std::string& name);

  // The unpacked code of `config` (its code_version).
  std::string CodeDir(const FunctionConfig& config) const;
  const std::string& root() const { return root_; }

 private:
  explicit FunctionStore(std::string root) : root_(std::move(root)) {}
  static std::string Key(const std::string& account, const std::string& name) {
    return account + "/" + name;
  }
  static Status NotFoundError(const std::string& account, const std::string& name);
  std::string Dir(const std::string& account, const std::string& name) const;
  Result<FunctionConfig> SaveLocked(FunctionConfig config, bool touch) TY_REQUIRES(mu_);

  const std::string root_;
  mutable Mutex mu_;
  std::map<std::string, FunctionConfig> functions_ TY_GUARDED_BY(mu_);  // by Key()
  // Names being created (unpacking outside the lock): a second Create of one is refused.
  std::map<std::string, int> creating_ TY_GUARDED_BY(mu_);
};

// The base64 SHA-256 of `bytes` (Lambda's CodeSha256).
std::string Base64Sha256(const std::string& bytes);

}  // namespace ty::functions
