// SlurmClient: a small client of the Slurm command-line tools (sbatch, squeue, scontrol, scancel,
// sinfo). Each call runs one tool through ty::Subprocess with an argv (never a shell string:
// job names are user input), a complete small environment (PATH, SLURM_CONF) and a timeout,
// and keeps at most kMaxToolOutput bytes of its output.
//
// The parsers of the tools' output are pure functions below, bounded (lines, fields, lengths)
// and tolerant: a malformed line is skipped, never trusted.
//
// Errors of every call: kUnavailable when the tool ran and failed (slurmctld down, a refused
// submission): the message is Slurm's own error line; kIoError when the tool could not be run
// (missing binary) or did not finish within the timeout.
//
// Thread contract: a SlurmClient is immutable after construction; its calls may run on any
// thread at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ty::launch {

// Output of a tool kept at most (stdout and stderr each); beyond, it is cut.
inline constexpr size_t kMaxToolOutput = 4 << 20;

struct SlurmClientOptions {
  // Directory of sbatch, squeue, ...; "": looked up in PATH (the server's, else a default).
  std::string bin_dir;
  // SLURM_CONF for the tools; "": the server's SLURM_CONF if set, else Slurm's default.
  std::string slurm_conf;
  // A call that takes longer is killed and is an error.
  std::chrono::milliseconds timeout{15000};
};

struct ToolOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// ---- pure parsers (tested with malformed input) ----

// `sbatch --parsable` prints "<job id>" or "<job id>;<cluster>". kInvalidArgument otherwise.
Result<int64_t> ParseSbatchJobId(std::string_view out);

// One line of SqueueArgs' format.
struct SqueueRow {
  int64_t job_id = 0;
  std::string state;   // PENDING, RUNNING, COMPLETED, ... (Slurm's extended state)
  std::string reason;  // Slurm's reason ("None", "Resources", "Priority", "BeginTime", ...)
  int restarts = 0;    // times the job was requeued
  int nodes = 1;       // nodes requested or allocated
  // When Slurm chose the job for preemption (it then had its GraceTime); "" for never. Set
  // even when the job's agents finished in time and the job ended COMPLETED.
  std::string preempt_time;
  std::string name;
};
// The fields SqueueArgs asks for, in order ("|"-separated, padded; the name last).
inline constexpr char kSqueueFormat[] =
    "JobID:24|,State:24|,Reason:200|,RestartCnt:8|,NumNodes:8|,PreemptTime:24|,Name:256|";
// Rows of `squeue -h -O kSqueueFormat`; lines that do not parse are skipped. At most 100000.
std::vector<SqueueRow> ParseSqueue(std::string_view out);

// One record of `scontrol show <entity> -o`: "Key=Value Key=Value ..." on one line. Values may
// contain spaces (a key starts after a space with [A-Za-z][A-Za-z0-9_:/]*=). At most 512 keys,
// values cut at 4096 bytes.
std::map<std::string, std::string> ParseScontrolRecord(std::string_view line);
// Every record of the output, one per non-empty line (at most 100000).
std::vector<std::map<std::string, std::string>> ParseScontrolRecords(std::string_view out);

// `scontrol show hostnames`: one name per line; names that are not [A-Za-z0-9._-]{1,255} are
// an error (kInvalidArgument), since they become host names and /etc/hosts lines. At most 10000.
Result<std::vector<std::string>> ParseHostnames(std::string_view out);

// A Slurm duration ("120", "00:02:00", "1-00:00:00", "UNLIMITED") in seconds; nullopt if it is
// none of these.
std::optional<int64_t> ParseSlurmSeconds(std::string_view text);

// The first line of a tool's error output, without Slurm's "sbatch: error: " prefixes, cut at
// 512 bytes; `fallback` when it is empty.
std::string SlurmErrorLine(std::string_view err, const std::string& fallback);

// ---- the client ----

class SlurmClient {
 public:
  explicit SlurmClient(SlurmClientOptions options);

  // Runs `tool args...` (tool: "sbatch", "squeue", ...) to its end. A non-zero exit is an
  // outcome here, not an error; errors: kIoError (cannot run it, timeout).
  Result<ToolOutput> Run(const std::string& tool, const std::vector<std::string>& args) const;
  // Like Run, but a non-zero exit is kUnavailable with Slurm's error line; returns stdout.
  Result<std::string> RunOk(const std::string& tool, const std::vector<std::string>& args) const;

  // sbatch --parsable <args> <script>: the new job's id.
  Result<int64_t> Submit(const std::vector<std::string>& sbatch_args,
                         const std::string& script_path) const;
  // squeue of the given jobs (any state Slurm still remembers). Jobs Slurm no longer knows
  // are absent (squeue's "Invalid job id" for all of them is an empty answer, not an error).
  Result<std::vector<SqueueRow>> Jobs(const std::vector<int64_t>& job_ids) const;
  // squeue of every job of this user whose name starts with `prefix` (any state).
  Result<std::vector<SqueueRow>> JobsNamed(const std::string& prefix) const;
  // scancel [--signal=SIG] [--full] <id>. A job that is already gone is not an error.
  Status Cancel(int64_t job_id, const std::string& signal = "", bool full = false) const;
  // scancel --state=PENDING <id>: cancels the job only while it still waits in the queue.
  Status CancelPending(int64_t job_id) const;
  // scontrol requeue <id>.
  Status Requeue(int64_t job_id) const;
  // scontrol show <entity> -o [name]: its records.
  Result<std::vector<std::map<std::string, std::string>>> Show(const std::string& entity,
                                                               const std::string& name = "") const;
  // scontrol show hostnames <nodelist>.
  Result<std::vector<std::string>> Hostnames(const std::string& nodelist) const;

  const SlurmClientOptions& options() const { return options_; }

 private:
  SlurmClientOptions options_;
  std::string path_;  // PATH of the tools
};

}  // namespace ty::launch
