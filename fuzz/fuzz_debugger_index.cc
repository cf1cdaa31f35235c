// The debugger trial reader's JSON parsers on one input: byte 0 picks the index file parser
// (index/<...>/<step>_<worker>.json) or the collections file parser; the rest is the file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "debugger/event_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view json(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    (void)ty::debugger::ParseIndexFile("index/000000000/000000000012_worker_0.json", json, 1000);
    (void)ty::debugger::ParseIndexFileName(json);
  } else {
    (void)ty::debugger::ParseCollectionsFile(json);
  }
  return 0;
}
