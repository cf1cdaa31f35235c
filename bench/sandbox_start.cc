// Sandbox start cost, before and after issue 10: time from the agent deciding to spawn to the
// training process's first line of output, for the old bubblewrap argv (bwrap as root, binds
// by path, every capability kept) and the new one (agent/sandbox.h: the user namespace as an
// unprivileged uid, binds by descriptor, --cap-drop ALL, --disable-userns, a seccomp filter
// compiled per start, hidden server paths), interleaved in one run so both see the same machine.
//
// usage: sandbox_start [ROUNDS]   (as root; built by `ninja -C build sandbox_start`)
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/sandbox.h"
#include "common/fs.h"
#include "common/subprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Spawns `o` and waits for the first line on stdout; returns milliseconds since `t0`.
double FirstLine(ty::SpawnOptions o, Clock::time_point t0) {
  o.env = {{"PATH", "/usr/bin:/bin"}};
  auto p = ty::Subprocess::Spawn(o);
  if (!p.ok()) {
    std::fprintf(stderr, "spawn: %s\n", p.status().ToString().c_str());
    std::exit(1);
  }
  std::string got;
  char buf[256];
  while (got.find('\n') == std::string::npos) {
    pollfd pfd{(*p)->stdout_fd(), POLLIN, 0};
    ::poll(&pfd, 1, 10000);
    ssize_t n = ::read((*p)->stdout_fd(), buf, sizeof(buf));
    if (n == 0) break;
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
  double ms = Ms(Clock::now() - t0);
  auto code = (*p)->Wait();
  if (got.empty() || !code.ok() || *code != 0) {
    std::string err;
    ssize_t n = ::read((*p)->stderr_fd(), buf, sizeof(buf));
    if (n > 0) err.assign(buf, static_cast<size_t>(n));
    std::fprintf(stderr, "the sandboxed command failed (%d): %s%s\n", code.ok() ? *code : -1,
                 got.c_str(), err.c_str());
    std::exit(1);
  }
  return ms;
}

struct Stats {
  double p50, p90, mean;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  return {v[v.size() / 2], v[std::min(v.size() - 1, v.size() * 9 / 10)], sum / v.size()};
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 40;
  char tmpl[] = "/var/tmp/ty-sandbox-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string data_dir = tmpl;  // 0700, root's: like the server's data dir
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)ty::RemoveAll(dir); }
  } cleanup{data_dir};
  const std::string tree = ty::JoinPath(data_dir, "jobs/a/j/attempt-1/algo-1");
  (void)ty::MakeDirs(ty::JoinPath(tree, "model"));
  (void)ty::agent::ChownTree(ty::JoinPath(tree, "model"), 65534, 65534);
  // What the agent does once per instance (not per start): the uid may walk to the tree.
  if (!ty::agent::GrantSearchToAncestors(tree, 65534).ok()) return 1;
  const std::string bwrap = "/usr/bin/bwrap";
  ty::model::SandboxConfig config;
  config.hidden_paths = ty::agent::SandboxHiddenPaths(data_dir, "", {});
  if (!ty::agent::UserNamespaceSandboxWorks(bwrap, config.uid, config.gid)) {
    std::fprintf(stderr, "user namespaces do not work here; nothing to compare\n");
    return 1;
  }

  struct Command {
    const char* name;
    std::vector<std::string> argv;
  };
  const std::vector<Command> commands = {
      {"/bin/echo hello", {"/bin/echo", "hello"}},
      {"python3 -c print", {"/usr/bin/python3", "-c", "print('hello')"}},
  };
  std::printf("sandbox start: spawn -> first output line, %d interleaved rounds per command\n",
              rounds);
  std::printf("%-18s %-6s %9s %9s %9s\n", "command", "argv", "p50 ms", "p90 ms", "mean ms");
  for (const auto& cmd : commands) {
    std::vector<double> old_ms, new_ms, prepare_ms;
    for (int i = 0; i < rounds + 1; ++i) {  // round 0 warms the page cache, not counted
      ty::SpawnOptions legacy;
      auto t0 = Clock::now();
      legacy.argv = ty::agent::LegacySandboxArgv(bwrap, "algo-1", tree, "/opt/ml", cmd.argv);
      double o = FirstLine(legacy, t0);

      t0 = Clock::now();
      auto prepared =
          ty::agent::PrepareSandbox(config, bwrap, "algo-1", tree, {}, "/opt/ml", cmd.argv);
      if (!prepared.ok()) {
        std::fprintf(stderr, "prepare: %s\n", prepared.status().ToString().c_str());
        return 1;
      }
      double p = Ms(Clock::now() - t0);
      double n = FirstLine(prepared->spawn, t0);
      if (i == 0) continue;
      old_ms.push_back(o);
      new_ms.push_back(n);
      prepare_ms.push_back(p);
    }
    Stats o = Summarize(old_ms), n = Summarize(new_ms), p = Summarize(prepare_ms);
    std::printf("%-18s %-6s %9.2f %9.2f %9.2f\n", cmd.name, "old", o.p50, o.p90, o.mean);
    std::printf("%-18s %-6s %9.2f %9.2f %9.2f   (of which prepare: p50 %.2f ms)\n", cmd.name, "new",
                n.p50, n.p90, n.mean, p.p50);
    std::printf("%-18s %-6s %8.2fx %8.2fx %8.2fx\n", cmd.name, "ratio", n.p50 / o.p50,
                n.p90 / o.p90, n.mean / o.mean);
  }
  return 0;
}
