// A stand-in for `trainyard agent` in the launcher conformance suite: started as
//   fake_agent agent --instance <dir>/algo-<n>.instance.json
// (as launchers start agents), it appends what it observes to <dir>/algo-<n>/fake-agent.log:
//   "started <host> <instance file bytes>"  once, after reading its instance file;
//   "signal <NAME>"                          for every signal of a known set it receives.
// It exits 0 after the signal named by TY_FAKE_AGENT_EXIT_ON (default TERM: what LocalLauncher
// sends for kStop), 2 when its instance file is missing or unreadable, and 3 after
// TY_FAKE_AGENT_LIFETIME seconds (default 300) so a test that dies never leaves it behind.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <utility>

namespace {

const std::pair<int, const char*> kSignals[] = {
    {SIGTERM, "TERM"}, {SIGUSR1, "USR1"},   {SIGUSR2, "USR2"}, {SIGINT, "INT"},
    {SIGHUP, "HUP"},   {SIGWINCH, "WINCH"}, {SIGURG, "URG"},   {SIGCONT, "CONT"},
};

void Append(const std::string& path, const std::string& line) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string text = line + "\n";
  ssize_t n = ::write(fd, text.data(), text.size());  // one write: lines never interleave
  (void)n;
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::string instance_file;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--instance") == 0) instance_file = argv[i + 1];
  }
  const std::string suffix = ".instance.json";
  if (instance_file.size() <= suffix.size() ||
      instance_file.compare(instance_file.size() - suffix.size(), suffix.size(), suffix) != 0) {
    std::fprintf(stderr, "fake_agent: usage: fake_agent agent --instance DIR/HOST.instance.json\n");
    return 2;
  }
  const std::string instance_dir = instance_file.substr(0, instance_file.size() - suffix.size());
  const std::string host = instance_dir.substr(instance_dir.rfind('/') + 1);
  const std::string log = instance_dir + "/fake-agent.log";

  // Block the signals first: none is lost between start-up and the wait below.
  sigset_t set;
  sigemptyset(&set);
  for (const auto& [sig, name] : kSignals) sigaddset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);

  FILE* f = std::fopen(instance_file.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "fake_agent: cannot read %s\n", instance_file.c_str());
    return 2;
  }
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fclose(f);
  Append(log, "started " + host + " " + std::to_string(size));

  const char* exit_env = std::getenv("TY_FAKE_AGENT_EXIT_ON");
  const std::string exit_on = exit_env != nullptr ? exit_env : "TERM";
  const char* life_env = std::getenv("TY_FAKE_AGENT_LIFETIME");
  const time_t deadline = std::time(nullptr) + (life_env != nullptr ? std::atoi(life_env) : 300);
  while (std::time(nullptr) < deadline) {
    timespec wait{1, 0};
    const int sig = ::sigtimedwait(&set, nullptr, &wait);
    if (sig <= 0) continue;
    for (const auto& [known, name] : kSignals) {
      if (known != sig) continue;
      Append(log, std::string("signal ") + name);
      if (exit_on == name) return 0;
    }
  }
  return 3;
}
