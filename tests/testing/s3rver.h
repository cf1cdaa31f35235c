// S3rver: a real s3rver (npm, scripts/s3rver.sh) for tests, on a free loopback port with a data
// directory of its own. Owns the node process and the data directory: destroying the S3rver kills
// the process (SIGTERM, then SIGKILL) and removes the directory.
//
// Tests normally share one instance per test binary through TY_S3RVER_OR_SKIP(var), which starts
// it on first use and keeps it until the process exits (a few hundred milliseconds of node start
// up paid once, not per test). Give each test its own bucket (UniqueBucketName) so tests stay
// independent of each other.
//
// The binary: env TY_S3RVER when set, else <repo>/.deps/s3rver/node_modules/.bin/s3rver (the repo
// path comes from CMake as TY_SOURCE_DIR). When it is missing the macro skips the test with a
// message saying how to install it, except when env CI is set: then the test fails, because CI
// must never skip the S3 tests silently.
//
// Thread contract: endpoint(), port(), data_dir() and settings() may be called from any thread;
// CreateBucket is safe to call concurrently (one connection per call).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "common/subprocess.h"
#include "storage/s3_settings.h"
#include "testing/temp_dir.h"

namespace ty::testing {

class S3rver {
 public:
  // The s3rver binary to run, or NotFound with install instructions.
  static Result<std::string> FindBinary();

  // Starts s3rver from `binary` on a free 127.0.0.1 port and waits (up to 20 s) until it answers
  // HTTP. IoError (with the tail of its log) when it exits or never answers.
  static Result<std::unique_ptr<S3rver>> Start(const std::string& binary);

  // The per-process shared instance, started on the first call. Returns nullptr and fills
  // `*why` when s3rver is missing or did not start; the result is remembered, so later calls are
  // cheap and say the same thing.
  static S3rver* Shared(std::string* why);

  // True when env CI is set to anything but "" / "0" / "false": missing s3rver is a failure.
  static bool Required();

  ~S3rver();
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  // "http://127.0.0.1:<port>".
  const std::string& endpoint() const { return endpoint_; }
  int port() const { return port_; }
  // s3rver's storage: objects are <data_dir>/<bucket>/<key>._S3rver_object, multipart uploads in
  // progress <data_dir>/<bucket>/._S3rver_uploads/<upload id>/.
  const std::string& data_dir() const { return data_dir_; }

  // Settings pointing at this s3rver: its endpoint, path-style, region us-east-1, credentials
  // S3RVER/S3RVER, max_attempts 3, short timeouts. Tests adjust the tuning fields as they need.
  storage::S3Settings settings() const;
  // settings() with another endpoint (e.g. a fault proxy in front of this s3rver).
  static storage::S3Settings SettingsFor(const std::string& endpoint);

  // PUT /<bucket> (anonymous; s3rver allows it). OK when created or already there.
  Status CreateBucket(const std::string& bucket) const;

  // A fresh valid bucket name, "<prefix>-<n>" with n unique within the process. `prefix` should
  // be lower case letters, digits and '-'.
  static std::string UniqueBucketName(const std::string& prefix = "ty-test");

 private:
  S3rver() = default;

  std::unique_ptr<TempDir> dir_;  // holds data/ and s3rver.log
  std::unique_ptr<Subprocess> process_;
  std::string data_dir_;
  std::string log_path_;
  std::string endpoint_;
  int port_ = 0;
};

// Sends one HTTP/1.1 request to 127.0.0.1:`port` on a fresh connection and returns the status
// code and body ("Connection: close"; Content-Length is set from `body`). For fixtures and
// assertions that must not depend on the S3 client under test.
struct RawHttpResponse {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
};
Result<RawHttpResponse> RawHttp(int port, const std::string& method, const std::string& target,
                                const std::string& body = "");

}  // namespace ty::testing

// Declares `S3rver* var` pointing at the shared s3rver, or skips the test (fails it when CI is
// set) when s3rver is not available. Use at the top of a TEST body or SetUp().
#define TY_S3RVER_OR_SKIP(var)                                                   \
  ::ty::testing::S3rver* var = nullptr;                                          \
  do {                                                                           \
    std::string ty_s3rver_why;                                                   \
    var = ::ty::testing::S3rver::Shared(&ty_s3rver_why);                         \
    if (var == nullptr) {                                                        \
      if (::ty::testing::S3rver::Required()) {                                   \
        FAIL() << ty_s3rver_why << " (CI is set: S3 tests must not be skipped)"; \
      }                                                                          \
      GTEST_SKIP() << ty_s3rver_why;                                             \
    }                                                                            \
  } while (0)
