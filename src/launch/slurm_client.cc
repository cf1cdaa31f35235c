#include "launch/slurm_client.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <memory>

#include "common/fs.h"
#include "common/subprocess.h"
#include "common/text.h"

namespace ty::launch {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr size_t kMaxRows = 100000;
constexpr size_t kMaxKeys = 512;
constexpr size_t kMaxValue = 4096;
constexpr size_t kMaxHosts = 10000;

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

int64_t ToInt(std::string_view s) {
  int64_t v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

// Lines of `s`, at most `max`.
std::vector<std::string_view> Lines(std::string_view s, size_t max) {
  std::vector<std::string_view> out;
  while (!s.empty() && out.size() < max) {
    size_t nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    if (!TrimView(line).empty()) out.push_back(line);
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

bool IsKeyStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool IsKeyChar(char c) {
  return IsKeyStart(c) || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '/';
}

// Length of a key followed by '=' at the start of `s`, or 0.
size_t KeyAt(std::string_view s) {
  if (s.empty() || !IsKeyStart(s[0])) return 0;
  size_t i = 1;
  while (i < s.size() && i < 64 && IsKeyChar(s[i])) ++i;
  return i < s.size() && s[i] == '=' ? i : 0;
}

// Appends what fd has now, up to `max` kept bytes; returns false at EOF or on a read error.
bool Drain(int fd, std::string* into, size_t max) {
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      size_t room = into->size() < max ? max - into->size() : 0;
      into->append(buf, std::min(room, static_cast<size_t>(n)));
    } else if (n == 0) {
      return false;
    } else if (errno == EINTR) {
      continue;
    } else {
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
  }
}

std::string JoinIds(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

bool IsUnknownJob(const std::string& err) {
  return err.find("Invalid job id") != std::string::npos;
}

}  // namespace

Result<int64_t> ParseSbatchJobId(std::string_view out) {
  std::string_view line = TrimView(out.substr(0, std::min<size_t>(out.size(), 1024)));
  if (size_t nl = line.find('\n'); nl != std::string_view::npos)
    line = TrimView(line.substr(0, nl));
  std::string_view id = line.substr(0, line.find(';'));
  if (!AllDigits(id) || ToInt(id) <= 0) {
    return InvalidArgument("sbatch printed no job id: '" + TruncateUtf8(std::string(line), 200) +
                           "'");
  }
  return ToInt(id);
}

std::vector<SqueueRow> ParseSqueue(std::string_view out) {
  std::vector<SqueueRow> rows;
  for (std::string_view line : Lines(out, kMaxRows)) {
    std::string_view fields[7];
    size_t n = 0;
    std::string_view rest = line;
    // The name is last and may itself hold '|': only the first six separators split.
    while (n < 6) {
      size_t bar = rest.find('|');
      if (bar == std::string_view::npos) break;
      fields[n++] = TrimView(rest.substr(0, bar));
      rest.remove_prefix(bar + 1);
    }
    if (n < 6) continue;
    rest = TrimView(rest);
    if (!rest.empty() && rest.back() == '|') rest.remove_suffix(1);
    fields[6] = TrimView(rest);
    if (!AllDigits(fields[0]) || fields[1].empty() || fields[1].size() > 64) continue;
    SqueueRow row;
    row.job_id = ToInt(fields[0]);
    row.state = std::string(fields[1]);
    row.reason = TruncateUtf8(std::string(fields[2]), 512);
    row.restarts =
        AllDigits(fields[3]) && fields[3].size() <= 9 ? static_cast<int>(ToInt(fields[3])) : 0;
    row.nodes = AllDigits(fields[4]) && fields[4].size() <= 6
                    ? std::max(1, static_cast<int>(ToInt(fields[4])))
                    : 1;
    if (fields[5] != "N/A" && fields[5] != "None" && fields[5] != "Unknown" && !fields[5].empty()) {
      row.preempt_time = TruncateUtf8(std::string(fields[5]), 64);
    }
    row.name = TruncateUtf8(std::string(fields[6]), 512);
    rows.push_back(std::move(row));
  }
  return rows;
}

std::map<std::string, std::string> ParseScontrolRecord(std::string_view line) {
  std::map<std::string, std::string> record;
  line = TrimView(line);
  size_t key_len = KeyAt(line);
  while (key_len > 0 && record.size() < kMaxKeys) {
    std::string key(line.substr(0, key_len));
    line.remove_prefix(key_len + 1);
    // The value runs to the next " Key=" (values such as Reason or Command may hold spaces).
    size_t pos = 0;
    size_t next = std::string_view::npos;
    size_t next_len = 0;
    while ((pos = line.find(' ', pos)) != std::string_view::npos) {
      size_t k = pos;
      while (k < line.size() && line[k] == ' ') ++k;
      next_len = KeyAt(line.substr(k));
      if (next_len > 0) {
        next = k;
        break;
      }
      pos = k;
    }
    std::string value(TrimView(line.substr(0, next == std::string_view::npos ? line.size() : pos)));
    if (value.size() > kMaxValue) value = TruncateUtf8(value, kMaxValue);
    record[key] = std::move(value);
    if (next == std::string_view::npos) break;
    line.remove_prefix(next);
    key_len = next_len;
  }
  return record;
}

std::vector<std::map<std::string, std::string>> ParseScontrolRecords(std::string_view out) {
  std::vector<std::map<std::string, std::string>> records;
  for (std::string_view line : Lines(out, kMaxRows)) {
    auto r = ParseScontrolRecord(line);
    if (!r.empty()) records.push_back(std::move(r));
  }
  return records;
}

Result<std::vector<std::string>> ParseHostnames(std::string_view out) {
  std::vector<std::string> hosts;
  for (std::string_view line : Lines(out, kMaxHosts + 1)) {
    std::string_view name = TrimView(line);
    bool ok = !name.empty() && name.size() <= 255;
    for (char c : name) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_');
    }
    if (!ok) {
      return InvalidArgument("not a node name: '" + TruncateUtf8(std::string(name), 100) + "'");
    }
    hosts.emplace_back(name);
  }
  if (hosts.size() > kMaxHosts) return InvalidArgument("more than 10000 nodes");
  if (hosts.empty()) return InvalidArgument("no node names");
  return hosts;
}

std::optional<int64_t> ParseSlurmSeconds(std::string_view text) {
  text = TrimView(text);
  if (text == "UNLIMITED" || text == "INFINITE") return -1;
  if (text.empty() || text.size() > 20) return std::nullopt;
  int64_t days = 0;
  if (size_t dash = text.find('-'); dash != std::string_view::npos) {
    if (!AllDigits(text.substr(0, dash))) return std::nullopt;
    days = ToInt(text.substr(0, dash));
    text.remove_prefix(dash + 1);
  }
  std::vector<int64_t> parts;
  while (true) {
    size_t colon = text.find(':');
    std::string_view part = text.substr(0, colon);
    if (!AllDigits(part) || parts.size() >= 3) return std::nullopt;
    parts.push_back(ToInt(part));
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  int64_t seconds = 0;
  if (parts.size() == 1) {
    seconds = parts[0];  // a plain number is seconds (GraceTime) or minutes elsewhere
  } else if (parts.size() == 2) {
    seconds = parts[0] * 60 + parts[1];
  } else {
    seconds = parts[0] * 3600 + parts[1] * 60 + parts[2];
  }
  return days * 86400 + seconds;
}

std::string SlurmErrorLine(std::string_view err, const std::string& fallback) {
  for (std::string_view line : Lines(err, 64)) {
    line = TrimView(line);
    // "sbatch: error: Batch job submission failed: Invalid partition name specified"
    for (std::string_view marker : {std::string_view("error: "), std::string_view("fatal: ")}) {
      if (size_t at = line.find(marker); at != std::string_view::npos && at < 40) {
        line.remove_prefix(at + marker.size());
      }
    }
    if (!line.empty()) return TruncateUtf8(std::string(line), 512);
  }
  return fallback;
}

SlurmClient::SlurmClient(SlurmClientOptions options) : options_(std::move(options)) {
  const char* path = std::getenv("PATH");
  path_ = path != nullptr && *path ? path : kDefaultPath;
  if (options_.slurm_conf.empty()) {
    const char* conf = std::getenv("SLURM_CONF");
    if (conf != nullptr) options_.slurm_conf = conf;
  }
}

Result<ToolOutput> SlurmClient::Run(const std::string& tool,
                                    const std::vector<std::string>& args) const {
  SpawnOptions so;
  so.argv = {options_.bin_dir.empty() ? tool : JoinPath(options_.bin_dir, tool)};
  so.argv.insert(so.argv.end(), args.begin(), args.end());
  so.env = {{"PATH", path_}, {"LC_ALL", "C"}};
  if (!options_.slurm_conf.empty()) so.env["SLURM_CONF"] = options_.slurm_conf;
  // sbatch copies the submitter's environment into the job: keep it small and ours.
  for (const char* name : {"HOME", "USER", "LOGNAME"}) {
    if (const char* v = std::getenv(name); v != nullptr) so.env[name] = v;
  }
  TY_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> child, Subprocess::Spawn(so));
  ToolOutput result;
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (child->stdout_fd() >= 0 || child->stderr_fd() >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      // The Subprocess destructor kills and reaps it.
      return IoError("`" + tool + "` did not answer within " +
                     std::to_string(options_.timeout.count() / 1000) + " s");
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
        if (!Drain(fds[i].fd, &result.out, kMaxToolOutput)) child->CloseStdout();
      } else if (!Drain(fds[i].fd, &result.err, kMaxToolOutput)) {
        child->CloseStderr();
      }
    }
  }
  TY_ASSIGN_OR_RETURN(result.exit_code, child->Wait());
  return result;
}

Result<std::string> SlurmClient::RunOk(const std::string& tool,
                                       const std::vector<std::string>& args) const {
  TY_ASSIGN_OR_RETURN(ToolOutput r, Run(tool, args));
  if (r.exit_code != 0) {
    return Unavailable(tool + ": " +
                       SlurmErrorLine(r.err, "exit code " + std::to_string(r.exit_code)));
  }
  return std::move(r.out);
}

Result<int64_t> SlurmClient::Submit(const std::vector<std::string>& sbatch_args,
                                    const std::string& script_path) const {
  std::vector<std::string> args = {"--parsable"};
  args.insert(args.end(), sbatch_args.begin(), sbatch_args.end());
  args.push_back(script_path);
  TY_ASSIGN_OR_RETURN(std::string out, RunOk("sbatch", args));
  auto id = ParseSbatchJobId(out);
  if (!id.ok()) return Unavailable(id.status().message());
  return *id;
}

Result<std::vector<SqueueRow>> SlurmClient::Jobs(const std::vector<int64_t>& job_ids) const {
  if (job_ids.empty()) return std::vector<SqueueRow>{};
  TY_ASSIGN_OR_RETURN(ToolOutput r, Run("squeue", {"-h", "--states=all", "-O", kSqueueFormat, "-j",
                                                   JoinIds(job_ids)}));
  if (r.exit_code != 0) {
    // squeue refuses a list of which it knows no job: they are all gone.
    if (IsUnknownJob(r.err)) return std::vector<SqueueRow>{};
    return Unavailable("squeue: " +
                       SlurmErrorLine(r.err, "exit code " + std::to_string(r.exit_code)));
  }
  return ParseSqueue(r.out);
}

Result<std::vector<SqueueRow>> SlurmClient::JobsNamed(const std::string& prefix) const {
  TY_ASSIGN_OR_RETURN(std::string out,
                      RunOk("squeue", {"-h", "--states=all", "-O", kSqueueFormat, "--me"}));
  std::vector<SqueueRow> rows;
  for (auto& row : ParseSqueue(out)) {
    if (row.name.rfind(prefix, 0) == 0) rows.push_back(std::move(row));
  }
  return rows;
}

Status SlurmClient::Cancel(int64_t job_id, const std::string& signal, bool full) const {
  std::vector<std::string> args;
  if (!signal.empty()) args.push_back("--signal=" + signal);
  if (full) args.push_back("--full");
  args.push_back(std::to_string(job_id));
  TY_ASSIGN_OR_RETURN(ToolOutput r, Run("scancel", args));
  if (r.exit_code == 0) {
    // scancel says "Job/step already completing or completed" on stderr with exit 0 at times.
    return Status::Ok();
  }
  if (IsUnknownJob(r.err) || r.err.find("already complet") != std::string::npos) {
    return Status::Ok();
  }
  return Unavailable("scancel: " +
                     SlurmErrorLine(r.err, "exit code " + std::to_string(r.exit_code)));
}

Status SlurmClient::CancelPending(int64_t job_id) const {
  TY_ASSIGN_OR_RETURN(ToolOutput r, Run("scancel", {"--state=PENDING", std::to_string(job_id)}));
  if (r.exit_code == 0 || IsUnknownJob(r.err)) return Status::Ok();
  return Unavailable("scancel: " +
                     SlurmErrorLine(r.err, "exit code " + std::to_string(r.exit_code)));
}

Status SlurmClient::Requeue(int64_t job_id) const {
  TY_ASSIGN_OR_RETURN(std::string out, RunOk("scontrol", {"requeue", std::to_string(job_id)}));
  (void)out;
  return Status::Ok();
}

Result<std::vector<std::map<std::string, std::string>>> SlurmClient::Show(
    const std::string& entity, const std::string& name) const {
  std::vector<std::string> args = {"show", entity, "-o"};
  if (!name.empty()) args.push_back(name);
  TY_ASSIGN_OR_RETURN(std::string out, RunOk("scontrol", args));
  return ParseScontrolRecords(out);
}

Result<std::vector<std::string>> SlurmClient::Hostnames(const std::string& nodelist) const {
  TY_ASSIGN_OR_RETURN(std::string out, RunOk("scontrol", {"show", "hostnames", nodelist}));
  return ParseHostnames(out);
}

}  // namespace ty::launch
