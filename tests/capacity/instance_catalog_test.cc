#include "capacity/instance_catalog.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ty::capacity {
namespace {

TEST(InstanceCatalogTest, BuiltinKnowsTheRequiredFamilies) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  for (const char* name :
       {"ml.m5.large", "ml.m5.24xlarge", "ml.c5.xlarge", "ml.c5.18xlarge", "ml.g4dn.xlarge",
        "ml.g4dn.16xlarge", "ml.g5.xlarge", "ml.g5.48xlarge", "ml.p3.2xlarge", "ml.p3.16xlarge",
        "ml.p3dn.24xlarge", "ml.p4d.24xlarge"}) {
    const InstanceType* t = catalog.Find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->name, name);
    EXPECT_GT(t->vcpus, 0) << name;
    EXPECT_GT(t->memory_gib, 0) << name;
    EXPECT_GT(t->on_demand_price, 0) << name;
  }
}

TEST(InstanceCatalogTest, BuiltinEntries) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  const InstanceType* m5 = catalog.Find("ml.m5.large");
  ASSERT_NE(m5, nullptr);
  EXPECT_EQ(m5->vcpus, 2);
  EXPECT_EQ(m5->memory_gib, 8);
  EXPECT_EQ(m5->gpus, 0);
  EXPECT_DOUBLE_EQ(m5->on_demand_price, 0.115);

  const InstanceType* p3 = catalog.Find("ml.p3.16xlarge");
  ASSERT_NE(p3, nullptr);
  EXPECT_EQ(p3->vcpus, 64);
  EXPECT_EQ(p3->gpus, 8);

  const InstanceType* g5 = catalog.Find("ml.g5.12xlarge");
  ASSERT_NE(g5, nullptr);
  EXPECT_EQ(g5->gpus, 4);
}

TEST(InstanceCatalogTest, UnknownIsNull) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  EXPECT_EQ(catalog.Find("ml.m5.huge"), nullptr);
  EXPECT_EQ(catalog.Find(""), nullptr);
  EXPECT_EQ(InstanceCatalog().Find("ml.m5.large"), nullptr);
}

TEST(InstanceCatalogTest, UpsertReplacesAndAdds) {
  InstanceCatalog catalog = InstanceCatalog::Builtin();
  size_t before = catalog.All().size();

  catalog.Upsert({"ml.m5.large", 2, 8, 0, 0.5});
  ASSERT_NE(catalog.Find("ml.m5.large"), nullptr);
  EXPECT_DOUBLE_EQ(catalog.Find("ml.m5.large")->on_demand_price, 0.5);
  EXPECT_EQ(catalog.All().size(), before);

  catalog.Upsert({"ml.local.gpu", 16, 64, 2, 1.0});
  const InstanceType* added = catalog.Find("ml.local.gpu");
  ASSERT_NE(added, nullptr);
  EXPECT_EQ(added->gpus, 2);
  EXPECT_EQ(catalog.All().size(), before + 1);
}

TEST(InstanceCatalogTest, ProcessLimitDefaultsByVcpusUnlessSet) {
  struct Case {
    InstanceType type;
    int want;
  };
  const Case cases[] = {
      {{"ml.m5.large", 2, 8, 0, 0.115}, 4096},
      {{"ml.m5.24xlarge", 96, 384, 0, 5.53}, 96 * 256},
      {{"ml.local.small", 2, 1, 0, 0, 64}, 64},
  };
  for (const Case& c : cases) EXPECT_EQ(MaxProcesses(c.type), c.want) << c.type.name;
  const InstanceType* builtin = InstanceCatalog::Builtin().Find("ml.c5.18xlarge");
  ASSERT_NE(builtin, nullptr);
  EXPECT_EQ(MaxProcesses(*builtin), DefaultMaxProcesses(72));
}

TEST(InstanceCatalogTest, AllIsSortedByName) {
  std::vector<InstanceType> all = InstanceCatalog::Builtin().All();
  ASSERT_FALSE(all.empty());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].name, all[i].name);
}

}  // namespace
}  // namespace ty::capacity
