#include "capacity/capacity_pool.h"

#include <gtest/gtest.h>

#include <string>

namespace ty::capacity {
namespace {

struct DefaultCountCase {
  std::string type;
  int host_cpus;
  double host_memory_gib;
  int want;
};

class DefaultInstanceCountTest : public ::testing::TestWithParam<DefaultCountCase> {};

TEST_P(DefaultInstanceCountTest, FitsByCoresAndMemory) {
  const DefaultCountCase& c = GetParam();
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  const InstanceType* type = catalog.Find(c.type);
  ASSERT_NE(type, nullptr) << c.type;
  EXPECT_EQ(DefaultInstanceCount(*type, c.host_cpus, c.host_memory_gib), c.want)
      << c.type << " on " << c.host_cpus << " cores, " << c.host_memory_gib << " GiB";
}

INSTANTIATE_TEST_SUITE_P(Table, DefaultInstanceCountTest,
                         ::testing::Values(
                             // A small machine: one m5.large (2 vCPUs, 8 GiB) by cores.
                             DefaultCountCase{"ml.m5.large", 2, 23, 1},
                             // Anything too big still gets one instance.
                             DefaultCountCase{"ml.p4d.24xlarge", 2, 23, 1},
                             DefaultCountCase{"ml.m5.xlarge", 2, 23, 1},
                             // Large machines: cores and memory both fit 48 m5.large.
                             DefaultCountCase{"ml.m5.large", 96, 384, 48},
                             // Memory is the limit: 192 GiB / 8 GiB.
                             DefaultCountCase{"ml.m5.large", 96, 192, 24},
                             // Cores are the limit: 96 / 4 vCPUs, memory would fit 48.
                             DefaultCountCase{"ml.m5.xlarge", 96, 768, 24},
                             // Partial instances do not count: 23.5 GiB holds two 8 GiB instances.
                             DefaultCountCase{"ml.m5.large", 64, 23.5, 2},
                             DefaultCountCase{"ml.c4.xlarge", 16, 15, 2}));

TEST(CapacityPoolTest, ConfiguredCountsWin) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.m5.large"] = 4;
  config.counts["ml.p3.2xlarge"] = 0;
  CapacityPool pool(config, &catalog, 2, 23);
  EXPECT_EQ(pool.Total("ml.m5.large"), 4);
  EXPECT_EQ(pool.Total("ml.p3.2xlarge"), 0);
  // Not listed, no "*": derived from the host.
  EXPECT_EQ(pool.Total("ml.m5.xlarge"), 1);
}

TEST(CapacityPoolTest, DefaultCountForUnlistedTypes) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.m5.large"] = 4;
  config.default_count = 16;
  CapacityPool pool(config, &catalog, 2, 23);
  EXPECT_EQ(pool.Total("ml.m5.large"), 4);
  EXPECT_EQ(pool.Total("ml.g5.48xlarge"), 16);
  EXPECT_EQ(pool.Total("ml.not.in-catalog"), 16);
}

TEST(CapacityPoolTest, DerivedFromTheHost) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityPool pool({}, &catalog, 96, 384);
  EXPECT_EQ(pool.Total("ml.m5.large"), 48);
  EXPECT_EQ(pool.Total("ml.m5.24xlarge"), 1);
  EXPECT_EQ(pool.Total("ml.c5.9xlarge"), 2);
}

TEST(CapacityPoolTest, UnknownTypeGetsOneUnlessListed) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.custom.big"] = 3;
  CapacityPool pool(config, &catalog, 96, 384);
  EXPECT_EQ(pool.Total("ml.custom.small"), 1);
  EXPECT_EQ(pool.Total("ml.custom.big"), 3);
}

TEST(CapacityPoolTest, AcquireUpToTheTotal) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.m5.large"] = 3;
  CapacityPool pool(config, &catalog, 2, 23);

  EXPECT_EQ(pool.InUse("ml.m5.large"), 0);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 2));
  EXPECT_EQ(pool.InUse("ml.m5.large"), 2);
  // All or nothing: 2 more do not fit, and nothing is taken.
  EXPECT_FALSE(pool.TryAcquire("ml.m5.large", 2));
  EXPECT_EQ(pool.InUse("ml.m5.large"), 2);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 1));
  EXPECT_FALSE(pool.TryAcquire("ml.m5.large", 1));
  EXPECT_EQ(pool.InUse("ml.m5.large"), 3);

  pool.Release("ml.m5.large", 2);
  EXPECT_EQ(pool.InUse("ml.m5.large"), 1);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 2));
  EXPECT_EQ(pool.InUse("ml.m5.large"), 3);
}

TEST(CapacityPoolTest, TypesAreCountedSeparately) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.default_count = 1;
  CapacityPool pool(config, &catalog, 2, 23);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 1));
  EXPECT_TRUE(pool.TryAcquire("ml.c5.xlarge", 1));
  EXPECT_FALSE(pool.TryAcquire("ml.m5.large", 1));
  EXPECT_EQ(pool.InUse("ml.c5.xlarge"), 1);
}

TEST(CapacityPoolTest, ZeroCountRefusesEverything) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.p4d.24xlarge"] = 0;
  CapacityPool pool(config, &catalog, 96, 1152);
  EXPECT_FALSE(pool.TryAcquire("ml.p4d.24xlarge", 1));
  EXPECT_EQ(pool.InUse("ml.p4d.24xlarge"), 0);
}

TEST(CapacityPoolTest, ForceAcquireGoesPastTheTotal) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.m5.large"] = 1;
  CapacityPool pool(config, &catalog, 2, 23);
  pool.ForceAcquire("ml.m5.large", 3);
  EXPECT_EQ(pool.InUse("ml.m5.large"), 3);
  EXPECT_EQ(pool.Total("ml.m5.large"), 1);
  EXPECT_FALSE(pool.TryAcquire("ml.m5.large", 1));
  // Room again only once usage is back under the total.
  pool.Release("ml.m5.large", 2);
  EXPECT_FALSE(pool.TryAcquire("ml.m5.large", 1));
  pool.Release("ml.m5.large", 1);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 1));
}

TEST(CapacityPoolTest, ReleaseNeverGoesNegative) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  CapacityConfig config;
  config.counts["ml.m5.large"] = 2;
  CapacityPool pool(config, &catalog, 2, 23);
  pool.Release("ml.m5.large", 1);
  EXPECT_EQ(pool.InUse("ml.m5.large"), 0);
  ASSERT_TRUE(pool.TryAcquire("ml.m5.large", 1));
  pool.Release("ml.m5.large", 5);
  EXPECT_EQ(pool.InUse("ml.m5.large"), 0);
  EXPECT_TRUE(pool.TryAcquire("ml.m5.large", 2));
}

}  // namespace
}  // namespace ty::capacity
