// Access keys the server accepts, and the AWS shared-credentials file they live in.
#pragma once

#include <cstddef>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace ty::api {

// One long-term access key and the account it belongs to.
struct AccessKey {
  std::string access_key_id;
  std::string secret_access_key;
  std::string account_id;  // 12 decimal digits
  // Empty for a long-term key: requests signed with it must carry no X-Amz-Security-Token.
  // Otherwise (aws_session_token in the credentials file) they must carry exactly this one.
  std::string session_token;
};

// A key as found in one [profile] section of a shared-credentials file.
struct CredentialProfile {
  std::string name;
  AccessKey key;
};

// An in-memory set of access keys indexed by access key id.
// Thread contract: Add() only while the store is being built; once shared, every method is
// const and may be called from any thread without locking, except the session keys
// (MintSessionKey, RevokeSessionKey), which any thread may mint and revoke at any time.
class CredentialStore {
 public:
  CredentialStore() : session_(std::make_shared<SessionKeys>()) {}
  // Adds `key`, replacing any key with the same access_key_id.
  void Add(AccessKey key);
  // The key with this id, or nullptr. The pointer is valid until the next Add().
  const AccessKey* Find(const std::string& access_key_id) const;
  size_t size() const { return keys_.size(); }
  // The distinct accounts the keys belong to (session keys not included).
  std::set<std::string> Accounts() const;

  // A new session key of `account_id` (an "ASIA" key id, a secret and a session token), valid
  // on this server until RevokeSessionKey: a Lambda function's execution credentials. Never
  // written anywhere; a restarted server knows none.
  AccessKey MintSessionKey(const std::string& account_id) const;
  // Find no longer returns the key. Its entry stays (revoked), so a pointer Find returned
  // earlier remains valid.
  void RevokeSessionKey(const std::string& access_key_id) const;

 private:
  struct SessionKey {
    AccessKey key;
    bool revoked = false;
  };
  struct SessionKeys {
    Mutex mu;
    std::unordered_map<std::string, std::unique_ptr<SessionKey>> keys TY_GUARDED_BY(mu);
  };
  std::unordered_map<std::string, AccessKey> keys_;
  std::shared_ptr<SessionKeys> session_;  // shared: the store stays movable
};

// Derived account id: the first 12 bytes of SHA-256(access_key_id), each mod 10.
// Stable across runs and hosts, so a key without aws_account_id always maps to one account.
std::string DeriveAccountId(std::string_view access_key_id);

// Parses AWS shared-credentials INI text: "[profile]" sections, "key = value" lines (':' also
// accepted), '#'/';' comment lines. Per profile: aws_access_key_id and aws_secret_access_key
// (both or neither; profiles with neither, e.g. role profiles, are skipped), optional
// aws_account_id (exactly 12 digits; derived with DeriveAccountId when absent), optional
// aws_session_token (AccessKey::session_token); other keys are ignored. Errors (kInvalidArgument,
// message names the line): a line that is neither, a key outside a section, an empty value for a
// key we use, a profile with only one of the two key fields, a bad aws_account_id, one access key
// id in two profiles, or no keys at all.
Result<std::vector<CredentialProfile>> ParseSharedCredentials(std::string_view text);

// Reads and parses the file at `path` into a store. Errors: kIoError when it cannot be read,
// kInvalidArgument (prefixed with the path) when malformed, see ParseSharedCredentials.
Result<CredentialStore> LoadSharedCredentialsFile(const std::string& path);

inline constexpr std::string_view kDefaultCredentialsProfile = "trainyard";

// The server's own key, kept in <data_dir>/credentials (mode 0600). Creates data_dir and the
// file on first use, with profile [trainyard]: aws_access_key_id "AKIA" + 16 random [A-Z0-9],
// a 40-character random secret, and a random 12-digit aws_account_id; the file is written
// atomically. Otherwise loads the file, tightens its mode to 0600 if it was looser, and returns
// the [trainyard] profile. Errors: kIoError (file system), kInvalidArgument (malformed file),
// kNotFound (the file has no [trainyard] profile).
Result<AccessKey> EnsureCredentialsFile(const std::string& data_dir);

}  // namespace ty::api
