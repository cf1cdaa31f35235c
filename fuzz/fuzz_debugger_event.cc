// The debugger trial reader's event-file decoding on one input: TFRecord framing (length, its
// masked CRC, payload, footer) over a whole file, then the hand-written protobuf decoder
// (Event/Summary/Value/TensorProto) on each record, as Trial reads files a training job wrote.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "debugger/event_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view file(reinterpret_cast<const char*>(data), size);
  ty::debugger::DecodeLimits limits;
  limits.max_elements = 1 << 16;
  auto records = ty::debugger::SplitRecords(file, 1 << 20, 1000);
  if (records.ok()) {
    for (std::string_view payload : *records) (void)ty::debugger::DecodeEvent(payload, limits);
  }
  // The payload decoder also on raw bytes (most inputs fail the CRC check above).
  (void)ty::debugger::DecodeEvent(file, limits);
  (void)ty::debugger::ParseRecord(file, 1 << 20);
  return 0;
}
