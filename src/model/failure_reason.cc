#include "model/failure_reason.h"

#include <algorithm>
#include <cctype>

namespace ty::model {
namespace {

bool EndsPath(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0 || c == '\'' || c == '"' || c == '`' ||
         c == ',' || c == ';' || c == ':' || c == ')' || c == ']' || c == '}' || c == '>';
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// `rest` is what follows the server dir ("/jobs/<job>/attempt-1/algo-2/model/x"). The instance
// tree is the first "attempt-<n>/algo-<m>" pair under /jobs/.
std::string PublicForm(std::string_view rest) {
  constexpr std::string_view kJobs = "/jobs/";
  if (rest.substr(0, kJobs.size()) != kJobs) return std::string(kHiddenPath);
  std::vector<std::string_view> parts;
  for (size_t pos = kJobs.size(); pos <= rest.size();) {
    size_t slash = rest.find('/', pos);
    if (slash == std::string_view::npos) slash = rest.size();
    parts.push_back(rest.substr(pos, slash - pos));
    pos = slash + 1;
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string_view attempt = parts[i], host = parts[i + 1];
    if (attempt.substr(0, 8) != "attempt-" || !IsDigits(attempt.substr(8))) continue;
    if (host.substr(0, 5) != "algo-" || !IsDigits(host.substr(5))) continue;
    std::string out = "/opt/ml";
    for (size_t j = i + 2; j < parts.size(); ++j) {
      if (parts[j].empty()) continue;
      out += "/";
      out += parts[j];
    }
    return out;
  }
  return std::string(kHiddenPath);
}

}  // namespace

std::string HideServerPaths(std::string_view reason, const std::vector<std::string>& server_dirs) {
  std::string out;
  out.reserve(reason.size());
  size_t i = 0;
  while (i < reason.size()) {
    // A path starts at the beginning or after a character that ends one.
    bool at_start = i == 0 || EndsPath(reason[i - 1]) || reason[i - 1] == '=' ||
                    reason[i - 1] == '(' || reason[i - 1] == '[';
    size_t matched = 0;
    if (at_start && reason[i] == '/') {
      for (const std::string& dir : server_dirs) {
        if (dir.size() < 2 || reason.substr(i, dir.size()) != dir) continue;
        size_t after = i + dir.size();
        // The dir itself, or a path below it; never a sibling such as <dir>-old.
        if (after < reason.size() && reason[after] != '/' && !EndsPath(reason[after])) continue;
        matched = std::max(matched, dir.size());
      }
    }
    if (matched == 0) {
      out.push_back(reason[i++]);
      continue;
    }
    size_t end = i + matched;
    while (end < reason.size() && !EndsPath(reason[end])) ++end;
    out += PublicForm(reason.substr(i + matched, end - i - matched));
    i = end;
  }
  return out;
}

}  // namespace ty::model
