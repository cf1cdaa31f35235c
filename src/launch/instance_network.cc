#include "launch/instance_network.h"

#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "common/crypto.h"
#include "common/fs.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace ty::launch {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr char kPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// `ip` answers in milliseconds; the bound only keeps a wedged kernel from wedging a caller.
constexpr auto kIpTimeout = std::chrono::seconds(10);
constexpr auto kKillWait = std::chrono::seconds(2);
// The bridge's alias: "trainyard server=<owner>" from its first batch on, then
// "trainyard server=<owner> instances=<count>" once the network is complete.
constexpr char kAliasPrefix[] = "trainyard";
constexpr char kCompleteMark[] = " instances=";
constexpr char kIpMissingPrefix[] = "cannot execute 'ip'";
// Where iproute2 keeps the names of network namespaces. `ip netns list` only lists this
// directory, so it is read here directly, which spares starting a process.
constexpr char kNetnsDir[] = "/run/netns";

// 10.0.0.0/8 as 65536 /24s, then 172.16.0.0/12 as 4096 more.
constexpr uint32_t kTenSlots = 65536;
constexpr uint32_t kSlots = kTenSlots + 4096;
// 127.X.Y.0/24 with X in 1..254: 127.0.0.0/16 holds 127.0.0.1 and Debian's 127.0.1.1.
constexpr uint32_t kLoopbackSlots = 254 * 256;
// Create puts the bridge and the veths' host ends of a network into a link group of their own,
// this plus the index of its /24 (unique on the machine like the /24), so that removing them is
// one `ip link del group`: the kernel then unregisters them together and waits for RCU once,
// not once per link (~60 instead of ~150 ms for 4 instances on a loaded 2-core machine).
constexpr uint32_t kLinkGroupBase = 0x74790000;  // "ty\0\0"

// ---- running ip ----

struct CommandOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

std::string CommandText(const std::vector<std::string>& args) {
  std::string text = "ip";
  for (const auto& a : args) {
    text += ' ';
    text += a.find(' ') == std::string::npos ? a : "'" + a + "'";
  }
  return text;
}

// Stderr on one line, for error messages.
std::string OneLine(const std::string& text) {
  std::string line;
  for (char c : text) {
    if (c == '\n') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line += c;
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  return line;
}

// Appends what fd has now; returns false at EOF or on a read error.
bool Drain(int fd, std::string* into) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      into->append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      return false;
    } else if (errno == EINTR) {
      continue;
    } else {
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
}

// Runs `ip args...` to the end. A non-zero exit is an outcome here, not an error; errors are
// failing to start it (IoError "cannot execute 'ip': ...") and the timeout, whose message
// names the command as `what` (default: the command line).
Result<CommandOutput> RunIp(const std::vector<std::string>& args, const std::string& what = "") {
  SpawnOptions options;
  options.argv = {"ip"};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = {{"PATH", kPath}, {"LC_ALL", "C"}};
  TY_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> child, Subprocess::Spawn(options));
  CommandOutput result;
  const auto deadline = SteadyClock::now() + kIpTimeout;
  while (child->stdout_fd() >= 0 || child->stderr_fd() >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) {
      // The Subprocess destructor kills and reaps it.
      return IoError("`" + (what.empty() ? CommandText(args) : what) +
                     "` did not finish within 10 s");
    }
    pollfd fds[2];
    int nfds = 0;
    if (child->stdout_fd() >= 0) fds[nfds++] = {child->stdout_fd(), POLLIN, 0};
    if (child->stderr_fd() >= 0) fds[nfds++] = {child->stderr_fd(), POLLIN, 0};
    int ready = ::poll(fds, nfds, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("poll", errno);
    }
    for (int i = 0; i < nfds; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == child->stdout_fd()) {
        if (!Drain(fds[i].fd, &result.out)) child->CloseStdout();
      } else if (!Drain(fds[i].fd, &result.err)) {
        child->CloseStderr();
      }
    }
  }
  TY_ASSIGN_OR_RETURN(result.exit_code, child->Wait());
  return result;
}

bool IsIpMissing(const Status& status) { return status.message().rfind(kIpMissingPrefix, 0) == 0; }

std::string FailureText(const std::vector<std::string>& args, const CommandOutput& r) {
  std::string why = OneLine(r.err);
  if (why.empty()) why = "exit code " + std::to_string(r.exit_code);
  return "`" + CommandText(args) + "` failed: " + why;
}

// Runs ip; a non-zero exit becomes an IoError naming the command and its stderr.
Result<std::string> RunIpOk(const std::vector<std::string>& args) {
  TY_ASSIGN_OR_RETURN(CommandOutput r, RunIp(args));
  if (r.exit_code != 0) return IoError(FailureText(args, r));
  return std::move(r.out);
}

// ---- text ----

bool IsKeyChar(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z'); }

bool IsValidKey(const std::string& key) {
  return !key.empty() && std::all_of(key.begin(), key.end(), IsKeyChar);
}

// "1".."999" without leading zeros.
std::optional<int> ParseInstanceNumber(const std::string& s) {
  if (s.empty() || s.size() > 3 || s[0] == '0') return std::nullopt;
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

// "<prefix><key>-<n>" -> (key, n).
std::optional<std::pair<std::string, int>> ParseInstanceName(const std::string& name,
                                                             const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return std::nullopt;
  std::string rest = name.substr(prefix.size());
  size_t dash = rest.rfind('-');
  if (dash == std::string::npos) return std::nullopt;
  std::string key = rest.substr(0, dash);
  auto n = ParseInstanceNumber(rest.substr(dash + 1));
  if (!IsValidKey(key) || !n) return std::nullopt;
  return std::make_pair(key, *n);
}

// ---- IPv4 ----

struct Prefix {
  uint32_t net = 0;  // host order
  int len = 32;
};

uint32_t Mask(int len) { return len <= 0 ? 0 : ~uint32_t{0} << (32 - len); }

bool Overlaps(const Prefix& a, const Prefix& b) {
  uint32_t m = Mask(std::min(a.len, b.len));
  return (a.net & m) == (b.net & m);
}

std::optional<uint32_t> ParseIpv4(const std::string& s) {
  in_addr a{};
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

// "a.b.c.d/len" or "a.b.c.d" (a /32).
std::optional<Prefix> ParsePrefix(const std::string& s) {
  size_t slash = s.find('/');
  auto addr = ParseIpv4(s.substr(0, slash));
  if (!addr) return std::nullopt;
  Prefix p{*addr, 32};
  if (slash != std::string::npos) {
    const std::string len = s.substr(slash + 1);
    if (len.empty() || len.size() > 2 ||
        !std::all_of(len.begin(), len.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    p.len = std::stoi(len);
    if (p.len > 32) return std::nullopt;
  }
  return p;
}

std::string Ipv4Text(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

uint32_t KeyHash16(const std::string& key) {
  return static_cast<uint32_t>(std::stoul(Sha256Hex(key).substr(0, 4), nullptr, 16));
}

uint32_t SlotNet(uint32_t slot) {
  if (slot < kTenSlots) return (10u << 24) | (slot << 8);
  return ((172u << 24) | (16u << 16)) + ((slot - kTenSlots) << 8);
}

// The slot of a /24 that SlotNet made.
uint32_t NetSlot(uint32_t net) {
  if ((net >> 24) == 10) return (net >> 8) & 0xffff;
  return kTenSlots + ((net - ((172u << 24) | (16u << 16))) >> 8);
}

uint32_t LoopbackSlotNet(uint32_t slot) {
  return (127u << 24) | ((1 + slot / 256) << 16) | ((slot % 256) << 8);
}

// ---- ip -batch ----
//
// Starting `ip` takes 10-20 ms on a loaded machine, far longer than the kernel takes for one of
// its commands, so commands run in batches: one process each for everything on the host and
// everything inside one namespace (`ip -n` switches namespace once, at start).
// Subprocess gives a child /dev/null as stdin, so instead of `-batch -` the commands go into a
// memfd that `ip` opens as /proc/<our pid>/fd/<fd>: a new open file, read from its start.

// The commands of one `ip [options] -batch` run. ip splits a batch line at blanks and honours
// quotes, so an argument may hold spaces but no quote, backslash, '#' or newline.
struct IpBatch {
  std::vector<std::string> options;                // before -batch: {"-n", ns}, {"-4", "-o"}
  std::vector<std::vector<std::string>> commands;  // one line each
  bool force = false;  // -force: go on past a failing command instead of stopping there
};

// What a batch did.
struct BatchOutcome {
  std::string out;  // the stdout of all commands, in order
  // Failing commands by index, as "`ip <options> <command>` failed: <its stderr>". Without
  // force at most one: the commands before it succeeded, those after it did not run.
  std::map<size_t, std::string> failed;
  // Set when ip failed without naming a command: it gave up before the first (e.g. `-n` of a
  // namespace that is gone), or a command made it exit at once (as argument errors do), so
  // which commands ran is unknown.
  std::optional<std::string> unattributed;

  bool ok() const { return failed.empty() && !unattributed; }
  // REQUIRES: !ok().
  const std::string& FirstFailure() const {
    return failed.empty() ? *unattributed : failed.begin()->second;
  }
};

std::string BatchLine(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) {
    if (!line.empty()) line += ' ';
    line += a.find(' ') == std::string::npos ? a : "\"" + a + "\"";
  }
  return line;
}

// "ip -n ty-0a1b2c3d-1 -batch (addr add ...; link set eth0 up; link set lo up; ... 4 commands)"
std::string BatchText(const IpBatch& batch) {
  constexpr size_t kShown = 3;
  std::string text = CommandText(batch.options) + (batch.force ? " -force" : "") + " -batch (";
  for (size_t i = 0; i < batch.commands.size() && i < kShown; ++i) {
    text += (i == 0 ? "" : "; ") + CommandText(batch.commands[i]).substr(3);
  }
  if (batch.commands.size() > kShown) {
    text += "; ... " + std::to_string(batch.commands.size()) + " commands";
  }
  return text + ")";
}

Status WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("writing an ip batch", errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// "12" -> 12; nullopt unless only digits.
std::optional<size_t> ParseCount(const std::string& s) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  size_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  return n;
}

// Runs one batch. Errors: ip could not be started (nothing ran), or it did not finish within
// the timeout (which commands ran is unknown).
Result<BatchOutcome> RunIpBatch(const IpBatch& batch) {
  std::string input;
  for (const auto& command : batch.commands) input += BatchLine(command) + "\n";
  UniqueFd file(::memfd_create("ty-ip-batch", MFD_CLOEXEC));
  if (!file.valid()) return ErrnoStatus("memfd_create", errno);
  TY_RETURN_IF_ERROR(WriteAll(file.get(), input));
  const std::string path =
      "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(file.get());
  std::vector<std::string> args = batch.options;
  if (batch.force) args.push_back("-force");
  args.push_back("-batch");
  args.push_back(path);
  TY_ASSIGN_OR_RETURN(CommandOutput r, RunIp(args, BatchText(batch)));

  BatchOutcome outcome;
  outcome.out = std::move(r.out);
  // ip prints a failing command's own messages, then "Command failed <file>:<line>".
  const std::string marker = "Command failed " + path + ":";
  std::string pending;  // stderr since the last marker
  for (const auto& line : SplitNonEmpty(r.err, '\n')) {
    std::optional<size_t> number;
    if (line.rfind(marker, 0) == 0) number = ParseCount(line.substr(marker.size()));
    if (number && *number >= 1 && *number <= batch.commands.size()) {
      std::vector<std::string> command = batch.options;
      const auto& words = batch.commands[*number - 1];
      command.insert(command.end(), words.begin(), words.end());
      std::string why = OneLine(pending);
      outcome.failed[*number - 1] =
          "`" + CommandText(command) + "` failed: " + (why.empty() ? "no message" : why);
      pending.clear();
    } else {
      pending += line + "\n";
    }
  }
  // A batch whose commands failed exits with 1; anything else that is not 0 (255 from exit(-1)
  // on an argument error, a signal) means ip stopped without saying where.
  if (r.exit_code != 0 && (outcome.failed.empty() || r.exit_code != 1)) {
    std::string why = OneLine(pending);
    if (why.empty()) why = "exit code " + std::to_string(r.exit_code);
    outcome.unattributed = "`" + BatchText(batch) + "` failed: " + why;
  }
  return outcome;
}

// The first failure of a batch run without force, or nullopt when every command succeeded.
std::optional<std::string> BatchFailure(const Result<BatchOutcome>& r) {
  if (!r.ok()) return r.status().message();
  if (!r->ok()) return r->FirstFailure();
  return std::nullopt;
}

// ---- listings ----

// What `ip -o` listings printed, told apart by the shape of each line, so that one batch can
// hold several: `link show` ("7: tyv-0a1b2c3d-1@if2: <BROADCAST,...> ..."), `-4 addr show`
// ("7: tyb-0a1b2c3d    inet 10.1.2.1/24 ..."), `netns pids` (a pid alone) and `route show`
// (the rest: a route never starts with "<index>:").
struct Listing {
  std::map<std::string, std::string> links;               // name -> its line
  std::vector<std::pair<std::string, Prefix>> addresses;  // device, IPv4 address/prefix length
  std::vector<std::string> routes;
  std::vector<pid_t> pids;
};

bool IsDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "eth0@if5:" -> "eth0".
std::string DeviceName(std::string word) {
  if (!word.empty() && word.back() == ':') word.pop_back();
  return word.substr(0, word.find('@'));
}

Listing ParseListing(const std::string& out) {
  Listing listing;
  for (const auto& line : SplitNonEmpty(out, '\n')) {
    auto w = SplitWords(line);
    if (w.empty()) continue;
    const bool indexed =
        w[0].size() >= 2 && w[0].back() == ':' && IsDigits(w[0].substr(0, w[0].size() - 1));
    if (indexed && w.size() >= 3 && w[2][0] == '<') {
      listing.links[DeviceName(w[1])] = line;
    } else if (indexed && w.size() >= 4 && w[2] == "inet") {
      if (auto p = ParsePrefix(w[3])) listing.addresses.push_back({DeviceName(w[1]), *p});
    } else if (indexed) {
      continue;  // another address family
    } else if (w.size() == 1 && IsDigits(w[0]) && w[0].size() <= 9) {
      listing.pids.push_back(static_cast<pid_t>(std::stol(w[0])));
    } else {
      listing.routes.push_back(line);
    }
  }
  return listing;
}

// What `ip netns list` would print, without its "(id: N)".
Result<std::vector<std::string>> NetnsNames() {
  std::vector<std::string> names;
  std::error_code ec;
  std::filesystem::directory_iterator it(kNetnsDir, ec);
  if (ec == std::errc::no_such_file_or_directory) return names;  // no netns made yet
  for (const std::filesystem::directory_iterator end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return IoError(std::string("listing ") + kNetnsDir + ": " + ec.message());
  return names;
}

// Every IPv4 prefix this machine uses: interface addresses (with their prefix length), route
// destinations and gateways of all tables, and the name servers of /etc/resolv.conf (reached
// through the default route: a bridge on their /24 would cut the host off from DNS).
Result<std::vector<Prefix>> UsedPrefixes() {
  IpBatch batch{{"-4", "-o"}, {{"addr", "show"}, {"route", "show", "table", "all"}}};
  auto listed = RunIpBatch(batch);
  if (auto failure = BatchFailure(listed)) return IoError(*failure);
  const Listing listing = ParseListing(listed->out);
  std::vector<Prefix> used;
  for (const auto& [device, prefix] : listing.addresses) used.push_back(prefix);
  static const std::set<std::string> kRouteTypes = {
      "unicast",     "local",    "broadcast", "multicast", "throw",
      "unreachable", "prohibit", "blackhole", "nat",       "anycast"};
  for (const auto& line : listing.routes) {
    auto w = SplitWords(line);
    size_t i = (!w.empty() && kRouteTypes.count(w[0]) != 0) ? 1 : 0;
    if (i < w.size() && w[i] != "default") {
      if (auto p = ParsePrefix(w[i])) used.push_back(*p);
    }
    for (size_t j = i; j + 1 < w.size(); ++j) {
      if (w[j] != "via") continue;
      if (auto p = ParsePrefix(w[j + 1])) used.push_back(*p);
    }
  }
  std::ifstream resolv("/etc/resolv.conf");
  std::string line;
  while (std::getline(resolv, line)) {
    auto w = SplitWords(line);
    if (w.size() >= 2 && w[0] == "nameserver") {
      if (auto a = ParseIpv4(w[1])) used.push_back({*a, 32});
    }
  }
  return used;
}

// ---- what is on the machine ----

// The objects of one job network found on the machine.
struct JobObjects {
  std::map<int, std::string> netns;        // instance -> netns name
  std::map<int, std::string> veths;        // instance -> its `ip -o link` line
  std::optional<std::string> bridge_line;  // the bridge's `ip -o link` line

  bool empty() const { return netns.empty() && veths.empty() && !bridge_line; }

  // Veths, then namespaces, then the bridge: the order Destroy reports them in (and removes
  // them in when it cannot remove the links as one group).
  std::vector<std::string> Names(const std::string& key) const {
    std::vector<std::string> names;
    for (const auto& [n, line] : veths) names.push_back(VethName(key, n));
    for (const auto& [n, name] : netns) names.push_back(name);
    if (bridge_line) names.push_back(BridgeName(key));
    return names;
  }
};

// Every job network's objects, by key. "ty-<key>-<n>" namespaces, "tyb-<key>" and
// "tyv-<key>-<n>" links; anything else (including the probe's "typrobe-*") is not ours.
// Names in `spare` are left out.
std::map<std::string, JobObjects> JobsOf(const std::vector<std::string>& netns,
                                         const std::map<std::string, std::string>& links,
                                         const std::set<std::string>& spare = {}) {
  std::map<std::string, JobObjects> jobs;
  for (const auto& name : netns) {
    if (spare.count(name) != 0) continue;
    if (auto parsed = ParseInstanceName(name, "ty-")) {
      jobs[parsed->first].netns[parsed->second] = name;
    }
  }
  for (const auto& [name, line] : links) {
    if (spare.count(name) != 0) continue;
    if (auto parsed = ParseInstanceName(name, "tyv-")) {
      jobs[parsed->first].veths[parsed->second] = line;
    } else if (name.rfind("tyb-", 0) == 0 && IsValidKey(name.substr(4))) {
      jobs[name.substr(4)].bridge_line = line;
    }
  }
  return jobs;
}

// The job networks on the machine and the IPv4 addresses of its links, from /run/netns and one
// `ip` process.
struct Survey {
  std::map<std::string, JobObjects> jobs;
  std::vector<std::pair<std::string, Prefix>> addresses;  // device, address
};

Result<Survey> TakeSurvey() {
  TY_ASSIGN_OR_RETURN(std::vector<std::string> netns, NetnsNames());
  auto listed = RunIpBatch({{"-4", "-o"}, {{"link", "show"}, {"addr", "show"}}});
  if (auto failure = BatchFailure(listed)) return IoError(*failure);
  Listing listing = ParseListing(listed->out);
  return Survey{JobsOf(netns, listing.links), std::move(listing.addresses)};
}

bool LineHas(const std::string& line, const std::string& part) {
  return line.find(part) != std::string::npos;
}

// The instance count a completed Create wrote into the bridge's alias; nullopt when absent.
std::optional<int> CompletedCount(const std::string& bridge_line) {
  size_t at = bridge_line.find(std::string("alias ") + kAliasPrefix);
  if (at == std::string::npos) return std::nullopt;
  at = bridge_line.find(kCompleteMark, at);
  if (at == std::string::npos) return std::nullopt;
  auto words = SplitWords(bridge_line.substr(at + std::strlen(kCompleteMark)));
  if (words.empty()) return std::nullopt;
  return ParseInstanceNumber(words[0]);
}

// Whether a job network found on the machine was made by the server `owner`: its bridge's alias
// says so. Namespaces and veths without a bridge have no owner to tell (Create makes the bridge
// first and Destroy removes it last): only an ownerless InstanceNetworks takes them.
bool OwnedBy(const JobObjects& objects, const std::string& owner) {
  if (owner.empty()) return true;
  if (!objects.bridge_line) return false;
  const std::string alias = std::string("alias ") + kAliasPrefix + " server=" + owner;
  size_t at = objects.bridge_line->find(alias);
  if (at == std::string::npos) return false;
  size_t end = at + alias.size();
  return end == objects.bridge_line->size() || (*objects.bridge_line)[end] == ' ' ||
         (*objects.bridge_line)[end] == '\\';
}

JobNetwork DescribeNamespaces(const std::string& key, int count, uint32_t net) {
  JobNetwork n;
  n.mode = NetworkMode::kNamespaces;
  n.key = key;
  n.bridge = BridgeName(key);
  n.interface = "eth0";
  n.gateway = Ipv4Text(net + 1);
  n.subnet = Ipv4Text(net) + "/24";
  for (int i = 1; i <= count; ++i) {
    n.instances.push_back({"algo-" + std::to_string(i),
                           Ipv4Text(net + 1 + static_cast<uint32_t>(i)), NetnsName(key, i)});
  }
  return n;
}

// Whether every instance of `n` is in place as Create left it.
Result<bool> Intact(const JobNetwork& n, const JobObjects& found) {
  for (size_t i = 0; i < n.instances.size(); ++i) {
    const int number = static_cast<int>(i) + 1;
    auto veth = found.veths.find(number);
    if (found.netns.count(number) == 0 || veth == found.veths.end()) return false;
    // LOWER_UP on the host end means the eth0 end is up too.
    if (!LineHas(veth->second, " master " + n.bridge + " ") || !LineHas(veth->second, "LOWER_UP")) {
      return false;
    }
  }
  // Only now the namespaces, one process each.
  for (const auto& instance : n.instances) {
    auto addr = RunIp({"-n", instance.netns, "-4", "-o", "addr", "show", "dev", "eth0"});
    if (!addr.ok()) return addr.status();
    if (addr->exit_code != 0 || !LineHas(addr->out, " inet " + instance.ip + "/24 ")) {
      return false;
    }
  }
  return true;
}

// ---- removing ----

// The link group of an `ip -o link` line ("... mode DEFAULT group 1954086913 qlen ..."); nullopt
// for "group default".
std::optional<std::string> LinkGroup(const std::string& line) {
  auto w = SplitWords(line);
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (w[i] == "group" && IsDigits(w[i + 1])) return w[i + 1];
  }
  return std::nullopt;
}

// The link group that holds the links of job `key` and nothing else on the machine, so that
// `ip link del group` removes exactly them; nullopt when there is none (e.g. a network made
// before Create set groups), and the links are removed one by one.
std::optional<std::string> OwnGroup(const std::string& key, const JobObjects& objects,
                                    const std::map<std::string, std::string>& links) {
  std::set<std::string> names;
  for (const auto& [n, line] : objects.veths) names.insert(VethName(key, n));
  if (objects.bridge_line) names.insert(BridgeName(key));
  std::optional<std::string> group;
  for (const auto& name : names) {
    auto g = LinkGroup(links.at(name));
    if (!g || (group && *g != *group)) return std::nullopt;
    group = g;
  }
  if (!group) return std::nullopt;
  for (const auto& [name, line] : links) {
    if (names.count(name) == 0 && LinkGroup(line) == group) return std::nullopt;
  }
  return group;
}

// What removing the networks of some keys did.
struct Removals {
  struct Job {
    std::vector<std::string> removed;        // names that were there and are gone
    std::vector<std::string> left;           // names still there
    std::map<std::string, std::string> why;  // name in `left` -> the failure removing it
  };
  std::map<std::string, Job> jobs;  // by key: every key asked for
  std::vector<pid_t> killed;        // processes that were inside the namespaces
  std::vector<pid_t> survivors;     // of those, the ones still alive after kKillWait
};

// Removes the networks of `keys` with two `ip` processes however many objects they have: the
// first lists the links and the processes inside the namespaces, which are then SIGKILLed
// (deleting a netns kills nothing, and a survivor would keep the namespace alive); the second
// deletes everything and lists the links again. Names in `spare` are left alone.
// Errors: only when listing fails (before or after).
// REQUIRES: the caller holds the key locks of `keys`.
Result<Removals> RemoveJobNetworks(const std::set<std::string>& keys,
                                   const std::set<std::string>& spare) {
  TY_ASSIGN_OR_RETURN(std::vector<std::string> netns, NetnsNames());
  IpBatch list{{"-o"}, {{"link", "show"}}, /*force=*/true};
  for (const auto& name : netns) {
    auto parsed = ParseInstanceName(name, "ty-");
    if (parsed && keys.count(parsed->first) != 0 && spare.count(name) == 0) {
      list.commands.push_back({"netns", "pids", name});
    }
  }
  TY_ASSIGN_OR_RETURN(BatchOutcome listed, RunIpBatch(list));
  // A `netns pids` fails when its namespace went away meanwhile, which is fine.
  if (listed.failed.count(0) != 0) return IoError(listed.failed[0]);
  if (listed.unattributed) return IoError(*listed.unattributed);
  const Listing before = ParseListing(listed.out);
  std::map<std::string, JobObjects> found = JobsOf(netns, before.links, spare);

  Removals result;
  for (pid_t pid : before.pids) {
    if (pid > 1 && pid != ::getpid() && ::kill(pid, SIGKILL) == 0) result.killed.push_back(pid);
  }

  IpBatch remove{{"-o"}, {}, /*force=*/true};
  std::vector<std::vector<std::string>> removing;  // the names each command removes
  for (const auto& key : keys) {
    auto it = found.find(key);
    if (it == found.end()) continue;
    const JobObjects& objects = it->second;
    // Links first: deleting a veth deletes its peer at once, whereas a namespace (and the eth0
    // in it) lives on until its last process has exited.
    const std::optional<std::string> group = OwnGroup(key, objects, before.links);
    if (group) {
      remove.commands.push_back({"link", "del", "group", *group});
      std::vector<std::string> links;
      for (const auto& [n, line] : objects.veths) links.push_back(VethName(key, n));
      if (objects.bridge_line) links.push_back(BridgeName(key));
      removing.push_back(std::move(links));
    } else {
      for (const auto& [n, line] : objects.veths) {
        remove.commands.push_back({"link", "del", VethName(key, n)});
        removing.push_back({VethName(key, n)});
      }
    }
    for (const auto& [n, name] : objects.netns) {
      remove.commands.push_back({"netns", "del", name});
      removing.push_back({name});
    }
    if (objects.bridge_line && !group) {
      remove.commands.push_back({"link", "del", BridgeName(key)});
      removing.push_back({BridgeName(key)});
    }
  }
  std::map<std::string, std::string> why;
  auto blame = [&](size_t index, const std::string& text) {
    for (const auto& name : removing[index]) why.emplace(name, text);
  };
  std::optional<Listing> after;
  if (removing.empty()) {
    after = before;
  } else {
    remove.commands.push_back({"link", "show"});
    auto removed = RunIpBatch(remove);
    if (!removed.ok()) {
      for (size_t i = 0; i < removing.size(); ++i) blame(i, removed.status().message());
    } else {
      for (const auto& [index, text] : removed->failed) {
        if (index < removing.size()) blame(index, text);
      }
      if (removed->unattributed) {
        for (size_t i = 0; i < removing.size(); ++i) blame(i, *removed->unattributed);
      } else if (removed->failed.count(removing.size()) == 0) {
        after = ParseListing(removed->out);
      }
    }
  }
  if (!after) {
    TY_ASSIGN_OR_RETURN(std::string links, RunIpOk({"-o", "link", "show"}));
    after = ParseListing(links);
  }

  const auto deadline = SteadyClock::now() + kKillWait;
  for (pid_t pid : result.killed) {
    while (ProcessAlive(pid, 0) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (ProcessAlive(pid, 0)) result.survivors.push_back(pid);
  }

  TY_ASSIGN_OR_RETURN(std::vector<std::string> netns_after, NetnsNames());
  std::map<std::string, JobObjects> left = JobsOf(netns_after, after->links, spare);
  for (const auto& key : keys) {
    Removals::Job& job = result.jobs[key];
    if (left.count(key) != 0) job.left = left[key].Names(key);
    if (found.count(key) != 0) {
      for (const auto& name : found[key].Names(key)) {
        if (std::find(job.left.begin(), job.left.end(), name) == job.left.end()) {
          job.removed.push_back(name);
        }
      }
    }
    for (const auto& name : job.left) {
      if (why.count(name) != 0) job.why[name] = why[name];
    }
  }
  return result;
}

// Ok when nothing of job `key` is left and no process survived; else an IoError naming what is
// left and why.
Status RemovedStatus(const std::string& key, const Removals::Job& job,
                     const std::vector<pid_t>& survivors) {
  if (job.left.empty() && survivors.empty()) return Status::Ok();
  std::string message = "the network of job " + key + " is not fully removed:";
  for (const auto& name : job.left) {
    auto why = job.why.find(name);
    message += " " + name + (why != job.why.end() ? " (" + why->second + ")" : "") + ";";
  }
  for (pid_t pid : survivors) {
    message += " process " + std::to_string(pid) + " survived SIGKILL;";
  }
  message.pop_back();
  return IoError(message);
}

// ---- making ----

// Makes the kernel objects of `n` with 2 + count `ip` processes: one for the host's side, one
// per namespace for its inside, one for the mark of completion. The bridge carries `owner`
// in its alias from the first batch on. On failure removes what it made (everything of
// `n.key` but the names in `spare`, which were there before and are not ours) and says which
// command failed and why.
Status Build(const JobNetwork& n, const std::string& owner, const std::set<std::string>& spare) {
  const std::string alias = std::string(kAliasPrefix) + " server=" + owner;
  const std::string group =
      std::to_string(kLinkGroupBase + NetSlot(*ParseIpv4(n.gateway) & Mask(24)));
  IpBatch host;
  host.commands = {
      {"link", "add", n.bridge, "type", "bridge"},
      {"addr", "add", n.gateway + "/24", "dev", n.bridge},
      {"link", "set", n.bridge, "group", group, "alias", alias, "up"},
  };
  for (size_t i = 0; i < n.instances.size(); ++i) {
    const std::string& ns = n.instances[i].netns;
    const std::string veth = VethName(n.key, static_cast<int>(i) + 1);
    // The peer is made inside the namespace under its final name: no rename step, and no
    // moment where an "eth0" could clash with the host's.
    host.commands.push_back({"netns", "add", ns});
    host.commands.push_back(
        {"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns});
    host.commands.push_back({"link", "set", veth, "master", n.bridge, "group", group, "up"});
  }
  std::vector<IpBatch> batches = {std::move(host)};
  for (const auto& instance : n.instances) {
    batches.push_back({{"-n", instance.netns},
                       {{"addr", "add", instance.ip + "/24", "dev", "eth0"},
                        {"link", "set", "eth0", "up"},
                        {"link", "set", "lo", "up"},
                        {"route", "add", "default", "via", n.gateway}}});
  }
  // Last: the mark that says the network is complete.
  batches.push_back({{},
                     {{"link", "set", "dev", n.bridge, "alias",
                       alias + kCompleteMark + std::to_string(n.instances.size())}}});

  for (const auto& batch : batches) {
    auto failure = BatchFailure(RunIpBatch(batch));
    if (!failure) continue;
    // What was made follows from which command failed, except when ip stopped without saying
    // where; the kernel's listing is right in every case.
    std::string message = "creating the network of job " + n.key + ": " + *failure;
    auto removed = RemoveJobNetworks({n.key}, spare);
    Status undone = removed.ok() ? RemovedStatus(n.key, removed->jobs[n.key], removed->survivors)
                                 : removed.status();
    if (!undone.ok()) message += "; undoing: " + undone.message();
    return IoError(message);
  }
  return Status::Ok();
}

Status CheckInterfaceName(const std::string& name) {
  if (name.size() <= kMaxInterfaceNameLength) return Status::Ok();
  return InvalidArgument("interface name '" + name + "' has " + std::to_string(name.size()) +
                         " characters; Linux allows at most " +
                         std::to_string(kMaxInterfaceNameLength));
}

}  // namespace

const char* NetworkModeName(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kNamespaces:
      return "Namespaces";
    case NetworkMode::kLoopback:
      return "Loopback";
  }
  return "Unknown";
}

std::string BridgeName(const std::string& key) { return "tyb-" + key; }
std::string VethName(const std::string& key, int instance) {
  return "tyv-" + key + "-" + std::to_string(instance);
}
std::string NetnsName(const std::string& key, int instance) {
  return "ty-" + key + "-" + std::to_string(instance);
}
std::string PreferredSubnet(const std::string& key) {
  return Ipv4Text(SlotNet(KeyHash16(key))) + "/24";
}

std::string JobNetworkKey(const std::string& job_arn, const std::string& server_id) {
  return Sha256Hex(server_id.empty() ? job_arn : server_id + " " + job_arn).substr(0, 8);
}

std::string ServerNetworkId(const std::string& data_dir) {
  return Sha256Hex(data_dir).substr(0, 8);
}

std::string HostsFileText(const JobNetwork& network) {
  std::string text = "127.0.0.1 localhost\n::1 localhost\n";
  for (const auto& i : network.instances) text += i.ip + " " + i.host + "\n";
  return text;
}

std::string ResolvConfText() {
  return "# Trainyard: no name server here; instances find each other through /etc/hosts.\n"
         "options timeout:1 attempts:1\n";
}

NetworkSupport ProbeNetworkSupport() {
  if (::geteuid() != 0) {
    return {false, "not running as root (euid " + std::to_string(::geteuid()) +
                       "): network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN"};
  }
  std::string lower;
  for (char c : RandomAlnum(6)) lower += static_cast<char>(std::tolower(c));
  // Not "ty-...": SweepLeftovers must never mistake a probe for a job network.
  const std::string ns = "typrobe-" + std::to_string(::getpid()) + "-" + lower;
  auto run = [](const std::vector<std::string>& args) -> std::optional<std::string> {
    auto r = RunIp(args);
    if (!r.ok()) {
      if (IsIpMissing(r.status())) {
        return "iproute2's `ip` is not installed (" + r.status().message() + ")";
      }
      return r.status().message();
    }
    if (r->exit_code != 0) return FailureText(args, *r);
    return std::nullopt;
  };
  if (auto failure = run({"netns", "add", ns})) return {false, *failure};
  // A bridge and a veth pair inside the throwaway namespace: proves the modules Create needs
  // without showing anything on the host, and that `ip` reads its batches as Create runs them.
  std::optional<std::string> failure =
      BatchFailure(RunIpBatch({{"-n", ns},
                               {{"link", "add", "br0", "type", "bridge"},
                                {"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
                                {"link", "set", "v0", "master", "br0", "up"}}}));
  auto removed = run({"netns", "del", ns});
  if (failure) return {false, *failure};
  if (removed) return {false, *removed};
  return {true, ""};
}

// Holds `key` for one call: later calls for the same key wait until it is released.
class InstanceNetworks::KeyLock {
 public:
  KeyLock(InstanceNetworks* owner, std::string key) : owner_(owner), key_(std::move(key)) {
    MutexLock lock(&owner_->mu_);
    while (owner_->busy_keys_.count(key_) != 0) owner_->key_released_.Wait(&owner_->mu_);
    owner_->busy_keys_.insert(key_);
  }
  ~KeyLock() {
    {
      MutexLock lock(&owner_->mu_);
      owner_->busy_keys_.erase(key_);
    }
    owner_->key_released_.SignalAll();
  }
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

 private:
  InstanceNetworks* owner_;
  std::string key_;
};

Result<JobNetwork> InstanceNetworks::Create(const std::string& key, int count, NetworkMode mode) {
  if (!IsValidKey(key)) {
    return InvalidArgument("network key '" + key + "' must be non-empty and only [0-9a-z]");
  }
  if (count < 1 || count > kMaxInstancesPerNetwork) {
    return InvalidArgument("a job network has 1 to " + std::to_string(kMaxInstancesPerNetwork) +
                           " instances, not " + std::to_string(count));
  }
  if (mode == NetworkMode::kLoopback) return CreateLoopback(key, count);
  // The highest instance number makes the longest name.
  TY_RETURN_IF_ERROR(CheckInterfaceName(BridgeName(key)));
  TY_RETURN_IF_ERROR(CheckInterfaceName(VethName(key, count)));
  KeyLock hold(this, key);
  return CreateNamespaces(key, count);
}

JobNetwork InstanceNetworks::CreateLoopback(const std::string& key, int count) {
  uint32_t net = 0;
  {
    MutexLock lock(&mu_);
    auto it = loopback_.find(key);
    if (it != loopback_.end()) {
      net = it->second;
    } else {
      std::set<uint32_t> taken;
      for (const auto& [k, v] : loopback_) taken.insert(v);
      const uint32_t start = KeyHash16(key) % kLoopbackSlots;
      for (uint32_t j = 0; j < kLoopbackSlots && net == 0; ++j) {
        uint32_t candidate = LoopbackSlotNet((start + j) % kLoopbackSlots);
        if (taken.count(candidate) == 0) net = candidate;
      }
      // 65024 slots: a server never has that many live jobs; share the last one if it did.
      if (net == 0) net = LoopbackSlotNet(start);
      loopback_[key] = net;
    }
  }
  JobNetwork n;
  n.mode = NetworkMode::kLoopback;
  n.key = key;
  n.interface = "lo";
  n.subnet = Ipv4Text(net) + "/24";
  for (int i = 1; i <= count; ++i) {
    n.instances.push_back(
        {"algo-" + std::to_string(i), Ipv4Text(net + static_cast<uint32_t>(i)), ""});
  }
  return n;
}

Result<JobNetwork> InstanceNetworks::CreateNamespaces(const std::string& key, int count) {
  TY_ASSIGN_OR_RETURN(Survey survey, TakeSurvey());
  const JobObjects found = survey.jobs.count(key) != 0 ? survey.jobs[key] : JobObjects();
  uint32_t preferred = 0;
  {
    MutexLock lock(&mu_);
    auto it = subnets_.find(key);
    if (it != subnets_.end()) preferred = it->second;
  }
  // Namespaces or veths of `key` without a bridge are not ours to take over: Create makes the
  // bridge first and Destroy removes it last. Building fails on the clashing name and says so,
  // and its undoing leaves them alone.
  std::set<std::string> spare;
  if (found.bridge_line) {
    // Made before: by this server, or by one that crashed or restarted.
    for (const auto& [device, address] : survey.addresses) {
      if (device != BridgeName(key)) continue;
      if (address.len == 24 && (address.net & 255) == 1) preferred = address.net & Mask(24);
      break;
    }
    std::optional<int> made = CompletedCount(*found.bridge_line);
    if (made && *made != count) {
      return FailedPrecondition("the network of job " + key + " exists with " +
                                std::to_string(*made) + " instances, not " + std::to_string(count));
    }
    if (made && preferred != 0 && LineHas(*found.bridge_line, ",UP")) {
      JobNetwork existing = DescribeNamespaces(key, count, preferred);
      TY_ASSIGN_OR_RETURN(bool intact, Intact(existing, found));
      if (intact) {
        MutexLock lock(&mu_);
        subnets_[key] = preferred;
        return existing;
      }
    }
    // Incomplete (a Create cut short) or damaged: make it again, on the same /24 if it had one.
    Status removed = DestroyLocked(key, nullptr);
    if (!removed.ok()) {
      return removed.WithPrefix("removing the incomplete network of job " + key);
    }
  } else {
    for (const auto& name : found.Names(key)) spare.insert(name);
  }
  TY_ASSIGN_OR_RETURN(uint32_t net, ReserveSubnet(key, preferred));
  JobNetwork n = DescribeNamespaces(key, count, net);
  Status built = Build(n, owner_, spare);
  if (!built.ok()) {
    ReleaseSubnet(key);
    return built;
  }
  return n;
}

Result<uint32_t> InstanceNetworks::ReserveSubnet(const std::string& key, uint32_t preferred) {
  TY_ASSIGN_OR_RETURN(std::vector<Prefix> used, UsedPrefixes());
  MutexLock lock(&mu_);
  auto is_free = [&](uint32_t net) TY_REQUIRES(mu_) {
    const Prefix candidate{net, 24};
    for (const auto& u : used) {
      if (Overlaps(candidate, u)) return false;
    }
    for (const auto& [k, v] : subnets_) {
      if (k != key && v == net) return false;
    }
    return true;
  };
  uint32_t chosen = 0;
  if (preferred != 0 && is_free(preferred)) {
    chosen = preferred;
  } else {
    const uint32_t start = KeyHash16(key);
    for (uint32_t j = 0; j < kSlots && chosen == 0; ++j) {
      uint32_t candidate = SlotNet((start + j) % kSlots);
      if (is_free(candidate)) chosen = candidate;
    }
  }
  if (chosen == 0) {
    return ResourceExhausted("no free /24 left in 10.0.0.0/8 or 172.16.0.0/12 for job " + key);
  }
  subnets_[key] = chosen;
  return chosen;
}

void InstanceNetworks::ReleaseSubnet(const std::string& key) {
  MutexLock lock(&mu_);
  subnets_.erase(key);
}

Status InstanceNetworks::Destroy(const std::string& key, DestroyReport* report) {
  if (!IsValidKey(key)) {
    return InvalidArgument("network key '" + key + "' must be non-empty and only [0-9a-z]");
  }
  KeyLock hold(this, key);
  {
    MutexLock lock(&mu_);
    if (loopback_.erase(key) != 0) return Status::Ok();
  }
  Status s = DestroyLocked(key, report);
  if (s.ok()) ReleaseSubnet(key);
  return s;
}

Status InstanceNetworks::DestroyLocked(const std::string& key, DestroyReport* report) {
  auto removals = RemoveJobNetworks({key}, {});
  if (!removals.ok()) {
    // Without `ip` nothing can have been made.
    return IsIpMissing(removals.status()) ? Status::Ok() : removals.status();
  }
  const Removals::Job& job = removals->jobs[key];
  if (report != nullptr) {
    report->removed.insert(report->removed.end(), job.removed.begin(), job.removed.end());
    report->killed.insert(report->killed.end(), removals->killed.begin(), removals->killed.end());
  }
  return RemovedStatus(key, job, removals->survivors);
}

Result<std::vector<std::string>> InstanceNetworks::SweepLeftovers(
    const std::set<std::string>& keep) {
  TY_ASSIGN_OR_RETURN(Survey survey, TakeSurvey());
  std::set<std::string> keys;
  for (const auto& [key, objects] : survey.jobs) {
    if (keep.count(key) == 0 && OwnedBy(objects, owner_)) keys.insert(key);
  }
  std::vector<std::string> removed;
  if (keys.empty()) return removed;
  // All of them in one removal, so it costs the same few processes however many there are.
  // The keys are taken in order, so two sweeps cannot deadlock.
  std::vector<std::unique_ptr<KeyLock>> holds;
  for (const auto& key : keys) holds.push_back(std::make_unique<KeyLock>(this, key));
  TY_ASSIGN_OR_RETURN(Removals removals, RemoveJobNetworks(keys, {}));
  std::string errors;
  for (const auto& [key, job] : removals.jobs) {
    removed.insert(removed.end(), job.removed.begin(), job.removed.end());
    Status s = RemovedStatus(key, job, {});
    if (s.ok()) {
      ReleaseSubnet(key);
    } else {
      errors += (errors.empty() ? "" : "; ") + s.message();
    }
  }
  for (pid_t pid : removals.survivors) {
    errors += (errors.empty() ? "" : "; ") + std::string("process ") + std::to_string(pid) +
              " in a swept namespace survived SIGKILL";
  }
  if (!errors.empty()) return IoError(errors);
  return removed;
}

}  // namespace ty::launch
