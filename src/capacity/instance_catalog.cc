#include "capacity/instance_catalog.h"

#include <algorithm>
#include <utility>

namespace ty::capacity {
namespace {

// SageMaker *training* on-demand list prices in us-east-1 (USD per
// instance-hour) as published in 2024-2025. They only price what a job
// would have cost on AWS, so being a little off is harmless; the server
// config (instance_types:) overrides any entry. GPUs count NVIDIA GPUs only:
// Trainium chips are not CUDA devices (SM_NUM_GPUS is 0 on ml.trn1).
constexpr struct {
  const char* name;
  int vcpus;
  double memory_gib;
  int gpus;
  double price;
} kBuiltin[] = {
    {"ml.t3.medium", 2, 4, 0, 0.05},
    {"ml.t3.large", 2, 8, 0, 0.10},
    {"ml.t3.xlarge", 4, 16, 0, 0.20},
    {"ml.t3.2xlarge", 8, 32, 0, 0.399},

    {"ml.m4.xlarge", 4, 16, 0, 0.24},
    {"ml.m4.2xlarge", 8, 32, 0, 0.48},
    {"ml.m4.4xlarge", 16, 64, 0, 0.96},
    {"ml.m4.10xlarge", 40, 160, 0, 2.40},
    {"ml.m4.16xlarge", 64, 256, 0, 3.84},

    {"ml.m5.large", 2, 8, 0, 0.115},
    {"ml.m5.xlarge", 4, 16, 0, 0.23},
    {"ml.m5.2xlarge", 8, 32, 0, 0.461},
    {"ml.m5.4xlarge", 16, 64, 0, 0.922},
    {"ml.m5.12xlarge", 48, 192, 0, 2.765},
    {"ml.m5.24xlarge", 96, 384, 0, 5.53},

    {"ml.m6i.large", 2, 8, 0, 0.115},
    {"ml.m6i.xlarge", 4, 16, 0, 0.23},
    {"ml.m6i.2xlarge", 8, 32, 0, 0.461},
    {"ml.m6i.4xlarge", 16, 64, 0, 0.922},
    {"ml.m6i.8xlarge", 32, 128, 0, 1.843},
    {"ml.m6i.12xlarge", 48, 192, 0, 2.765},
    {"ml.m6i.16xlarge", 64, 256, 0, 3.686},
    {"ml.m6i.24xlarge", 96, 384, 0, 5.53},
    {"ml.m6i.32xlarge", 128, 512, 0, 7.373},

    {"ml.c4.xlarge", 4, 7.5, 0, 0.239},
    {"ml.c4.2xlarge", 8, 15, 0, 0.477},
    {"ml.c4.4xlarge", 16, 30, 0, 0.955},
    {"ml.c4.8xlarge", 36, 60, 0, 1.91},

    {"ml.c5.xlarge", 4, 8, 0, 0.204},
    {"ml.c5.2xlarge", 8, 16, 0, 0.408},
    {"ml.c5.4xlarge", 16, 32, 0, 0.816},
    {"ml.c5.9xlarge", 36, 72, 0, 1.836},
    {"ml.c5.18xlarge", 72, 144, 0, 3.672},

    // Estimated: EC2 price times the 1.2 SageMaker applies to ml.c5.
    {"ml.c5n.xlarge", 4, 10.5, 0, 0.259},
    {"ml.c5n.2xlarge", 8, 21, 0, 0.518},
    {"ml.c5n.4xlarge", 16, 42, 0, 1.037},
    {"ml.c5n.9xlarge", 36, 96, 0, 2.333},
    {"ml.c5n.18xlarge", 72, 192, 0, 4.666},

    {"ml.c6i.xlarge", 4, 8, 0, 0.204},
    {"ml.c6i.2xlarge", 8, 16, 0, 0.408},
    {"ml.c6i.4xlarge", 16, 32, 0, 0.816},
    {"ml.c6i.8xlarge", 32, 64, 0, 1.632},
    {"ml.c6i.12xlarge", 48, 96, 0, 2.448},
    {"ml.c6i.16xlarge", 64, 128, 0, 3.264},
    {"ml.c6i.24xlarge", 96, 192, 0, 4.896},
    {"ml.c6i.32xlarge", 128, 256, 0, 6.528},

    {"ml.p2.xlarge", 4, 61, 1, 1.125},
    {"ml.p2.8xlarge", 32, 488, 8, 9.00},
    {"ml.p2.16xlarge", 64, 732, 16, 18.00},

    {"ml.p3.2xlarge", 8, 61, 1, 3.825},
    {"ml.p3.8xlarge", 32, 244, 4, 14.688},
    {"ml.p3.16xlarge", 64, 488, 8, 28.152},
    {"ml.p3dn.24xlarge", 96, 768, 8, 35.894},
    {"ml.p4d.24xlarge", 96, 1152, 8, 37.688},

    {"ml.g4dn.xlarge", 4, 16, 1, 0.736},
    {"ml.g4dn.2xlarge", 8, 32, 1, 0.94},
    {"ml.g4dn.4xlarge", 16, 64, 1, 1.505},
    {"ml.g4dn.8xlarge", 32, 128, 1, 2.72},
    {"ml.g4dn.12xlarge", 48, 192, 4, 4.89},
    {"ml.g4dn.16xlarge", 64, 256, 1, 5.44},

    {"ml.g5.xlarge", 4, 16, 1, 1.408},
    {"ml.g5.2xlarge", 8, 32, 1, 1.515},
    {"ml.g5.4xlarge", 16, 64, 1, 2.03},
    {"ml.g5.8xlarge", 32, 128, 1, 3.06},
    {"ml.g5.12xlarge", 48, 192, 4, 7.09},
    {"ml.g5.16xlarge", 64, 256, 1, 5.12},
    {"ml.g5.24xlarge", 96, 384, 4, 10.18},
    {"ml.g5.48xlarge", 192, 768, 8, 20.36},

    // Beyond xlarge, estimated: EC2 price times the 1.25 SageMaker applies to
    // the g4dn and g5 sizes above.
    {"ml.g6.xlarge", 4, 16, 1, 1.127},
    {"ml.g6.2xlarge", 8, 32, 1, 1.222},
    {"ml.g6.4xlarge", 16, 64, 1, 1.654},
    {"ml.g6.8xlarge", 32, 128, 1, 2.518},
    {"ml.g6.12xlarge", 48, 192, 4, 5.752},
    {"ml.g6.16xlarge", 64, 256, 1, 4.246},
    {"ml.g6.24xlarge", 96, 384, 4, 8.344},
    {"ml.g6.48xlarge", 192, 768, 8, 16.688},

    // Estimated: EC2 price times the 1.15 SageMaker applies to ml.p4d.
    {"ml.trn1.2xlarge", 8, 32, 0, 1.545},
    {"ml.trn1.32xlarge", 128, 512, 0, 24.725},
};

}  // namespace

int DefaultMaxProcesses(int vcpus) { return std::max(4096, 256 * vcpus); }

int MaxProcesses(const InstanceType& type) {
  return type.max_processes > 0 ? type.max_processes : DefaultMaxProcesses(type.vcpus);
}

InstanceCatalog InstanceCatalog::Builtin() {
  InstanceCatalog catalog;
  for (const auto& row : kBuiltin) {
    catalog.Upsert({row.name, row.vcpus, row.memory_gib, row.gpus, row.price});
  }
  return catalog;
}

const InstanceType* InstanceCatalog::Find(const std::string& name) const {
  auto it = types_.find(name);
  return it == types_.end() ? nullptr : &it->second;
}

void InstanceCatalog::Upsert(InstanceType type) {
  std::string name = type.name;
  types_.insert_or_assign(std::move(name), std::move(type));
}

std::vector<InstanceType> InstanceCatalog::All() const {
  std::vector<InstanceType> all;
  all.reserve(types_.size());
  for (const auto& [name, type] : types_) all.push_back(type);
  return all;
}

}  // namespace ty::capacity
