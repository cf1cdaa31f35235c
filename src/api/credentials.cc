#include "api/credentials.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <optional>
#include <unordered_set>

#include "common/crypto.h"
#include "common/fs.h"

namespace ty::api {
namespace {

std::string_view Trim(std::string_view s) {
  size_t b = 0;
  while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  size_t e = s.size();
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

bool IsTwelveDigits(std::string_view s) {
  if (s.size() != 12) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

struct PendingProfile {
  std::string name;
  int line = 0;
  std::string akid, secret, account, session_token;
  bool has_akid = false, has_secret = false;
};

Status LineError(int line, const std::string& what) {
  return InvalidArgument("line " + std::to_string(line) + ": " + what);
}

}  // namespace

void CredentialStore::Add(AccessKey key) {
  std::string id = key.access_key_id;
  keys_.insert_or_assign(std::move(id), std::move(key));
}

std::set<std::string> CredentialStore::Accounts() const {
  std::set<std::string> out;
  for (const auto& [id, key] : keys_) out.insert(key.account_id);
  return out;
}

const AccessKey* CredentialStore::Find(const std::string& access_key_id) const {
  auto it = keys_.find(access_key_id);
  if (it != keys_.end()) return &it->second;
  MutexLock lock(&session_->mu);
  auto s = session_->keys.find(access_key_id);
  if (s == session_->keys.end() || s->second->revoked) return nullptr;
  return &s->second->key;
}

AccessKey CredentialStore::MintSessionKey(const std::string& account_id) const {
  auto entry = std::make_unique<SessionKey>();
  entry->key.access_key_id = "ASIA" + RandomAlnum(16, /*upper_only=*/true);
  entry->key.secret_access_key = RandomAlnum(40);
  entry->key.account_id = account_id;
  entry->key.session_token = RandomAlnum(64);
  AccessKey copy = entry->key;
  MutexLock lock(&session_->mu);
  session_->keys[copy.access_key_id] = std::move(entry);
  return copy;
}

void CredentialStore::RevokeSessionKey(const std::string& access_key_id) const {
  MutexLock lock(&session_->mu);
  auto s = session_->keys.find(access_key_id);
  if (s != session_->keys.end()) s->second->revoked = true;
}

std::string DeriveAccountId(std::string_view access_key_id) {
  // Sha256Hex is the only digest exposed; decode its first 12 bytes back from hex.
  const std::string hex = Sha256Hex(access_key_id);
  auto nibble = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  std::string out;
  out.reserve(12);
  for (size_t i = 0; i < 12; ++i) {
    int byte = nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]);
    out.push_back(static_cast<char>('0' + byte % 10));
  }
  return out;
}

Result<std::vector<CredentialProfile>> ParseSharedCredentials(std::string_view text) {
  std::vector<CredentialProfile> out;
  std::unordered_set<std::string> seen_profiles;
  std::unordered_set<std::string> seen_keys;
  std::optional<PendingProfile> current;

  auto finish = [&]() -> Status {
    if (!current) return Status::Ok();
    PendingProfile p = std::move(*current);
    current.reset();
    if (!p.has_akid && !p.has_secret) return Status::Ok();
    if (!p.has_akid) {
      return LineError(p.line, "profile [" + p.name +
                                   "] has aws_secret_access_key but no "
                                   "aws_access_key_id");
    }
    if (!p.has_secret) {
      return LineError(p.line, "profile [" + p.name +
                                   "] has aws_access_key_id but no "
                                   "aws_secret_access_key");
    }
    if (!seen_keys.insert(p.akid).second) {
      return LineError(p.line, "access key id " + p.akid + " appears in more than one profile");
    }
    if (p.account.empty()) p.account = DeriveAccountId(p.akid);
    out.push_back({p.name, AccessKey{p.akid, p.secret, p.account, p.session_token}});
    return Status::Ok();
  };

  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = Trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      if (line.back() != ']') return LineError(line_no, "unterminated section header");
      TY_RETURN_IF_ERROR(finish());
      std::string name(Trim(line.substr(1, line.size() - 2)));
      if (name.empty()) return LineError(line_no, "empty profile name");
      if (!seen_profiles.insert(name).second) {
        return LineError(line_no, "duplicate profile [" + name + "]");
      }
      current.emplace();
      current->name = std::move(name);
      current->line = line_no;
      continue;
    }
    size_t sep = line.find_first_of("=:");
    if (sep == std::string_view::npos) {
      return LineError(line_no, "expected \"key = value\" or \"[profile]\"");
    }
    if (!current) return LineError(line_no, "key outside of any [profile] section");
    std::string_view key = Trim(line.substr(0, sep));
    std::string_view value = Trim(line.substr(sep + 1));
    if (key.empty())
      return LineError(line_no, "missing key before '" + std::string(1, line[sep]) + "'");
    auto require_value = [&]() -> Status {
      if (value.empty()) return LineError(line_no, std::string(key) + " has an empty value");
      return Status::Ok();
    };
    if (key == "aws_access_key_id") {
      TY_RETURN_IF_ERROR(require_value());
      current->akid = std::string(value);
      current->has_akid = true;
    } else if (key == "aws_secret_access_key") {
      TY_RETURN_IF_ERROR(require_value());
      current->secret = std::string(value);
      current->has_secret = true;
    } else if (key == "aws_session_token") {
      TY_RETURN_IF_ERROR(require_value());
      current->session_token = std::string(value);
    } else if (key == "aws_account_id") {
      if (!IsTwelveDigits(value)) {
        return LineError(
            line_no, "aws_account_id must be exactly 12 digits, got '" + std::string(value) + "'");
      }
      current->account = std::string(value);
    }
  }
  TY_RETURN_IF_ERROR(finish());
  if (out.empty())
    return InvalidArgument(
        "no profile with aws_access_key_id and "
        "aws_secret_access_key");
  return out;
}

Result<CredentialStore> LoadSharedCredentialsFile(const std::string& path) {
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto profiles = ParseSharedCredentials(text);
  if (!profiles.ok()) return profiles.status().WithPrefix(path);
  CredentialStore store;
  for (CredentialProfile& p : *profiles) store.Add(std::move(p.key));
  return store;
}

Result<AccessKey> EnsureCredentialsFile(const std::string& data_dir) {
  const std::string path = JoinPath(data_dir, "credentials");
  if (!PathExists(path)) {
    TY_RETURN_IF_ERROR(MakeDirs(data_dir, 0700));
    AccessKey key{"AKIA" + RandomAlnum(16, /*upper_only=*/true), RandomAlnum(40), RandomDigits(12)};
    std::string text = "[" + std::string(kDefaultCredentialsProfile) + "]\n" +
                       "aws_access_key_id = " + key.access_key_id + "\n" +
                       "aws_secret_access_key = " + key.secret_access_key + "\n" +
                       "aws_account_id = " + key.account_id + "\n";
    TY_RETURN_IF_ERROR(WriteFileAtomic(path, text, 0600));
    return key;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  if ((st.st_mode & 07777) != 0600 && ::chmod(path.c_str(), 0600) != 0) {
    return ErrnoStatus("chmod 0600 " + path, errno);
  }
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto profiles = ParseSharedCredentials(text);
  if (!profiles.ok()) return profiles.status().WithPrefix(path);
  for (CredentialProfile& p : *profiles) {
    if (p.name == kDefaultCredentialsProfile) return std::move(p.key);
  }
  return NotFound(path + ": no [" + std::string(kDefaultCredentialsProfile) + "] profile");
}

}  // namespace ty::api
