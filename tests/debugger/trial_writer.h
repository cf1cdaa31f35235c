// TrialWriter: a small test-only writer of smdebug's on-disk format (spec debugger.md §1), with
// its own protobuf and TFRecord encoding (independent of the reader's decoder), for building
// trials with known answers. Not thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "debugger/event_file.h"
#include "debugger/trial.h"

namespace ty::debugger::testing {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline TensorSpec Scalar(std::string name, float v) { return {std::move(name), {}, {v}}; }
inline TensorSpec Filled(std::string name, std::vector<int64_t> shape, float v) {
  size_t n = 1;
  for (auto d : shape) n *= static_cast<size_t>(d);
  return {std::move(name), std::move(shape), std::vector<float>(n, v)};
}

class TrialWriter {
 public:
  explicit TrialWriter(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  // collections/000000000/<worker>_collections.json with the PyTorch default collections plus
  // `extra` (name -> include_regex).
  void WriteCollections(const std::string& worker = "worker_0", int num_workers = 1,
                        const std::map<std::string, std::string>& extra = {}) {
    std::map<std::string, std::string> cols = {{"weights", "^(?!gradient).*weight"},
                                               {"biases", "^(?!gradient).*bias"},
                                               {"gradients", "^gradient"},
                                               {"losses", "[Ll]oss_(?!input).*output"}};
    for (const auto& [k, v] : extra) cols[k] = v;
    nlohmann::json j;
    for (const auto& [name, re] : cols) {
      j["collections"][name] = {
          {"name", name},
          {"include_regex", {re}},
          {"tensor_names", nlohmann::json::array()},
          {"reduction_config", {{"save_raw_tensor", true}, {"reductions", ""}}},
          {"save_histogram", false}};
    }
    j["_meta"] = {{"num_workers", num_workers}};
    Write("collections/000000000/" + worker + "_collections.json", j.dump());
  }

  // One saved step of one worker: the event file, then its index file (the hook's order).
  // Names "smdebug/reductions/<red>/<tensor>" are reductions.
  void WriteStep(int64_t step, const std::vector<TensorSpec>& tensors, Mode mode = Mode::kTrain,
                 int64_t mode_step = -1, const std::string& worker = "worker_0",
                 bool real_crc = false) {
    if (mode_step < 0) mode_step = step;
    std::string file;
    nlohmann::json payload = nlohmann::json::array();
    for (const auto& t : tensors) {
      std::string rec = Record(Event(step, t, mode, mode_step), real_crc);
      payload.push_back(
          {{"tensorname", t.name}, {"start_idx", file.size()}, {"length", rec.size()}});
      file += rec;
    }
    std::string event_name =
        "events/" + Pad(step, 12) + "/" + Pad(step, 12) + "_" + worker + ".tfevents";
    Write(event_name, file);
    nlohmann::json index = {
        {"meta",
         {{"mode", ModeName(mode)}, {"mode_step", mode_step}, {"event_file_name", event_name}}},
        {"tensor_payload", payload},
        {"shape_payload", nlohmann::json::array()}};
    Write(IndexKey(step, worker), index.dump());
  }

  void End() { Write("training_job_end.ts", ""); }

  std::string IndexKey(int64_t step, const std::string& worker = "worker_0") const {
    return "index/" + Pad(step / 1000, 9) + "/" + Pad(step, 12) + "_" + worker + ".json";
  }
  std::string EventKey(int64_t step, const std::string& worker = "worker_0") const {
    return "events/" + Pad(step, 12) + "/" + Pad(step, 12) + "_" + worker + ".tfevents";
  }
  std::string Path(const std::string& key) const { return root_ + "/" + key; }

  void Write(const std::string& key, const std::string& bytes) const {
    std::filesystem::path p(Path(key));
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  }

  // --- encoding ---
  static std::string Varint(uint64_t v) {
    std::string out;
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
    return out;
  }
  static std::string Field(uint32_t field, const std::string& bytes) {
    return Varint(field << 3 | 2) + Varint(bytes.size()) + bytes;
  }
  static std::string VarintField(uint32_t field, uint64_t v) {
    return Varint(field << 3) + Varint(v);
  }
  static std::string Le(uint64_t v, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
  }

  static std::string Event(int64_t step, const TensorSpec& t, Mode mode, int64_t mode_step) {
    std::string shape;
    for (int64_t d : t.shape) {
      shape += Field(
          2, VarintField(1, static_cast<uint64_t>(d)) + Field(2, t.name + "_" + std::to_string(d)));
    }
    std::string content;
    for (float f : t.values) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      content += Le(bits, 4);
    }
    std::string tensor = VarintField(1, 1) + Field(2, shape) + Field(4, content);
    std::string metadata =
        Field(1, Field(1, "mode_step") + Field(2, std::to_string(mode_step))) +
        Field(1, Field(1, "mode") + Field(2, std::to_string(static_cast<int>(mode))));
    std::string value = Field(1, t.name) + Field(8, tensor) + Field(9, metadata);
    std::string summary = Field(1, value);
    double wall = 1.7e9;
    uint64_t wbits;
    std::memcpy(&wbits, &wall, 8);
    return Varint(1 << 3 | 1) + Le(wbits, 8) + VarintField(2, static_cast<uint64_t>(step)) +
           Field(5, summary);
  }

  static std::string Record(const std::string& payload, bool real_crc) {
    std::string len = Le(payload.size(), 8);
    return len + Le(MaskedCrc32c(len), 4) + payload +
           Le(real_crc ? MaskedCrc32c(payload) : kSmdebugConstantFooter, 4);
  }

  static std::string Pad(int64_t v, int width) {
    std::string s = std::to_string(v);
    return std::string(width > static_cast<int>(s.size()) ? width - s.size() : 0, '0') + s;
  }

 private:
  std::string root_;
};

}  // namespace ty::debugger::testing
