// The job-spec loader of `trainyard run` on one input: byte 0 picks the format (odd: JSON, even:
// YAML), the rest is the file. An accepted spec is then serialised as the CLI sends it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cli/job_spec_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto spec = ty::cli::ParseJobSpec(text, (data[0] & 1) != 0, "job.yaml", "/fuzz/specs");
  if (spec.ok()) (void)spec->dump();
  return 0;
}
