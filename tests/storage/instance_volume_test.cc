#include "storage/instance_volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "common/fs.h"
#include "testing/temp_dir.h"

namespace ty::storage {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

void Put(const std::string& path, size_t bytes) {
  ASSERT_TRUE(MakeDirs(path.substr(0, path.rfind('/'))).ok());
  std::ofstream(path, std::ios::trunc) << std::string(bytes, 'x');
}

TEST(InstanceVolumeTest, ImageSitsBesideTheTree) {
  EXPECT_EQ(VolumeImagePath("/d/jobs/a/j/attempt-1/algo-1"), "/d/jobs/a/j/attempt-1/algo-1.volume");
  EXPECT_EQ(VolumeImagePath("/d/attempt-1/algo-2/"), "/d/attempt-1/algo-2.volume");
}

TEST(InstanceVolumeTest, FullReasonNamesTheSize) {
  EXPECT_EQ(VolumeFullReason(1, "the training process exited with code 1"),
            "ClientError: the instance's storage volume (VolumeSizeInGB 1) is full: the training "
            "process exited with code 1. Use a larger VolumeSizeInGB, or write less to /opt/ml "
            "(input channels in File mode count toward it).");
}

TEST(InstanceVolumeTest, TreeBytesCountsBlocksOnceAndSizesWhenApparent) {
  ty::testing::TempDir tmp("ty_volume_");
  Put(tmp.Sub("t/a/one"), 3 * kMiB);
  ASSERT_EQ(::link(tmp.Sub("t/a/one").c_str(), tmp.Sub("t/two").c_str()), 0);
  {
    // 64 MiB of holes: no blocks, but a download writes every byte.
    int fd = ::open(tmp.Sub("t/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 64 * kMiB), 0);
    ::close(fd);
  }

  uint64_t blocks = TreeBytes(tmp.Sub("t"));
  EXPECT_GE(blocks, 3 * kMiB);  // the linked file once...
  EXPECT_LT(blocks, 6 * kMiB);  // ...not twice, and no blocks for the holes
  EXPECT_EQ(TreeBytes(tmp.Sub("t"), /*apparent=*/true), 3 * kMiB + 64 * kMiB);
  EXPECT_EQ(TreeBytes(tmp.Sub("t/sparse"), /*apparent=*/true), 64 * kMiB);  // a file alone
  EXPECT_EQ(TreeBytes(tmp.Sub("missing")), 0u);
}

TEST(InstanceVolumeTest, VolumeFullComparesFreeSpaceWithTheSlack) {
  ty::testing::TempDir tmp("ty_volume_");
  EXPECT_FALSE(VolumeFull(tmp.path(), 1));
  EXPECT_TRUE(VolumeFull(tmp.path(), ~uint64_t{0}));
  EXPECT_FALSE(VolumeFull(tmp.Sub("missing")));  // unknown is not full
}

TEST(InstanceVolumeTest, SweepRemovesImagesOfTreesNotKept) {
  ty::testing::TempDir tmp("ty_volume_");
  const std::string jobs = tmp.Sub("jobs");
  Put(jobs + "/acct/old/attempt-1/algo-1.volume", 10);
  Put(jobs + "/acct/old/attempt-1/algo-2.volume", 10);
  Put(jobs + "/acct/live/attempt-2/algo-1.volume", 10);
  Put(jobs + "/acct/live/attempt-1/algo-1.volume", 10);
  Put(jobs + "/acct/live/attempt-2/algo-1/model/x.volume", 10);  // a job's own file: too deep

  std::vector<std::string> swept = SweepInstanceVolumes(jobs, {jobs + "/acct/live/attempt-2"});

  EXPECT_EQ(swept, (std::vector<std::string>{jobs + "/acct/live/attempt-1/algo-1.volume",
                                             jobs + "/acct/old/attempt-1/algo-1.volume",
                                             jobs + "/acct/old/attempt-1/algo-2.volume"}));
  EXPECT_TRUE(PathExists(jobs + "/acct/live/attempt-2/algo-1.volume"));
  EXPECT_TRUE(PathExists(jobs + "/acct/live/attempt-2/algo-1/model/x.volume"));
  EXPECT_TRUE(SweepInstanceVolumes(tmp.Sub("nothing"), {}).empty());
}

TEST(InstanceVolumeTest, ReleaseOfATreeNeverMountedRemovesOnlyTheImage) {
  ty::testing::TempDir tmp("ty_volume_");
  Put(tmp.Sub("attempt-1/algo-1/model/m.bin"), 10);
  Put(tmp.Sub("attempt-1/algo-1.volume"), 10);

  ReleaseAttemptVolumes(tmp.Sub("attempt-1"));

  EXPECT_FALSE(PathExists(tmp.Sub("attempt-1/algo-1.volume")));
  EXPECT_TRUE(PathExists(tmp.Sub("attempt-1/algo-1/model/m.bin")));
}

// The real thing, where the machine has loop devices and this test runs as root.
TEST(InstanceVolumeTest, MountedVolumeStopsWritesAtItsSizeAndReleaseLeavesNothing) {
  if (::geteuid() != 0 || !PathExists("/dev/loop-control")) {
    GTEST_SKIP() << "needs root and loop devices";
  }
  ty::testing::TempDir tmp("ty_volume_");
  const std::string tree = tmp.Sub("attempt-1/algo-1");
  ASSERT_TRUE(MakeDirs(tree).ok());

  Status s = MountInstanceVolume(tree, 1);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(PathExists(tree + "/lost+found"));
  EXPECT_FALSE(VolumeFull(tree));
  // The image is sparse: the host holds only what was written.
  struct stat image;
  ASSERT_EQ(::stat(VolumeImagePath(tree).c_str(), &image), 0);
  EXPECT_EQ(image.st_size, 1 << 30);
  EXPECT_LT(static_cast<uint64_t>(image.st_blocks) * 512, 64 * kMiB);

  int fd = ::open((tree + "/fill").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  std::string chunk(kMiB, 'x');
  int err = 0;
  for (int i = 0; i < 1100 && err == 0; ++i) {
    if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) err = errno;
  }
  ::close(fd);
  EXPECT_EQ(err, ENOSPC) << std::strerror(err);
  EXPECT_TRUE(VolumeFull(tree));

  ReleaseAttemptVolumes(tmp.Sub("attempt-1"));
  EXPECT_FALSE(PathExists(VolumeImagePath(tree)));
  EXPECT_FALSE(PathExists(tree + "/fill"));  // the tree is the bare directory again
  EXPECT_FALSE(VolumeFull(tree));
}

}  // namespace
}  // namespace ty::storage
