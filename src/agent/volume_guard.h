// VolumeGuard: holds one instance tree to its job's VolumeSizeInGB for the agent, with the
// instance's own loop-mounted file system where the machine allows it, and by watching the
// tree's usage where it does not (storage/instance_volume.h). Like the cgroup limits it never
// fails a job by itself being unavailable; it fails a job that outgrows its volume, with a
// reason that names the size.
//
// Thread contract: one thread (the agent's main thread) uses a VolumeGuard.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace ty::agent {

class VolumeGuard {
 public:
  // `mode`: "auto" (mount, else watch), "watch" or "off"; size_gib <= 0 also means off.
  VolumeGuard(std::string tree, int size_gib, const std::string& mode);

  // Mounts the volume on the (still empty) tree, or starts watching it. Returns the line for
  // the job's log ("" when off), e.g. "trainyard: storage volume: VolumeSizeInGB 1, its own ext4
  // file system (made and mounted in 0.14 s)".
  std::string Prepare();

  // Counts read-only bound channel sources (file:// channels, which are not copied into the
  // tree) toward the volume, as SageMaker's File mode downloads every channel onto it: a mounted
  // volume gets an immutable reserved file of their size, a watched one adds it to the usage.
  // Errors: FailedPrecondition when they do not fit (its message is Reason()'s `what`), IoError.
  Status CountChannels(const std::vector<std::string>& sources);

  // Samples the volume (unless `now`: mounted, at most every 200 ms; watched, every second or 20
  // times as long as the last walk of the tree took); true once the volume has been seen full
  // (mounted) or over its size (watched), and from then on.
  bool Check(bool now = false);

  // True when the tree is watched rather than mounted: past the size, the caller must stop the
  // training process itself (nothing stops its writes).
  bool watching() const { return mode_ == Mode::kWatch; }
  // The FailureReason for a job whose volume filled up, with `what` (what failed) in it.
  std::string Reason(const std::string& what) const;

 private:
  enum class Mode { kOff, kMounted, kWatch };
  std::string tree_;
  int size_gib_;
  Mode mode_;
  uint64_t channel_bytes_ = 0;  // bound channels counted toward a watched volume
  bool full_ = false;
  std::chrono::steady_clock::time_point next_check_{};
};

}  // namespace ty::agent
