// Tar archives for model artifacts (model.tar.gz, output.tar.gz) and source bundles
// (sourcedir.tar.gz), via libarchive. Both directions stream through 1 MiB buffers.
#pragma once

#include <string>

#include "common/status.h"

namespace ty::storage {

// Writes a gzip-compressed tar of the contents of directory `dir` to `tar_gz_path`. Entry names
// are relative and have no "./" prefix ("model.pt", "code/train.py"), sorted, like SageMaker's
// model.tar.gz. Regular files, directories and symlinks (stored as symlinks) are archived;
// sockets, fifos and devices are skipped. The archive is written to a temp file beside
// `tar_gz_path` and renamed into place, so it is never seen half-written; if `tar_gz_path` lies
// inside `dir` it is not archived into itself. An empty directory gives a valid empty archive.
// Errors: InvalidArgument when `dir` is not a directory; IoError for file system or libarchive
// failures.
Status PackDirectory(const std::string& dir, const std::string& tar_gz_path);

// Extracts the tar (gzip/bzip2/xz/zstd-compressed or plain) at `tar_gz_path` into `dest_dir`,
// which is created. Refuses, with InvalidArgument, entries with absolute names, ".."
// components, links (symbolic or hard) whose target is absolute or leaves `dest_dir`, and device
// or fifo entries; libarchive additionally refuses to write through symlinks. Permission bits
// are applied minus setuid/setgid and the umask; ownership is not restored. On error `dest_dir`
// may hold a partial tree; nothing is written outside it.
Status UnpackArchive(const std::string& tar_gz_path, const std::string& dest_dir);

}  // namespace ty::storage
