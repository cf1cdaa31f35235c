#include "agent/system_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/fs.h"

namespace ty::agent {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Cumulative byte counters per device (read, write) or interface (receive, transmit).
using Counters = std::map<std::string, std::pair<uint64_t, uint64_t>>;

bool WholeDisk(const std::string& proc_root, const std::string& dev) {
  if (dev.rfind("loop", 0) == 0 || dev.rfind("ram", 0) == 0 || dev.rfind("zram", 0) == 0) {
    return false;
  }
  // Partitions have no /sys/block/<name>; /sys sits beside /proc.
  std::string sys = proc_root.substr(0, proc_root.rfind('/')) + "/sys/block/" + dev;
  return ::access(sys.c_str(), F_OK) == 0;
}

Counters DiskCounters(const std::string& proc_root) {
  Counters out;
  std::istringstream in(Slurp(proc_root + "/diskstats"));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    uint64_t major = 0, minor = 0, reads = 0, rmerged = 0, rsectors = 0, rms = 0, writes = 0,
             wmerged = 0, wsectors = 0;
    std::string dev;
    if (!(f >> major >> minor >> dev >> reads >> rmerged >> rsectors >> rms >> writes >> wmerged >>
          wsectors)) {
      continue;
    }
    if (!WholeDisk(proc_root, dev)) continue;
    out[dev] = {rsectors * 512, wsectors * 512};  // diskstats sectors are 512 bytes
  }
  return out;
}

Counters NetworkCounters(const std::string& proc_root) {
  Counters out;
  std::istringstream in(Slurp(proc_root + "/net/dev"));
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;  // the two header lines
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name == "lo" || name.empty()) continue;
    std::istringstream f(line.substr(colon + 1));
    uint64_t v[9] = {};
    bool ok = true;
    for (auto& x : v) ok = ok && static_cast<bool>(f >> x);
    if (ok) out[name] = {v[0], v[8]};  // receive bytes, transmit bytes
  }
  return out;
}

}  // namespace

std::map<std::string, CpuTimes> ParseProcStat(const std::string& text) {
  std::map<std::string, CpuTimes> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0) continue;
    std::istringstream f(line);
    std::string name;
    uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    f >> name >> user >> nice >> system >> idle >> iowait;
    if (!f) continue;
    f >> irq >> softirq >> steal;  // absent on old kernels
    CpuTimes t;
    t.busy = user + nice + system + irq + softirq + steal;
    t.iowait = iowait;
    t.total = t.busy + idle + iowait;
    out[name == "cpu" ? "total" : name] = t;
  }
  return out;
}

std::string SystemEventLine(const std::string& type, const std::string& name,
                            const std::string& dimension, double value, const std::string& node,
                            double timestamp_s) {
  nlohmann::json j = {{"Type", type},   {"Name", name},   {"Dimension", dimension},
                      {"Value", value}, {"NodeId", node}, {"Timestamp", timestamp_s}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string SystemMetricsFile(int64_t start_s, const std::string& node) {
  std::time_t t = static_cast<std::time_t>(start_s);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char hour[16];
  std::strftime(hour, sizeof(hour), "%Y%m%d%H", &tm);
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%010lld", static_cast<long long>(start_s));
  return std::string("system/incremental/") + hour + "/" + stamp + "." + node + ".json";
}

struct SystemMetricsWriter::Impl {
  SystemMetricsOptions o;
  const Clock* clock;
  std::unique_ptr<InstanceSampler> sampler;
  std::map<std::string, CpuTimes> last_cpu;
  Counters last_disk, last_net;
  std::chrono::steady_clock::time_point last_at;
  bool have_baseline = false;

  std::mutex mu;  // the current file (the thread and Stop())
  int64_t file_start_s = -1;
  std::string staging_path;
  std::atomic<int64_t> lines{0};

  std::mutex wake_mu;
  std::condition_variable wake;
  bool stopping = false;
  std::thread thread;

  explicit Impl(SystemMetricsOptions options)
      : o(std::move(options)), clock(o.clock ? o.clock : SystemClock::Default()) {
    sampler = std::make_unique<InstanceSampler>(o.sampler);
  }

  // Moves the current file into dir. REQUIRES: mu held.
  void PublishLocked() {
    if (file_start_s < 0) return;
    std::string dest = JoinPath(o.dir, SystemMetricsFile(file_start_s, o.node_id));
    std::string parent = dest.substr(0, dest.rfind('/'));
    if (MakeDirs(parent).ok()) (void)::rename(staging_path.c_str(), dest.c_str());
    (void)::unlink(staging_path.c_str());
    file_start_s = -1;
  }

  void Append(int64_t now_s, const std::string& text) {
    std::lock_guard<std::mutex> lock(mu);
    const int64_t span = std::max<int64_t>(1, o.rotate.count());
    const int64_t start = now_s - now_s % span;
    if (file_start_s >= 0 && start != file_start_s) PublishLocked();
    if (file_start_s < 0) {
      file_start_s = start;
      staging_path = JoinPath(o.staging_dir, std::to_string(start) + "." + o.node_id + ".json");
    }
    // Appended and closed each time: a crash loses at most this sample.
    int fd = ::open(staging_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(fd, text.data() + off, text.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fd);
  }

  void Sample() {
    const TimePoint now = clock->Now();
    const double ts = std::chrono::duration<double>(now.time_since_epoch()).count();
    const auto mono = std::chrono::steady_clock::now();
    auto cpu = ParseProcStat(Slurp(o.proc_root + "/stat"));
    Counters disk = DiskCounters(o.proc_root);
    Counters net = NetworkCounters(o.proc_root);
    model::InstanceSample s = sampler->Sample(ToEpochMillis(now), mono);
    const double secs = std::chrono::duration<double>(mono - last_at).count();
    std::string text;
    int64_t n = 0;
    auto add = [&](const char* type, const std::string& name, const char* dim, double v) {
      text += SystemEventLine(type, name, dim, v, o.node_id, ts) + "\n";
      ++n;
    };
    if (have_baseline) {
      // Cores first (cpu0, cpu1, ... in numeric order), then the total.
      std::vector<std::pair<int, std::string>> cores;
      for (const auto& [name, t] : cpu) {
        if (name != "total") cores.emplace_back(std::atoi(name.c_str() + 3), name);
      }
      std::sort(cores.begin(), cores.end());
      cores.emplace_back(-1, "total");
      for (const auto& [i, name] : cores) {
        auto prev = last_cpu.find(name);
        if (prev == last_cpu.end()) continue;
        const CpuTimes& t = cpu[name];
        if (t.total <= prev->second.total) continue;
        const double dt = static_cast<double>(t.total - prev->second.total);
        const double busy = t.busy >= prev->second.busy ? t.busy - prev->second.busy : 0;
        const double wait = t.iowait >= prev->second.iowait ? t.iowait - prev->second.iowait : 0;
        add("cpu", name, "CPUUtilization", 100.0 * busy / dt);
        add("cpu", name, "I/OWaitPercentage", 100.0 * wait / dt);
      }
      if (secs > 0) {
        auto rates = [&](const char* type, const Counters& cur, const Counters& prev,
                         const char* d1, const char* d2) {
          for (const auto& [name, v] : cur) {
            auto p = prev.find(name);
            if (p == prev.end() || v.first < p->second.first || v.second < p->second.second) {
              continue;
            }
            add(type, name, d1, (v.first - p->second.first) / secs);
            add(type, name, d2, (v.second - p->second.second) / secs);
          }
        };
        rates("i/o", disk, last_disk, "ReadBytesPerSecond", "WriteBytesPerSecond");
        rates("network", net, last_net, "ReceiveBytesPerSecond", "TransmitBytesPerSecond");
      }
    }
    if (s.memory) add("memory", "total", "MemoryUsedPercent", *s.memory);
    const double gpus = std::max(1, o.sampler.gpus);
    if (s.gpu) add("gpu", "total", "GPUUtilization", *s.gpu / gpus);
    if (s.gpu_memory) add("gpu", "total", "GPUMemoryUtilization", *s.gpu_memory / gpus);
    last_cpu = std::move(cpu);
    last_disk = std::move(disk);
    last_net = std::move(net);
    last_at = mono;
    have_baseline = true;
    if (!text.empty()) {
      Append(ToEpochSeconds(now), text);
      lines += n;
    }
  }

  void Run() {
    std::unique_lock<std::mutex> lock(wake_mu);
    auto next = std::chrono::steady_clock::now();
    while (!stopping) {
      next += o.interval;
      const auto now = std::chrono::steady_clock::now();
      if (next < now) next = now + o.interval;  // fell behind (a stalled disk): skip, don't burst
      wake.wait_until(lock, next, [&] { return stopping; });
      if (stopping) break;
      lock.unlock();
      Sample();
      lock.lock();
    }
  }
};

SystemMetricsWriter::SystemMetricsWriter(SystemMetricsOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

SystemMetricsWriter::~SystemMetricsWriter() { Stop(); }

Status SystemMetricsWriter::Start() {
  TY_RETURN_IF_ERROR(MakeDirs(JoinPath(impl_->o.dir, "system")));
  TY_RETURN_IF_ERROR(MakeDirs(impl_->o.staging_dir));
  impl_->Sample();  // the baseline of the rates (and the first memory/GPU values)
  impl_->thread = std::thread([this] { impl_->Run(); });
  return Status::Ok();
}

void SystemMetricsWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->wake_mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  Publish();
}

void SystemMetricsWriter::SampleOnce() { impl_->Sample(); }

void SystemMetricsWriter::Publish() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->PublishLocked();
}

int64_t SystemMetricsWriter::lines_written() const { return impl_->lines.load(); }

}  // namespace ty::agent
