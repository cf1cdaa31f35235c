#include "storage/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <utility>

namespace ty::storage::testing {
namespace {

constexpr char kSlowDownBody[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
    "<RequestId>FAULTPROXY0001</RequestId><HostId>faultproxy</HostId></Error>";

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// A socket with a read buffer: HTTP heads are read up to their blank line, bodies by length.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // Reads more bytes into the buffer; false on EOF or error.
  bool Fill() {
    char tmp[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof(tmp), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }

  // The bytes up to and including "\r\n\r\n"; nullopt on EOF first.
  std::optional<std::string> ReadHead() {
    for (;;) {
      size_t end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        std::string head = buf_.substr(0, end + 4);
        buf_.erase(0, end + 4);
        return head;
      }
      if (buf_.size() > (1 << 20) || !Fill()) return std::nullopt;
    }
  }

  // One line including its "\r\n"; nullopt on EOF first.
  std::optional<std::string> ReadLine() {
    for (;;) {
      size_t end = buf_.find("\r\n");
      if (end != std::string::npos) {
        std::string line = buf_.substr(0, end + 2);
        buf_.erase(0, end + 2);
        return line;
      }
      if (!Fill()) return std::nullopt;
    }
  }

  // Passes exactly `n` bytes to `sink` (false from the sink stops); false on EOF first.
  template <typename Sink>
  bool Copy(uint64_t n, Sink&& sink) {
    while (n > 0) {
      if (buf_.empty() && !Fill()) return false;
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size()));
      if (!sink(std::string_view(buf_.data(), take))) return false;
      buf_.erase(0, take);
      n -= take;
    }
    return true;
  }

  // Passes everything until EOF to `sink`.
  template <typename Sink>
  void CopyToEof(Sink&& sink) {
    for (;;) {
      if (!buf_.empty()) {
        if (!sink(std::string_view(buf_))) return;
        buf_.clear();
      }
      if (!Fill()) return;
    }
  }

 private:
  int fd_;
  std::string buf_;
};

struct Head {
  std::string first_line;  // without "\r\n"
  std::vector<std::pair<std::string, std::string>> headers;

  const std::string* Find(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k.size() == name.size() && ::strncasecmp(k.data(), name.data(), name.size()) == 0) {
        return &v;
      }
    }
    return nullptr;
  }
  bool HasToken(std::string_view name, std::string_view token) const {
    const std::string* v = Find(name);
    if (v == nullptr) return false;
    std::string lower = *v;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower.find(token) != std::string::npos;
  }
  // Serialises again, leaving out headers named in `drop`.
  std::string Build(std::initializer_list<std::string_view> drop = {}) const {
    std::string out = first_line + "\r\n";
    for (const auto& [k, v] : headers) {
      bool skip = false;
      for (std::string_view d : drop) {
        skip = skip || (k.size() == d.size() && ::strncasecmp(k.data(), d.data(), d.size()) == 0);
      }
      if (!skip) out += k + ": " + v + "\r\n";
    }
    return out + "\r\n";
  }
};

Head ParseHead(const std::string& text) {
  Head h;
  size_t pos = text.find("\r\n");
  h.first_line = text.substr(0, pos);
  pos += 2;
  while (pos < text.size()) {
    size_t end = text.find("\r\n", pos);
    if (end == std::string::npos || end == pos) break;
    std::string line = text.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string value = line.substr(colon + 1);
      size_t b = value.find_first_not_of(" \t");
      size_t e = value.find_last_not_of(" \t");
      value = b == std::string::npos ? "" : value.substr(b, e - b + 1);
      h.headers.emplace_back(line.substr(0, colon), value);
    }
    pos = end + 2;
  }
  return h;
}

uint64_t ContentLength(const Head& h) {
  const std::string* v = h.Find("Content-Length");
  return v == nullptr ? 0 : std::strtoull(v->c_str(), nullptr, 10);
}

Result<int> ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("connect upstream 127.0.0.1:" + std::to_string(port), err);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(int upstream_port) {
  std::unique_ptr<FaultProxy> p(new FaultProxy());
  p->upstream_port_ = upstream_port;
  p->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->listen_fd_ < 0) return ErrnoStatus("socket", errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(p->listen_fd_, 128) != 0 ||
      ::getsockname(p->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return ErrnoStatus("fault proxy listen on 127.0.0.1:0", errno);
  }
  p->port_ = ntohs(addr.sin_port);
  p->accept_thread_ = std::thread([raw = p.get()] { raw->AcceptLoop(); });
  return p;
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Workers close their sockets under mu_, so these numbers are still theirs.
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (std::thread& t : workers) t.join();
}

std::string FaultProxy::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

void FaultProxy::AddRule(const FaultRule& rule) {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.push_back(RuleState{rule, 0, 0});
}

void FaultProxy::ClearRules() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

void FaultProxy::WaitSettled(std::unique_lock<std::mutex>& lock) const {
  settled_.wait_for(lock, std::chrono::seconds(2), [&] { return in_flight_ == 0; });
}

std::vector<ProxiedRequest> FaultProxy::Requests() const {
  std::unique_lock<std::mutex> lock(mu_);
  WaitSettled(lock);
  return log_;
}

int FaultProxy::CountRequests(const std::string& method, const std::string& target_contains) const {
  std::unique_lock<std::mutex> lock(mu_);
  WaitSettled(lock);
  return static_cast<int>(std::count_if(log_.begin(), log_.end(), [&](const ProxiedRequest& r) {
    return (method.empty() || r.method == method) &&
           r.target.find(target_contains) != std::string::npos;
  }));
}

void FaultProxy::ClearLog() {
  std::lock_guard<std::mutex> lock(mu_);
  log_.clear();
}

void FaultProxy::BeginRequest() {
  std::lock_guard<std::mutex> lock(mu_);
  ++in_flight_;
}

void FaultProxy::Log(ProxiedRequest r) {
  std::lock_guard<std::mutex> lock(mu_);
  log_.push_back(std::move(r));
  if (--in_flight_ == 0) settled_.notify_all();
}

bool FaultProxy::MatchRule(const std::string& method, const std::string& target, FaultRule* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (RuleState& rs : rules_) {
    if (!rs.rule.method.empty() && rs.rule.method != method) continue;
    if (target.find(rs.rule.target_contains) == std::string::npos) continue;
    if (rs.rule.times >= 0 && rs.applied >= rs.rule.times) continue;
    if (rs.seen++ < rs.rule.skip) continue;
    ++rs.applied;
    *out = rs.rule;
    return true;
  }
  return false;
}

void FaultProxy::AcceptLoop() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    ++connections_;
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    open_fds_.push_back(fd);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FaultProxy::Serve(int client_fd) {
  int upstream_fd = -1;
  auto close_fd = [this](int& fd) {
    if (fd < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
    ::close(fd);
    fd = -1;
  };
  Reader client(client_fd);
  std::optional<Reader> upstream;

  for (;;) {
    std::optional<std::string> head_text = client.ReadHead();
    if (!head_text) break;
    Head req = ParseHead(*head_text);
    BeginRequest();  // every path below ends in Log(entry)
    ProxiedRequest entry;
    {
      size_t sp1 = req.first_line.find(' ');
      size_t sp2 = req.first_line.rfind(' ');
      entry.method = req.first_line.substr(0, sp1);
      if (sp1 != std::string::npos && sp2 > sp1) {
        entry.target = req.first_line.substr(sp1 + 1, sp2 - sp1 - 1);
      }
    }
    entry.body_bytes = ContentLength(req);
    const bool expect_continue = req.HasToken("Expect", "100-continue");
    const bool client_close = req.HasToken("Connection", "close");
    if (req.HasToken("Transfer-Encoding", "chunked")) {
      (void)SendAll(
          client_fd,
          "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      entry.status = 501;
      Log(std::move(entry));
      break;
    }

    FaultRule rule;
    const bool faulted = MatchRule(entry.method, entry.target, &rule);
    entry.faulted = faulted;

    if (faulted && rule.kind == FaultKind::kSlowDown) {
      // With Expect: 100-continue the body was never sent: answer at once and close, as S3 does.
      bool keep = !expect_continue && !client_close &&
                  client.Copy(entry.body_bytes, [](std::string_view) { return true; });
      std::string body = kSlowDownBody;
      std::string resp =
          "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n" + (keep ? "" : "Connection: close\r\n") + "\r\n" +
          body;
      // Logged before the reply goes out: a client that has seen the 503 must find it logged.
      entry.status = 503;
      Log(std::move(entry));
      bool sent = SendAll(client_fd, resp);
      if (!sent || !keep) break;
      continue;
    }

    if (upstream_fd < 0) {
      Result<int> fd = ConnectLoopback(upstream_port_);
      if (!fd.ok()) {
        Log(std::move(entry));
        break;
      }
      std::lock_guard<std::mutex> lock(mu_);
      upstream_fd = *fd;
      open_fds_.push_back(upstream_fd);
      upstream.emplace(upstream_fd);
    }
    // The proxy answers 100-continue itself, so upstream gets a plain request with a body.
    if (!SendAll(upstream_fd, req.Build({"Expect"}))) {
      Log(std::move(entry));
      break;
    }
    if (expect_continue && !SendAll(client_fd, "HTTP/1.1 100 Continue\r\n\r\n")) {
      Log(std::move(entry));
      break;
    }
    uint64_t to_forward = entry.body_bytes;
    if (faulted && rule.kind == FaultKind::kDropRequestBody) {
      to_forward = std::min(to_forward, rule.bytes);
    }
    bool body_ok =
        client.Copy(to_forward, [&](std::string_view d) { return SendAll(upstream_fd, d); });
    if (!body_ok || (faulted && rule.kind == FaultKind::kDropRequestBody)) {
      Log(std::move(entry));
      break;
    }

    // The response, skipping interim 1xx answers.
    Head resp;
    for (;;) {
      std::optional<std::string> resp_text = upstream->ReadHead();
      if (!resp_text) break;
      resp = ParseHead(*resp_text);
      int code = resp.first_line.size() > 9 ? std::atoi(resp.first_line.c_str() + 9) : 0;
      if (code >= 200 || code == 0) {
        entry.status = code;
        break;
      }
    }
    if (entry.status == 0) {
      Log(std::move(entry));
      break;
    }
    const bool has_body = entry.method != "HEAD" && entry.status != 204 && entry.status != 304;
    const bool chunked = resp.HasToken("Transfer-Encoding", "chunked");
    const bool upstream_close = resp.HasToken("Connection", "close");
    const bool length_known = resp.Find("Content-Length") != nullptr;
    if (!SendAll(client_fd, resp.Build())) {
      Log(std::move(entry));
      break;
    }

    // Forwards upstream body bytes, stopping (false) after `budget` bytes when cutting short.
    uint64_t budget =
        faulted && rule.kind == FaultKind::kDropResponseBody ? rule.bytes : UINT64_MAX;
    bool cut = false;
    auto forward = [&](std::string_view d) {
      if (d.size() > budget) {
        (void)SendAll(client_fd, d.substr(0, static_cast<size_t>(budget)));
        budget = 0;
        cut = true;
        return false;
      }
      budget -= d.size();
      return SendAll(client_fd, d);
    };
    bool ok = true;
    bool reuse_upstream = !upstream_close;
    if (!has_body) {
      // nothing
    } else if (chunked) {
      for (;;) {
        std::optional<std::string> size_line = upstream->ReadLine();
        if (!size_line || !forward(*size_line)) {
          ok = false;
          break;
        }
        uint64_t n = std::strtoull(size_line->c_str(), nullptr, 16);
        if (n == 0) {
          // Trailers (usually none) up to the blank line.
          for (;;) {
            std::optional<std::string> line = upstream->ReadLine();
            if (!line || !forward(*line)) {
              ok = false;
              break;
            }
            if (*line == "\r\n") break;
          }
          break;
        }
        if (!upstream->Copy(n + 2, forward)) {
          ok = false;
          break;
        }
      }
    } else if (length_known) {
      ok = upstream->Copy(ContentLength(resp), forward);
    } else {
      upstream->CopyToEof(forward);
      reuse_upstream = false;
      ok = !cut;
      if (ok) {
        Log(std::move(entry));
        break;  // close-delimited: the client learns the end by our closing too
      }
    }
    if (faulted && rule.kind == FaultKind::kDropResponseBody) {
      if (cut) entry.status = 0;  // the client never got a whole response
      Log(std::move(entry));
      break;
    }
    Log(std::move(entry));
    if (!ok || client_close) break;
    if (!reuse_upstream) {
      close_fd(upstream_fd);
      upstream.reset();
    }
  }
  close_fd(upstream_fd);
  close_fd(client_fd);
}

}  // namespace ty::storage::testing
