// The governance policy document on one input, as the server reads it from
// Trainyard.UpdateGovernance (bounded JSON, API spelling) and from the config's `governance:`
// section or `trainyard governance set FILE` (bounded YAML converted to JSON, config spelling).
// Whatever parses must render to a document that parses back to the same rendering.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "events/governance_policy.h"
#include "server/bounded_yaml.h"

namespace {

using ty::events::ParsePolicies;
using ty::events::PolicyKeys;
using ty::events::RenderPolicies;

void RoundTrip(const nlohmann::json& doc, PolicyKeys keys) {
  auto p = ParsePolicies(doc, keys);
  if (!p.ok()) return;
  nlohmann::json rendered = RenderPolicies(*p, keys);
  auto again = ParsePolicies(rendered, keys);
  if (!again.ok() || RenderPolicies(*again, keys) != rendered) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json_doc = ty::ParseJson(text);
  if (json_doc.ok()) {
    RoundTrip(*json_doc, PolicyKeys::kApi);
    RoundTrip(*json_doc, PolicyKeys::kConfig);
  }
  auto yaml = ty::server::LoadYaml(text);
  if (yaml.ok()) {
    auto converted = ty::server::YamlToJson(*yaml);
    if (converted.ok()) RoundTrip(*converted, PolicyKeys::kConfig);
  }
  return 0;
}
