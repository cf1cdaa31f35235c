#include "agent/volume_guard.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::agent {
namespace {

constexpr off_t kGiB = off_t{1} << 30;

void Sparse(const std::string& path, off_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::ftruncate(fd, size), 0);
  ::close(fd);
}

TEST(VolumeGuardTest, OffDoesNothing) {
  ty::testing::TempDir tmp("ty_volume_guard_");
  for (VolumeGuard g : {VolumeGuard(tmp.path(), 1, "off"), VolumeGuard(tmp.path(), 0, "auto")}) {
    EXPECT_EQ(g.Prepare(), "");
    EXPECT_FALSE(g.Check(/*now=*/true));
    EXPECT_FALSE(g.watching());
  }
}

TEST(VolumeGuardTest, WatchedTreeIsFullPastItsSize) {
  ty::testing::TempDir tmp("ty_volume_guard_");
  ASSERT_TRUE(MakeDirs(tmp.Sub("tree/model")).ok());
  VolumeGuard g(tmp.Sub("tree"), 1, "watch");
  EXPECT_EQ(g.Prepare(),
            "trainyard: storage volume: VolumeSizeInGB 1, usage of the instance "
            "tree watched");
  EXPECT_TRUE(g.watching());
  std::ofstream(tmp.Sub("tree/model/small")) << std::string(4096, 'x');
  EXPECT_FALSE(g.Check(/*now=*/true));

  // Bound channels count by size (a download writes every byte), written files by blocks.
  Sparse(tmp.Sub("channel.bin"), kGiB - (1 << 20));
  EXPECT_TRUE(g.CountChannels({tmp.Sub("channel.bin")}).ok());
  EXPECT_FALSE(g.Check(/*now=*/true));
  std::ofstream(tmp.Sub("tree/model/more")) << std::string(2 << 20, 'x');
  EXPECT_TRUE(g.Check(/*now=*/true));
  EXPECT_TRUE(g.Check());  // and stays so
  EXPECT_EQ(g.Reason("the training process exited with code 1"),
            "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: the training "
            "process exited with code 1. Use a larger VolumeSizeInGB, or write less to /opt/ml "
            "(input channels in File mode count toward it).");
}

TEST(VolumeGuardTest, ChannelsLargerThanAWatchedVolumeFailStaging) {
  ty::testing::TempDir tmp("ty_volume_guard_");
  ASSERT_TRUE(MakeDirs(tmp.Sub("tree")).ok());
  ASSERT_TRUE(MakeDirs(tmp.Sub("channel")).ok());
  Sparse(tmp.Sub("channel/a"), kGiB);
  Sparse(tmp.Sub("channel/b"), kGiB);
  VolumeGuard g(tmp.Sub("tree"), 1, "watch");
  (void)g.Prepare();

  Status s = g.CountChannels({tmp.Sub("channel")});

  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "the input channels in File mode take 2.00 GiB");
  EXPECT_TRUE(g.Check());
}

TEST(VolumeGuardTest, AutoFallsBackToWatchingWithTheReason) {
  if (::geteuid() == 0) GTEST_SKIP() << "as root the volume would really be mounted";
  ty::testing::TempDir tmp("ty_volume_guard_");
  VolumeGuard g(tmp.path(), 1, "auto");
  EXPECT_EQ(g.Prepare(),
            "trainyard: storage volume: VolumeSizeInGB 1, usage of the instance "
            "tree watched (no volume of its own: mounting a volume needs root)");
  EXPECT_TRUE(g.watching());
}

}  // namespace
}  // namespace ty::agent
