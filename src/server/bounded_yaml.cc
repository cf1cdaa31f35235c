#include "server/bounded_yaml.h"

#include <yaml-cpp/eventhandler.h>

#include <sstream>

#include "common/fs.h"

namespace ty::server {
namespace {

struct TooDeep {
  YAML::Mark mark;
};

// Counts open collections; throwing is the only way to stop yaml-cpp's parser from a handler.
class DepthLimit : public YAML::EventHandler {
 public:
  explicit DepthLimit(size_t max_depth) : max_depth_(max_depth) {}

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Open(const YAML::Mark& mark) {
    if (depth_ >= max_depth_) throw TooDeep{mark};
    ++depth_;
  }

  size_t max_depth_;
  size_t depth_ = 0;
};

}  // namespace

Result<YAML::Node> LoadYaml(std::string_view text, size_t max_depth, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return InvalidArgument("the YAML is " + std::to_string(text.size()) + " bytes; the limit is " +
                           std::to_string(max_bytes) + " bytes");
  }
  try {
    // First pass: events only, stopped at the first collection past the limit.
    {
      std::istringstream in{std::string(text)};
      YAML::Parser parser(in);
      DepthLimit limit(max_depth);
      parser.HandleNextDocument(limit);
    }
    return YAML::Load(std::string(text));
  } catch (const TooDeep& e) {
    return InvalidArgument("YAML nested deeper than " + std::to_string(max_depth) +
                           " levels (mappings and sequences inside each other), at line " +
                           std::to_string(e.mark.line + 1) + ", column " +
                           std::to_string(e.mark.column + 1));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(e.what());
  }
}

Result<YAML::Node> LoadYamlFile(const std::string& path) {
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto node = LoadYaml(text);
  if (!node.ok()) return node.status().WithPrefix(path);
  return node;
}

namespace {

Status ToJson(const YAML::Node& node, size_t depth, size_t max_depth, size_t* budget,
              nlohmann::json* out) {
  if (*budget == 0) return InvalidArgument("the document has too many values");
  if (depth > max_depth) return InvalidArgument("the document nests too deeply");
  --*budget;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      *out = nullptr;
      return Status::Ok();
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      *out = s;
      if (node.Tag() != "?") return Status::Ok();  // quoted
      bool b = false;
      if (YAML::convert<bool>::decode(node, b)) {
        *out = b;
      } else if (int64_t i = 0; YAML::convert<int64_t>::decode(node, i)) {
        *out = i;
      } else if (double d = 0; YAML::convert<double>::decode(node, d)) {
        *out = d;
      }
      return Status::Ok();
    }
    case YAML::NodeType::Sequence: {
      *out = nlohmann::json::array();
      for (const auto& e : node) {
        nlohmann::json v;
        TY_RETURN_IF_ERROR(ToJson(e, depth + 1, max_depth, budget, &v));
        out->push_back(std::move(v));
      }
      return Status::Ok();
    }
    case YAML::NodeType::Map: {
      *out = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return InvalidArgument("a mapping key is not a scalar");
        nlohmann::json v;
        TY_RETURN_IF_ERROR(ToJson(kv.second, depth + 1, max_depth, budget, &v));
        (*out)[kv.first.Scalar()] = std::move(v);
      }
      return Status::Ok();
    }
  }
  return Status::Ok();
}

}  // namespace

Result<nlohmann::json> YamlToJson(const YAML::Node& node, size_t max_depth, size_t max_values) {
  nlohmann::json out;
  size_t budget = max_values;
  try {
    TY_RETURN_IF_ERROR(ToJson(node, 0, max_depth, &budget, &out));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(e.what());
  }
  return out;
}

}  // namespace ty::server
