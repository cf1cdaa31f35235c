#include "agent/volume_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <utility>

#include "common/fs.h"
#include "storage/instance_volume.h"

namespace ty::agent {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr auto kMountedInterval = std::chrono::milliseconds(200);
// A watched tree is walked each time: less often.
constexpr auto kWatchedInterval = std::chrono::seconds(1);
constexpr char kReserved[] = ".trainyard/input-channels.reserved";

std::string GiB(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / kGiB);
  return buf;
}

}  // namespace

VolumeGuard::VolumeGuard(std::string tree, int size_gib, const std::string& mode)
    : tree_(std::move(tree)),
      size_gib_(size_gib),
      mode_(size_gib <= 0 || mode == "off" ? Mode::kOff
            : mode == "watch"              ? Mode::kWatch
                                           : Mode::kMounted) {}

std::string VolumeGuard::Prepare() {
  const std::string prefix =
      "trainyard: storage volume: VolumeSizeInGB " + std::to_string(size_gib_);
  if (mode_ == Mode::kOff) return "";
  if (mode_ == Mode::kWatch) return prefix + ", usage of the instance tree watched";
  auto start = std::chrono::steady_clock::now();
  Status s = storage::MountInstanceVolume(tree_, size_gib_);
  if (!s.ok()) {
    mode_ = Mode::kWatch;
    return prefix + ", usage of the instance tree watched (no volume of its own: " + s.message() +
           ")";
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char took[32];
  std::snprintf(took, sizeof(took), "%.2f", seconds);
  return prefix + ", its own ext4 file system (made and mounted in " + took + " s)";
}

Status VolumeGuard::CountChannels(const std::vector<std::string>& sources) {
  if (mode_ == Mode::kOff || sources.empty()) return Status::Ok();
  uint64_t bytes = 0;
  // Apparent sizes: a download writes every byte, holes of a sparse source included.
  for (const std::string& src : sources) bytes += storage::TreeBytes(src, /*apparent=*/true);
  if (bytes == 0) return Status::Ok();
  auto too_big = [&] {
    full_ = true;
    return FailedPrecondition("the input channels in File mode take " + GiB(bytes));
  };
  if (mode_ == Mode::kWatch) {
    channel_bytes_ += bytes;
    return Check(/*now=*/true) ? too_big() : Status::Ok();
  }
  std::string path = JoinPath(tree_, kReserved);
  TY_RETURN_IF_ERROR(MakeDirs(JoinPath(tree_, ".trainyard")));
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
  if (fd < 0) return IoError("cannot create " + path + ": " + std::strerror(errno));
  int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (rc == 0) {
    // Immutable: the training process, root only in its own user namespace, cannot delete the
    // reservation to win the space back. Best effort (not every file system has the flag).
    int flags = 0;
    if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
      flags |= FS_IMMUTABLE_FL;
      (void)::ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
  }
  ::close(fd);
  if (rc == ENOSPC) {
    (void)::unlink(path.c_str());
    return too_big();
  }
  if (rc != 0) return IoError("cannot reserve " + path + ": " + std::strerror(rc));
  return Status::Ok();
}

bool VolumeGuard::Check(bool now) {
  if (mode_ == Mode::kOff || full_) return full_;
  auto t = std::chrono::steady_clock::now();
  if (!now && t < next_check_) return false;
  if (mode_ == Mode::kMounted) {
    next_check_ = t + kMountedInterval;
    full_ = storage::VolumeFull(tree_);
    return full_;
  }
  full_ = storage::TreeBytes(tree_) + channel_bytes_ > static_cast<uint64_t>(size_gib_) * kGiB;
  // A tree of many files takes a while to walk: keep the walks to a few percent of the time.
  auto walked = std::chrono::steady_clock::now() - t;
  next_check_ = t + std::max<std::chrono::steady_clock::duration>(kWatchedInterval, 20 * walked);
  return full_;
}

std::string VolumeGuard::Reason(const std::string& what) const {
  return storage::VolumeFullReason(size_gib_, what);
}

}  // namespace ty::agent
