// The CLI's reader of AWS query (XML) answers (cli/alarms_commands.h QueryXmlToJson) on one
// input: the body an SNS endpoint sent to `trainyard topics`.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/alarms_commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string xml(reinterpret_cast<const char*>(data), size);
  std::string json, error;
  (void)ty::cli::QueryXmlToJson(xml, &json, &error);
  return 0;
}
