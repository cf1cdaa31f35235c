// Small file-system helpers that report failures as Status.
#pragma once

#include <string>

#include "common/status.h"

namespace ty {

// Owns a file descriptor: closed on destruction. Movable, not copyable.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();
  // Closes now and returns close(2)'s result: some file systems report
  // write errors only there.
  int Close();

 private:
  int fd_;
};

Result<std::string> ReadFile(const std::string& path);
// Writes via a temporary file and rename(2), so readers never see a torn file.
// mode: permission bits of the new file. durable: fsync before the rename, so
// the new contents also survive a machine crash (scratch files skip it).
Status WriteFileAtomic(const std::string& path, const std::string& contents, int mode = 0644,
                       bool durable = true);
Status MakeDirs(const std::string& path, int mode = 0755);
// Removes path recursively; a missing path is not an error.
Status RemoveAll(const std::string& path);
bool PathExists(const std::string& path);
// Canonical absolute path with every symlink resolved (the path must exist).
Result<std::string> RealPath(const std::string& path);
// True when `path` equals `root` or lies beneath it. Both must be canonical.
bool IsWithin(const std::string& root, const std::string& path);
// Joins two path pieces with exactly one '/'.
std::string JoinPath(const std::string& a, const std::string& b);
// Absolute form of path relative to base (no symlink resolution; path may not exist).
std::string Absolutize(const std::string& path, const std::string& base);
std::string CurrentDir();

}  // namespace ty
