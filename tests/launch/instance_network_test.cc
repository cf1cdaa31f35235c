#include "launch/instance_network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "common/text.h"
#include "testing/temp_dir.h"

namespace ty::launch {
namespace {

using SteadyClock = std::chrono::steady_clock;

// ---- helpers: commands, listings, sockets ----

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

Ran RunCommand(const std::vector<std::string>& argv) {
  SpawnOptions o;
  o.argv = argv;
  o.env = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}, {"LC_ALL", "C"}};
  Ran r;
  auto p = Subprocess::Spawn(o);
  if (!p.ok()) {
    r.err = p.status().message();
    return r;
  }
  Subprocess& child = **p;
  while (child.stdout_fd() >= 0 || child.stderr_fd() >= 0) {
    pollfd fds[2];
    int n = 0;
    if (child.stdout_fd() >= 0) fds[n++] = {child.stdout_fd(), POLLIN, 0};
    if (child.stderr_fd() >= 0) fds[n++] = {child.stderr_fd(), POLLIN, 0};
    if (::poll(fds, n, 30000) <= 0) break;
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      bool is_out = fds[i].fd == child.stdout_fd();
      if (got > 0) {
        (is_out ? r.out : r.err).append(buf, static_cast<size_t>(got));
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        if (is_out) {
          child.CloseStdout();
        } else {
          child.CloseStderr();
        }
      }
    }
  }
  auto code = child.Wait();
  r.code = code.ok() ? *code : -1;
  return r;
}

std::set<std::string> NetnsNames() {
  std::set<std::string> names;
  for (const auto& line : SplitNonEmpty(RunCommand({"ip", "netns", "list"}).out, '\n')) {
    names.insert(line.substr(0, line.find(' ')));
  }
  return names;
}

std::set<std::string> LinkNames() {
  std::set<std::string> names;
  for (const auto& line : SplitNonEmpty(RunCommand({"ip", "-o", "link", "show"}).out, '\n')) {
    std::istringstream in(line);
    std::string index, name;
    in >> index >> name;
    if (!name.empty() && name.back() == ':') name.pop_back();
    names.insert(name.substr(0, name.find('@')));
  }
  return names;
}

// Every netns and link on the machine that belongs to job network `key`.
std::set<std::string> ObjectsOf(const std::string& key) {
  std::set<std::string> found;
  for (const auto& n : NetnsNames()) {
    if (n.rfind("ty-" + key + "-", 0) == 0) found.insert(n);
  }
  for (const auto& l : LinkNames()) {
    if (l == "tyb-" + key || l.rfind("tyv-" + key + "-", 0) == 0) found.insert(l);
  }
  return found;
}

// Keys of every job network on the machine (ours and anybody else's).
std::set<std::string> AllKeys() {
  std::set<std::string> keys;
  auto middle = [](const std::string& name, const std::string& prefix) {
    std::string rest = name.substr(prefix.size());
    return rest.substr(0, rest.rfind('-'));
  };
  for (const auto& n : NetnsNames()) {
    if (n.rfind("ty-", 0) == 0) keys.insert(middle(n, "ty-"));
  }
  for (const auto& l : LinkNames()) {
    if (l.rfind("tyv-", 0) == 0) keys.insert(middle(l, "tyv-"));
    if (l.rfind("tyb-", 0) == 0) keys.insert(l.substr(4));
  }
  return keys;
}

// A socket keeps the network namespace it was made in, so a short-lived thread that enters
// netns `ns` ("" = stay on the host) can make sockets the test then uses from any thread.
int TcpSocketIn(const std::string& ns) {
  int fd = -1;
  std::thread maker([&] {
    if (!ns.empty()) {
      int nsfd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      if (nsfd < 0) return;
      int entered = ::setns(nsfd, CLONE_NEWNET);
      ::close(nsfd);
      if (entered != 0) return;
    }
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  });
  maker.join();
  return fd;
}

sockaddr_in Address(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Listens on `server_ip` inside `server_ns`, connects from a socket made in `client_ns` (bound
// to `client_ip` when given). Returns the peer address the listener saw, or "error: ...".
std::string Connect(const std::string& client_ns, const std::string& server_ns,
                    const std::string& server_ip, const std::string& client_ip = "") {
  Fd listener(TcpSocketIn(server_ns));
  if (listener.get() < 0) return "error: no socket in " + server_ns;
  sockaddr_in server = Address(server_ip, 0);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&server), sizeof(server)) != 0 ||
      ::listen(listener.get(), 4) != 0) {
    return std::string("error: listen: ") + std::strerror(errno);
  }
  socklen_t len = sizeof(server);
  ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&server), &len);

  Fd client(TcpSocketIn(client_ns));
  if (client.get() < 0) return "error: no socket in " + client_ns;
  if (!client_ip.empty()) {
    sockaddr_in local = Address(client_ip, 0);
    if (::bind(client.get(), reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      return std::string("error: bind client: ") + std::strerror(errno);
    }
  }
  ::fcntl(client.get(), F_SETFL, O_NONBLOCK);
  int rc = ::connect(client.get(), reinterpret_cast<sockaddr*>(&server), sizeof(server));
  if (rc != 0 && errno != EINPROGRESS)
    return std::string("error: connect: ") + std::strerror(errno);
  pollfd p{client.get(), POLLOUT, 0};
  if (::poll(&p, 1, 3000) != 1) return "error: connect timed out";
  int soerr = 0;
  len = sizeof(soerr);
  ::getsockopt(client.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
  if (soerr != 0) return std::string("error: connect: ") + std::strerror(soerr);
  pollfd a{listener.get(), POLLIN, 0};
  if (::poll(&a, 1, 3000) != 1) return "error: nothing to accept";
  sockaddr_in peer{};
  len = sizeof(peer);
  Fd accepted(::accept(listener.get(), reinterpret_cast<sockaddr*>(&peer), &len));
  if (accepted.get() < 0) return std::string("error: accept: ") + std::strerror(errno);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  return text;
}

std::string NewKey() { return JobNetworkKey("arn:test:" + RandomUuid()); }

const NetworkSupport& Support() {
  static const NetworkSupport support = ProbeNetworkSupport();
  return support;
}

// ---- the fixture: real namespaces, everything swept afterwards ----

class InstanceNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Support().namespaces) GTEST_SKIP() << "no network namespaces here: " << Support().reason;
    // Tests of this file in other processes (ctest -j) hold this shared; the sweep test takes it
    // exclusively, so it cannot sweep a network another test is in the middle of using.
    lock_fd_ = ::open("/tmp/ty_instance_network_test.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    ASSERT_GE(lock_fd_, 0);
    ASSERT_EQ(::flock(lock_fd_, LOCK_SH), 0);
  }

  void TearDown() override {
    for (const auto& link : extra_links_) (void)RunCommand({"ip", "link", "del", link});
    InstanceNetworks cleaner;  // a fresh one: also removes what `nets_` lost track of
    for (const auto& key : keys_) {
      Status s = cleaner.Destroy(key);
      EXPECT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(ObjectsOf(key), std::set<std::string>()) << "left behind by key " << key;
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  // A fresh key, destroyed after the test.
  std::string Key() { return Track(NewKey()); }
  std::string Track(const std::string& key) {
    keys_.push_back(key);
    return key;
  }

  InstanceNetworks nets_;
  std::vector<std::string> keys_;
  std::vector<std::string> extra_links_;
  int lock_fd_ = -1;
};

TEST_F(InstanceNetworkTest, ThreeInstancesReachEachOtherAndTheGateway) {
  const std::string key = Key();
  auto made = nets_.Create(key, 3, NetworkMode::kNamespaces);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  const JobNetwork& n = *made;
  EXPECT_EQ(n.mode, NetworkMode::kNamespaces);
  EXPECT_EQ(n.bridge, "tyb-" + key);
  EXPECT_EQ(n.interface, "eth0");
  ASSERT_EQ(n.instances.size(), 3u);
  const std::string base = n.subnet.substr(0, n.subnet.rfind('.') + 1);  // "10.X.Y."
  EXPECT_EQ(n.subnet, base + "0/24");
  EXPECT_EQ(n.gateway, base + "1");
  for (int i = 0; i < 3; ++i) {
    const InstanceAddress& a = n.instances[i];
    EXPECT_EQ(a.host, "algo-" + std::to_string(i + 1));
    EXPECT_EQ(a.netns, "ty-" + key + "-" + std::to_string(i + 1));
    EXPECT_EQ(a.ip, base + std::to_string(i + 2));
    Ran addr = RunCommand({"ip", "-n", a.netns, "-4", "-o", "addr", "show", "dev", "eth0"});
    EXPECT_EQ(addr.code, 0) << addr.err;
    EXPECT_NE(addr.out.find("inet " + a.ip + "/24 "), std::string::npos) << addr.out;
    Ran link = RunCommand({"ip", "-n", a.netns, "-o", "link", "show", "dev", "eth0"});
    EXPECT_NE(link.out.find(",UP,"), std::string::npos) << link.out;
    Ran route = RunCommand({"ip", "-n", a.netns, "route", "show", "default"});
    EXPECT_EQ(route.out, "default via " + n.gateway + " dev eth0 \n");
  }
  EXPECT_EQ(ObjectsOf(key),
            (std::set<std::string>{"tyb-" + key, "tyv-" + key + "-1", "tyv-" + key + "-2",
                                   "tyv-" + key + "-3", "ty-" + key + "-1", "ty-" + key + "-2",
                                   "ty-" + key + "-3"}));

  // Every instance reaches every other one, and the peer sees the sender's own address.
  for (int from = 0; from < 3; ++from) {
    for (int to = 0; to < 3; ++to) {
      if (from == to) continue;
      EXPECT_EQ(Connect(n.instances[from].netns, n.instances[to].netns, n.instances[to].ip),
                n.instances[from].ip)
          << n.instances[from].host << " -> " << n.instances[to].host;
    }
    // A service on the host bound to the gateway address.
    EXPECT_EQ(Connect(n.instances[from].netns, "", n.gateway), n.instances[from].ip);
  }
  // The host reaches the instances too.
  EXPECT_EQ(Connect("", n.instances[1].netns, n.instances[1].ip), n.gateway);
  // Each instance has its own loopback: the host's 127.0.0.1 is not reachable from inside.
  EXPECT_EQ(Connect(n.instances[0].netns, "", "127.0.0.1").rfind("error: connect", 0), 0u);
}

TEST_F(InstanceNetworkTest, CreateAgainReturnsTheSameNetwork) {
  const std::string key = Key();
  auto first = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  auto again = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  InstanceNetworks restarted;  // a server that restarted finds it in the kernel
  auto found = restarted.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  for (const JobNetwork* n : {&*again, &*found}) {
    EXPECT_EQ(n->subnet, first->subnet);
    EXPECT_EQ(n->gateway, first->gateway);
    EXPECT_EQ(HostsFileText(*n), HostsFileText(*first));
    ASSERT_EQ(n->instances.size(), 2u);
    for (size_t i = 0; i < 2; ++i) EXPECT_EQ(n->instances[i].netns, first->instances[i].netns);
  }
  EXPECT_EQ(Connect(first->instances[0].netns, first->instances[1].netns, first->instances[1].ip),
            first->instances[0].ip);

  auto other_count = restarted.Create(key, 3, NetworkMode::kNamespaces);
  EXPECT_EQ(other_count.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ObjectsOf(key).size(), 5u);
}

TEST_F(InstanceNetworkTest, DamagedNetworkIsRebuiltOnTheSameSubnet) {
  const std::string key = Key();
  auto first = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Ran del = RunCommand({"ip", "link", "del", "tyv-" + key + "-2"});
  ASSERT_EQ(del.code, 0) << del.err;

  InstanceNetworks restarted;
  auto again = restarted.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->subnet, first->subnet);
  EXPECT_EQ(HostsFileText(*again), HostsFileText(*first));
  EXPECT_EQ(Connect(again->instances[0].netns, again->instances[1].netns, again->instances[1].ip),
            again->instances[0].ip);
}

TEST_F(InstanceNetworkTest, DifferentKeysGetDifferentSubnets) {
  const std::string a = Key();
  const std::string b = Key();
  auto na = nets_.Create(a, 1, NetworkMode::kNamespaces);
  auto nb = nets_.Create(b, 1, NetworkMode::kNamespaces);
  ASSERT_TRUE(na.ok()) << na.status().ToString();
  ASSERT_TRUE(nb.ok()) << nb.status().ToString();
  EXPECT_NE(na->subnet, nb->subnet);
}

// Two keys whose preferred /24 is the same, each made by its own InstanceNetworks (so only
// what is in the kernel tells the second that the /24 is taken).
TEST_F(InstanceNetworkTest, KeysWithTheSamePreferredSubnetDoNotCollide) {
  std::map<std::string, std::string> seen;  // preferred subnet -> key
  std::string a, b;
  while (a.empty()) {
    std::string k = NewKey();
    auto [it, inserted] = seen.emplace(PreferredSubnet(k), k);
    if (!inserted) {
      a = it->second;
      b = k;
    }
  }
  Track(a);
  Track(b);
  InstanceNetworks first_server, second_server;
  auto na = first_server.Create(a, 1, NetworkMode::kNamespaces);
  ASSERT_TRUE(na.ok()) << na.status().ToString();
  auto nb = second_server.Create(b, 1, NetworkMode::kNamespaces);
  ASSERT_TRUE(nb.ok()) << nb.status().ToString();
  EXPECT_EQ(na->subnet, PreferredSubnet(a));
  EXPECT_NE(nb->subnet, na->subnet);
}

// Same, made at the same time by one InstanceNetworks: the reservation, not the kernel, keeps
// them apart (neither bridge has its address yet when the other picks).
TEST_F(InstanceNetworkTest, ConcurrentCreatesDoNotCollide) {
  std::map<std::string, std::string> seen;
  std::string a, b;
  while (a.empty()) {
    std::string k = NewKey();
    auto [it, inserted] = seen.emplace(PreferredSubnet(k), k);
    if (!inserted) {
      a = it->second;
      b = k;
    }
  }
  Track(a);
  Track(b);
  Result<JobNetwork> na = Internal("not run"), nb = Internal("not run");
  std::thread ta([&] { na = nets_.Create(a, 2, NetworkMode::kNamespaces); });
  std::thread tb([&] { nb = nets_.Create(b, 2, NetworkMode::kNamespaces); });
  ta.join();
  tb.join();
  ASSERT_TRUE(na.ok()) << na.status().ToString();
  ASSERT_TRUE(nb.ok()) << nb.status().ToString();
  EXPECT_NE(na->subnet, nb->subnet);
}

TEST_F(InstanceNetworkTest, SkipsASubnetAlreadyUsedOnTheMachine) {
  const std::string key = Key();
  const std::string preferred = PreferredSubnet(key);  // "10.X.Y.0/24"
  const std::string squatter = "tyx" + key.substr(0, 6);
  extra_links_.push_back(squatter);
  Ran add = RunCommand({"ip", "link", "add", squatter, "type", "bridge"});
  ASSERT_EQ(add.code, 0) << add.err;
  const std::string squatter_ip = preferred.substr(0, preferred.rfind('.') + 1) + "200/24";
  Ran addr = RunCommand({"ip", "addr", "add", squatter_ip, "dev", squatter});
  ASSERT_EQ(addr.code, 0) << addr.err;

  auto n = nets_.Create(key, 1, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_NE(n->subnet, preferred);
}

TEST_F(InstanceNetworkTest, DestroyRemovesEverythingAndIsIdempotent) {
  const std::string key = Key();
  auto n = nets_.Create(key, 3, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  ASSERT_EQ(ObjectsOf(key).size(), 7u);

  DestroyReport report;
  Status s = nets_.Destroy(key, &report);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(report.removed,
            (std::vector<std::string>{"tyv-" + key + "-1", "tyv-" + key + "-2", "tyv-" + key + "-3",
                                      "ty-" + key + "-1", "ty-" + key + "-2", "ty-" + key + "-3",
                                      "tyb-" + key}));
  EXPECT_TRUE(report.killed.empty());
  EXPECT_EQ(ObjectsOf(key), std::set<std::string>());
  // The /24 is gone from the host's routes too.
  EXPECT_EQ(RunCommand({"ip", "-4", "route", "show", n->subnet}).out, "");

  DestroyReport again;
  s = nets_.Destroy(key, &again);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(again.removed.empty());
}

// The link group of `link` ("default" when it has none).
std::string LinkGroupOf(const std::string& link) {
  std::istringstream in(RunCommand({"ip", "-o", "link", "show", "dev", link}).out);
  std::string word;
  while (in >> word) {
    if (word == "group" && in >> word) return word;
  }
  return "";
}

// Destroy removes a network's links with one `ip link del group` when the group Create put them
// in holds nothing else; a link of somebody else's in that group survives it.
TEST_F(InstanceNetworkTest, DestroyLeavesAForeignLinkInTheNetworksGroup) {
  const std::string key = Key();
  auto n = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  const std::string group = LinkGroupOf("tyb-" + key);
  ASSERT_NE(group, "default");
  ASSERT_NE(group, "");
  EXPECT_EQ(LinkGroupOf("tyv-" + key + "-1"), group);
  EXPECT_EQ(LinkGroupOf("tyv-" + key + "-2"), group);
  const std::string foreign = "tyx" + key.substr(0, 6);
  extra_links_.push_back(foreign);
  Ran add = RunCommand({"ip", "link", "add", foreign, "group", group, "type", "bridge"});
  ASSERT_EQ(add.code, 0) << add.err;

  DestroyReport report;
  Status s = nets_.Destroy(key, &report);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(report.removed.size(), 5u);
  EXPECT_EQ(ObjectsOf(key), std::set<std::string>());
  EXPECT_EQ(LinkNames().count(foreign), 1u);
}

// Networks whose links have no group (made by an earlier version, or cut short before the
// group was set) are removed link by link.
TEST_F(InstanceNetworkTest, DestroyRemovesLinksWithoutAGroup) {
  const std::string key = Key();
  auto n = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  for (const std::string& link : {"tyb-" + key, "tyv-" + key + "-1"}) {
    Ran set = RunCommand({"ip", "link", "set", "dev", link, "group", "default"});
    ASSERT_EQ(set.code, 0) << set.err;
  }

  InstanceNetworks restarted;
  DestroyReport report;
  Status s = restarted.Destroy(key, &report);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(report.removed,
            (std::vector<std::string>{"tyv-" + key + "-1", "tyv-" + key + "-2", "ty-" + key + "-1",
                                      "ty-" + key + "-2", "tyb-" + key}));
  EXPECT_EQ(ObjectsOf(key), std::set<std::string>());
}

TEST_F(InstanceNetworkTest, DestroyKillsProcessesStillInside) {
  const std::string key = Key();
  auto n = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  SpawnOptions o;
  o.argv = {"ip", "netns", "exec", n->instances[1].netns, "sleep", "60"};
  o.env = {{"PATH", "/usr/sbin:/usr/bin:/sbin:/bin"}};
  o.capture_output = false;
  o.stdout_file = "/dev/null";
  auto child = Subprocess::Spawn(o);
  ASSERT_TRUE(child.ok()) << child.status().ToString();
  const pid_t pid = (*child)->pid();
  // `ip netns exec` enters the namespace, then execs sleep in the same process.
  auto deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (RunCommand({"ip", "netns", "pids", n->instances[1].netns}).out !=
             std::to_string(pid) + "\n" &&
         SteadyClock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(RunCommand({"ip", "netns", "pids", n->instances[1].netns}).out,
            std::to_string(pid) + "\n");

  DestroyReport report;
  Status s = nets_.Destroy(key, &report);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(report.killed, std::vector<pid_t>{pid});
  auto code = (*child)->Wait();
  ASSERT_TRUE(code.ok());
  EXPECT_EQ(*code, 128 + SIGKILL);
  EXPECT_EQ(ObjectsOf(key), std::set<std::string>());
}

TEST_F(InstanceNetworkTest, SweepLeftoversRemovesAllButKept) {
  // No other test of this file may be between Create and its checks while we sweep.
  ASSERT_EQ(::flock(lock_fd_, LOCK_EX), 0);
  const std::string kept = Key();
  const std::string swept = Key();
  auto nk = nets_.Create(kept, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(nk.ok()) << nk.status().ToString();
  auto ns = nets_.Create(swept, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  const std::set<std::string> swept_objects = ObjectsOf(swept);
  ASSERT_EQ(swept_objects.size(), 5u);

  // Keep whatever else is on this machine: it is not this test's to remove.
  std::set<std::string> keep = AllKeys();
  keep.erase(swept);
  ASSERT_EQ(keep.count(kept), 1u);
  InstanceNetworks restarted;
  auto removed = restarted.SweepLeftovers(keep);
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(std::set<std::string>(removed->begin(), removed->end()), swept_objects);
  EXPECT_EQ(ObjectsOf(swept), std::set<std::string>());
  EXPECT_EQ(ObjectsOf(kept).size(), 5u);
  EXPECT_EQ(Connect(nk->instances[0].netns, nk->instances[1].netns, nk->instances[1].ip),
            nk->instances[0].ip);
}

TEST_F(InstanceNetworkTest, SweepTakesOnlyTheNetworksOfItsOwner) {
  // Two servers on one machine: each sweeps its own networks, never the other's.
  const std::string owner_a = "a" + JobNetworkKey(RandomUuid()).substr(1);
  const std::string owner_b = "b" + JobNetworkKey(RandomUuid()).substr(1);
  InstanceNetworks server_a(owner_a);
  InstanceNetworks server_b(owner_b);
  const std::string key_a = Key();
  const std::string key_b = Key();
  ASSERT_TRUE(server_a.Create(key_a, 1, NetworkMode::kNamespaces).ok());
  auto made_b = server_b.Create(key_b, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(made_b.ok()) << made_b.status().ToString();
  const std::set<std::string> objects_a = ObjectsOf(key_a);
  ASSERT_EQ(objects_a.size(), 3u);

  InstanceNetworks restarted_a(owner_a);  // server A after a restart, keeping none of its jobs
  auto removed = restarted_a.SweepLeftovers({});
  ASSERT_TRUE(removed.ok()) << removed.status().ToString();
  EXPECT_EQ(std::set<std::string>(removed->begin(), removed->end()), objects_a);
  EXPECT_EQ(ObjectsOf(key_a), std::set<std::string>());
  EXPECT_EQ(ObjectsOf(key_b).size(), 5u);
  EXPECT_EQ(
      Connect(made_b->instances[0].netns, made_b->instances[1].netns, made_b->instances[1].ip),
      made_b->instances[0].ip);
  // A complete network of its own is found again by the same owner after a restart.
  InstanceNetworks restarted_b(owner_b);
  auto again = restarted_b.Create(key_b, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->gateway, made_b->gateway);
}

TEST(InstanceNetworkNamesTest, KeysAndServerIdsAreScopedToTheServer) {
  const std::string arn = "arn:aws:sagemaker:us-east-1:000000000000:training-job/same";
  EXPECT_EQ(JobNetworkKey(arn, ""), JobNetworkKey(arn));
  EXPECT_NE(JobNetworkKey(arn, ServerNetworkId("/srv/a")),
            JobNetworkKey(arn, ServerNetworkId("/srv/b")));
  EXPECT_EQ(JobNetworkKey(arn, "s1").size(), 8u);
  EXPECT_EQ(ServerNetworkId("/srv/a"), ServerNetworkId("/srv/a"));
  EXPECT_EQ(ServerNetworkId("/srv/a").size(), 8u);
  // The longest names stay within Linux's 15 characters.
  EXPECT_LE(VethName(JobNetworkKey(arn, "s1"), kMaxInstancesPerNetwork).size(),
            kMaxInterfaceNameLength);
}

TEST_F(InstanceNetworkTest, FailurePartWayLeavesNothingBehind) {
  const std::string key = Key();
  // Something that is not ours holds the name of instance 2's veth.
  const std::string squatter = "tyv-" + key + "-2";
  extra_links_.push_back(squatter);
  Ran add = RunCommand({"ip", "link", "add", squatter, "type", "bridge"});
  ASSERT_EQ(add.code, 0) << add.err;

  auto n = nets_.Create(key, 3, NetworkMode::kNamespaces);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kIoError);
  EXPECT_NE(n.status().message().find("`ip link add " + squatter +
                                      " type veth peer name eth0 netns ty-" + key + "-2` failed: "),
            std::string::npos)
      << n.status().message();
  EXPECT_NE(n.status().message().find("File exists"), std::string::npos) << n.status().message();
  EXPECT_EQ(n.status().message().find("undoing"), std::string::npos) << n.status().message();
  EXPECT_EQ(ObjectsOf(key), std::set<std::string>{squatter});

  // Once the name is free, the same key works, on its preferred /24 (the failed one released it).
  Ran del = RunCommand({"ip", "link", "del", squatter});
  ASSERT_EQ(del.code, 0) << del.err;
  auto retry = nets_.Create(key, 3, NetworkMode::kNamespaces);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(ObjectsOf(key).size(), 7u);
}

TEST_F(InstanceNetworkTest, HostsAndResolvConfWorkInsideAnInstance) {
  if (RunCommand({"bwrap", "--version"}).code != 0) GTEST_SKIP() << "bubblewrap is not installed";
  const std::string key = Key();
  auto n = nets_.Create(key, 2, NetworkMode::kNamespaces);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  testing::TempDir dir("ty_netns_");
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("hosts"), HostsFileText(*n)).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("resolv.conf"), ResolvConfText()).ok());
  auto in_instance = [&](const std::vector<std::string>& cmd) {
    std::vector<std::string> argv = {"ip",
                                     "netns",
                                     "exec",
                                     n->instances[0].netns,
                                     "bwrap",
                                     "--ro-bind",
                                     "/",
                                     "/",
                                     "--dev",
                                     "/dev",
                                     "--proc",
                                     "/proc",
                                     "--ro-bind",
                                     dir.Sub("hosts"),
                                     "/etc/hosts",
                                     "--ro-bind",
                                     dir.Sub("resolv.conf"),
                                     "/etc/resolv.conf"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return RunCommand(argv);
  };
  Ran forward = in_instance({"getent", "hosts", "algo-2"});
  EXPECT_EQ(forward.code, 0) << forward.err;
  EXPECT_EQ(forward.out.substr(0, forward.out.find(' ')), n->instances[1].ip);
  Ran reverse = in_instance({"getent", "hosts", n->instances[1].ip});
  EXPECT_NE(reverse.out.find("algo-2"), std::string::npos) << reverse.out;
  // A name in no hosts file must fail fast, not wait for an unreachable name server.
  auto start = SteadyClock::now();
  const std::string stranger = n->gateway.substr(0, n->gateway.rfind('.') + 1) + "250";
  Ran unknown = in_instance({"getent", "hosts", stranger});
  auto took = SteadyClock::now() - start;
  EXPECT_EQ(unknown.code, 2);
  EXPECT_LT(took, std::chrono::seconds(1));
}

TEST_F(InstanceNetworkTest, CreateAndDestroyTimings) {
  for (int count : {1, 2, 4}) {
    const std::string key = Key();
    auto t0 = SteadyClock::now();
    auto n = nets_.Create(key, count, NetworkMode::kNamespaces);
    auto t1 = SteadyClock::now();
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    auto again = nets_.Create(key, count, NetworkMode::kNamespaces);
    auto t2 = SteadyClock::now();
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    Status s = nets_.Destroy(key);
    auto t3 = SteadyClock::now();
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(ObjectsOf(key), std::set<std::string>());
    auto ms = [](auto d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    std::printf(
        "[ timing ] %d instance(s): Create %lld ms, Create again %lld ms, Destroy %lld ms\n", count,
        static_cast<long long>(ms(t1 - t0)), static_cast<long long>(ms(t2 - t1)),
        static_cast<long long>(ms(t3 - t2)));
  }
}

// ---- no kernel objects needed ----

TEST(InstanceNetworkNamesTest, RejectsBadKeysCountsAndLongNames) {
  struct Case {
    std::string key;
    int count;
    std::string message_part;
  } cases[] = {
      {"123456789", 10, "interface name 'tyv-123456789-10' has 16 characters"},
      {"0123456789ab", 1, "interface name 'tyb-0123456789ab' has 16 characters"},
      {"0a1b2c3d", 100, "1 to 99 instances, not 100"},
      {"0a1b2c3d", 0, "1 to 99 instances, not 0"},
      {"0A1B2C3D", 1, "only [0-9a-z]"},
      {"0a1b-2c3", 1, "only [0-9a-z]"},
      {"", 1, "non-empty"},
  };
  InstanceNetworks nets;
  for (const auto& c : cases) {
    auto n = nets.Create(c.key, c.count, NetworkMode::kNamespaces);
    EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument) << c.key << " x" << c.count;
    EXPECT_NE(n.status().message().find(c.message_part), std::string::npos) << n.status().message();
  }
  // The longest names an 8-character key makes still fit.
  EXPECT_EQ(VethName("0a1b2c3d", kMaxInstancesPerNetwork).size(), kMaxInterfaceNameLength);
  EXPECT_LE(BridgeName("0a1b2c3d").size(), kMaxInterfaceNameLength);
}

TEST(InstanceNetworkNamesTest, JobNetworkKeyIsStableLowercaseHex) {
  const std::string key = JobNetworkKey("arn:aws:sagemaker:us-east-1:000000000000:training-job/x");
  EXPECT_EQ(key, Sha256Hex("arn:aws:sagemaker:us-east-1:000000000000:training-job/x").substr(0, 8));
  EXPECT_EQ(key.size(), 8u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(JobNetworkKey("arn:aws:sagemaker:us-east-1:000000000000:training-job/x"), key);
  EXPECT_NE(JobNetworkKey("arn:aws:sagemaker:us-east-1:000000000000:training-job/y"), key);
}

TEST(InstanceNetworkNamesTest, HostsFileAndResolvConf) {
  JobNetwork n;
  n.instances = {{"algo-1", "10.1.2.2", "ty-k-1"}, {"algo-2", "10.1.2.3", "ty-k-2"}};
  EXPECT_EQ(HostsFileText(n),
            "127.0.0.1 localhost\n::1 localhost\n10.1.2.2 algo-1\n10.1.2.3 algo-2\n");
  const std::string resolv = ResolvConfText();
  EXPECT_NE(resolv.find("options timeout:1 attempts:1\n"), std::string::npos);
  EXPECT_EQ(resolv.find("nameserver"), std::string::npos);
}

TEST(InstanceNetworkLoopbackTest, AddressesAreOnLoopbackAndStable) {
  InstanceNetworks nets;
  const std::string key = NewKey();
  auto n = nets.Create(key, 3, NetworkMode::kLoopback);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->mode, NetworkMode::kLoopback);
  EXPECT_EQ(n->interface, "lo");
  EXPECT_EQ(n->bridge, "");
  EXPECT_EQ(n->gateway, "");
  ASSERT_EQ(n->instances.size(), 3u);
  const std::string base = n->subnet.substr(0, n->subnet.rfind('.') + 1);  // "127.X.Y."
  EXPECT_EQ(base.rfind("127.", 0), 0u);
  EXPECT_NE(base.rfind("127.0.", 0), 0u);  // clear of 127.0.0.1 and Debian's 127.0.1.1
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(n->instances[i].host, "algo-" + std::to_string(i + 1));
    EXPECT_EQ(n->instances[i].ip, base + std::to_string(i + 1));
    EXPECT_EQ(n->instances[i].netns, "");
  }
  auto again = nets.Create(key, 3, NetworkMode::kLoopback);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(HostsFileText(*again), HostsFileText(*n));
  EXPECT_EQ(HostsFileText(*n), "127.0.0.1 localhost\n::1 localhost\n" + base + "1 algo-1\n" + base +
                                   "2 algo-2\n" + base + "3 algo-3\n");
  // The addresses work without configuring anything: 127/8 is local.
  EXPECT_EQ(Connect("", "", n->instances[1].ip, n->instances[0].ip), n->instances[0].ip);
  EXPECT_TRUE(nets.Destroy(key).ok());
}

TEST(InstanceNetworkLoopbackTest, LiveKeysWithTheSameSlotGetDifferentAddresses) {
  // Two keys whose preferred 127.X.Y is the same (found by trying keys).
  InstanceNetworks probe;
  std::map<std::string, std::string> seen;  // subnet -> key
  std::string a, b;
  while (a.empty()) {
    std::string k = NewKey();
    auto n = probe.Create(k, 1, NetworkMode::kLoopback);
    ASSERT_TRUE(n.ok());
    ASSERT_TRUE(probe.Destroy(k).ok());  // free the slot so the next key starts from scratch
    auto [it, inserted] = seen.emplace(n->subnet, k);
    if (!inserted) {
      a = it->second;
      b = k;
    }
  }
  InstanceNetworks nets;
  auto na = nets.Create(a, 2, NetworkMode::kLoopback);
  auto nb = nets.Create(b, 2, NetworkMode::kLoopback);
  ASSERT_TRUE(na.ok() && nb.ok());
  EXPECT_NE(na->subnet, nb->subnet);
  // b keeps its address while it lives; a, made again after it was destroyed, gets its own back.
  ASSERT_TRUE(nets.Destroy(a).ok());
  auto nb_again = nets.Create(b, 2, NetworkMode::kLoopback);
  ASSERT_TRUE(nb_again.ok());
  EXPECT_EQ(nb_again->subnet, nb->subnet);
  auto na_again = nets.Create(a, 2, NetworkMode::kLoopback);
  ASSERT_TRUE(na_again.ok());
  EXPECT_EQ(na_again->subnet, na->subnet);
}

TEST(InstanceNetworkProbeTest, ProbeLeavesNothingBehind) {
  NetworkSupport support = ProbeNetworkSupport();
  if (support.namespaces) {
    EXPECT_EQ(support.reason, "");
  } else {
    EXPECT_NE(support.reason, "");
  }
  const std::string mine = "typrobe-" + std::to_string(::getpid()) + "-";
  for (const auto& ns : NetnsNames()) EXPECT_NE(ns.rfind(mine, 0), 0u) << ns;
}

}  // namespace
}  // namespace ty::launch
