// A function's deployment package: a zip archive (CreateFunction/UpdateFunctionCode Code.ZipFile)
// checked and unpacked with libarchive, within limits, so that a hostile archive can neither
// escape the destination nor fill the disk.
//
// Thread contract: pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ty::functions {

struct ZipLimits {
  size_t max_zip_bytes = 50 << 20;        // Lambda's limit for a direct upload
  int64_t max_entries = 10000;            // files and directories
  int64_t max_total_bytes = 250LL << 20;  // uncompressed, Lambda's unzipped limit
  size_t max_name_bytes = 1024;           // one entry's path
};

// What an archive holds, once checked.
struct ZipSummary {
  int64_t entries = 0;
  int64_t total_bytes = 0;  // uncompressed
};

// Unpacks the zip `zip` into `dest_dir` (created, mode 0755; files 0644, or 0755 when the
// archive marks them executable). InvalidArgument, naming the entry, for: not a zip archive,
// an archive or entry past the limits (counted as bytes are written, not as the header
// claims), an absolute name or a ".." component, a link (symbolic or hard), or a device or
// fifo. On error `dest_dir` may hold a partial tree (the caller removes it); nothing is
// written outside it. IoError for file system failures.
Result<ZipSummary> UnpackZip(std::string_view zip, const std::string& dest_dir,
                             const ZipLimits& limits = {});

// The entry name `name` made safe to join under a directory: "" when it is absolute, empty,
// has a ".." component or a NUL; otherwise the name with "./" and empty components removed.
std::string SafeEntryPath(std::string_view name);

}  // namespace ty::functions
