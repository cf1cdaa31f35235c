// HttpServer: an event-driven HTTP/1.1 server for hostile networks (Boost.Beast/Asio).
//
// What it is: a listener plus per-connection state machines driven by a few I/O threads, and
// bounded pools of worker threads that run request handlers. An open connection costs a socket,
// a small buffer and a timer, never a thread: idle keep-alive connections, slow clients and
// half-sent requests wait in the I/O threads' epoll set.
//
// Contract, per connection:
//   - Requests are read one after another; a request's response is written before the next
//     request is read, so pipelined requests (several in one write) are all answered, in order.
//   - Deadlines: the request head (request line + headers) must arrive within head_timeout of
//     its first byte, the body within body_timeout of the head, and a response must be taken by
//     the client within body_timeout. Between requests (and before the first) a connection may
//     sit idle for idle_timeout. A missed deadline closes the connection without a response.
//   - Limits: a head larger than max_header_bytes gets a kHeaderTooLarge error (431), a body
//     larger than the route's limit (Content-Length or chunked) a kBodyTooLarge error (413);
//     both close the connection after the response. An unparsable request gets kBadRequest
//     (400) and a close. A connection beyond max_connections in total or beyond
//     max_connections_per_client from one remote address is closed at accept, unanswered.
//   - A request whose method and path match no route gets kNoRoute (404), its body read first,
//     and the connection stays usable.
//   - A handler that throws yields kHandlerFailed (500); the connection stays usable.
//   - `Expect: 100-continue` is answered before the body is read.
//
// Threads: Start() spawns io_threads I/O threads (the sockets, parsing, timers, error
// rendering) and each pool's workers. Handlers run only on their route's pool, never on an I/O
// thread, so they may block; a pool of N threads runs at most N handlers at once and the rest
// wait in its queue (at most one request per connection is queued or running, so the queue is
// bounded by the connection limits). Routes on different pools never wait for each other. The
// error renderer runs on I/O threads and must not block. All configuration calls (AddPool,
// Route, SetErrorRenderer, Bind) happen before Start(), from one thread; Shutdown, Wait and
// stats() may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ty::server {

struct HttpRequest {
  std::string method;  // "POST"
  std::string target;  // as on the wire: path plus "?query"
  std::string path;    // target before '?'
  std::string query;   // target after '?', without it; empty when none
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as sent
  std::string body;
  std::string remote_address;  // the peer's IP address

  // Value of the first header named `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type;  // sent as Content-Type when not empty
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// A handler answers one request. It may block (it runs on its route's pool) and may throw.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

enum class HttpErrorKind {
  kNoRoute,         // 404: no route for this method and path
  kHeaderTooLarge,  // 431: the head exceeds max_header_bytes
  kBodyTooLarge,    // 413: the body exceeds the route's limit
  kBadRequest,      // 400: not parsable as HTTP/1.x
  kHandlerFailed,   // 500: the handler threw
};

// What went wrong, for the error renderer. `message` is a plain-English sentence naming the
// limit where one was hit; method and path are empty when the head could not be read.
struct HttpError {
  HttpErrorKind kind;
  int status;
  std::string message;
  std::string method;
  std::string path;
};

// Turns an error into a response; runs on an I/O thread, must not block, may throw (then a
// plain-text response with the error's status is sent).
using HttpErrorRenderer = std::function<HttpResponse(const HttpError&)>;

struct HttpServerOptions {
  // Threads running the sockets. Two keep one slow TLS-less parse from delaying every socket.
  int io_threads = 2;
  // Head deadline: from a request's first byte to the end of its headers.
  std::chrono::milliseconds head_timeout{std::chrono::seconds(10)};
  // Body deadline: from the end of the headers to the end of the body; also the deadline for
  // the client to take a response.
  std::chrono::milliseconds body_timeout{std::chrono::seconds(30)};
  // How long a connection may sit with no request in progress (keep-alive, or freshly opened).
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};
  size_t max_header_bytes = 32 * 1024;    // request line + headers
  size_t max_body_bytes = 1 << 20;        // for routes that do not set their own
  int max_connections = 10000;            // open at once, all clients
  int max_connections_per_client = 1024;  // open at once from one remote IP address
  // Raise RLIMIT_NOFILE's soft limit to its hard limit at Start(), so that thousands of
  // connections fit (Debian's default soft limit is 1024).
  bool raise_fd_limit = true;
};

// Counters since Start(), for tests and benchmarks.
struct HttpServerStats {
  int64_t open_connections = 0;
  int64_t accepted = 0;   // connections admitted
  int64_t refused = 0;    // closed at accept: over a connection limit
  int64_t timed_out = 0;  // closed for a missed head, body, write or idle deadline
  int64_t requests = 0;   // handed to a handler
  int64_t errors = 0;     // answered by the error renderer
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  // Shuts down (waiting for connections) if still running.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Adds a worker pool of `threads` threads (at least 1) and returns its id for Route().
  // REQUIRES: before Start().
  int AddPool(const std::string& name, int threads);
  // Routes requests with this method and path (query ignored) to `handler` on pool `pool`.
  // Method "*" matches any method; a path ending in '*' matches every path with that prefix
  // ("*" alone: every path). Routes are matched in the order added. max_body_bytes 0 means the
  // options' limit. REQUIRES: before Start(), a pool id from AddPool().
  void Route(const std::string& method, const std::string& path, int pool, HttpHandler handler,
             size_t max_body_bytes = 0);
  // Default: a text/plain response with the error's message.
  void SetErrorRenderer(HttpErrorRenderer renderer);

  // Binds and listens on host:port (port 0: any free port); connections queue in the backlog
  // until Start(). Returns the bound port, or kIoError naming the address.
  Result<int> Bind(const std::string& host, int port);
  // Starts the I/O threads and begins accepting. REQUIRES: Bind() succeeded.
  Status Start();
  // Stops accepting, cancels reads on every connection, and lets requests already in a
  // handler finish and be answered (then their connections close). With wait_for_connections
  // it returns once every connection is closed and every thread has ended; without, it
  // returns at once and the caller must end the process rather than destroy this object
  // while a handler may still be running. Idempotent.
  void Shutdown(bool wait_for_connections = true);
  // Blocks until Shutdown() was called and the I/O threads have ended.
  void Wait();

  HttpServerStats stats() const;

  struct Impl;  // public so that the .cc's connection type can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace ty::server
