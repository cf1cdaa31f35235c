// Supervisor: runs one training process to completion, turning its stdout and
// stderr into timestamped lines and playing the stop protocol (SIGTERM to the
// process group, SIGKILL after a grace period).
// Thread contract: Run() is called by one thread; RequestStop() may be called
// from any thread and from a signal handler (it only writes to a pipe).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "common/subprocess.h"

namespace ty::agent {

inline constexpr size_t kMaxLineBytes = 256 * 1024;

struct OutputLine {
  int64_t timestamp_ms = 0;
  bool is_stderr = false;
  std::string text;  // without the trailing newline
};

// Splits a byte stream into lines on '\n'; a line longer than max_line is cut
// into pieces of max_line bytes.
class LineSplitter {
 public:
  explicit LineSplitter(size_t max_line = kMaxLineBytes) : max_line_(max_line) {}
  // Appends data; calls emit for every completed line.
  void Feed(const char* data, size_t n, const std::function<void(std::string)>& emit);
  // Emits the partial last line, if any.
  void Finish(const std::function<void(std::string)>& emit);

 private:
  size_t max_line_;
  std::string partial_;
};

class Supervisor {
 public:
  struct Outcome {
    int exit_code = 0;     // exit status, or 128+signal
    bool stopped = false;  // a stop was requested while the process ran
  };
  using LineSink = std::function<void(const OutputLine&)>;

  Supervisor();
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Async-signal-safe. Before Run(): Run() will not start the process. During
  // Run(): SIGTERM to the group now, SIGKILL after the grace period (Run()'s,
  // or `grace` when given: a spot interruption's notice is shorter).
  void RequestStop();
  void RequestStop(std::chrono::milliseconds grace);
  bool stop_requested() const { return stop_requested_.load(); }
  // The descriptor RequestStop() writes to, for a signal handler.
  int stop_write_fd() const { return stop_pipe_[1]; }

  // Spawns `options` (capture_output is forced on) and supervises it until it
  // exits and its pipes are drained. `sink` receives every line; `on_tick` is
  // called at least every 50 ms (for batching). After the main process exits,
  // leftovers in its process group are killed. Errors: those of
  // Subprocess::Spawn (the process could not start).
  // spare_leader_on_term: the spawned process is a sandbox launcher
  // (bubblewrap) that would take the sandbox down on SIGTERM; the stop's
  // SIGTERM then goes to the rest of its process group only, like `docker stop`
  // signalling the container's processes rather than the runtime.
  Result<Outcome> Run(SpawnOptions options, std::chrono::milliseconds stop_grace,
                      const LineSink& sink, const std::function<void()>& on_tick,
                      bool spare_leader_on_term = false);

 private:
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> stop_requested_{false};
  std::atomic<int64_t> grace_override_ms_{-1};
};

}  // namespace ty::agent
