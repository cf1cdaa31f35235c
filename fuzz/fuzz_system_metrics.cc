// System-metrics files as the profiler rules read them (debugger/system_metrics.h): every line of
// the input through ParseSystemMetricLine, the first line as a file key through
// ParseSystemMetricKey, and the whole input as ProfilerReport's custom_rule_parameters through
// ParsePythonDictLiteral. All three are outside input (a training job writes the files; a
// CreateTrainingJob request carries the parameters).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "debugger/profiler_rules.h"
#include "debugger/system_metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  size_t pos = 0;
  bool first = true;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    if (first) {
      auto key = ty::debugger::ParseSystemMetricKey(line);
      if (key && (key->hour_dir.size() != 10 || key->node_id.empty())) __builtin_trap();
      first = false;
    }
    auto event = ty::debugger::ParseSystemMetricLine(line);
    if (event.ok()) {
      if (!std::isfinite(event->value) || !std::isfinite(event->timestamp)) __builtin_trap();
      if (event->type.size() > 256 || event->dimension.size() > 256 ||
          event->node_id.size() > 256 || event->name.size() > 256) {
        __builtin_trap();
      }
    }
    pos = nl + 1;
  }
  auto dict = ty::debugger::ParsePythonDictLiteral(text);
  if (dict.ok() && dict->size() > 256) __builtin_trap();
  return 0;
}
