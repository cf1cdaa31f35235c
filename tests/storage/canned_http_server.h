// CannedServer: a test-only HTTP/1.1 server on a loopback port that answers each request with
// the next of a fixed list of raw responses (the last one repeats), for S3 answers s3rver never
// gives (wrong region, errors inside a 200, bodies cut short). A response containing
// "Connection: close" closes the connection after it is sent. Request heads are recorded.
//
// Owns a listening socket, an accept thread and one thread per connection; the destructor shuts
// every socket down and joins every thread. heads() may be called from any thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ty::storage::testing {

// Answers each request (read up to the end of its Content-Length body) with the next canned
// response; the last one repeats. Keep-alive; one thread per connection. Records request heads.
class CannedServer {
 public:
  explicit CannedServer(std::vector<std::string> responses) : responses_(std::move(responses)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(listen_fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~CannedServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : conns_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : workers_) t.join();
    for (int fd : conns_) ::close(fd);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

  static std::string Response(int status, const std::string& reason, const std::string& body,
                              const std::string& extra_headers = "") {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n" + extra_headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  }

 private:
  void Accept() {
    while (!stopping_) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      conns_.push_back(fd);
      workers_.emplace_back([this, fd] { Serve(fd); });
    }
  }
  void Serve(int fd) {
    std::string buf;
    char tmp[65536];
    for (;;) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      std::string head = buf.substr(0, end + 4);
      size_t body_len = 0;
      std::string lower = head;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t cl = lower.find("content-length:");
      if (cl != std::string::npos) body_len = std::stoul(head.substr(cl + 15));
      while (buf.size() < end + 4 + body_len) {
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      buf.erase(0, end + 4 + body_len);
      std::string response;
      {
        std::lock_guard<std::mutex> lock(mu_);
        heads_.push_back(head);
        response = responses_[std::min(next_++, responses_.size() - 1)];
      }
      if (::send(fd, response.data(), response.size(), MSG_NOSIGNAL) < 0) return;
      if (response.find("Connection: close") != std::string::npos) {
        ::shutdown(fd, SHUT_RDWR);
        return;
      }
    }
  }

  std::vector<std::string> responses_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  size_t next_ = 0;
  std::vector<std::string> heads_;
  std::vector<int> conns_;
  std::vector<std::thread> workers_;
};

}  // namespace ty::storage::testing
