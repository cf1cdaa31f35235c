// S3Client: the S3 REST API over libcurl, signed with our own SigV4 (common/sigv4.h
// SignS3Request), for one S3Settings (endpoint, region, addressing, credentials, tuning).
//
// Owns a pool of libcurl easy handles that are reused across requests, so connections stay
// alive (keep-alive) and DNS answers are cached; a request borrows a handle for its duration.
// Every call is one S3 operation (or, for the *All helpers, a sequence of them) and blocks the
// calling thread; parallelism is the caller's business (S3ObjectStore runs a bounded pool).
//
// Thread contract: every method may be called from any number of threads at once.
//
// Retries: each request is attempted up to settings.max_attempts times (first try included),
// with exponential backoff and full jitter, on connection errors, timeouts (no progress for
// settings.low_speed_timeout_s), a connection dropped mid-request or mid-response, HTTP
// 500/502/503/504/429 and the S3 codes SlowDown, RequestTimeout, InternalError. Other 4xx are
// never retried. Request bodies are replayable (memory or a file range read with pread), and a
// GET that breaks mid-body resumes from the first missing byte (If-Match on the ETag already
// seen), so a sink never receives a byte twice. An attempt is a request sent: when libcurl
// itself resends a request on a fresh connection (a reused keep-alive connection died before any
// answer), that resend counts as one of the max_attempts.
//
// Errors (the messages are written to stand as a training job's FailureReason, and name the
// s3:// bucket/key and the S3 error code):
//   kPermissionDenied   403 / AccessDenied / SignatureDoesNotMatch / InvalidAccessKeyId
//                       ("... check the S3 credentials (from <credentials_source>)")
//   kNotFound           NoSuchBucket ("bucket 'b' does not exist (NoSuchBucket) at <endpoint>"),
//                       NoSuchKey / 404, NoSuchUpload
//   kFailedPrecondition wrong region (301 PermanentRedirect, AuthorizationHeaderMalformed,
//                       "bucket 'b' is in region X, not Y (set AWS_REGION / storage.s3.region)");
//                       412 PreconditionFailed (If-Match: the object changed)
//   kUnavailable        the endpoint cannot be reached, or retries ran out on a retryable error
//   kIoError            an integrity check failed (size or MD5 mismatch), a sink/file error,
//                       or an unexpected response
//   kInvalidArgument    a request S3 refused as malformed (other 4xx), e.g. InvalidBucketName
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/s3_settings.h"

namespace ty::storage {

// What S3 says about one object (HeadObject, GetObject, a listing entry).
struct S3ObjectMeta {
  uint64_t size = 0;  // the whole object's size
  std::string etag;   // without quotes
  std::chrono::system_clock::time_point last_modified;
  std::string server_side_encryption;  // "AES256", "aws:kms", or empty
  std::string content_type;
};

// A request body that can be sent again on a retry: either borrowed memory or a byte range of
// an open file (read with pread, never held in memory as a whole).
// REQUIRES: the memory / fd outlives the call that uses the body.
struct S3Body {
  static S3Body Memory(std::string_view data) {
    S3Body b;
    b.data = data;
    b.length = data.size();
    return b;
  }
  static S3Body FileRange(int fd, uint64_t offset, uint64_t length) {
    S3Body b;
    b.fd = fd;
    b.offset = offset;
    b.length = length;
    return b;
  }

  std::string_view data;  // used when fd < 0
  int fd = -1;
  uint64_t offset = 0;
  uint64_t length = 0;
  // Base64 MD5 of the body, sent as Content-MD5. Computed by the client when empty (one extra
  // pread pass over a file range); callers that already know it set it.
  std::string content_md5;
};

struct S3PutOptions {
  std::string content_type = "application/octet-stream";
};

// Receives a GET's body in order. `offset` is relative to the first requested byte (0 for a
// whole-object GET). A non-OK status aborts the transfer and is returned by the call.
using S3Sink = std::function<Status(uint64_t offset, std::string_view data)>;

struct S3GetOptions {
  // Byte range [first, first + length) of the object; nullopt for the whole object. A range that
  // runs past the end is clipped by S3 (the result's size field still is the object's size).
  std::optional<std::pair<uint64_t, uint64_t>> range;  // {first, length}, length > 0
  // Sent as If-Match (quotes added): the GET fails with kFailedPrecondition when the object's
  // ETag differs (it changed since it was listed).
  std::string if_match;
  // Called once, after the response headers of the first successful (2xx) response arrive and
  // before any body bytes reach the sink: lets a caller preallocate a file or schedule the
  // other ranges of a large object early. A non-OK status aborts the GET.
  std::function<Status(const S3ObjectMeta&)> on_headers;
  // When the bytes received are the whole object (no range, or a range from 0 that covers it):
  // check their MD5 against the ETag when the ETag is a plain MD5 (32 hex digits, no "-N"
  // multipart suffix) and the object is not SSE-KMS or SSE-C encrypted. Other ranged GETs are
  // checked for length only.
  bool verify_md5 = true;
};

struct S3ListEntry {
  std::string key;  // the full key, decoded
  uint64_t size = 0;
  std::chrono::system_clock::time_point last_modified;
  std::string etag;  // without quotes
};

struct S3ListOptions {
  std::string prefix;
  std::string delimiter;           // empty: no grouping
  std::string continuation_token;  // from the previous page's next_continuation_token
  std::string start_after;
  int max_keys = 1000;  // S3 caps pages at 1000
};

struct S3ListPage {
  std::vector<S3ListEntry> objects;          // in key order
  std::vector<std::string> common_prefixes;  // only with a delimiter
  std::string next_continuation_token;       // empty on the last page
  bool truncated = false;
};

// One key DeleteObjects could not delete (S3's per-key <Error>).
struct S3DeleteError {
  std::string key;
  std::string code;  // e.g. "AccessDenied"
  std::string message;
};

struct S3CompletedPart {
  int part_number = 0;  // 1-based
  std::string etag;     // as UploadPart returned it (without quotes)
};

// Counters, for tests and the benchmark. Monotonic since construction.
struct S3ClientStats {
  uint64_t requests = 0;        // HTTP requests sent (retries included)
  uint64_t retries = 0;         // attempts after the first
  uint64_t connections = 0;     // new TCP/TLS connections opened (CURLINFO_NUM_CONNECTS)
  uint64_t bytes_sent = 0;      // request body bytes
  uint64_t bytes_received = 0;  // response body bytes delivered to callers
};

// Knobs that are not part of S3Settings (tests shorten the backoff).
struct S3ClientOptions {
  std::chrono::milliseconds base_backoff{100};  // attempt n sleeps U(0, min(max, base * 2^n))
  std::chrono::milliseconds max_backoff{10000};
  std::string user_agent = "trainyard";
};

class S3Client {
 public:
  explicit S3Client(S3Settings settings, S3ClientOptions options = {});
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // --- Objects ---

  // Stores `body` as the object; returns its ETag. Content-MD5 is always sent.
  Result<std::string> PutObject(const std::string& bucket, const std::string& key,
                                const S3Body& body, const S3PutOptions& options = {});

  // Streams the object (or options.range of it) to `sink`. Returns the object's metadata; its
  // size is the whole object's size (from Content-Range for ranged GETs). kIoError when fewer
  // or more bytes arrive than announced, or the MD5 check (see S3GetOptions) fails.
  Result<S3ObjectMeta> GetObject(const std::string& bucket, const std::string& key,
                                 const S3GetOptions& options, const S3Sink& sink);
  // GetObject writing with pwrite(2) to `fd` at `file_offset` + the sink offset.
  Result<S3ObjectMeta> GetObjectToFile(const std::string& bucket, const std::string& key,
                                       const S3GetOptions& options, int fd, uint64_t file_offset);
  // GetObject into memory (small objects; tests).
  Result<std::string> GetObjectToString(const std::string& bucket, const std::string& key,
                                        const S3GetOptions& options = {});

  // kNotFound when the object (or bucket) does not exist.
  Result<S3ObjectMeta> HeadObject(const std::string& bucket, const std::string& key);

  // Deleting a missing key succeeds (S3 semantics).
  Status DeleteObject(const std::string& bucket, const std::string& key);

  // Deletes `keys` in requests of at most 1000 (quiet mode, Content-MD5 sent). Returns the keys S3
  // refused one by one (empty when all were deleted); a failed request is the Status.
  Result<std::vector<S3DeleteError>> DeleteObjects(const std::string& bucket,
                                                   const std::vector<std::string>& keys);

  // --- Listing ---

  // One page of ListObjectsV2 (encoding-type=url; keys come back decoded).
  Result<S3ListPage> ListObjectsV2(const std::string& bucket, const S3ListOptions& options);
  // Every object under `prefix` (pages followed to the end), in key order.
  Result<std::vector<S3ListEntry>> ListAllObjects(const std::string& bucket,
                                                  const std::string& prefix);
  // Pages followed to the end, each handed to `page_fn` as it arrives; a non-OK status from
  // `page_fn` stops the listing and is returned.
  Status ListObjectsV2Pages(const std::string& bucket, S3ListOptions options,
                            const std::function<Status(S3ListPage&)>& page_fn);

  // --- Multipart upload ---

  // Returns the upload id.
  Result<std::string> CreateMultipartUpload(const std::string& bucket, const std::string& key,
                                            const S3PutOptions& options = {});
  // Uploads part `part_number` (1..10000); returns its ETag. Content-MD5 is always sent.
  Result<std::string> UploadPart(const std::string& bucket, const std::string& key,
                                 const std::string& upload_id, int part_number, const S3Body& body);
  // Commits the parts (in part-number order); returns the object's ETag. A 200 response whose
  // body is an <Error> is an error (retried when the code is retryable).
  Result<std::string> CompleteMultipartUpload(const std::string& bucket, const std::string& key,
                                              const std::string& upload_id,
                                              const std::vector<S3CompletedPart>& parts);
  // Discards the upload and its parts. A missing upload (NoSuchUpload) is not an error.
  Status AbortMultipartUpload(const std::string& bucket, const std::string& key,
                              const std::string& upload_id);

  // --- Buckets (tests, CLI) ---

  // Creates the bucket in settings.region; one we already own is not an error.
  Status CreateBucket(const std::string& bucket);
  // OK when the bucket exists and is accessible; kNotFound, kPermissionDenied, or
  // kFailedPrecondition (wrong region) otherwise.
  Status HeadBucket(const std::string& bucket);

  // --- Misc ---

  const S3Settings& settings() const { return settings_; }
  // "s3://bucket/key", for messages.
  static std::string Describe(const std::string& bucket, const std::string& key);
  S3ClientStats stats() const;

 private:
  class Impl;
  S3Settings settings_;
  std::unique_ptr<Impl> impl_;
};

// True when `etag` (without quotes) is a plain MD5: 32 hex digits, no "-N" suffix.
bool IsPlainMd5Etag(std::string_view etag);

}  // namespace ty::storage
