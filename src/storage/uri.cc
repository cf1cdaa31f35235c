#include "storage/uri.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <deque>

#include "common/fs.h"

namespace ty::storage {
namespace {

// Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS).
constexpr int kMaxSymlinks = 40;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> PercentDecode(const std::string& s, const std::string& uri) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) return InvalidArgument("bad percent escape in URI " + uri);
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return InvalidArgument("URI " + uri + " contains an escaped NUL byte");
    out.push_back(c);
    i += 2;
  }
  return out;
}

std::deque<std::string> SplitComponents(const std::string& path) {
  std::deque<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string Parent(const std::string& p) {
  size_t slash = p.rfind('/');
  if (slash == 0 || slash == std::string::npos) return "/";
  return p.substr(0, slash);
}

// Walks `path` component by component so ".." applies to the already-resolved parent, exactly as
// path lookup does; a dangling symlink is resolved through its target, which is where a write
// would land.
Result<std::string> ResolvePath(const std::string& path) {
  if (path.empty() || path[0] != '/') return InvalidArgument("path " + path + " is not absolute");
  std::deque<std::string> todo = SplitComponents(path);
  std::string cur = "/";
  bool missing = false;
  int links = 0;
  while (!todo.empty()) {
    std::string comp = std::move(todo.front());
    todo.pop_front();
    if (comp == ".") continue;
    if (comp == "..") {
      cur = Parent(cur);
      continue;
    }
    std::string next = JoinPath(cur, comp);
    if (missing) {
      cur = std::move(next);
      continue;
    }
    struct stat st;
    if (::lstat(next.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) return ErrnoStatus("cannot inspect " + next, errno);
      missing = true;
      cur = std::move(next);
      continue;
    }
    if (!S_ISLNK(st.st_mode)) {
      cur = std::move(next);
      continue;
    }
    if (++links > kMaxSymlinks) return InvalidArgument("too many levels of symlinks in " + path);
    char buf[PATH_MAX];
    ssize_t n = ::readlink(next.c_str(), buf, sizeof(buf) - 1);
    if (n < 0) return ErrnoStatus("cannot read symlink " + next, errno);
    std::string target(buf, static_cast<size_t>(n));
    std::deque<std::string> target_parts = SplitComponents(target);
    todo.insert(todo.begin(), target_parts.begin(), target_parts.end());
    if (!target.empty() && target[0] == '/') cur = "/";
  }
  return cur;
}

std::string JoinRoots(const std::vector<std::string>& roots) {
  std::string out;
  for (const std::string& r : roots) {
    if (!out.empty()) out += ", ";
    out += r;
  }
  return out;
}

}  // namespace

Result<StorageUri> ParseStorageUri(const std::string& uri) {
  size_t colon = uri.find(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("URI " + uri + " has no scheme (expected file:// or s3://)");
  }
  std::string scheme = uri.substr(0, colon);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string rest = uri.substr(colon + 1);
  StorageUri out;
  out.scheme = scheme;
  if (scheme == "file") {
    if (rest.compare(0, 2, "//") != 0) {
      return InvalidArgument("file URI " + uri + " must be absolute: file:///absolute/path");
    }
    rest = rest.substr(2);
    size_t slash = rest.find('/');
    std::string host = rest.substr(0, slash);
    if (!host.empty() && host != "localhost") {
      return InvalidArgument("file URI " + uri + " names host '" + host +
                             "'; only local paths are supported: file:///absolute/path");
    }
    if (slash == std::string::npos) {
      return InvalidArgument("file URI " + uri + " has no path: file:///absolute/path");
    }
    TY_ASSIGN_OR_RETURN(out.path, PercentDecode(rest.substr(slash), uri));
    return out;
  }
  if (scheme == "s3") {
    if (rest.compare(0, 2, "//") != 0) return InvalidArgument("bad S3 URI " + uri);
    rest = rest.substr(2);
    size_t slash = rest.find('/');
    out.bucket = rest.substr(0, slash);
    if (out.bucket.empty()) return InvalidArgument("S3 URI " + uri + " has no bucket");
    if (slash != std::string::npos) out.key = rest.substr(slash + 1);
    return out;
  }
  return InvalidArgument("URI " + uri + " has unsupported scheme '" + scheme +
                         "' (expected file:// or s3://)");
}

std::string FileUriFromPath(const std::string& path) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out = "file://";
  for (unsigned char c : path) {
    bool plain = std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~' ||
                 c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' ||
                 c == '*' || c == '+' || c == ',' || c == ';' || c == '=' || c == ':' || c == '@';
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<std::string> ResolveWithinRoots(const std::string& path,
                                       const std::vector<std::string>& roots) {
  TY_ASSIGN_OR_RETURN(std::string resolved, ResolvePath(path));
  for (const std::string& root : roots) {
    Result<std::string> root_resolved = ResolvePath(root);
    if (root_resolved.ok() && IsWithin(*root_resolved, resolved)) return resolved;
  }
  return InvalidArgument(path + " is outside the allowed file roots (" + JoinRoots(roots) + ")");
}

Status CheckWithinRoots(const std::string& path, const std::vector<std::string>& roots) {
  return ResolveWithinRoots(path, roots).status();
}

}  // namespace ty::storage
