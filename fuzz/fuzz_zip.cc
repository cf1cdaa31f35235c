// A function's deployment package on one input: UnpackZip (libarchive under Trainyard's own
// bounds: entry count, bytes written, names, links) into a scratch directory, which must never
// gain anything outside it.
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/fs.h"
#include "functions/zip_code.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = [] {
    char tmpl[] = "/tmp/fuzz_zip_XXXXXX";
    return std::string(::mkdtemp(tmpl));
  }();
  const std::string dest = root + "/code";
  ty::functions::ZipLimits limits;
  limits.max_entries = 64;
  limits.max_total_bytes = 1 << 20;
  (void)ty::functions::UnpackZip(std::string_view(reinterpret_cast<const char*>(data), size), dest,
                                 limits);
  (void)ty::RemoveAll(dest);
  return 0;
}
