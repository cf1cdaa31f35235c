// ImageCatalog: how a TrainingImage is played on this machine. There is no
// container engine here: an entry names the command that plays the image's
// ENTRYPOINT, its working directory and environment, or the built-in Python
// framework runtime (what the SageMaker training toolkit does inside the AWS
// framework images). Entries match image names by glob (fnmatch); the first
// match wins; built-in entries come after configured ones.
// Thread-safe for reads after construction.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "model/agent_protocol.h"

namespace ty::launch {

struct ImageRule {
  std::string match;  // glob over the TrainingImage string
  model::ImageEntry entry;
};

class ImageCatalog {
 public:
  // The built-in rules: the AWS PyTorch training images
  // ("*/pytorch-training:*", "*/pytorch-training@*") -> python-framework.
  static std::vector<ImageRule> BuiltinRules();

  explicit ImageCatalog(std::vector<ImageRule> configured);
  // kNotFound with a message naming the image when nothing matches.
  Result<model::ImageEntry> Resolve(const std::string& image) const;
  const std::vector<ImageRule>& rules() const { return rules_; }

 private:
  std::vector<ImageRule> rules_;
};

}  // namespace ty::launch
