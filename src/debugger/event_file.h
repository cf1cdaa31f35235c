// The smdebug on-disk formats (spec debugger.md §1.4–§1.7), decoded with bounds: TFRecord
// framing, the Event/Summary/TensorProto protobuf messages (hand-written decoder, no libprotobuf),
// the index JSON and the collections JSON. Pure functions over bytes; thread-safe.
//
// Every error is InvalidArgument with a sentence saying what is wrong (callers prefix the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "debugger/trial.h"

namespace ty::debugger {

uint32_t Crc32c(std::string_view data);
// TensorFlow's masked CRC: ((c >> 15 | c << 17) + 0xA282EAD8).
uint32_t MaskedCrc32c(std::string_view data);
// smdebug's constant footer: masked_crc32c(b"0x12345678") (it writes no payload CRC).
inline constexpr uint32_t kSmdebugConstantFooter = 0x062DC0B3;

// Checks one whole record (u64 length, u32 masked CRC of the length, payload, u32 footer) and
// returns its payload. The footer may be smdebug's constant or the payload's real masked CRC.
Result<std::string_view> ParseRecord(std::string_view record, uint64_t max_payload_bytes);
// Splits a whole event file into its records' payloads (at most max_records).
Result<std::vector<std::string_view>> SplitRecords(std::string_view file,
                                                   uint64_t max_payload_bytes, size_t max_records);

// One Summary.Value of an Event: a tensor (or a reduction tensor) at a step.
struct EventTensor {
  std::string tag;
  int64_t step = 0;                  // Event.step: the global step
  std::optional<int> mode;           // SummaryMetadata plugin "mode" (1..4)
  std::optional<int64_t> mode_step;  // plugin "mode_step"
  NDArray value;
};

struct DecodeLimits {
  uint64_t max_elements = 16ull << 20;  // numbers in one tensor
  size_t max_dims = 32;
  size_t max_values = 100000;  // Summary.Values in one Event
  size_t max_strings = 100000;
};

// Decodes an Event protobuf payload and returns the tensors of its Summary (empty for events
// without one). Supported dtypes: FLOAT, DOUBLE, INT32, UINT8, INT16, INT8, INT64, BOOL,
// BFLOAT16, UINT16, HALF, UINT32, UINT64, and strings (dtype 0/STRING with string_val);
// complex types are refused.
Result<std::vector<EventTensor>> DecodeEvent(std::string_view payload, const DecodeLimits& limits);

// Index JSON (§1.6).
struct IndexEntry {
  std::string tensor_name;
  uint64_t start = 0;
  uint64_t length = 0;
};
struct IndexFile {
  int64_t step = 0;    // from the FILE NAME, as smdebug does
  std::string worker;  // from the file name
  Mode mode = Mode::kGlobal;
  int64_t mode_step = 0;
  std::string event_file_name;  // relative to the trial root
  std::vector<IndexEntry> tensors;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
};
// "index/000000000/000000000020_worker_0.json" (or just its base name) -> step 20, "worker_0".
Result<std::pair<int64_t, std::string>> ParseIndexFileName(std::string_view key);
Result<IndexFile> ParseIndexFile(std::string_view key, std::string_view json, size_t max_entries);

// Collections JSON (§1.7).
struct CollectionsFile {
  int num_workers = 1;
  std::vector<Collection> collections;
};
Result<CollectionsFile> ParseCollectionsFile(std::string_view json);

// Reductions over raw values, as numpy computes them (variance and std biased, l1/l2 norms).
// InvalidArgument for an unknown reduction name; an empty tensor is InvalidArgument too.
Result<double> ComputeReduction(const std::vector<double>& values, const std::string& name,
                                bool abs);

}  // namespace ty::debugger
