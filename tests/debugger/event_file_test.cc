#include "debugger/event_file.h"

#include <gtest/gtest.h>

#include "debugger/trial_writer.h"

namespace ty::debugger {
namespace {

using testing::TrialWriter;

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(MaskedCrc32c("0x12345678"), kSmdebugConstantFooter);
}

TEST(RecordTest, AcceptsConstantFooterAndRealCrc) {
  for (bool real : {false, true}) {
    std::string rec = TrialWriter::Record("hello", real);
    Result<std::string_view> p = ParseRecord(rec, 100);
    ASSERT_TRUE(p.ok()) << p.status().message();
    EXPECT_EQ(*p, "hello");
  }
}

TEST(RecordTest, RejectsCorruption) {
  std::string rec = TrialWriter::Record("hello", true);
  struct Case {
    std::string name;
    std::string bytes;
    std::string want;
  };
  std::string bad_footer = rec;
  bad_footer.back() ^= 1;
  std::string bad_len_crc = rec;
  bad_len_crc[8] ^= 1;
  std::string bad_payload = rec;
  bad_payload[13] ^= 1;
  std::vector<Case> cases = {
      {"footer", bad_footer, "payload CRC does not match"},
      {"length crc", bad_len_crc, "length CRC does not match"},
      {"payload", bad_payload, "payload CRC does not match"},
      {"truncated", rec.substr(0, rec.size() - 1), "truncated"},
      {"tiny", rec.substr(0, 5), "truncated"},
  };
  for (const auto& c : cases) {
    Result<std::string_view> p = ParseRecord(c.bytes, 100);
    ASSERT_FALSE(p.ok()) << c.name;
    EXPECT_NE(p.status().message().find(c.want), std::string::npos)
        << c.name << ": " << p.status().message();
  }
  EXPECT_FALSE(ParseRecord(rec, 4).ok());  // over the size limit
}

TEST(DecodeEventTest, TensorWithModeAndShape) {
  std::string ev =
      TrialWriter::Event(7, {"gradient/fc.weight", {2, 3}, {1, 2, 3, 4, 5, -6.5f}}, Mode::kEval, 2);
  Result<std::vector<EventTensor>> r = DecodeEvent(ev, DecodeLimits());
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  const EventTensor& t = (*r)[0];
  EXPECT_EQ(t.tag, "gradient/fc.weight");
  EXPECT_EQ(t.step, 7);
  EXPECT_EQ(t.mode, 2);
  EXPECT_EQ(t.mode_step, 2);
  EXPECT_EQ(t.value.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.value.values, (std::vector<double>{1, 2, 3, 4, 5, -6.5}));
}

TEST(DecodeEventTest, BoundsAndMismatches) {
  DecodeLimits small;
  small.max_elements = 4;
  std::string ev = TrialWriter::Event(1, {"x", {2, 3}, {1, 2, 3, 4, 5, 6}}, Mode::kTrain, 1);
  EXPECT_FALSE(DecodeEvent(ev, small).ok());
  // Shape says 6 elements, content holds 5.
  std::string bad = TrialWriter::Event(1, {"x", {2, 3}, {1, 2, 3, 4, 5}}, Mode::kTrain, 1);
  Result<std::vector<EventTensor>> r = DecodeEvent(bad, DecodeLimits());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("content has 20 bytes"), std::string::npos);
  // Truncated protobuf.
  EXPECT_FALSE(DecodeEvent(ev.substr(0, ev.size() - 3), DecodeLimits()).ok());
  // A group wire type (3) is refused.
  EXPECT_FALSE(DecodeEvent(std::string("\x0b", 1), DecodeLimits()).ok());
}

TEST(IndexFileTest, NameAndContent) {
  auto n = ParseIndexFileName("index/000000001/000000001230_worker_0.json");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->first, 1230);
  EXPECT_EQ(n->second, "worker_0");
  EXPECT_FALSE(ParseIndexFileName("index/000000000/abc_worker_0.json").ok());
  EXPECT_FALSE(ParseIndexFileName("index/000000000/000000000001.json").ok());

  std::string json =
      R"({"meta": {"mode": "EVAL", "mode_step": 3, "event_file_name": "events/000000000020/000000000020_worker_0.tfevents"},
    "tensor_payload": [{"tensorname": "a", "start_idx": 0, "length": 99}], "shape_payload": []})";
  auto f = ParseIndexFile("index/000000000/000000000020_worker_0.json", json, 10);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->step, 20);
  EXPECT_EQ(f->mode, Mode::kEval);
  EXPECT_EQ(f->mode_step, 3);
  ASSERT_EQ(f->tensors.size(), 1u);
  EXPECT_EQ(f->tensors[0].length, 99u);
}

TEST(IndexFileTest, Malformed) {
  const std::string key = "index/000000000/000000000001_worker_0.json";
  std::vector<std::string> bad = {
      "not json",
      "[]",
      R"({"meta": {}, "tensor_payload": []})",
      R"({"meta": {"mode": "TRAIN", "mode_step": 1, "event_file_name": "e"}})",
      R"({"meta": {"mode": "TRAINING", "mode_step": 1, "event_file_name": "e"}, "tensor_payload": []})",
      R"({"meta": {"mode": "TRAIN", "mode_step": -1, "event_file_name": "e"}, "tensor_payload": []})",
      R"({"meta": {"mode": "TRAIN", "mode_step": 1, "event_file_name": "../../x"}, "tensor_payload": []})",
      R"({"meta": {"mode": "TRAIN", "mode_step": 1, "event_file_name": "/etc/passwd"}, "tensor_payload": []})",
      R"({"meta": {"mode": "TRAIN", "mode_step": 1, "event_file_name": "e"}, "tensor_payload": [{"tensorname": "a", "start_idx": "0", "length": 5}]})",
      R"({"meta": {"mode": "TRAIN", "mode_step": 1, "event_file_name": "e"}, "tensor_payload": [{"tensorname": "a", "start_idx": 0, "length": 5}, {"tensorname": "b", "start_idx": 0, "length": 5}, {"tensorname": "c", "start_idx": 0, "length": 5}]})",
  };
  for (const auto& j : bad) EXPECT_FALSE(ParseIndexFile(key, j, 2).ok()) << j;
}

TEST(CollectionsFileTest, ParsesAndBounds) {
  auto c = ParseCollectionsFile(
      R"({"collections": {"losses": {"name": "losses", "include_regex": ["[Ll]oss_(?!input).*output"], "tensor_names": ["L_output_0"],
          "reduction_config": {"save_raw_tensor": false, "reductions": "mean,abs_max"}}}, "_meta": {"num_workers": 2}})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_workers, 2);
  ASSERT_EQ(c->collections.size(), 1u);
  EXPECT_EQ(c->collections[0].reductions, "mean,abs_max");
  EXPECT_FALSE(c->collections[0].save_raw_tensor);
  EXPECT_EQ(c->collections[0].tensor_names.count("L_output_0"), 1u);
  EXPECT_FALSE(ParseCollectionsFile(R"({"collections": {}, "_meta": {"num_workers": 0}})").ok());
  EXPECT_FALSE(ParseCollectionsFile(R"({"_meta": {"num_workers": 1}})").ok());
  EXPECT_FALSE(ParseCollectionsFile(R"({"collections": {"a": {"include_regex": [1]}}})").ok());
  EXPECT_FALSE(ParseCollectionsFile(std::string(200, '[') + std::string(200, ']')).ok());
}

TEST(ComputeReductionTest, NumpySemantics) {
  std::vector<double> v = {1, -2, 3, -4};
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "mean", false), -0.5);
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "mean", true), 2.5);
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "variance", false), 7.25);  // biased, as np.var
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "max", true), 4);
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "min", false), -4);
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "l1", false), 10);
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "l2", false), std::sqrt(30.0));
  EXPECT_DOUBLE_EQ(*ComputeReduction(v, "prod", false), 24);
  EXPECT_FALSE(ComputeReduction(v, "median", false).ok());
  EXPECT_FALSE(ComputeReduction({}, "mean", false).ok());
}

}  // namespace
}  // namespace ty::debugger
