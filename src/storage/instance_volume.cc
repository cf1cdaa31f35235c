#include "storage/instance_volume.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <utility>

#include "common/fs.h"
#include "common/subprocess.h"

namespace ty::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kToolPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr uint64_t kGiB = uint64_t{1} << 30;

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string Strip(std::string tree) {
  while (tree.size() > 1 && tree.back() == '/') tree.pop_back();
  return tree;
}

bool IsUnder(const std::string& path, const std::string& dir) {
  std::string d = Strip(dir);
  return path == d || path.rfind(d + "/", 0) == 0;
}

bool UnderAny(const std::string& path, const std::set<std::string>& dirs) {
  return std::any_of(dirs.begin(), dirs.end(),
                     [&](const std::string& d) { return IsUnder(path, d); });
}

bool OnPath(const std::string& tool) {
  std::stringstream ss(kToolPath);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (::access((dir + "/" + tool).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Runs a tool to completion; its output goes to `log`, which a failure quotes.
Status RunTool(const std::vector<std::string>& argv, const std::string& log) {
  SpawnOptions o;
  o.argv = argv;
  o.env = {{"PATH", kToolPath}, {"LC_ALL", "C"}};
  o.capture_output = false;
  o.stdout_file = log;
  auto p = Subprocess::Spawn(o);
  if (!p.ok()) return FailedPrecondition(p.status().message());
  Result<int> code = (*p)->Wait();
  if (!code.ok()) return code.status();
  if (*code == 0) return Status::Ok();
  Result<std::string> out = ReadFile(log);
  return FailedPrecondition(argv[0] + " exited with " + std::to_string(*code) +
                            (out.ok() && !out->empty() ? ": " + Trimmed(*out) : ""));
}

// A mount point has another device than its parent (bind mounts of the same file system aside,
// which nothing here makes).
bool IsMountPoint(const std::string& dir) {
  struct stat self, parent;
  if (::lstat(dir.c_str(), &self) != 0 || !S_ISDIR(self.st_mode)) return false;
  if (::stat((dir + "/..").c_str(), &parent) != 0) return false;
  return self.st_dev != parent.st_dev;
}

// /proc/self/mountinfo escapes space, tab, newline and backslash in paths as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto digit = [&](size_t k) { return std::isdigit(static_cast<unsigned char>(s[k])) != 0; };
    if (s[i] == '\\' && i + 3 < s.size() && digit(i + 1) && digit(i + 2) && digit(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> MountPoints() {
  std::vector<std::string> out;
  Result<std::string> info = ReadFile("/proc/self/mountinfo");
  if (!info.ok()) return out;
  std::istringstream in(*info);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (fields >> id >> parent >> dev >> root >> point) out.push_back(Unescape(point));
  }
  return out;
}

}  // namespace

std::string VolumeImagePath(const std::string& tree) { return Strip(tree) + ".volume"; }

Status MountInstanceVolume(const std::string& tree_in, int size_gib) {
  const std::string tree = Strip(tree_in);
  if (size_gib < 1) return InvalidArgument("volume size " + std::to_string(size_gib) + " GiB");
  if (::geteuid() != 0) return FailedPrecondition("mounting a volume needs root");
  if (!PathExists("/dev/loop-control")) {
    return FailedPrecondition("no loop devices on this machine (/dev/loop-control)");
  }
  if (!OnPath("mkfs.ext4") || !OnPath("mount")) {
    return FailedPrecondition("mkfs.ext4 or mount is not installed");
  }
  const std::string image = VolumeImagePath(tree);
  const std::string log = image + ".log";
  auto fail = [&](Status s) {
    (void)::unlink(image.c_str());
    (void)::unlink(log.c_str());
    return s;
  };
  {
    // Sparse: the host gives the volume only the blocks the job really writes.
    int fd = ::open(image.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return fail(IoError("cannot create " + image + ": " + std::strerror(errno)));
    int rc = ::ftruncate(fd, static_cast<off_t>(static_cast<uint64_t>(size_gib) * kGiB));
    int e = errno;
    ::close(fd);
    if (rc != 0) return fail(IoError("cannot size " + image + ": " + std::strerror(e)));
  }
  // assume_storage_prezeroed: a sparse file reads as zeros, so mke2fs neither writes the inode
  // tables now nor has the kernel zero them later (which would fill the image's holes).
  Status s = RunTool({"mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", "-E",
                      "assume_storage_prezeroed=1,root_owner=0:0", image},
                     log);
  if (s.ok()) {
    s = RunTool({"mount", "-t", "ext4", "-o", "loop,nosuid,nodev,noatime", image, tree}, log);
  }
  if (!s.ok()) return fail(s);
  (void)::unlink(log.c_str());
  (void)::rmdir((tree + "/lost+found").c_str());
  return Status::Ok();
}

void ReleaseInstanceVolume(const std::string& tree_in) {
  const std::string tree = Strip(tree_in);
  // MNT_DETACH: a straggler still inside must not keep the tree mounted; its loop device
  // (autoclear) goes when the last user does.
  if (IsMountPoint(tree)) (void)::umount2(tree.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
  (void)::unlink(VolumeImagePath(tree).c_str());
}

void ReleaseAttemptVolumes(const std::string& attempt_dir) {
  std::error_code ec;
  std::vector<std::string> trees;
  for (fs::directory_iterator it(attempt_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string p = it->path().string();
    if (p.size() > 7 && p.compare(p.size() - 7, 7, ".volume") == 0) {
      trees.push_back(p.substr(0, p.size() - 7));
    } else if (it->is_directory(ec) && IsMountPoint(p)) {
      trees.push_back(p);
    }
  }
  for (const std::string& t : trees) ReleaseInstanceVolume(t);
}

std::vector<std::string> SweepInstanceVolumes(const std::string& jobs_root_in,
                                              const std::set<std::string>& keep) {
  const std::string jobs_root = Strip(jobs_root_in);
  std::set<std::string> released;
  // Deepest first, should a tree ever hold another mount.
  std::vector<std::string> points = MountPoints();
  std::sort(points.rbegin(), points.rend());
  for (const std::string& p : points) {
    if (!IsUnder(p, jobs_root) || p == jobs_root || UnderAny(p, keep)) continue;
    if (::umount2(p.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) == 0) released.insert(p);
  }
  // Images: <jobs>/<account>/<job>/attempt-<k>/<host>.volume.
  std::error_code ec;
  for (fs::recursive_directory_iterator it(jobs_root, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it.depth() >= 3) it.disable_recursion_pending();
    std::string p = it->path().string();
    if (it.depth() != 3 || p.size() <= 7 || p.compare(p.size() - 7, 7, ".volume") != 0) continue;
    if (UnderAny(p, keep) || !it->is_regular_file(ec)) continue;
    if (::unlink(p.c_str()) == 0) released.insert(p);
  }
  // A loop device still bound to such an image (its file system gone, the device left behind by
  // a crash in between): detach it.
  for (fs::directory_iterator it("/sys/block", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.rfind("loop", 0) != 0) continue;
    Result<std::string> backing = ReadFile(it->path().string() + "/loop/backing_file");
    if (!backing.ok()) continue;
    std::string file = Trimmed(*backing);
    const std::string deleted = " (deleted)";
    if (file.size() > deleted.size() &&
        file.compare(file.size() - deleted.size(), deleted.size(), deleted) == 0) {
      file.resize(file.size() - deleted.size());
    }
    if (!IsUnder(file, jobs_root) || UnderAny(file, keep)) continue;
    int fd = ::open(("/dev/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    // Fails with EBUSY while mounted: a lazily unmounted file system still in use keeps it.
    (void)::ioctl(fd, LOOP_CLR_FD, 0);
    ::close(fd);
  }
  return {released.begin(), released.end()};
}

bool VolumeFull(const std::string& dir, uint64_t slack_bytes) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return false;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize < slack_bytes;
}

uint64_t TreeBytes(const std::string& dir, bool apparent) {
  struct stat top;
  if (::lstat(dir.c_str(), &top) != 0) return 0;
  auto size = [apparent](const struct stat& st) {
    if (apparent) return S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : uint64_t{0};
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  if (!S_ISDIR(top.st_mode)) return size(top);
  uint64_t bytes = 0;
  std::set<std::pair<dev_t, ino_t>> linked;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (st.st_dev != top.st_dev) {
      // Another file system (a bind mount): not part of this tree's usage.
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !linked.insert({st.st_dev, st.st_ino}).second) {
      continue;
    }
    bytes += size(st);
  }
  return bytes;
}

std::string VolumeFullReason(int size_gib, const std::string& what) {
  return "ClientError: the instance's storage volume (VolumeSizeInGB " + std::to_string(size_gib) +
         ") is full: " + what +
         ". Use a larger VolumeSizeInGB, or write less to /opt/ml (input channels in File mode "
         "count toward it).";
}

}  // namespace ty::storage
