#include "launch/launcher.h"

namespace ty::launch {

const char* Name(AttemptSignal signal) {
  switch (signal) {
    case AttemptSignal::kStop:
      return "stop";
    case AttemptSignal::kNotice:
      return "notice";
    case AttemptSignal::kAbort:
      return "abort";
    case AttemptSignal::kKill:
      return "kill";
  }
  return "unknown";
}

}  // namespace ty::launch
