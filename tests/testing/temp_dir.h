// TempDir: a fresh directory of its own under the system temp dir ($TMPDIR, else /tmp), removed
// with everything in it when the TempDir is destroyed. Not copyable; immutable once made, so
// path() and Sub() may be called from any thread.
#pragma once

#include <errno.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/fs.h"

namespace ty::testing {

class TempDir {
 public:
  // `prefix` starts the directory's name (mkdtemp appends six random characters), so a directory
  // a crashed test leaves behind says which test it was. Throws when mkdtemp fails, which gtest
  // reports as a failure of the test that made the TempDir.
  explicit TempDir(const std::string& prefix = "ty_test_") {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/" + prefix + "XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    path_ = std::move(tmpl);
  }
  ~TempDir() { (void)RemoveAll(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel; creates nothing.
  std::string Sub(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace ty::testing
