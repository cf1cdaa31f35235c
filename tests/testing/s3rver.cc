#include "testing/s3rver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/fs.h"

#ifndef TY_SOURCE_DIR
#error "TY_SOURCE_DIR (the repository root) must be defined by CMake"
#endif

namespace ty::testing {
namespace {

constexpr char kInstallHint[] =
    "s3rver is not installed: run `scripts/s3rver.sh install` (needs npm) or set TY_S3RVER to "
    "the s3rver binary";

// A port that was free a moment ago. s3rver cannot be told to pick one and report it, so there
// is a small window in which another process could take it; Start retries when that happens.
Result<int> PickFreePort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("bind 127.0.0.1:0", errno);
  }
  socklen_t len = sizeof(addr);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus("getsockname", errno);
  }
  return static_cast<int>(ntohs(addr.sin_port));
}

Result<UniqueFd> ConnectLoopback(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoStatus("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoStatus("connect 127.0.0.1:" + std::to_string(port), errno);
  }
  return fd;
}

std::string TailOfFile(const std::string& path, size_t max_bytes = 2000) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) return "";
  return text->size() > max_bytes ? text->substr(text->size() - max_bytes) : *text;
}

}  // namespace

Result<RawHttpResponse> RawHttp(int port, const std::string& method, const std::string& target,
                                const std::string& body) {
  TY_ASSIGN_OR_RETURN(UniqueFd fd, ConnectLoopback(port));
  timeval tv{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string request =
      method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
      "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("send to 127.0.0.1:" + std::to_string(port), errno);
    }
    off += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("recv from 127.0.0.1:" + std::to_string(port), errno);
    }
    response.append(buf, static_cast<size_t>(n));
  }
  size_t head_end = response.find("\r\n\r\n");
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
    return IoError("not an HTTP response from 127.0.0.1:" + std::to_string(port) + ": " +
                   response.substr(0, 200));
  }
  RawHttpResponse out;
  out.status = std::atoi(response.c_str() + 9);
  out.head = response.substr(0, head_end);
  out.body = response.substr(head_end + 4);
  return out;
}

Result<std::string> S3rver::FindBinary() {
  if (const char* env = std::getenv("TY_S3RVER"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) != 0) {
      return NotFound(std::string("TY_S3RVER=") + env + " is not an executable file");
    }
    return std::string(env);
  }
  std::string bundled = std::string(TY_SOURCE_DIR) + "/.deps/s3rver/node_modules/.bin/s3rver";
  if (::access(bundled.c_str(), X_OK) != 0) {
    return NotFound(std::string(kInstallHint) + " (looked for " + bundled + ")");
  }
  return bundled;
}

bool S3rver::Required() {
  const char* ci = std::getenv("CI");
  if (ci == nullptr) return false;
  std::string v = ci;
  return !(v.empty() || v == "0" || v == "false");
}

Result<std::unique_ptr<S3rver>> S3rver::Start(const std::string& binary) {
  Status last = IoError("s3rver did not start");
  // A port taken between PickFreePort and s3rver's listen shows up as s3rver exiting early.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::unique_ptr<S3rver> s(new S3rver());
    s->dir_ = std::make_unique<TempDir>("ty-s3rver-");
    s->data_dir_ = s->dir_->Sub("data");
    s->log_path_ = s->dir_->Sub("s3rver.log");
    TY_RETURN_IF_ERROR(MakeDirs(s->data_dir_));
    TY_ASSIGN_OR_RETURN(s->port_, PickFreePort());
    s->endpoint_ = "http://127.0.0.1:" + std::to_string(s->port_);

    SpawnOptions spawn;
    spawn.argv = {binary,    "-d", s->data_dir_, "-a", "127.0.0.1", "-p", std::to_string(s->port_),
                  "--silent"};
    const char* path = std::getenv("PATH");
    spawn.env["PATH"] = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    spawn.env["HOME"] = s->dir_->path();
    // Without it node 17+ refuses s3rver's MD5-based continuation tokens: paginated listings
    // fail with a 500.
    spawn.env["NODE_OPTIONS"] = "--openssl-legacy-provider";
    spawn.capture_output = false;
    spawn.stdout_file = s->log_path_;
    TY_ASSIGN_OR_RETURN(s->process_, Subprocess::Spawn(spawn));

    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    bool up = false;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (s->process_->TryWait().has_value()) {
        exited = true;
        break;
      }
      Result<RawHttpResponse> r = RawHttp(s->port_, "GET", "/");
      if (r.ok() && r->status == 200) {
        up = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (up) return s;
    last =
        IoError("s3rver (" + binary + ") " + (exited ? "exited" : "did not answer within 20 s") +
                " on port " + std::to_string(s->port_) + "; its log:\n" + TailOfFile(s->log_path_));
    if (!exited) break;
  }
  return last;
}

S3rver* S3rver::Shared(std::string* why) {
  static std::mutex mu;
  static std::unique_ptr<S3rver> shared;  // destroyed at exit: kills s3rver
  static bool tried = false;
  static std::string failure;
  std::lock_guard<std::mutex> lock(mu);
  if (!tried) {
    tried = true;
    Result<std::string> binary = FindBinary();
    if (!binary.ok()) {
      failure = binary.status().message();
    } else {
      Result<std::unique_ptr<S3rver>> started = Start(*binary);
      if (started.ok()) {
        shared = std::move(*started);
      } else {
        failure = started.status().message();
      }
    }
  }
  if (shared == nullptr && why != nullptr) *why = failure;
  return shared.get();
}

S3rver::~S3rver() {
  if (process_ != nullptr) {
    (void)process_->SignalGroup(SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (!process_->TryWait().has_value() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!process_->TryWait().has_value()) (void)process_->SignalGroup(SIGKILL);
    (void)process_->Wait();
  }
}

storage::S3Settings S3rver::SettingsFor(const std::string& endpoint) {
  storage::S3Settings s;
  s.endpoint = endpoint;
  s.region = "us-east-1";
  s.addressing = storage::S3Addressing::kPath;
  s.credentials.access_key_id = "S3RVER";
  s.credentials.secret_access_key = "S3RVER";
  s.credentials_source = "test s3rver";
  s.max_attempts = 3;
  s.connect_timeout_ms = 2000;
  s.low_speed_timeout_s = 10;
  return s;
}

storage::S3Settings S3rver::settings() const { return SettingsFor(endpoint_); }

Status S3rver::CreateBucket(const std::string& bucket) const {
  TY_ASSIGN_OR_RETURN(RawHttpResponse r, RawHttp(port_, "PUT", "/" + bucket));
  if (r.status == 200 || r.body.find("BucketAlreadyOwnedByYou") != std::string::npos) {
    return Status::Ok();
  }
  return IoError("s3rver refused to create bucket '" + bucket + "': HTTP " +
                 std::to_string(r.status) + " " + r.body);
}

std::string S3rver::UniqueBucketName(const std::string& prefix) {
  static std::atomic<int> next{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(next++);
}

}  // namespace ty::testing
