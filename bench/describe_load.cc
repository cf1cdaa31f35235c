// Closed-loop load generator for (b): K threads, each with its own keep-alive connection,
// send SigV4-signed DescribeTrainingJob requests (signed per request with the project's
// src/common/sigv4.cc) for T seconds and count 200 responses.
//   describe_load HOST PORT AKID SECRET JOBNAME K SECONDS
// Prints one line: K=.. ok=.. non200=.. errors=.. reconnects=.. rps=.. p50_us=.. p99_us=..
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/sigv4.h"

namespace {

struct Args {
  std::string host;
  int port;
  ty::AwsCredentials creds;
  std::string job;
  int k;
  double seconds;
};

int Connect(const Args& a) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  ::inet_pton(AF_INET, a.host.c_str(), &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads one HTTP/1.x response. Returns status (or -1) and whether the connection stays open.
int ReadResponse(int fd, std::string& buf, bool* keep) {
  *keep = true;
  size_t hdr_end;
  char tmp[65536];
  while ((hdr_end = buf.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::read(fd, tmp, sizeof(tmp));
    if (n <= 0) return -1;
    buf.append(tmp, static_cast<size_t>(n));
  }
  std::string head = buf.substr(0, hdr_end);
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  int status = -1;
  if (head.size() > 12) status = std::atoi(head.c_str() + 9);
  if (head.compare(0, 8, "HTTP/1.0") == 0)
    *keep = lower.find("connection: keep-alive") != std::string::npos;
  if (lower.find("connection: close") != std::string::npos) *keep = false;
  size_t body_start = hdr_end + 4;
  auto cl = lower.find("content-length:");
  if (cl != std::string::npos) {
    size_t len = std::strtoul(lower.c_str() + cl + 15, nullptr, 10);
    while (buf.size() < body_start + len) {
      ssize_t n = ::read(fd, tmp, sizeof(tmp));
      if (n <= 0) return -1;
      buf.append(tmp, static_cast<size_t>(n));
    }
    buf.erase(0, body_start + len);
    return status;
  }
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    size_t pos = body_start;
    for (;;) {
      size_t eol;
      while ((eol = buf.find("\r\n", pos)) == std::string::npos) {
        ssize_t n = ::read(fd, tmp, sizeof(tmp));
        if (n <= 0) return -1;
        buf.append(tmp, static_cast<size_t>(n));
      }
      size_t len = std::strtoul(buf.c_str() + pos, nullptr, 16);
      size_t need = eol + 2 + len + 2;
      while (buf.size() < need) {
        ssize_t n = ::read(fd, tmp, sizeof(tmp));
        if (n <= 0) return -1;
        buf.append(tmp, static_cast<size_t>(n));
      }
      pos = need;
      if (len == 0) break;
    }
    buf.erase(0, pos);
    return status;
  }
  // Delimited by close.
  for (;;) {
    ssize_t n = ::read(fd, tmp, sizeof(tmp));
    if (n <= 0) break;
  }
  buf.clear();
  *keep = false;
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s HOST PORT AKID SECRET JOBNAME K SECONDS\n", argv[0]);
    return 2;
  }
  Args a{argv[1], std::atoi(argv[2]), {argv[3], argv[4], ""},
         argv[5], std::atoi(argv[6]), std::atof(argv[7])};
  const std::string host_header = a.host + ":" + std::to_string(a.port);
  const std::string body = "{\"TrainingJobName\": \"" + a.job + "\"}";

  std::atomic<long> ok{0}, non200{0}, errors{0}, reconnects{0};
  std::vector<std::vector<uint32_t>> lat(a.k);
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double>(a.seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < a.k; ++t) {
    threads.emplace_back([&, t] {
      int fd = Connect(a);
      std::string buf;
      while (std::chrono::steady_clock::now() < end) {
        if (fd < 0) {
          fd = Connect(a);
          reconnects++;
          if (fd < 0) {
            errors++;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
          }
          buf.clear();
        }
        ty::HttpRequestParts req;
        req.method = "POST";
        req.path = "/";
        req.headers = {{"Host", host_header},
                       {"Content-Type", "application/x-amz-json-1.1"},
                       {"X-Amz-Target", "SageMaker.DescribeTrainingJob"}};
        req.body = body;
        ty::SignRequest(&req, a.creds, "us-east-1", "sagemaker", ty::SystemClock::Default()->Now());
        std::string wire = "POST / HTTP/1.1\r\n";
        for (const auto& [k, v] : req.headers) wire += k + ": " + v + "\r\n";
        wire +=
            "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: keep-alive\r\n\r\n";
        wire += body;
        auto t0 = std::chrono::steady_clock::now();
        bool keep = true;
        int status = WriteAll(fd, wire) ? ReadResponse(fd, buf, &keep) : -1;
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
        if (status == 200) {
          ok++;
          lat[t].push_back(static_cast<uint32_t>(us));
        } else if (status > 0) {
          non200++;
        } else {
          errors++;
          keep = false;
        }
        if (!keep) {
          ::close(fd);
          fd = -1;
        }
      }
      if (fd >= 0) ::close(fd);
    });
  }
  for (auto& th : threads) th.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<uint32_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto q = [&](double p) {
    return all.empty() ? 0u : all[std::min(all.size() - 1, size_t(p * all.size()))];
  };
  std::printf(
      "K=%d ok=%ld non200=%ld errors=%ld reconnects=%ld secs=%.2f rps=%.1f p50_us=%u p99_us=%u\n",
      a.k, ok.load(), non200.load(), errors.load(), reconnects.load(), secs, ok.load() / secs,
      q(0.5), q(0.99));
  return 0;
}
