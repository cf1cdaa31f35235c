#include "agent/instance_sampler.h"

#include <dirent.h>
#include <dlfcn.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace ty::agent {
namespace {

std::optional<std::string> Slurp(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The number after `key` at the start of a line of a "key value" file (cpu.stat, memory.stat,
// meminfo).
std::optional<double> KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0 || line.size() <= key.size()) continue;
    char next = line[key.size()];
    if (next != ' ' && next != ':' && next != '\t') continue;
    return std::strtod(line.c_str() + key.size() + 1, nullptr);
  }
  return std::nullopt;
}

std::optional<double> NumberIn(const std::string& path) {
  auto text = Slurp(path);
  if (!text || text->empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (end == text->c_str()) return std::nullopt;
  return v;
}

struct ProcStat {
  pid_t ppid = 0;
  double ticks = 0;  // utime + stime + cutime + cstime
};

std::optional<ProcStat> ReadProcStat(const std::string& path) {
  auto text = Slurp(path);
  if (!text) return std::nullopt;
  // The command name may hold spaces and parentheses: fields follow the last ')'.
  size_t close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 1));
  std::string state;
  long long ppid = 0, skip = 0, utime = 0, stime = 0, cutime = 0, cstime = 0;
  in >> state >> ppid;
  for (int i = 0; i < 9; ++i) in >> skip;  // pgrp .. cmajflt (fields 5-13)
  in >> utime >> stime >> cutime >> cstime;
  if (!in) return std::nullopt;
  return ProcStat{static_cast<pid_t>(ppid), static_cast<double>(utime + stime + cutime + cstime)};
}

// The pids of `root` and its descendants.
std::vector<pid_t> ProcessTree(const std::string& proc_root, pid_t root,
                               std::map<pid_t, ProcStat>* stats) {
  DIR* d = ::opendir(proc_root.c_str());
  if (d == nullptr) return {};
  std::map<pid_t, std::vector<pid_t>> children;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 0) continue;
    auto st = ReadProcStat(proc_root + "/" + e->d_name + "/stat");
    if (!st) continue;
    (*stats)[static_cast<pid_t>(pid)] = *st;
    children[st->ppid].push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  std::vector<pid_t> tree;
  if (stats->count(root) == 0) return tree;
  std::vector<pid_t> todo = {root};
  // A tree of at most 1<<16 processes (pid reuse cannot make a cycle here, but stay bounded).
  while (!todo.empty() && tree.size() < (1u << 16)) {
    pid_t p = todo.back();
    todo.pop_back();
    tree.push_back(p);
    for (pid_t c : children[p]) todo.push_back(c);
  }
  return tree;
}

}  // namespace

// The few NVML entry points used, resolved from the library at run time.
struct InstanceSampler::Nvml {
  using Device = void*;
  struct Utilization {
    unsigned int gpu, memory;
  };
  struct Memory {
    unsigned long long total, free, used;
  };
  void* lib = nullptr;
  int (*shutdown)() = nullptr;
  int (*utilization)(Device, Utilization*) = nullptr;
  int (*memory)(Device, Memory*) = nullptr;
  std::vector<Device> devices;
  ~Nvml() {
    if (shutdown) shutdown();
    if (lib) ::dlclose(lib);
  }
};

InstanceSampler::InstanceSampler(SamplerOptions options) : options_(std::move(options)) {
  void* lib = ::dlopen(options_.nvml_library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    notice_ =
        "trainyard: no GPU metrics: NVML (" + options_.nvml_library +
        ") is not on this machine, so GPUUtilization and GPUMemoryUtilization are not published";
    return;
  }
  auto nvml = std::make_unique<Nvml>();
  nvml->lib = lib;
  auto init = reinterpret_cast<int (*)()>(::dlsym(lib, "nvmlInit_v2"));
  auto count = reinterpret_cast<int (*)(unsigned int*)>(::dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<int (*)(unsigned int, Nvml::Device*)>(
      ::dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  nvml->utilization = reinterpret_cast<int (*)(Nvml::Device, Nvml::Utilization*)>(
      ::dlsym(lib, "nvmlDeviceGetUtilizationRates"));
  nvml->memory = reinterpret_cast<int (*)(Nvml::Device, Nvml::Memory*)>(
      ::dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  if (!init || !count || !handle || !nvml->utilization || !nvml->memory || init() != 0) {
    notice_ =
        "trainyard: no GPU metrics: NVML (" + options_.nvml_library + ") could not be initialised";
    return;
  }
  nvml->shutdown = reinterpret_cast<int (*)()>(::dlsym(lib, "nvmlShutdown"));
  unsigned int n = 0;
  if (count(&n) == 0) {
    for (unsigned int i = 0; i < n && static_cast<int>(i) < options_.gpus; ++i) {
      Nvml::Device dev = nullptr;
      if (handle(i, &dev) == 0) nvml->devices.push_back(dev);
    }
  }
  nvml_ = std::move(nvml);
}

InstanceSampler::~InstanceSampler() = default;

bool InstanceSampler::has_gpu_metrics() const { return nvml_ && !nvml_->devices.empty(); }

std::optional<double> InstanceSampler::CpuSeconds() {
  for (const auto& dir : options_.cgroup_dirs) {
    if (auto text = Slurp(dir + "/cpu.stat")) {
      if (auto usec = KeyedValue(*text, "usage_usec")) return *usec / 1e6;
    }
    if (auto ns = NumberIn(dir + "/cpuacct.usage")) return *ns / 1e9;
  }
  if (options_.root_pid <= 0) return std::nullopt;
  std::map<pid_t, ProcStat> stats;
  auto tree = ProcessTree(options_.proc_root, options_.root_pid, &stats);
  if (tree.empty()) return std::nullopt;
  double ticks = 0;
  for (pid_t p : tree) ticks += stats[p].ticks;
  static const long kHz = std::max(1L, ::sysconf(_SC_CLK_TCK));
  return ticks / static_cast<double>(kHz);
}

std::optional<double> InstanceSampler::MemoryPercent() {
  double limit = static_cast<double>(options_.memory_limit_bytes);
  if (limit <= 0) {
    auto meminfo = Slurp(options_.proc_root + "/meminfo");
    auto kib = meminfo ? KeyedValue(*meminfo, "MemTotal") : std::nullopt;
    if (!kib || *kib <= 0) return std::nullopt;
    limit = *kib * 1024;
  }
  std::optional<double> used;
  for (const auto& dir : options_.cgroup_dirs) {
    auto current = NumberIn(dir + "/memory.current");
    const char* inactive = "inactive_file";
    if (!current) {
      current = NumberIn(dir + "/memory.usage_in_bytes");
      inactive = "total_inactive_file";
    }
    if (!current) continue;
    double cache = 0;
    if (auto stat = Slurp(dir + "/memory.stat")) cache = KeyedValue(*stat, inactive).value_or(0);
    used = std::max(0.0, *current - cache);
    break;
  }
  if (!used && options_.root_pid > 0) {
    std::map<pid_t, ProcStat> stats;
    auto tree = ProcessTree(options_.proc_root, options_.root_pid, &stats);
    if (tree.empty()) return std::nullopt;
    static const long kPage = std::max(1L, ::sysconf(_SC_PAGESIZE));
    double pages = 0;
    for (pid_t p : tree) {
      auto statm = Slurp(options_.proc_root + "/" + std::to_string(p) + "/statm");
      if (!statm) continue;
      std::istringstream in(*statm);
      double size = 0, resident = 0;
      if (in >> size >> resident) pages += resident;
    }
    used = pages * static_cast<double>(kPage);
  }
  if (!used) return std::nullopt;
  return std::min(100.0, *used / limit * 100.0);
}

std::optional<double> InstanceSampler::DiskPercent() {
  if (options_.volume_path.empty()) return std::nullopt;
  struct statvfs fs {};
  if (::statvfs(options_.volume_path.c_str(), &fs) != 0) return std::nullopt;
  const double used =
      static_cast<double>(fs.f_blocks - fs.f_bfree) * static_cast<double>(fs.f_frsize);
  const double avail = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  if (used + avail <= 0) return std::nullopt;
  return used / (used + avail) * 100.0;
}

model::InstanceSample InstanceSampler::Sample(int64_t timestamp_ms,
                                              std::chrono::steady_clock::time_point now) {
  model::InstanceSample s;
  s.timestamp_ms = timestamp_ms;
  auto cpu = CpuSeconds();
  if (cpu && last_cpu_s_) {
    const double wall = std::chrono::duration<double>(now - last_at_).count();
    // A process reaped outside the tree takes its time with it: never below 0.
    if (wall > 0) s.cpu = std::max(0.0, (*cpu - *last_cpu_s_) / wall * 100.0);
  }
  last_cpu_s_ = cpu;
  last_at_ = now;
  s.memory = MemoryPercent();
  s.disk = DiskPercent();
  if (has_gpu_metrics()) {
    double gpu = 0, mem = 0;
    bool ok = true;
    for (auto dev : nvml_->devices) {
      Nvml::Utilization u{};
      Nvml::Memory m{};
      if (nvml_->utilization(dev, &u) != 0 || nvml_->memory(dev, &m) != 0) {
        ok = false;
        break;
      }
      gpu += u.gpu;
      if (m.total > 0) mem += static_cast<double>(m.used) / static_cast<double>(m.total) * 100.0;
    }
    if (ok) {
      s.gpu = gpu;
      s.gpu_memory = mem;
    }
  }
  return s;
}

}  // namespace ty::agent
