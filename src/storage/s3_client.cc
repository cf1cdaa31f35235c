#include "storage/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "common/clock.h"
#include "common/crypto.h"
#include "common/mutex.h"
#include "common/sigv4.h"
#include "storage/s3_xml.h"

namespace ty::storage {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;   // error documents are small; never hold more
constexpr long kTransferBuffer = 256 << 10;  // fewer, larger callbacks and pwrites
constexpr size_t kMd5ReadChunk = 1 << 20;
constexpr size_t kMaxDeleteBatch = 1000;
constexpr char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";

void GlobalCurlInit() {
  static std::once_flag once;
  // Never cleaned up: other libraries in the process may use curl too.
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlEasyDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Incremental MD5 (Content-MD5 and ETag checks; not used for security).
class Md5 {
 public:
  Md5() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr); }
  void Update(std::string_view data) { EVP_DigestUpdate(ctx_.get(), data.data(), data.size()); }
  std::string Finish() {  // raw 16 bytes
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_.get(), out, &n);
    return std::string(reinterpret_cast<char*>(out), n);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx_;
};

std::string Base64(std::string_view raw) {
  std::string out(4 * ((raw.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string TrimWs(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' || s[b] == '\n')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r' || s[e - 1] == '\n')) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

std::string Unquote(const std::string& s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// Reads [offset, offset + length) of fd fully (short reads continued). IoError at EOF early.
Status PreadFully(int fd, char* buf, size_t length, uint64_t offset) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd, buf + done, length - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read the file being uploaded", errno);
    }
    if (n == 0) return IoError("the file being uploaded shrank while it was read");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::string> ComputeContentMd5(const S3Body& body) {
  Md5 md5;
  if (body.fd < 0) {
    md5.Update(body.data);
  } else {
    std::string buf(std::min<uint64_t>(kMd5ReadChunk, std::max<uint64_t>(body.length, 1)), '\0');
    uint64_t done = 0;
    while (done < body.length) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), body.length - done));
      TY_RETURN_IF_ERROR(PreadFully(body.fd, buf.data(), n, body.offset + done));
      md5.Update(std::string_view(buf.data(), n));
      done += n;
    }
  }
  return Base64(md5.Finish());
}

// ---- The request/response model for one HTTP exchange. ----

struct HttpCall {
  std::string method;  // GET PUT POST DELETE HEAD
  std::string bucket;
  std::string key;                                           // empty for bucket-level requests
  std::string query;                                         // encoded, without '?'
  std::vector<std::pair<std::string, std::string>> headers;  // signed along with the rest
  const S3Body* body = nullptr;
  std::string payload_sha256 = kEmptySha256;
  // Streams a 2xx body; otherwise the body is collected in HttpResponse::body.
  std::function<Status(std::string_view)> sink;
  // Called once the final response's headers are in, for 2xx responses.
  std::function<Status(long status, const std::map<std::string, std::string>& headers)> on_headers;
  // CompleteMultipartUpload: a 200 may carry an <Error> document.
  bool error_in_200 = false;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool body_truncated = false;

  const std::string& Header(const std::string& name) const {
    static const std::string kEmpty;
    auto it = headers.find(name);
    return it == headers.end() ? kEmpty : it->second;
  }
};

// State the curl callbacks share for one attempt.
struct Transfer {
  const HttpCall* call = nullptr;
  HttpResponse* resp = nullptr;
  bool headers_done = false;
  Status abort;  // set when a callback stopped the transfer
  uint64_t read_pos = 0;
  uint64_t sent = 0;
  uint64_t received = 0;
  int sends = 0;  // request heads sent
};

size_t HeaderCallback(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const size_t n = size * nmemb;
  std::string_view line(ptr, n);
  if (line.starts_with("HTTP/")) {
    // A new response (an interim 1xx precedes the real one): start over.
    t->resp->headers.clear();
    t->headers_done = false;
    size_t sp = line.find(' ');
    t->resp->status =
        sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    return n;
  }
  if (line == "\r\n" || line == "\n") {
    if (t->resp->status >= 200 && !t->headers_done) {
      t->headers_done = true;
      if (t->resp->status < 300 && t->call->on_headers) {
        Status s = t->call->on_headers(t->resp->status, t->resp->headers);
        if (!s.ok()) {
          t->abort = s;
          return 0;
        }
      }
    }
    return n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    t->resp->headers[Lower(std::string(line.substr(0, colon)))] = TrimWs(line.substr(colon + 1));
  }
  return n;
}

size_t WriteCallback(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const size_t n = size * nmemb;
  const bool ok_status = t->resp->status >= 200 && t->resp->status < 300;
  if (ok_status && t->call->sink) {
    Status s = t->call->sink(std::string_view(ptr, n));
    if (!s.ok()) {
      t->abort = s;
      return 0;
    }
    t->received += n;
    return n;
  }
  const size_t limit = ok_status ? SIZE_MAX : kMaxErrorBody;
  size_t room = t->resp->body.size() < limit ? limit - t->resp->body.size() : 0;
  if (n > room) t->resp->body_truncated = true;
  t->resp->body.append(ptr, std::min(n, room));
  t->received += n;
  return n;
}

size_t ReadCallback(char* buffer, size_t size, size_t nitems, void* userdata) {
  auto* t = static_cast<Transfer*>(userdata);
  const S3Body& body = *t->call->body;
  const uint64_t left = body.length - t->read_pos;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size * nitems, left));
  if (n == 0) return 0;
  if (body.fd < 0) {
    std::memcpy(buffer, body.data.data() + t->read_pos, n);
  } else {
    Status s = PreadFully(body.fd, buffer, n, body.offset + t->read_pos);
    if (!s.ok()) {
      t->abort = s;
      return CURL_READFUNC_ABORT;
    }
  }
  t->read_pos += n;
  t->sent += n;
  return n;
}

// Called by libcurl before each request it sends, including its own resend on a fresh
// connection when a reused one turned out dead (cheaper than the verbose debug hook).
int PrereqCallback(void* userdata, char*, char*, int, int) {
  ++static_cast<Transfer*>(userdata)->sends;
  return CURL_PREREQFUNC_OK;
}

// curl rewinds when it resends a request on a fresh connection (a reused one died).
int SeekCallback(void* userdata, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(userdata);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > t->call->body->length) {
    return CURL_SEEKFUNC_FAIL;
  }
  t->read_pos = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// The one translation of libcurl's result codes into Status; `retryable` says whether a later
// attempt could succeed.
struct CurlOutcome {
  Status status;
  bool retryable = false;
};
CurlOutcome CurlCodeToStatus(CURLcode code, const char* errbuf, const std::string& endpoint,
                             const std::string& what, int stall_seconds) {
  std::string detail = (errbuf != nullptr && errbuf[0] != '\0') ? errbuf : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OK:
      return {Status::Ok(), false};
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
      return {Unavailable("cannot reach the S3 endpoint " + endpoint + ": " + detail), true};
    case CURLE_OPERATION_TIMEDOUT:
      return {Unavailable("S3 request for " + what + " made no progress for " +
                          std::to_string(stall_seconds) + " s (" + detail + ")"),
              true};
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_SEND_FAIL_REWIND:
      return {Unavailable("the connection to the S3 endpoint " + endpoint + " broke during " +
                          what + ": " + detail),
              true};
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return {FailedPrecondition("TLS verification of the S3 endpoint " + endpoint +
                                 " failed: " + detail),
              false};
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return {InvalidArgument("bad S3 endpoint " + endpoint + ": " + detail), false};
    case CURLE_OUT_OF_MEMORY:
      return {ResourceExhausted("out of memory talking to S3: " + detail), false};
    default:
      return {IoError("S3 request for " + what + " failed: " + detail + " (curl " +
                      std::to_string(static_cast<int>(code)) + ")"),
              false};
  }
}

bool IsRetryableHttp(long status, const std::string& code) {
  if (status == 500 || status == 502 || status == 503 || status == 504 || status == 429) {
    return true;
  }
  return code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
         code == "ServiceUnavailable" || code == "Throttling" || code == "ThrottlingException" ||
         code == "RequestLimitExceeded" || code == "TooManyRequests";
}

// "expecting 'eu-west-1'" in AuthorizationHeaderMalformed messages.
std::string RegionFromMessage(const std::string& msg) {
  size_t p = msg.find("expecting '");
  if (p == std::string::npos) return "";
  p += 11;
  size_t e = msg.find('\'', p);
  return e == std::string::npos ? "" : msg.substr(p, e - p);
}

std::string ReasonPhrase(long status) {
  switch (status) {
    case 301:
      return "PermanentRedirect";
    case 307:
      return "TemporaryRedirect";
    case 400:
      return "BadRequest";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 409:
      return "Conflict";
    case 412:
      return "PreconditionFailed";
    case 416:
      return "InvalidRange";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    default:
      return "HTTP " + std::to_string(status);
  }
}

uint64_t ParseU64(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 10); }

// "bytes first-last/total" → total (0 when absent or "*").
uint64_t TotalFromContentRange(const std::string& cr) {
  size_t slash = cr.rfind('/');
  if (slash == std::string::npos) return 0;
  return ParseU64(cr.substr(slash + 1));
}

S3ObjectMeta MetaFromHeaders(const std::map<std::string, std::string>& h) {
  S3ObjectMeta m;
  auto get = [&](const char* name) -> std::string {
    auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
  };
  std::string cr = get("content-range");
  m.size = cr.empty() ? ParseU64(get("content-length")) : TotalFromContentRange(cr);
  m.etag = Unquote(get("etag"));
  m.server_side_encryption = get("x-amz-server-side-encryption");
  m.content_type = get("content-type");
  std::string lm = get("last-modified");
  if (!lm.empty()) {
    time_t t = curl_getdate(lm.c_str(), nullptr);
    if (t >= 0) m.last_modified = std::chrono::system_clock::from_time_t(t);
  }
  return m;
}

bool IsKmsEncrypted(const std::string& sse) { return sse.starts_with("aws:kms"); }

}  // namespace

bool IsPlainMd5Etag(std::string_view etag) {
  if (etag.size() != 32) return false;
  return std::all_of(etag.begin(), etag.end(),
                     [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

std::string S3Client::Describe(const std::string& bucket, const std::string& key) {
  return key.empty() ? "s3://" + bucket : "s3://" + bucket + "/" + key;
}

// ---- Impl ----

class S3Client::Impl {
 public:
  Impl(const S3Settings& settings, S3ClientOptions options)
      : settings_(settings), options_(std::move(options)) {
    GlobalCurlInit();
    endpoint_ = EffectiveEndpoint(settings_);
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    size_t scheme_end = endpoint_.find("://");
    if (scheme_end == std::string::npos) {
      scheme_ = "https";
      hostport_ = endpoint_;
    } else {
      scheme_ = endpoint_.substr(0, scheme_end);
      hostport_ = endpoint_.substr(scheme_end + 3);
    }
    size_t slash = hostport_.find('/');
    if (slash != std::string::npos) {
      base_path_ = hostport_.substr(slash);
      while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
      hostport_ = hostport_.substr(0, slash);
    }
  }

  ~Impl() = default;

  const std::string& endpoint() const { return endpoint_; }

  // Runs `call` with retries. `before_attempt` may adjust the call (ranges for a resumed GET).
  // Returns OK for a 2xx response; otherwise the translated error. `resp` holds the last
  // response either way.
  Status Execute(HttpCall& call, HttpResponse* resp,
                 const std::function<void(HttpCall&, int attempt)>& before_attempt = nullptr) {
    const int attempts = std::max(1, settings_.max_attempts);
    Status last;
    int used = 0;  // requests that reached the wire (or tried to): libcurl may resend one itself
    for (int round = 0;; ++round) {
      if (round > 0) Backoff(round);
      if (before_attempt) before_attempt(call, round);
      *resp = HttpResponse();
      bool retryable = false;
      int sends = 0;
      last = AttemptOnce(call, resp, &retryable, &sends);
      const int n = std::max(1, sends);
      requests_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      retries_.fetch_add(static_cast<uint64_t>(used > 0 ? n : n - 1), std::memory_order_relaxed);
      used += n;
      if (last.ok() || !retryable || used >= attempts) break;
    }
    if (!last.ok() && used > 1) {
      return Status(last.code(),
                    last.message() + " (gave up after " + std::to_string(used) + " attempts)");
    }
    return last;
  }

  std::string ErrorMessageResource(const HttpCall& call) const {
    return S3Client::Describe(call.bucket, call.key);
  }

  S3ClientStats stats() const {
    S3ClientStats s;
    s.requests = requests_.load();
    s.retries = retries_.load();
    s.connections = connections_.load();
    s.bytes_sent = bytes_sent_.load();
    s.bytes_received = bytes_received_.load();
    return s;
  }

  const S3Settings& settings() const { return settings_; }

 private:
  CurlEasy AcquireHandle() {
    {
      MutexLock lock(&pool_mu_);
      if (!idle_.empty()) {
        CurlEasy h = std::move(idle_.back());
        idle_.pop_back();
        return h;
      }
    }
    return CurlEasy(curl_easy_init());
  }

  void ReleaseHandle(CurlEasy h) {
    MutexLock lock(&pool_mu_);
    idle_.push_back(std::move(h));
  }

  void Backoff(int attempt) {
    // Full jitter: U(0, min(max, base * 2^attempt)).
    auto cap = options_.base_backoff * (1LL << std::min(attempt, 20));
    cap = std::min<std::chrono::milliseconds>(cap, options_.max_backoff);
    thread_local std::mt19937_64 rng{std::random_device{}()};
    std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(cap.count(), 0));
    std::this_thread::sleep_for(std::chrono::milliseconds(dist(rng)));
  }

  std::string Url(const HttpCall& call, std::string* host) const {
    std::string path;
    std::string url;
    if (call.bucket.empty()) {
      *host = hostport_;
      path = base_path_ + "/";
    } else if (UsesPathStyle(settings_, call.bucket)) {
      *host = hostport_;
      path = base_path_ + "/" + UriEncode(call.bucket, false);
      if (!call.key.empty()) path += "/" + UriEncode(call.key, true);
    } else {
      *host = call.bucket + "." + hostport_;
      path = base_path_ + "/" + UriEncode(call.key, true);
    }
    url = scheme_ + "://" + *host + path;
    if (!call.query.empty()) url += "?" + call.query;
    return url;
  }

  static std::string PathOf(const std::string& url) {
    size_t p = url.find("://");
    p = url.find('/', p + 3);
    std::string rest = url.substr(p);
    size_t q = rest.find('?');
    return q == std::string::npos ? rest : rest.substr(0, q);
  }

  // One curl_easy_perform. `*sends` counts the times the request went out (libcurl resends once
  // on a fresh connection when a reused one turns out dead).
  Status AttemptOnce(const HttpCall& call, HttpResponse* resp, bool* retryable, int* sends) {
    *retryable = false;
    std::string host;
    const std::string url = Url(call, &host);

    HttpRequestParts parts;
    parts.method = call.method;
    parts.path = PathOf(url);
    parts.query = call.query;
    parts.headers.emplace_back("Host", host);
    parts.headers.emplace_back("x-amz-content-sha256", call.payload_sha256);
    for (const auto& h : call.headers) parts.headers.push_back(h);
    if (!settings_.credentials.access_key_id.empty()) {
      SignS3Request(&parts, settings_.credentials, settings_.region,
                    std::chrono::system_clock::now());
    }

    Slist headers;
    auto add = [&](const std::string& line) {
      curl_slist* next = curl_slist_append(headers.get(), line.c_str());
      if (next != nullptr) {
        (void)headers.release();
        headers.reset(next);
      }
    };
    for (const auto& [k, v] : parts.headers) add(k + ": " + v);
    // Headers curl would add on its own that nobody signed: drop them. Expect: 100-continue
    // costs a round trip per upload; Accept is noise.
    add("Expect:");
    add("Accept:");
    if (call.body != nullptr && !FindHeader(parts, "content-type")) {
      add("Content-Type: application/octet-stream");
    }

    CurlEasy handle = AcquireHandle();
    if (!handle) return ResourceExhausted("cannot create a libcurl handle");
    CURL* h = handle.get();
    curl_easy_reset(h);
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    Transfer t;
    t.call = &call;
    t.resp = resp;

    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, kTransferBuffer);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, kTransferBuffer);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout_ms));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(settings_.low_speed_timeout_s));
    curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, HeaderCallback);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteCallback);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    if (call.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (call.body != nullptr) {
      // UPLOAD (a PUT unless told otherwise) for every body: POSTFIELDS would add a form
      // Content-Type.
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadCallback);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, SeekCallback);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(call.body->length));
      if (call.method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    } else if (call.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call.method.c_str());
    }

    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, PrereqCallback);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, &t);
    CURLcode rc = curl_easy_perform(h);
    *sends = t.sends;
    long new_conns = 0;
    if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &new_conns) == CURLE_OK && new_conns > 0) {
      connections_.fetch_add(static_cast<uint64_t>(new_conns), std::memory_order_relaxed);
    }
    bytes_sent_.fetch_add(t.sent, std::memory_order_relaxed);
    if (resp->status >= 200 && resp->status < 300) {
      bytes_received_.fetch_add(t.received, std::memory_order_relaxed);
    }
    // Clear what points into this frame before the handle goes back to the pool.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    ReleaseHandle(std::move(handle));

    const std::string what = call.method + " " + ErrorMessageResource(call);
    if (!t.abort.ok()) return t.abort;  // our own callback (sink, file) failed: not S3's fault
    if (rc != CURLE_OK) {
      CurlOutcome o = CurlCodeToStatus(rc, errbuf, endpoint_, what, settings_.low_speed_timeout_s);
      *retryable = o.retryable;
      return o.status;
    }
    if (resp->status >= 200 && resp->status < 300) {
      if (call.error_in_200) {
        S3ErrorBody err;
        if (ParseS3Error(resp->body, &err)) {
          *retryable = IsRetryableHttp(0, err.code);
          return HttpErrorStatus(call, *resp, err);
        }
      }
      return Status::Ok();
    }
    S3ErrorBody err;
    if (!ParseS3Error(resp->body, &err)) err = S3ErrorBody();
    *retryable = IsRetryableHttp(resp->status, err.code);
    return HttpErrorStatus(call, *resp, err);
  }

 public:
  // Turns an S3 error response into a Status whose message can stand as a job's FailureReason.
  Status HttpErrorStatus(const HttpCall& call, const HttpResponse& resp,
                         const S3ErrorBody& err) const {
    const std::string res = S3Client::Describe(call.bucket, call.key);
    std::string code = err.code;
    // An <Error> inside a 200 (CompleteMultipartUpload) counts as the 4xx/5xx it stands for.
    const long status = resp.status >= 300 ? resp.status : IsRetryableHttp(0, code) ? 500 : 400;
    if (code.empty()) {
      // HEAD responses carry no body: name the error by status and request.
      if (status == 404) {
        code = call.key.empty() ? "NoSuchBucket" : "NotFound";
      } else if (status == 403) {
        code = "AccessDenied";
      } else {
        code = ReasonPhrase(status);
      }
    }
    std::string msg = err.message;

    std::string bucket_region = resp.Header("x-amz-bucket-region");
    if (bucket_region.empty()) bucket_region = err.region;
    if (bucket_region.empty()) bucket_region = RegionFromMessage(msg);
    // HEAD answers carry no body: a 400 or redirect with x-amz-bucket-region naming another
    // region is the same wrong-region error.
    const bool region_error =
        code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" ||
        code == "IllegalLocationConstraintException" || status == 301 ||
        (code == "TemporaryRedirect" && !bucket_region.empty()) ||
        ((status == 400 || status == 307) && !resp.Header("x-amz-bucket-region").empty() &&
         resp.Header("x-amz-bucket-region") != settings_.region);
    if (region_error && !(code == "AuthorizationHeaderMalformed" && bucket_region.empty())) {
      if (!bucket_region.empty() && bucket_region != settings_.region) {
        return FailedPrecondition("bucket '" + call.bucket + "' is in region " + bucket_region +
                                  ", not " + settings_.region +
                                  " (set AWS_REGION / storage.s3.region)");
      }
      return FailedPrecondition("bucket '" + call.bucket + "' must be addressed elsewhere (" +
                                code + (msg.empty() ? "" : ": " + msg) + ", endpoint " +
                                (err.endpoint.empty() ? endpoint_ : err.endpoint) +
                                "); check AWS_REGION / storage.s3.region and the endpoint");
    }
    if (code == "NoSuchBucket") {
      return NotFound("bucket '" + call.bucket + "' does not exist (NoSuchBucket) at " + endpoint_);
    }
    if (code == "NoSuchKey" || code == "NotFound") {
      return NotFound("no such object " + res + " (" + code + ")");
    }
    if (code == "NoSuchUpload") {
      return NotFound("the multipart upload of " + res + " no longer exists (NoSuchUpload)");
    }
    if (status == 403 || code == "AccessDenied" || code == "SignatureDoesNotMatch" ||
        code == "InvalidAccessKeyId" || code == "InvalidToken" || code == "ExpiredToken" ||
        code == "TokenRefreshRequired" || code == "AllAccessDisabled") {
      std::string source =
          settings_.credentials.access_key_id.empty()
              ? std::string("none configured: requests are unsigned")
              : (settings_.credentials_source.empty() ? std::string("unknown source")
                                                      : settings_.credentials_source);
      if (msg.empty()) msg = code == "AccessDenied" ? "Access Denied" : code;
      return Status(
          StatusCode::kPermissionDenied,
          msg + " (" + code + ") for " + res + ": check the S3 credentials (from " + source + ")");
    }
    if (status == 412 || code == "PreconditionFailed") {
      return FailedPrecondition(res + " changed while it was being read (PreconditionFailed)");
    }
    if (code == "BadDigest" || code == "InvalidDigest") {
      return IoError("S3 refused the bytes sent for " + res + " (" + code +
                     "): the file changed while it was uploaded, or was corrupted in transit");
    }
    std::string text = msg.empty() ? code : msg + " (" + code + ")";
    if (IsRetryableHttp(status, code)) {
      return Unavailable("S3 is unavailable or throttling: " + text + " for " + res);
    }
    if (status >= 400 && status < 500) {
      return InvalidArgument("S3 refused the request for " + res + ": " + text + ", HTTP " +
                             std::to_string(status));
    }
    return IoError("unexpected S3 response for " + res + ": " + text + ", HTTP " +
                   std::to_string(status));
  }

 private:
  S3Settings settings_;
  S3ClientOptions options_;
  std::string endpoint_;
  std::string scheme_;
  std::string hostport_;
  std::string base_path_;

  Mutex pool_mu_;
  std::vector<CurlEasy> idle_ TY_GUARDED_BY(pool_mu_);  // handles not in use, connections open

  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
};

S3Client::S3Client(S3Settings settings, S3ClientOptions options)
    : settings_(std::move(settings)),
      impl_(std::make_unique<Impl>(settings_, std::move(options))) {}

S3Client::~S3Client() = default;

S3ClientStats S3Client::stats() const { return impl_->stats(); }

namespace {

HttpCall ObjectCall(const char* method, const std::string& bucket, const std::string& key) {
  HttpCall c;
  c.method = method;
  c.bucket = bucket;
  c.key = key;
  return c;
}

}  // namespace

Result<std::string> S3Client::PutObject(const std::string& bucket, const std::string& key,
                                        const S3Body& body, const S3PutOptions& options) {
  S3Body b = body;
  if (b.content_md5.empty()) {
    TY_ASSIGN_OR_RETURN(b.content_md5, ComputeContentMd5(b));
  }
  HttpCall call = ObjectCall("PUT", bucket, key);
  call.body = &b;
  call.payload_sha256 = kUnsignedPayload;
  call.headers.emplace_back("Content-MD5", b.content_md5);
  call.headers.emplace_back("Content-Type", options.content_type);
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  std::string etag = Unquote(resp.Header("etag"));
  // S3 checks Content-MD5 itself; this also catches servers that do not (s3rver).
  if (IsPlainMd5Etag(etag) && !IsKmsEncrypted(resp.Header("x-amz-server-side-encryption")) &&
      resp.Header("x-amz-server-side-encryption-customer-algorithm").empty()) {
    std::string want;
    {
      // content_md5 is base64 of the raw digest; compare in hex.
      std::string raw(16, '\0');
      int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                              reinterpret_cast<const unsigned char*>(b.content_md5.data()),
                              static_cast<int>(b.content_md5.size()));
      if (n >= 16) want = HexEncode(raw.substr(0, 16));
    }
    if (!want.empty() && Lower(etag) != want) {
      return IoError("S3 stored different bytes for " + Describe(bucket, key) + " (ETag " + etag +
                     ", MD5 sent " + want + ")");
    }
  }
  return etag;
}

Result<S3ObjectMeta> S3Client::GetObject(const std::string& bucket, const std::string& key,
                                         const S3GetOptions& options, const S3Sink& sink) {
  const std::string what = Describe(bucket, key);
  uint64_t received = 0;  // bytes delivered to the sink so far, over all attempts
  std::string etag_seen;
  bool reported = false;
  bool empty_object_retry = false;  // a range GET on an empty object: ask again without Range
  S3ObjectMeta meta;
  uint64_t expected_total = 0;  // bytes this GET should deliver
  Md5 md5;

  HttpCall call = ObjectCall("GET", bucket, key);
  call.sink = [&](std::string_view data) -> Status {
    TY_RETURN_IF_ERROR(sink(received, data));
    md5.Update(data);
    received += data.size();
    return Status::Ok();
  };
  bool empty_range = false;  // a ranged GET found an empty object
  call.on_headers = [&](long status, const std::map<std::string, std::string>& h) -> Status {
    S3ObjectMeta m = MetaFromHeaders(h);
    if (!reported && status == 206 && m.size == 0) {
      // No range of an empty object exists; servers answer 416 or (s3rver) a 206 whose
      // Content-Length is off by one. Either way: ask again for the whole object.
      empty_range = true;
      return Unavailable("empty object");
    }
    if (!reported) {
      meta = m;
      etag_seen = m.etag;
      auto cl = h.find("content-length");
      if (cl == h.end()) {
        return IoError("S3 sent no Content-Length for " + what);
      }
      uint64_t len = ParseU64(cl->second);
      if (options.range && status != 206 &&
          !(options.range->first == 0 && m.size <= options.range->second)) {
        return IoError("S3 ignored the Range of a GET of " + what);
      }
      if (options.range && status == 206) {
        expected_total = options.range->first >= m.size
                             ? 0
                             : std::min(options.range->second, m.size - options.range->first);
      } else {
        expected_total = m.size;
      }
      if (len != expected_total) {
        return IoError("S3 announced " + std::to_string(len) + " bytes for " + what +
                       ", expected " + std::to_string(expected_total));
      }
      reported = true;
      if (options.on_headers) TY_RETURN_IF_ERROR(options.on_headers(meta));
    } else {
      // A resumed GET: the rest of the same bytes, announced consistently.
      uint64_t len = ParseU64(h.count("content-length") ? h.at("content-length") : "0");
      if (len != expected_total - received) {
        return IoError("S3 announced an inconsistent length when resuming " + what);
      }
    }
    return Status::Ok();
  };

  auto before_attempt = [&](HttpCall& c, int) {
    c.headers.clear();
    uint64_t first = options.range ? options.range->first : 0;
    std::string range;
    if (!empty_object_retry) {
      if (options.range) {
        uint64_t last = options.range->first + options.range->second - 1;
        if (reported) last = first + expected_total - 1;
        range = "bytes=" + std::to_string(first + received) + "-" + std::to_string(last);
      } else if (received > 0) {
        range = "bytes=" + std::to_string(received) + "-" + std::to_string(expected_total - 1);
      }
    }
    if (!range.empty()) c.headers.emplace_back("Range", range);
    std::string if_match = !options.if_match.empty() ? options.if_match : etag_seen;
    // Once headers were seen, every later attempt is pinned to that version of the object.
    if (!if_match.empty() && (!options.if_match.empty() || reported)) {
      c.headers.emplace_back("If-Match", "\"" + if_match + "\"");
    }
  };

  HttpResponse resp;
  Status s = impl_->Execute(call, &resp, before_attempt);
  if (!s.ok() && (resp.status == 416 || empty_range) && options.range &&
      options.range->first == 0 && received == 0 && !reported) {
    // S3 cannot satisfy any range of an empty object; the whole (empty) object it is.
    empty_object_retry = true;
    s = impl_->Execute(call, &resp, before_attempt);
  }
  TY_RETURN_IF_ERROR(s);
  if (!reported) {
    // A 2xx whose headers never completed: not a response we can trust.
    return IoError("S3 sent no usable headers for " + what);
  }
  if (received != expected_total) {
    return IoError("received " + std::to_string(received) + " of " +
                   std::to_string(expected_total) + " bytes of " + what);
  }
  const bool whole = !options.range || empty_object_retry ||
                     (options.range->first == 0 && meta.size <= options.range->second);
  if (whole && options.verify_md5 && IsPlainMd5Etag(meta.etag) &&
      !IsKmsEncrypted(meta.server_side_encryption) &&
      resp.Header("x-amz-server-side-encryption-customer-algorithm").empty()) {
    std::string got = HexEncode(md5.Finish());
    if (got != Lower(meta.etag)) {
      return IoError("downloaded bytes of " + what + " do not match its ETag " + meta.etag +
                     " (MD5 " + got + "): corrupted in transit");
    }
  }
  return meta;
}

Result<S3ObjectMeta> S3Client::GetObjectToFile(const std::string& bucket, const std::string& key,
                                               const S3GetOptions& options, int fd,
                                               uint64_t file_offset) {
  return GetObject(bucket, key, options,
                   [fd, file_offset](uint64_t offset, std::string_view data) -> Status {
                     size_t done = 0;
                     while (done < data.size()) {
                       ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done,
                                            static_cast<off_t>(file_offset + offset + done));
                       if (n < 0) {
                         if (errno == EINTR) continue;
                         return ErrnoStatus("cannot write the downloaded object", errno);
                       }
                       done += static_cast<size_t>(n);
                     }
                     return Status::Ok();
                   });
}

Result<std::string> S3Client::GetObjectToString(const std::string& bucket, const std::string& key,
                                                const S3GetOptions& options) {
  std::string out;
  TY_RETURN_IF_ERROR(
      GetObject(bucket, key, options, [&out](uint64_t offset, std::string_view data) -> Status {
        if (offset != out.size()) return Internal("out-of-order body");
        out.append(data);
        return Status::Ok();
      }).status());
  return out;
}

Result<S3ObjectMeta> S3Client::HeadObject(const std::string& bucket, const std::string& key) {
  HttpCall call = ObjectCall("HEAD", bucket, key);
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  return MetaFromHeaders(resp.headers);
}

Status S3Client::DeleteObject(const std::string& bucket, const std::string& key) {
  HttpCall call = ObjectCall("DELETE", bucket, key);
  HttpResponse resp;
  Status s = impl_->Execute(call, &resp);
  if (s.code() == StatusCode::kNotFound && resp.status == 404 &&
      s.message().find("NoSuchBucket") == std::string::npos) {
    return Status::Ok();
  }
  return s;
}

Result<std::vector<S3DeleteError>> S3Client::DeleteObjects(const std::string& bucket,
                                                           const std::vector<std::string>& keys) {
  std::vector<S3DeleteError> failed;
  std::vector<std::string> batch;
  auto flush = [&]() -> Status {
    if (batch.empty()) return Status::Ok();
    std::string xml = BuildDeleteRequest(batch);
    S3Body body = S3Body::Memory(xml);
    TY_ASSIGN_OR_RETURN(body.content_md5, ComputeContentMd5(body));
    HttpCall call = ObjectCall("POST", bucket, "");
    call.query = "delete";
    call.body = &body;
    call.payload_sha256 = Sha256Hex(xml);
    call.headers.emplace_back("Content-MD5", body.content_md5);
    call.headers.emplace_back("Content-Type", "application/xml");
    HttpResponse resp;
    TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
    if (!resp.body.empty()) {
      TY_ASSIGN_OR_RETURN(std::vector<S3DeleteError> errors, ParseDeleteResult(resp.body));
      for (auto& e : errors) failed.push_back(std::move(e));
    }
    batch.clear();
    return Status::Ok();
  };
  for (const std::string& key : keys) {
    if (HasXmlForbiddenChar(key)) {
      // XML cannot carry this key: delete it on its own.
      Status s = DeleteObject(bucket, key);
      if (!s.ok()) failed.push_back({key, StatusCodeName(s.code()), s.message()});
      continue;
    }
    batch.push_back(key);
    if (batch.size() == kMaxDeleteBatch) TY_RETURN_IF_ERROR(flush());
  }
  TY_RETURN_IF_ERROR(flush());
  return failed;
}

Result<S3ListPage> S3Client::ListObjectsV2(const std::string& bucket,
                                           const S3ListOptions& options) {
  // Parameters in sorted order (the canonical form sorts anyway).
  std::string q;
  auto param = [&q](const char* name, const std::string& value) {
    if (!q.empty()) q.push_back('&');
    q.append(name).push_back('=');
    q.append(UriEncode(value, false));
  };
  if (!options.continuation_token.empty()) param("continuation-token", options.continuation_token);
  if (!options.delimiter.empty()) param("delimiter", options.delimiter);
  param("encoding-type", "url");
  param("list-type", "2");
  param("max-keys", std::to_string(std::clamp(options.max_keys, 1, 1000)));
  if (!options.prefix.empty()) param("prefix", options.prefix);
  if (!options.start_after.empty()) param("start-after", options.start_after);
  HttpCall call = ObjectCall("GET", bucket, "");
  call.query = q;
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  return ParseListObjectsV2(resp.body);
}

Status S3Client::ListObjectsV2Pages(const std::string& bucket, S3ListOptions options,
                                    const std::function<Status(S3ListPage&)>& page_fn) {
  for (;;) {
    TY_ASSIGN_OR_RETURN(S3ListPage page, ListObjectsV2(bucket, options));
    std::string next = page.next_continuation_token;
    bool more = page.truncated && !next.empty();
    TY_RETURN_IF_ERROR(page_fn(page));
    if (!more) return Status::Ok();
    if (next == options.continuation_token) {
      return IoError("S3 returned the same continuation token twice listing " +
                     Describe(bucket, options.prefix));
    }
    options.continuation_token = std::move(next);
  }
}

Result<std::vector<S3ListEntry>> S3Client::ListAllObjects(const std::string& bucket,
                                                          const std::string& prefix) {
  std::vector<S3ListEntry> out;
  S3ListOptions options;
  options.prefix = prefix;
  TY_RETURN_IF_ERROR(ListObjectsV2Pages(bucket, options, [&out](S3ListPage& page) {
    for (auto& e : page.objects) out.push_back(std::move(e));
    return Status::Ok();
  }));
  return out;
}

Result<std::string> S3Client::CreateMultipartUpload(const std::string& bucket,
                                                    const std::string& key,
                                                    const S3PutOptions& options) {
  static const std::string kNothing;
  S3Body body = S3Body::Memory(kNothing);
  HttpCall call = ObjectCall("POST", bucket, key);
  call.query = "uploads";
  call.body = &body;
  call.headers.emplace_back("Content-Type", options.content_type);
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  return ParseInitiateMultipartUpload(resp.body);
}

Result<std::string> S3Client::UploadPart(const std::string& bucket, const std::string& key,
                                         const std::string& upload_id, int part_number,
                                         const S3Body& body) {
  S3Body b = body;
  if (b.content_md5.empty()) {
    TY_ASSIGN_OR_RETURN(b.content_md5, ComputeContentMd5(b));
  }
  HttpCall call = ObjectCall("PUT", bucket, key);
  call.query =
      "partNumber=" + std::to_string(part_number) + "&uploadId=" + UriEncode(upload_id, false);
  call.body = &b;
  call.payload_sha256 = kUnsignedPayload;
  call.headers.emplace_back("Content-MD5", b.content_md5);
  call.headers.emplace_back("Content-Type", "application/octet-stream");
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  std::string etag = Unquote(resp.Header("etag"));
  if (etag.empty()) {
    return IoError("S3 returned no ETag for part " + std::to_string(part_number) + " of " +
                   Describe(bucket, key));
  }
  return etag;
}

Result<std::string> S3Client::CompleteMultipartUpload(const std::string& bucket,
                                                      const std::string& key,
                                                      const std::string& upload_id,
                                                      const std::vector<S3CompletedPart>& parts) {
  std::vector<S3CompletedPart> sorted = parts;
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.part_number < b.part_number; });
  std::string xml = BuildCompleteMultipartUpload(sorted);
  S3Body body = S3Body::Memory(xml);
  HttpCall call = ObjectCall("POST", bucket, key);
  call.query = "uploadId=" + UriEncode(upload_id, false);
  call.body = &body;
  call.payload_sha256 = Sha256Hex(xml);
  call.headers.emplace_back("Content-Type", "application/xml");
  call.error_in_200 = true;
  HttpResponse resp;
  TY_RETURN_IF_ERROR(impl_->Execute(call, &resp));
  return ParseCompleteMultipartUpload(resp.body);
}

Status S3Client::AbortMultipartUpload(const std::string& bucket, const std::string& key,
                                      const std::string& upload_id) {
  HttpCall call = ObjectCall("DELETE", bucket, key);
  call.query = "uploadId=" + UriEncode(upload_id, false);
  HttpResponse resp;
  Status s = impl_->Execute(call, &resp);
  if (s.code() == StatusCode::kNotFound && s.message().find("NoSuchUpload") != std::string::npos) {
    return Status::Ok();
  }
  return s;
}

Status S3Client::CreateBucket(const std::string& bucket) {
  std::string xml;
  if (settings_.region != "us-east-1") xml = BuildCreateBucketConfiguration(settings_.region);
  S3Body body = S3Body::Memory(xml);
  HttpCall call = ObjectCall("PUT", bucket, "");
  call.body = &body;
  call.payload_sha256 = Sha256Hex(xml);
  if (!xml.empty()) call.headers.emplace_back("Content-Type", "application/xml");
  HttpResponse resp;
  Status s = impl_->Execute(call, &resp);
  if (s.ok()) return s;
  S3ErrorBody err;
  if (ParseS3Error(resp.body, &err)) {
    if (err.code == "BucketAlreadyOwnedByYou") return Status::Ok();
    if (err.code == "BucketAlreadyExists") {
      // Some servers (s3rver) say this for a bucket of our own: ours if we can use it.
      if (HeadBucket(bucket).ok()) return Status::Ok();
      return AlreadyExists("bucket '" + bucket + "' already exists (BucketAlreadyExists)");
    }
  }
  return s;
}

Status S3Client::HeadBucket(const std::string& bucket) {
  HttpCall call = ObjectCall("HEAD", bucket, "");
  HttpResponse resp;
  return impl_->Execute(call, &resp);
}

}  // namespace ty::storage
