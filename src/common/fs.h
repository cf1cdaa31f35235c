// Small file-system helpers that report failures as Status.
#pragma once

#include <string>

#include "common/status.h"

namespace ty {

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
