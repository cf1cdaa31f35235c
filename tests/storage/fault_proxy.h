// FaultProxy: a test-only HTTP/1.1 proxy on a loopback port in front of one upstream server
// (s3rver), which injects the faults a real S3 connection shows: a connection closed while a
// request body is still being sent, 503 SlowDown answers, a response cut off mid-body. Every
// request is logged, so a test can assert what the client sent (e.g. that an
// AbortMultipartUpload went out).
//
// It understands just enough HTTP for S3 clients: requests with Content-Length bodies (or none),
// "Expect: 100-continue" (answered by the proxy itself and not forwarded), responses with
// Content-Length, chunked or close-delimited bodies, keep-alive on both sides (one upstream
// connection per client connection).
//
// Owns a listening socket, an accept thread and one thread per client connection; the destructor
// closes every socket and joins every thread. Thread contract: all public methods may be called
// from any thread while the proxy runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace ty::storage::testing {

enum class FaultKind {
  // Forward the request head and the first `bytes` bytes of its body, then close both
  // connections without answering.
  kDropRequestBody,
  // Do not forward: answer 503 with S3's SlowDown XML error body.
  kSlowDown,
  // Forward the request, then send the client the response head and the first `bytes` bytes of
  // its body, and close both connections.
  kDropResponseBody,
};

struct FaultRule {
  FaultKind kind = FaultKind::kSlowDown;
  // A request matches when its method equals `method` (empty: any) and its target (path and
  // query as sent) contains `target_contains` (empty: any).
  std::string method;
  std::string target_contains;
  uint64_t bytes = 0;  // for kDropRequestBody / kDropResponseBody
  int skip = 0;        // let this many matching requests through untouched first
  int times = 1;       // then apply the fault to this many matching requests; -1: to all
};

struct ProxiedRequest {
  std::string method;
  std::string target;       // path and query, as sent
  uint64_t body_bytes = 0;  // Content-Length announced by the client
  int status = 0;           // status sent to the client; 0 when the connection was dropped
  bool faulted = false;     // a rule applied
};

class FaultProxy {
 public:
  // Listens on 127.0.0.1:0 and forwards to 127.0.0.1:`upstream_port`.
  static Result<std::unique_ptr<FaultProxy>> Start(int upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>".
  std::string endpoint() const;

  // Rules are checked in the order added; the first one that matches a request and still has
  // uses left applies. Matching requests of a rule count as they arrive.
  void AddRule(const FaultRule& rule);
  void ClearRules();

  // Requests seen so far, in arrival order (a request is logged once its fate is known). Waits
  // (up to 2 s) for requests whose heads were read but whose fate is not logged yet, so a client
  // that has its answer finds its request in the log.
  std::vector<ProxiedRequest> Requests() const;
  // Requests whose method matches (empty: any) and whose target contains `target_contains`.
  int CountRequests(const std::string& method, const std::string& target_contains) const;
  // Number of client connections accepted so far.
  int connections() const { return connections_.load(); }
  void ClearLog();

 private:
  struct RuleState {
    FaultRule rule;
    int seen = 0;
    int applied = 0;
  };

  FaultProxy() = default;
  void AcceptLoop();
  void Serve(int client_fd);
  // True (and the rule copied to *out) when a rule applies to this request; counts it.
  bool MatchRule(const std::string& method, const std::string& target, FaultRule* out);
  void Log(ProxiedRequest r);
  void BeginRequest();
  // Holds `lock` until no request is in flight, or 2 s passed.
  void WaitSettled(std::unique_lock<std::mutex>& lock) const;

  int listen_fd_ = -1;
  int port_ = 0;
  int upstream_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;

  mutable std::mutex mu_;
  std::vector<RuleState> rules_;     // guarded by mu_
  std::vector<ProxiedRequest> log_;  // guarded by mu_
  int in_flight_ = 0;                // heads read, not yet logged; guarded by mu_
  mutable std::condition_variable settled_;
  std::vector<int> open_fds_;         // client and upstream sockets in use; guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_
};

}  // namespace ty::storage::testing
