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

}  // namespace ty::server
