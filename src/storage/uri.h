// Storage URIs (ARCHITECTURE.md decision 6): every storage location Trainyard reads or writes is a
// URI. `file://` is the embedded default; `s3://` is recognised here but not yet served by an
// ObjectStore. Also the path confinement check that keeps file:// access inside configured roots.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace ty::storage {

// A parsed storage URI.
//   file:///data/train%20set -> {scheme "file", path "/data/train set"}
//   s3://bucket/a/b          -> {scheme "s3", bucket "bucket", key "a/b"}
struct StorageUri {
  std::string scheme;  // "file" or "s3" (lower case)
  std::string bucket;  // s3 only
  std::string key;     // s3 only; may be empty (the whole bucket); not percent-decoded
  std::string path;    // file only; absolute, percent-decoded, not normalised
};

// Parses `uri`. Errors (all InvalidArgument): unknown scheme; relative file URI ("file:x",
// "file:/x" without "//" is also refused); a file URI host other than "" or "localhost"; a bad
// percent escape or one that decodes to NUL; an s3 URI without a bucket.
Result<StorageUri> ParseStorageUri(const std::string& uri);

// The file:// URI naming absolute path `path` (characters outside the URI path set are
// percent-encoded). REQUIRES: path is absolute.
std::string FileUriFromPath(const std::string& path);

// Resolves absolute `path` the way the kernel would (symlinks followed, ".." applied to the
// resolved parent); the part of the path that does not exist yet is normalised lexically.
// Returns the resolved path when it lies within one of `roots` (each resolved the same way), else
// InvalidArgument "<path> is outside the allowed file roots (<roots>)". Also InvalidArgument for a
// relative path or a symlink loop; IoError when a component cannot be inspected.
// Note: this is a check at one instant; a concurrent writer that swaps a directory for a symlink
// afterwards is not defended against (roots are assumed to be owned by the server's users).
Result<std::string> ResolveWithinRoots(const std::string& path,
                                       const std::vector<std::string>& roots);

// ResolveWithinRoots without the resolved path.
Status CheckWithinRoots(const std::string& path, const std::vector<std::string>& roots);

}  // namespace ty::storage
