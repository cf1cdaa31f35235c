#include "launch/image_catalog.h"

#include <fnmatch.h>

namespace ty::launch {

std::vector<ImageRule> ImageCatalog::BuiltinRules() {
  model::ImageEntry python;
  python.runtime = model::ImageEntry::Runtime::kPythonFramework;
  return {{"*/pytorch-training:*", python},
          {"*/pytorch-training@*", python},
          {"pytorch-training:*", python}};
}

ImageCatalog::ImageCatalog(std::vector<ImageRule> configured) : rules_(std::move(configured)) {
  for (auto& r : BuiltinRules()) rules_.push_back(std::move(r));
}

Result<model::ImageEntry> ImageCatalog::Resolve(const std::string& image) const {
  for (const auto& rule : rules_) {
    if (::fnmatch(rule.match.c_str(), image.c_str(), 0) == 0) return rule.entry;
  }
  return NotFound("the training image '" + image +
                  "' is not in the image catalog; add an entry for it to the server config's "
                  "'images' list (see README, \"Images\")");
}

}  // namespace ty::launch
