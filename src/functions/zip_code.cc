#include "functions/zip_code.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "common/fs.h"

namespace ty::functions {

namespace {

struct ArchiveCloser {
  void operator()(archive* a) const { archive_read_free(a); }
};

Status WriteAll(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot write " + path, errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// libarchive's message for the last error; it may have none (a null string).
std::string ArchiveError(archive* a) {
  const char* e = archive_error_string(a);
  return e != nullptr ? e : "malformed zip archive";
}

}  // namespace

std::string SafeEntryPath(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.find('\0') != std::string_view::npos) return "";
  std::string out;
  size_t pos = 0;
  while (pos <= name.size()) {
    size_t slash = name.find('/', pos);
    if (slash == std::string_view::npos) slash = name.size();
    std::string_view part = name.substr(pos, slash - pos);
    pos = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return "";
    if (!out.empty()) out += '/';
    out.append(part);
  }
  return out;
}

Result<ZipSummary> UnpackZip(std::string_view zip, const std::string& dest_dir,
                             const ZipLimits& limits) {
  if (zip.size() > limits.max_zip_bytes) {
    return InvalidArgument("the zip file is " + std::to_string(zip.size()) +
                           " bytes; the limit is " + std::to_string(limits.max_zip_bytes));
  }
  std::unique_ptr<archive, ArchiveCloser> a(archive_read_new());
  if (!a) return IoError("libarchive: out of memory");
  archive_read_support_format_zip(a.get());
  if (archive_read_open_memory(a.get(), zip.data(), zip.size()) != ARCHIVE_OK) {
    return InvalidArgument(std::string("Could not unzip uploaded file: ") + ArchiveError(a.get()));
  }
  TY_RETURN_IF_ERROR(MakeDirs(dest_dir, 0755));
  ZipSummary sum;
  std::vector<char> buf(1 << 16);
  archive_entry* entry = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return InvalidArgument(std::string("Could not unzip uploaded file: ") +
                             ArchiveError(a.get()));
    }
    if (++sum.entries > limits.max_entries) {
      return InvalidArgument("the zip file has more than " + std::to_string(limits.max_entries) +
                             " entries");
    }
    const char* raw = archive_entry_pathname(entry);
    std::string name = raw != nullptr ? raw : "";
    if (name.size() > limits.max_name_bytes) {
      return InvalidArgument("a zip entry name is longer than " +
                             std::to_string(limits.max_name_bytes) + " bytes");
    }
    std::string rel = SafeEntryPath(name);
    const mode_t type = archive_entry_filetype(entry);
    if (rel.empty()) {
      if (type == AE_IFDIR && SafeEntryPath(name + "x") == "x") continue;  // "./" itself
      return InvalidArgument("the zip entry '" + name + "' is absolute or leaves the package (..)");
    }
    if (archive_entry_hardlink(entry) != nullptr || type == AE_IFLNK) {
      return InvalidArgument("the zip entry '" + name + "' is a link; links are not accepted");
    }
    const std::string path = JoinPath(dest_dir, rel);
    if (type == AE_IFDIR) {
      TY_RETURN_IF_ERROR(MakeDirs(path, 0755));
      continue;
    }
    if (type != AE_IFREG && type != 0) {
      return InvalidArgument("the zip entry '" + name + "' is not a file or directory");
    }
    if (size_t slash = path.rfind('/'); slash != std::string::npos) {
      TY_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0755));
    }
    const mode_t mode = (archive_entry_perm(entry) & 0111) != 0 ? 0755 : 0644;
    // O_NOFOLLOW | O_EXCL: an earlier entry cannot have planted a link to write through (links
    // are refused anyway), and a duplicate name is refused rather than silently replaced.
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid()) {
      if (errno == EEXIST) return InvalidArgument("the zip entry '" + name + "' appears twice");
      return ErrnoStatus("cannot create " + path, errno);
    }
    for (;;) {
      la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) {
        return InvalidArgument("Could not unzip uploaded file: entry '" + name +
                               "': " + ArchiveError(a.get()));
      }
      sum.total_bytes += n;
      if (sum.total_bytes > limits.max_total_bytes) {
        return InvalidArgument("Unzipped size must be smaller than " +
                               std::to_string(limits.max_total_bytes) + " bytes");
      }
      TY_RETURN_IF_ERROR(WriteAll(fd.get(), buf.data(), static_cast<size_t>(n), path));
    }
    ::fchmod(fd.get(), mode);  // the umask may have narrowed it
  }
  return sum;
}

}  // namespace ty::functions
