// A debugger rule's RuleParameters action_json on one input: parsed as the rule manager does when
// the rule fires (debugger/rule_manager.h ParseActionJson). Any outcome but a crash is fine; a
// parsed action has a known name.
#include <cstddef>
#include <cstdint>
#include <string>

#include "debugger/rule_manager.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto actions = ty::debugger::ParseActionJson(text);
  if (!actions.ok()) return 0;
  for (const auto& a : *actions) {
    if (a.name != "stoptraining" && a.name != "sms" && a.name != "email") __builtin_trap();
  }
  return 0;
}
