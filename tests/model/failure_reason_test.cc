#include "model/failure_reason.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ty::model {
namespace {

struct Case {
  const char* label;
  std::string reason;
  std::string want;
};

class HideServerPathsTest : public ::testing::TestWithParam<Case> {};

TEST_P(HideServerPathsTest, Rewrites) {
  const std::vector<std::string> dirs = {"/srv/ty-data", "/mnt/real/ty-data"};
  EXPECT_EQ(HideServerPaths(GetParam().reason, dirs), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HideServerPathsTest,
    ::testing::Values(
        Case{"NoPath", "AlgorithmError: exit 1", "AlgorithmError: exit 1"},
        Case{"InstanceTreeFile",
             "ClientError: cannot write /srv/ty-data/jobs/123/attempt-2/algo-1/model/m.bin: "
             "No space left on device",
             "ClientError: cannot write /opt/ml/model/m.bin: No space left on device"},
        Case{"InstanceTreeRoot", "cannot stage /srv/ty-data/jobs/a/b/attempt-1/algo-3",
             "cannot stage /opt/ml"},
        Case{"CanonicalDirToo",
             "open '/mnt/real/ty-data/jobs/9/attempt-1/algo-1/input/config/x.json' failed",
             "open '/opt/ml/input/config/x.json' failed"},
        Case{"OtherServerFile", "cannot read /srv/ty-data/trainyard.db (locked)",
             "cannot read <server path> (locked)"},
        Case{"JobDirOutsideTree", "cannot remove /srv/ty-data/jobs/9/attempt-1/algo-1.removing",
             "cannot remove <server path>"},
        Case{"DataDirItself", "data dir /srv/ty-data is full", "data dir <server path> is full"},
        Case{"Several",
             "a /srv/ty-data/credentials, b=/srv/ty-data/jobs/1/attempt-1/algo-2/output/failure",
             "a <server path>, b=/opt/ml/output/failure"},
        Case{"SiblingIsNotInside", "/srv/ty-data-old/x and /srv/ty-datax",
             "/srv/ty-data-old/x and /srv/ty-datax"},
        Case{"UserPathsStay", "channel file:///home/me/data/train is empty",
             "channel file:///home/me/data/train is empty"},
        Case{"NotAtPathStart", "x/srv/ty-data/y", "x/srv/ty-data/y"}),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.label; });

}  // namespace
}  // namespace ty::model
