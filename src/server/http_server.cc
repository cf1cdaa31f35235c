#include "server/http_server.h"

#include <strings.h>
#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace ty::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Tcp = net::ip::tcp;

namespace {

// After an error that closes the connection, the client may still be sending (a 200 KB header,
// a 2 MiB body). Closing with unread bytes makes the kernel send a reset, which can destroy our
// response before the client reads it; so we stop sending, read and discard for a while, then
// close. Bounded both ways so that a client cannot keep us draining.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 64 << 20;
constexpr size_t kLingerChunk = 16 * 1024;
// The first read of an idle connection: small, since an idle connection should cost little.
constexpr size_t kIdleReadBytes = 1024;
// accept() failing with EMFILE and friends: retry after a pause rather than spin.
constexpr auto kAcceptRetry = std::chrono::milliseconds(50);

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

bool IsParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

struct RouteEntry {
  std::string method;
  std::string path;
  int pool;
  HttpHandler handler;
  size_t max_body_bytes;
};

class Session;

}  // namespace

const std::string* HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), name.size()) == 0) {
      return &v;
    }
  }
  return nullptr;
}

struct HttpServer::Impl {
  explicit Impl(const HttpServerOptions& o) : options(o) {}

  HttpServerOptions options;
  net::io_context ioc;
  Tcp::acceptor acceptor{net::make_strand(ioc)};
  net::steady_timer accept_retry{acceptor.get_executor()};
  std::vector<std::string> pool_names;
  std::vector<std::unique_ptr<net::thread_pool>> pools;
  std::vector<RouteEntry> routes;
  HttpErrorRenderer renderer;
  std::vector<std::thread> io_threads;
  bool bound = false;
  bool started = false;

  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::unordered_map<std::string, int> per_client;                // TY_GUARDED_BY(mu)
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // TY_GUARDED_BY(mu)
  int64_t open = 0;                                               // TY_GUARDED_BY(mu)

  std::mutex stop_mu;
  std::condition_variable stop_cv;  // signalled when `stopping` becomes true
  std::mutex join_mu;               // one thread joins; others wait here for it
  bool joined = false;              // TY_GUARDED_BY(join_mu)

  std::atomic<int64_t> accepted{0}, refused{0}, timed_out{0}, requests{0}, errors{0};

  const RouteEntry* FindRoute(std::string_view method, std::string_view path) const {
    for (const auto& r : routes) {
      bool method_ok = r.method == "*" || r.method == method;
      bool path_ok = !r.path.empty() && r.path.back() == '*'
                         ? path.substr(0, r.path.size() - 1) ==
                               std::string_view(r.path).substr(0, r.path.size() - 1)
                         : r.path == path;
      if (method_ok && path_ok) return &r;
    }
    return nullptr;
  }

  HttpResponse Render(const HttpError& e) {
    errors++;
    if (renderer) {
      try {
        return renderer(e);
      } catch (...) {
        // Fall through to the plain answer: the client still learns what went wrong.
      }
    }
    HttpResponse r;
    r.status = e.status;
    r.content_type = "text/plain";
    r.body = e.message + "\n";
    return r;
  }

  bool Admit(const std::string& client) {
    std::lock_guard<std::mutex> lock(mu);
    int& n = per_client[client];
    if (open >= options.max_connections || n >= options.max_connections_per_client) {
      if (n == 0) per_client.erase(client);
      return false;
    }
    ++n;
    ++open;
    return true;
  }

  void Forget(Session* s, const std::string& client) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = per_client.find(client);
    if (it != per_client.end() && --it->second <= 0) per_client.erase(it);
    --open;
    sessions.erase(s);
  }

  void Accept();
  void OnAccept(beast::error_code ec, Tcp::socket socket);
  void JoinThreads();
};

namespace {

// One connection's state machine. Every member runs on the connection's strand (its socket's
// executor), except the handler, which runs on a pool and posts its response back.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* server, Tcp::socket socket, std::string client)
      : server_(server), stream_(std::move(socket)), client_(std::move(client)) {}
  ~Session() { server_->Forget(this, client_); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->ReadNext(); });
  }
  // Ends whatever read or write is pending; a handler in progress still answers.
  void Cancel() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->stream_.cancel(); });
  }

 private:
  const HttpServerOptions& options() const { return server_->options; }

  void ReadNext() {
    if (server_->stopping) return Close();
    // A pipelined request may already be in the buffer: parse it without waiting.
    if (buffer_.size() > 0) return ReadHead();
    buffer_.shrink_to_fit();
    stream_.expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(kIdleReadBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Drop(ec);
                              self->buffer_.commit(n);
                              self->ReadHead();
                            });
  }

  void ReadHead() {
    // A stopping server starts no new read: Cancel() reached only the one pending then.
    if (server_->stopping) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(options().max_header_bytes, std::numeric_limits<uint32_t>::max())));
    // The route's body limit is applied once the head names the route (below).
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    stream_.expires_after(options().head_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    if (ec == http::error::header_limit) {
      return ReplyAndClose({HttpErrorKind::kHeaderTooLarge, 431,
                            "The request's headers are larger than the server's limit of " +
                                std::to_string(options().max_header_bytes) +
                                " bytes (max_header_bytes).",
                            "", ""});
    }
    if (ec) return Drop(ec);
    auto& req = parser_->get();
    method_ = ToString(req.method_string());
    target_ = ToString(req.target());
    path_ = target_.substr(0, target_.find('?'));
    version_ = req.version();
    route_ = server_->FindRoute(method_, path_);
    size_t limit = route_ != nullptr && route_->max_body_bytes > 0 ? route_->max_body_bytes
                                                                   : options().max_body_bytes;
    if (auto len = parser_->content_length(); len && *len > limit) {
      return ReplyAndClose({HttpErrorKind::kBodyTooLarge, 413,
                            "The request body is " + std::to_string(*len) +
                                " bytes; the limit is " + std::to_string(limit) + " bytes.",
                            method_, path_});
    }
    parser_->body_limit(limit);
    body_limit_ = limit;
    auto expect = req[http::field::expect];
    if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
      continue_ = {};
      continue_.version(version_);
      continue_.result(http::status::continue_);
      stream_.expires_after(options().body_timeout);
      http::async_write(stream_, continue_,
                        [self = shared_from_this()](beast::error_code ec2, size_t) {
                          if (ec2) return self->Drop(ec2);
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (server_->stopping) return Close();
    if (parser_->is_done()) return OnBody({});
    stream_.expires_after(options().body_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      return ReplyAndClose({HttpErrorKind::kBodyTooLarge, 413,
                            "The request body is larger than the limit of " +
                                std::to_string(body_limit_) + " bytes.",
                            method_, path_});
    }
    if (ec) return Drop(ec);
    keep_alive_ = parser_->keep_alive();
    if (route_ == nullptr) {
      HttpResponse r =
          server_->Render({HttpErrorKind::kNoRoute, 404,
                           "No route for " + method_ + " " + path_ + ".", method_, path_});
      return Write(std::move(r), keep_alive_, /*linger=*/false);
    }
    Dispatch();
  }

  void Dispatch() {
    auto& msg = parser_->get();
    HttpRequest req;
    req.method = method_;
    req.target = target_;
    req.path = path_;
    if (auto q = target_.find('?'); q != std::string::npos) req.query = target_.substr(q + 1);
    for (const auto& field : msg) {
      req.headers.emplace_back(ToString(field.name_string()), ToString(field.value()));
    }
    req.body = std::move(msg.body());
    req.remote_address = client_;
    parser_.reset();
    // No deadline while the handler runs: the client is waiting for us, not we for it.
    stream_.expires_never();
    server_->requests++;
    const RouteEntry* route = route_;
    HttpServer::Impl* server = server_;
    // The guard keeps the I/O threads alive until the response is posted back, even when
    // this was the last connection and Shutdown is waiting for them to run out of work.
    net::post(*server_->pools[route->pool], [self = shared_from_this(), server, route,
                                             req = std::move(req),
                                             guard = net::make_work_guard(server_->ioc)]() mutable {
      HttpResponse res;
      try {
        res = route->handler(req);
      } catch (const std::exception& e) {
        res =
            server->Render({HttpErrorKind::kHandlerFailed, 500,
                            std::string("The request failed: ") + e.what(), req.method, req.path});
      } catch (...) {
        res = server->Render(
            {HttpErrorKind::kHandlerFailed, 500, "The request failed.", req.method, req.path});
      }
      net::post(self->stream_.get_executor(), [self, res = std::move(res)]() mutable {
        self->Write(std::move(res), self->keep_alive_, /*linger=*/false);
      });
    });
  }

  void ReplyAndClose(const HttpError& error) {
    if (!parser_ || !parser_->is_header_done()) version_ = 11;
    Write(server_->Render(error), /*keep_alive=*/false, /*linger=*/true);
  }

  void Write(HttpResponse r, bool keep_alive, bool linger) {
    keep_alive = keep_alive && !server_->stopping;
    res_ = {};
    res_.version(version_);
    res_.result(static_cast<unsigned>(r.status));
    if (!r.content_type.empty()) res_.set(http::field::content_type, r.content_type);
    for (auto& [k, v] : r.headers) res_.insert(k, v);
    res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive);
    res_.prepare_payload();
    parser_.reset();
    stream_.expires_after(options().body_timeout);
    http::async_write(
        stream_, res_,
        [self = shared_from_this(), keep_alive, linger](beast::error_code ec, size_t) {
          self->res_ = {};
          if (ec) return self->Drop(ec);
          if (linger) return self->Linger();
          if (!keep_alive) return self->Close();
          self->ReadNext();
        });
  }

  void Linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(Tcp::socket::shutdown_send, ignored);
    drain_ = std::make_unique<char[]>(kLingerChunk);
    drained_ = 0;
    stream_.expires_after(kLingerTime);
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(net::buffer(drain_.get(), kLingerChunk),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerBytes) return self->Close();
                              self->DrainSome();
                            });
  }

  // A read or write ended in an error: the peer left, a deadline passed, we were cancelled, or
  // the bytes are not HTTP.
  void Drop(beast::error_code ec) {
    if (ec == beast::error::timeout) {
      server_->timed_out++;
      return Close();
    }
    if (IsParseError(ec) && !server_->stopping) {
      return ReplyAndClose({HttpErrorKind::kBadRequest, 400,
                            "The request is not valid HTTP/1.1: " + ec.message() + ".", method_,
                            path_});
    }
    Close();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(Tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

  HttpServer::Impl* server_;
  beast::tcp_stream stream_;
  std::string client_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const RouteEntry* route_ = nullptr;
  std::string method_, target_, path_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  size_t body_limit_ = 0;
  http::response<http::empty_body> continue_;
  http::response<http::string_body> res_;
  std::unique_ptr<char[]> drain_;
  size_t drained_ = 0;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, Tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, Tcp::socket socket) {
  if (stopping) return;
  if (ec) {
    if (ec == net::error::operation_aborted) return;
    accept_retry.expires_after(kAcceptRetry);
    accept_retry.async_wait([this](beast::error_code ec2) {
      if (!ec2 && !stopping) Accept();
    });
    return;
  }
  beast::error_code peer_ec;
  auto peer = socket.remote_endpoint(peer_ec);
  if (!peer_ec) {
    std::string client = peer.address().to_string();
    if (Admit(client)) {
      accepted++;
      socket.set_option(Tcp::no_delay(true), peer_ec);
      auto session = std::make_shared<Session>(this, std::move(socket), client);
      {
        std::lock_guard<std::mutex> lock(mu);
        sessions.emplace(session.get(), session);
      }
      session->Start();
    } else {
      refused++;
      // The socket closes as it goes out of scope, unanswered.
    }
  }
  Accept();
}

void HttpServer::Impl::JoinThreads() {
  std::lock_guard<std::mutex> lock(join_mu);
  if (joined) return;
  for (auto& t : io_threads) {
    if (t.joinable()) t.join();
  }
  for (auto& p : pools) p->join();
  joined = true;
}

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_shared<Impl>(options)) {}

HttpServer::~HttpServer() { Shutdown(/*wait_for_connections=*/true); }

int HttpServer::AddPool(const std::string& name, int threads) {
  impl_->pool_names.push_back(name);
  impl_->pools.push_back(std::make_unique<net::thread_pool>(std::max(1, threads)));
  return static_cast<int>(impl_->pools.size()) - 1;
}

void HttpServer::Route(const std::string& method, const std::string& path, int pool,
                       HttpHandler handler, size_t max_body_bytes) {
  impl_->routes.push_back({method, path, pool, std::move(handler), max_body_bytes});
}

void HttpServer::SetErrorRenderer(HttpErrorRenderer renderer) {
  impl_->renderer = std::move(renderer);
}

Result<int> HttpServer::Bind(const std::string& host, int port) {
  Impl& d = *impl_;
  std::string where = host + ":" + std::to_string(port);
  beast::error_code ec;
  Tcp::endpoint endpoint;
  auto address = net::ip::make_address(host, ec);
  if (!ec) {
    endpoint = Tcp::endpoint(address, static_cast<unsigned short>(port));
  } else {
    // A name such as "localhost": its first address, as the old server did.
    Tcp::resolver resolver(d.ioc);
    auto found = resolver.resolve(host, std::to_string(port), ec);
    if (ec || found.empty()) return InvalidArgument("cannot listen on " + where + ": unknown host");
    endpoint = found.begin()->endpoint();
  }
  d.acceptor.open(endpoint.protocol(), ec);
  if (!ec) d.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor.bind(endpoint, ec);
  if (!ec) d.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    return IoError("cannot bind " + where + ": " + ec.message() +
                   " (in use, or not an address of this machine)");
  }
  d.bound = true;
  return static_cast<int>(d.acceptor.local_endpoint().port());
}

Status HttpServer::Start() {
  Impl& d = *impl_;
  if (!d.bound) return FailedPrecondition("HttpServer::Start before Bind");
  if (d.options.raise_fd_limit) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
      lim.rlim_cur = lim.rlim_max;
      (void)::setrlimit(RLIMIT_NOFILE, &lim);  // best effort: the old limit still serves
    }
  }
  d.started = true;
  net::post(d.acceptor.get_executor(), [&d] { d.Accept(); });
  for (int i = 0; i < std::max(1, d.options.io_threads); ++i) {
    d.io_threads.emplace_back([&d] {
      for (;;) {
        try {
          d.ioc.run();
          return;
        } catch (...) {
          // A handler bug must not take the listener down with it; keep serving.
        }
      }
    });
  }
  return Status::Ok();
}

void HttpServer::Shutdown(bool wait_for_connections) {
  Impl& d = *impl_;
  if (!d.stopping.exchange(true)) {
    if (d.started) {
      net::post(d.acceptor.get_executor(), [&d] {
        beast::error_code ignored;
        d.acceptor.close(ignored);
        d.accept_retry.cancel();
      });
    } else {
      beast::error_code ignored;
      d.acceptor.close(ignored);
    }
    std::vector<std::shared_ptr<Session>> live;
    {
      std::lock_guard<std::mutex> lock(d.mu);
      for (auto& [ptr, weak] : d.sessions) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) s->Cancel();
    live.clear();
    { std::lock_guard<std::mutex> lock(d.stop_mu); }
    d.stop_cv.notify_all();
  }
  if (wait_for_connections) d.JoinThreads();
}

void HttpServer::Wait() {
  Impl& d = *impl_;
  {
    std::unique_lock<std::mutex> lock(d.stop_mu);
    d.stop_cv.wait(lock, [&d] { return d.stopping.load(); });
  }
  d.JoinThreads();
}

HttpServerStats HttpServer::stats() const {
  Impl& d = *impl_;
  HttpServerStats s;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    s.open_connections = d.open;
  }
  s.accepted = d.accepted;
  s.refused = d.refused;
  s.timed_out = d.timed_out;
  s.requests = d.requests;
  s.errors = d.errors;
  return s;
}

}  // namespace ty::server
