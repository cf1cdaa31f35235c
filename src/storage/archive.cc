#include "storage/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <filesystem>
#include <memory>
#include <vector>

#include "common/fs.h"

namespace ty::storage {
namespace {

constexpr size_t kBufferSize = 1 << 20;

struct ReadFree {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteFree {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ReadArchive = std::unique_ptr<archive, ReadFree>;
using WriteArchive = std::unique_ptr<archive, WriteFree>;
using Entry = std::unique_ptr<archive_entry, EntryFree>;

// The one translation of libarchive errors into Status.
Status ArchiveStatus(archive* a, const std::string& what) {
  const char* err = archive_error_string(a);
  return IoError(what + ": " + (err != nullptr ? err : "libarchive error"));
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// Entries in archive order: sorted, each directory before its contents. Symlinked directories
// are entries, not descended into.
Status CollectEntries(const std::string& root, const std::string& rel,
                      std::vector<std::string>* out) {
  std::error_code ec;
  std::vector<std::string> names;
  std::string dir = rel.empty() ? root : JoinPath(root, rel);
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  if (ec) return IoError("cannot list " + dir + ": " + ec.message());
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    std::string child = rel.empty() ? name : rel + "/" + name;
    out->push_back(child);
    struct stat st;
    if (::lstat(JoinPath(root, child).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      TY_RETURN_IF_ERROR(CollectEntries(root, child, out));
    }
  }
  return Status::Ok();
}

Status WriteEntry(archive* out, const std::string& abs, const std::string& rel,
                  std::vector<char>& buf) {
  struct stat st;
  if (::lstat(abs.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();  // removed while packing
    return ErrnoStatus("cannot stat " + abs, errno);
  }
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) return Status::Ok();
  std::unique_ptr<UniqueFd> in;
  if (S_ISREG(st.st_mode)) {
    in = std::make_unique<UniqueFd>(::open(abs.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (in->get() < 0) return ErrnoStatus("cannot open " + abs, errno);
    // The header must describe the file we are about to read, not the path as it was.
    if (::fstat(in->get(), &st) != 0) return ErrnoStatus("cannot stat " + abs, errno);
  }
  Entry entry(archive_entry_new());
  archive_entry_copy_stat(entry.get(), &st);
  archive_entry_copy_pathname(entry.get(), rel.c_str());
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = ::readlink(abs.c_str(), target, sizeof(target) - 1);
    if (n < 0) return ErrnoStatus("cannot read symlink " + abs, errno);
    target[n] = '\0';
    archive_entry_copy_symlink(entry.get(), target);
    archive_entry_set_size(entry.get(), 0);
  }
  if (archive_write_header(out, entry.get()) < ARCHIVE_WARN) {
    return ArchiveStatus(out, "cannot archive " + abs);
  }
  if (in) {
    // Never more than the header promised: a file growing under us is cut at its stat size
    // (and one shrinking is zero-padded by libarchive), keeping the archive well-formed.
    int64_t remaining = st.st_size;
    while (remaining > 0) {
      ssize_t n = ::read(in->get(), buf.data(),
                         static_cast<size_t>(std::min<int64_t>(remaining, buf.size())));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot read " + abs, errno);
      }
      if (n == 0) break;
      if (archive_write_data(out, buf.data(), static_cast<size_t>(n)) < 0) {
        return ArchiveStatus(out, "cannot archive " + abs);
      }
      remaining -= n;
    }
  }
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) {
    return ArchiveStatus(out, "cannot archive " + abs);
  }
  return Status::Ok();
}

Status WriteArchiveTo(int fd, const std::string& dir, const std::vector<std::string>& entries,
                      const std::vector<std::string>& skip, const std::string& tar_gz_path) {
  WriteArchive out(archive_write_new());
  if (!out) return Internal("archive_write_new failed");
  if (archive_write_add_filter_gzip(out.get()) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(out.get()) != ARCHIVE_OK ||
      archive_write_open_fd(out.get(), fd) != ARCHIVE_OK) {
    return ArchiveStatus(out.get(), "cannot start " + tar_gz_path);
  }
  std::vector<char> buf(kBufferSize);
  for (const std::string& rel : entries) {
    std::string abs = JoinPath(dir, rel);
    if (std::find(skip.begin(), skip.end(), abs) != skip.end()) continue;
    TY_RETURN_IF_ERROR(WriteEntry(out.get(), abs, rel, buf));
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return ArchiveStatus(out.get(), "cannot finish " + tar_gz_path);
  }
  return Status::Ok();
}

// An archive entry name as a clean relative path ("" for the archive root), or InvalidArgument
// when it is absolute or climbs with "..".
Result<std::string> SafeRelative(const char* name, const char* what) {
  if (name == nullptr) return InvalidArgument(std::string("archive ") + what + " is unreadable");
  std::string s(name);
  if (!s.empty() && s[0] == '/') {
    return InvalidArgument(std::string("archive ") + what + " '" + s + "' is absolute");
  }
  std::string out;
  for (const std::string& part : Split(s)) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return InvalidArgument(std::string("archive ") + what + " '" + s + "' contains '..'");
    }
    out += out.empty() ? part : "/" + part;
  }
  return out;
}

// A symlink stays inside the extraction root when its target is relative, climbs only with
// leading ".." (never back up after descending, since a descent may go through another
// symlink), and climbs no higher than the link's own depth.
Status CheckSymlinkTarget(const std::string& rel, const char* target) {
  std::string t = target != nullptr ? target : "";
  auto refuse = [&] {
    return InvalidArgument("archive symlink '" + rel + "' -> '" + t + "' leaves the destination");
  };
  if (t.empty() || t[0] == '/') return refuse();
  size_t depth = std::count(rel.begin(), rel.end(), '/');
  size_t ups = 0;
  bool descended = false;
  for (const std::string& part : Split(t)) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (descended || ++ups > depth) return refuse();
    } else {
      descended = true;
    }
  }
  return Status::Ok();
}

}  // namespace

Status PackDirectory(const std::string& dir, const std::string& tar_gz_path) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument(dir + " is not a directory");
  }
  TY_ASSIGN_OR_RETURN(std::string dir_real, RealPath(dir));
  std::filesystem::path out_path(Absolutize(tar_gz_path, CurrentDir()));
  std::string out_dir = out_path.parent_path().string();
  std::string out_name = out_path.filename().string();
  if (out_name.empty()) return InvalidArgument(tar_gz_path + " names a directory");
  TY_RETURN_IF_ERROR(MakeDirs(out_dir));
  TY_ASSIGN_OR_RETURN(std::string out_dir_real, RealPath(out_dir));
  std::string final_path = JoinPath(out_dir_real, out_name);
  std::string tmp = JoinPath(out_dir_real, "." + out_name + ".ty-tmp-XXXXXX");

  std::vector<std::string> entries;
  TY_RETURN_IF_ERROR(CollectEntries(dir_real, "", &entries));

  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus("cannot create a temporary file in " + out_dir, errno);
  Status s = WriteArchiveTo(fd.get(), dir_real, entries, {final_path, tmp}, tar_gz_path);
  if (s.ok() && (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0 || fd.Close() != 0)) {
    s = ErrnoStatus("cannot flush " + tmp, errno);
  }
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    s = ErrnoStatus("cannot rename " + tmp + " to " + final_path, errno);
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

Status UnpackArchive(const std::string& tar_gz_path, const std::string& dest_dir) {
  TY_RETURN_IF_ERROR(MakeDirs(dest_dir));
  // libarchive resolves relative names against the process cwd, which a threaded server cannot
  // change; so names are validated here and made absolute under the canonical destination.
  // That rules out ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS (its job is done by SafeRelative).
  TY_ASSIGN_OR_RETURN(std::string dest, RealPath(dest_dir));

  ReadArchive in(archive_read_new());
  WriteArchive out(archive_write_disk_new());
  if (!in || !out) return Internal("cannot allocate libarchive handles");
  archive_read_support_filter_all(in.get());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_filename(in.get(), tar_gz_path.c_str(), kBufferSize) != ARCHIVE_OK) {
    return ArchiveStatus(in.get(), "cannot open archive " + tar_gz_path);
  }
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                ARCHIVE_EXTRACT_SECURE_SYMLINKS);
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return ArchiveStatus(in.get(), "cannot read archive " + tar_gz_path);
    TY_ASSIGN_OR_RETURN(std::string rel, SafeRelative(archive_entry_pathname(entry), "entry"));
    if (rel.empty()) continue;  // "./" itself: dest already exists
    const char* hardlink = archive_entry_hardlink(entry);
    if (hardlink != nullptr) {
      TY_ASSIGN_OR_RETURN(std::string link_rel, SafeRelative(hardlink, "hard link target"));
      if (link_rel.empty()) {
        return InvalidArgument("archive hard link '" + rel + "' targets the destination itself");
      }
      archive_entry_copy_hardlink(entry, JoinPath(dest, link_rel).c_str());
    } else {
      mode_t type = archive_entry_filetype(entry);
      if (type == AE_IFLNK) {
        TY_RETURN_IF_ERROR(CheckSymlinkTarget(rel, archive_entry_symlink(entry)));
      } else if (type != AE_IFREG && type != AE_IFDIR) {
        return InvalidArgument("archive entry '" + rel + "' is a device, fifo or socket");
      }
    }
    archive_entry_copy_pathname(entry, JoinPath(dest, rel).c_str());
    if (archive_write_header(out.get(), entry) < ARCHIVE_WARN) {
      return ArchiveStatus(out.get(), "cannot extract '" + rel + "'");
    }
    if (archive_entry_size(entry) > 0) {
      for (;;) {
        const void* block = nullptr;
        size_t size = 0;
        la_int64_t offset = 0;
        r = archive_read_data_block(in.get(), &block, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) return ArchiveStatus(in.get(), "cannot read '" + rel + "'");
        if (archive_write_data_block(out.get(), block, size, offset) < ARCHIVE_WARN) {
          return ArchiveStatus(out.get(), "cannot write '" + rel + "'");
        }
      }
    }
    if (archive_write_finish_entry(out.get()) < ARCHIVE_WARN) {
      return ArchiveStatus(out.get(), "cannot finish '" + rel + "'");
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    return ArchiveStatus(out.get(), "cannot finish extracting " + tar_gz_path);
  }
  return Status::Ok();
}

}  // namespace ty::storage
