// What a FailureReason may say about paths. Reasons are written by the agent and the controller,
// which see host paths: "<data_dir>/jobs/<job>/attempt-2/algo-1/model/x: No space left". The
// caller must see neither the server's data dir nor how it lays out job trees, so such paths are
// rewritten before a reason is stored. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ty::model {

// Shown instead of a server path that has no /opt/ml form.
inline constexpr std::string_view kHiddenPath = "<server path>";

// Rewrites every path in `reason` that starts with one of `server_dirs` (absolute, no trailing
// slash; e.g. the data dir and its canonical form): a path inside an instance tree
// (<dir>/jobs/.../attempt-N/algo-M[/rest]) becomes its /opt/ml form (/opt/ml[/rest]), any other
// becomes kHiddenPath. A path ends at whitespace, a quote, a comma, a semicolon, a colon or a
// closing bracket. Everything else is kept as it is.
std::string HideServerPaths(std::string_view reason, const std::vector<std::string>& server_dirs);

}  // namespace ty::model
