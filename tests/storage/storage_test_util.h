// Helpers shared by the storage tests: plain (non-atomic) file writes, waiting
// for a condition with a deadline, and a tiny tmpfs for real "No space left on device" failures.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/fs.h"

namespace ty::storage::testing {

// Writes `contents` in place (open O_TRUNC, write, close), as a training script would.
inline bool WriteInPlace(const std::string& path, const std::string& contents) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, contents.data(), contents.size()) == static_cast<ssize_t>(contents.size());
  return ::close(fd) == 0 && ok;
}

// The file's contents, or nullopt when it does not exist (or cannot be read).
inline std::optional<std::string> ReadIfExists(const std::string& path) {
  if (!PathExists(path)) return std::nullopt;
  Result<std::string> r = ReadFile(path);
  if (!r.ok()) return std::nullopt;
  return *r;
}

// Every file under `dir` (relative paths), hidden ones included.
inline std::set<std::string> AllFilesUnder(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_directory()) out.insert(it->path().lexically_relative(dir).string());
  }
  return out;
}

// Polls `done` until it holds or `timeout` passes; returns its last value.
inline bool WaitFor(const std::function<bool()>& done,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// A tmpfs of `size` mounted at `dir` in a private mount namespace of the calling thread (and
// threads it starts later), so nothing leaks into the host even if the test dies. Needs root;
// mounted() is false when that is not possible.
class TinyTmpfs {
 public:
  TinyTmpfs(const std::string& dir, const std::string& size) : dir_(dir) {
    if (::geteuid() != 0) return;
    if (::unshare(CLONE_NEWNS) != 0) return;
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return;
    (void)MakeDirs(dir);
    std::string options = "size=" + size;
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~TinyTmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  TinyTmpfs(const TinyTmpfs&) = delete;
  TinyTmpfs& operator=(const TinyTmpfs&) = delete;
  bool mounted() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

}  // namespace ty::storage::testing
