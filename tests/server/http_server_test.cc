#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ty::server {
namespace {

using namespace std::chrono_literals;

// Generous: only a broken server makes a test wait this long.
constexpr int kPatienceMs = 20000;

// A raw client connection: tests need to control exactly which bytes go out when.
class Conn {
 public:
  explicit Conn(int port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source != nullptr) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source, &src.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) Reset();
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) Reset();
  }
  ~Conn() { Reset(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }

  bool Send(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads more bytes into the buffer; false on EOF, error or kPatienceMs without data.
  bool Fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kPatienceMs) <= 0) return false;
    char chunk[16384];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  struct Response {
    int status = 0;
    std::string head;
    std::string body;
  };

  // The next complete response (Content-Length framed), or nullopt if the connection ended.
  std::optional<Response> Read() {
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        Response r;
        r.head = buf_.substr(0, end);
        r.status = std::stoi(r.head.substr(9, 3));
        size_t len = 0;
        auto cl = Lower(r.head).find("content-length:");
        if (cl != std::string::npos) len = std::stoul(r.head.substr(cl + 15));
        while (buf_.size() < end + 4 + len) {
          if (!Fill()) return std::nullopt;
        }
        r.body = buf_.substr(end + 4, len);
        buf_.erase(0, end + 4 + len);
        return r;
      }
      if (!Fill()) return std::nullopt;
    }
  }

  // True once the server closed the connection (EOF or reset), with nothing more to read.
  bool ClosedByPeer() {
    while (Fill()) {
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) < 0) return false;
    char c;
    return ::recv(fd_, &c, 1, MSG_DONTWAIT) <= 0 && errno != EAGAIN;
  }

  const std::string& buffered() const { return buf_; }

 private:
  static std::string Lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(::tolower(static_cast<unsigned char>(c)));
    return s;
  }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
  std::string buf_;
};

std::string Post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + extra + "\r\n" + body;
}

bool WaitFor(const std::function<bool()>& cond) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kPatienceMs);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

HttpResponse Text(std::string body, int status = 200) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

// A server with an echo route on one pool, plus whatever the test adds.
class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {},
                   const std::function<void(HttpServer&)>& setup = nullptr) {
    server_ = std::make_unique<HttpServer>(options);
    api_pool_ = server_->AddPool("api", 2);
    server_->Route("POST", "/echo", api_pool_, [](const HttpRequest& req) {
      return Text(req.body + (req.query.empty() ? "" : "?" + req.query));
    });
    server_->SetErrorRenderer([](const HttpError& e) {
      return Text("error " + std::to_string(static_cast<int>(e.kind)) + ": " + e.message, e.status);
    });
    if (setup) setup(*server_);
    auto port = server_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    if (server_) server_->Shutdown(true);
  }

  std::unique_ptr<HttpServer> server_;
  int api_pool_ = -1;
  int port_ = 0;
};

TEST_F(HttpServerTest, AnswersARequestAndKeepsTheConnection) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo?a=1", "hello")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello?a=1");
  ASSERT_TRUE(c.Send(Post("/echo", "again")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "again");
  EXPECT_EQ(server_->stats().accepted, 1);
}

TEST_F(HttpServerTest, AnswersPipelinedRequestsInOrder) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo", "one") + Post("/nope", "x") + Post("/echo", "two") +
                     Post("/echo", "three", "Connection: close\r\n")));
  std::vector<std::string> bodies;
  std::vector<int> statuses;
  while (auto r = c.Read()) {
    statuses.push_back(r->status);
    bodies.push_back(r->body);
  }
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_EQ(statuses, (std::vector<int>{200, 404, 200, 200}));
  EXPECT_EQ(bodies[0], "one");
  EXPECT_EQ(bodies[2], "two");
  EXPECT_EQ(bodies[3], "three");
}

TEST_F(HttpServerTest, DropsAClientThatMissesTheHeadDeadline) {
  HttpServerOptions o;
  o.head_timeout = 200ms;
  StartServer(o);
  Conn slow(port_);
  ASSERT_TRUE(slow.Send("POST /echo HTTP/1.1\r\nHost: t\r\n"));  // and never the rest
  EXPECT_TRUE(slow.ClosedByPeer());
  EXPECT_EQ(slow.buffered(), "");  // no response, just closed
  EXPECT_TRUE(WaitFor([&] { return server_->stats().timed_out == 1; }));
  // Others are served as usual.
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo", "ok")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "ok");
}

TEST_F(HttpServerTest, DropsAClientThatMissesTheBodyDeadline) {
  HttpServerOptions o;
  o.body_timeout = 200ms;
  StartServer(o);
  Conn slow(port_);
  ASSERT_TRUE(slow.Send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(slow.ClosedByPeer());
  EXPECT_EQ(slow.buffered(), "");
  EXPECT_TRUE(WaitFor([&] { return server_->stats().timed_out == 1; }));
  EXPECT_EQ(server_->stats().requests, 0);
}

TEST_F(HttpServerTest, ClosesIdleConnectionsAfterTheIdleTimeout) {
  HttpServerOptions o;
  o.idle_timeout = 200ms;
  StartServer(o);
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo", "x")));
  ASSERT_TRUE(c.Read());
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_TRUE(WaitFor([&] { return server_->stats().open_connections == 0; }));
}

TEST_F(HttpServerTest, RefusesAnOversizedHeadWithTheErrorRenderer) {
  HttpServerOptions o;
  o.max_header_bytes = 4096;
  StartServer(o);
  Conn c(port_);
  std::string huge(200 * 1024, 'a');
  // The client may still be sending when the server answers; the answer must survive that.
  std::thread sender([&] { c.Send(Post("/echo", "{}", "Authorization: " + huge + "\r\n")); });
  auto r = c.Read();
  sender.join();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_NE(r->body.find("error 1:"), std::string::npos) << r->body;  // kHeaderTooLarge
  EXPECT_NE(r->body.find("4096"), std::string::npos) << r->body;
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpServerTest, RefusesAnOversizedBodyNamingTheLimit) {
  HttpServerOptions o;
  o.max_body_bytes = 1000;
  StartServer(o, [](HttpServer& s) {
    int pool = s.AddPool("big", 1);
    s.Route(
        "POST", "/big", pool,
        [](const HttpRequest& req) { return Text(std::to_string(req.body.size())); }, 5000);
  });
  {
    Conn c(port_);
    ASSERT_TRUE(c.Send(Post("/echo", std::string(2000, 'x'))));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_NE(r->body.find("2000 bytes; the limit is 1000 bytes"), std::string::npos) << r->body;
  }
  {
    Conn c(port_);  // a route with its own, larger limit
    ASSERT_TRUE(c.Send(Post("/big", std::string(2000, 'x'))));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "2000");
  }
  {
    Conn c(port_);  // chunked: no length up front, the parser counts
    std::string chunk(800, 'y');
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", chunk.size());
    std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 2; ++i) req += std::string(size) + "\r\n" + chunk + "\r\n";
    req += "0\r\n\r\n";
    ASSERT_TRUE(c.Send(req));
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_NE(r->body.find("limit of 1000 bytes"), std::string::npos) << r->body;
  }
}

TEST_F(HttpServerTest, AnswersUnknownRoutesAndMethodsAndKeepsTheConnection) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("GET /echo HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_NE(r->body.find("error 0: No route for GET /echo"), std::string::npos) << r->body;
  ASSERT_TRUE(c.Send(Post("/echo", "still here")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "still here");
}

TEST_F(HttpServerTest, AnswersGarbageWith400) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send("NOT HTTP AT ALL\r\n\r\n"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("error 3:"), std::string::npos) << r->body;
}

TEST_F(HttpServerTest, HandlerExceptionsBecome500AndTheConnectionLives) {
  StartServer(HttpServerOptions{}, [](HttpServer& s) {
    int pool = s.AddPool("throwing", 1);
    s.Route("POST", "/throw", pool,
            [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  });
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/throw", "")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("error 4:"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("boom"), std::string::npos) << r->body;
  ASSERT_TRUE(c.Send(Post("/echo", "after")));
  r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "after");
}

TEST_F(HttpServerTest, AnswersExpect100ContinueBeforeTheBody) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(
      "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  while (c.buffered().find("\r\n\r\n") == std::string::npos) ASSERT_TRUE(c.Fill());
  EXPECT_EQ(c.buffered().rfind("HTTP/1.1 100 Continue", 0), 0u) << c.buffered();
  auto interim = c.Read();
  ASSERT_TRUE(c.Send("body"));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "body");
}

TEST_F(HttpServerTest, LimitsConnectionsPerClientAddressAtAccept) {
  HttpServerOptions o;
  o.max_connections_per_client = 3;
  StartServer(o);
  std::vector<std::unique_ptr<Conn>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<Conn>(port_));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().accepted == 3; }));
  Conn extra(port_);
  ASSERT_TRUE(extra.ok());  // the kernel completes the handshake; the server then closes it
  EXPECT_TRUE(extra.ClosedByPeer());
  EXPECT_EQ(server_->stats().refused, 1);
  // Another address (still this machine: all of 127/8 is loopback) has its own allowance.
  Conn other(port_, "127.0.0.2");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(other.Send(Post("/echo", "other")));
  auto r = other.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "other");
  // Closing one frees a place for the first address again.
  held.pop_back();
  ASSERT_TRUE(WaitFor([&] { return server_->stats().open_connections == 3; }));
  Conn again(port_);
  ASSERT_TRUE(again.Send(Post("/echo", "again")));
  r = again.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "again");
}

TEST_F(HttpServerTest, LimitsConnectionsInTotal) {
  HttpServerOptions o;
  o.max_connections = 2;
  StartServer(o);
  Conn a(port_, "127.0.0.3"), b(port_, "127.0.0.4");
  ASSERT_TRUE(WaitFor([&] { return server_->stats().accepted == 2; }));
  Conn c(port_, "127.0.0.5");
  EXPECT_TRUE(c.ClosedByPeer());
  EXPECT_EQ(server_->stats().refused, 1);
}

TEST_F(HttpServerTest, IdleAndSlowConnectionsDoNotBlockARequest) {
  HttpServerOptions o;
  o.io_threads = 1;
  StartServer(o);  // the echo pool has 2 threads: far fewer than the connections below
  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < 300; ++i) {
    idle.push_back(std::make_unique<Conn>(port_));
    ASSERT_TRUE(idle.back()->ok());
  }
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(idle[i]->Send("POST /echo HTTP/1.1\r\nHo"));
  ASSERT_TRUE(WaitFor([&] { return server_->stats().accepted == 300; }));
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo", "through")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "through");
}

TEST_F(HttpServerTest, ABusyPoolDoesNotHoldAnotherPoolsRoutes) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> blocked{0};
  StartServer(HttpServerOptions{}, [&](HttpServer& s) {
    int reports = s.AddPool("reports", 1);
    s.Route("POST", "/report", reports, [&](const HttpRequest&) {
      blocked++;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
      return Text("reported");
    });
  });
  // Every reports worker is held, and more reports wait in its queue...
  std::vector<std::unique_ptr<Conn>> reporters;
  for (int i = 0; i < 5; ++i) {
    reporters.push_back(std::make_unique<Conn>(port_));
    ASSERT_TRUE(reporters.back()->Send(Post("/report", "r")));
  }
  ASSERT_TRUE(WaitFor([&] { return blocked.load() == 1; }));
  // ...and the API pool still answers.
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/echo", "api")));
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "api");
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& rep : reporters) {
    auto rr = rep->Read();
    ASSERT_TRUE(rr);
    EXPECT_EQ(rr->body, "reported");
  }
}

TEST_F(HttpServerTest, ShutdownLetsARunningHandlerAnswer) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> entered{false};
  StartServer(HttpServerOptions{}, [&](HttpServer& s) {
    int pool = s.AddPool("slow", 1);
    s.Route("POST", "/slow", pool, [&](const HttpRequest&) {
      entered = true;
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
      return Text("finished");
    });
  });
  Conn idle(port_);
  Conn c(port_);
  ASSERT_TRUE(c.Send(Post("/slow", "")));
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  std::thread stopper([&] { server_->Shutdown(true); });
  EXPECT_TRUE(idle.ClosedByPeer());  // idle connections are closed at once
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  auto r = c.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "finished");
  EXPECT_NE(r->head.find("Connection: close"), std::string::npos) << r->head;
  stopper.join();
  EXPECT_EQ(server_->stats().open_connections, 0);
  Conn late(port_);
  EXPECT_FALSE(late.ok());  // no longer listening
}

TEST(HttpServerBind, ReportsAnAddressInUse) {
  HttpServer a(HttpServerOptions{});
  auto port = a.Bind("127.0.0.1", 0);
  ASSERT_TRUE(port.ok());
  HttpServer b(HttpServerOptions{});
  auto again = b.Bind("127.0.0.1", *port);
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("cannot bind 127.0.0.1:" + std::to_string(*port)),
            std::string::npos);
  EXPECT_FALSE(b.Bind("no-such-host.invalid", 0).ok());
  HttpServer c(HttpServerOptions{});
  EXPECT_TRUE(c.Bind("localhost", 0).ok());
}

}  // namespace
}  // namespace ty::server
