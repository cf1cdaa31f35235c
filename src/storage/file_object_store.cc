#include "storage/file_object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "common/fs.h"
#include "storage/uri.h"

namespace ty::storage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kCopyBufferSize = 1 << 20;  // read/write fallback
constexpr size_t kCopyChunk = 1 << 30;       // per copy_file_range call
constexpr char kTempMarker[] = ".ty-tmp-";

std::string BaseName(const std::string& path) {
  std::string p = fs::path(path).lexically_normal().string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == 0 || slash == std::string::npos) return "/";
  return path.substr(0, slash);
}

// In-flight uploads are hidden files next to their destination; readers skip them.
bool IsTempName(const std::string& name) {
  return !name.empty() && name[0] == '.' && name.find(kTempMarker) != std::string::npos;
}

// A key names one object below a base URI: relative, no empty, "." or ".." components.
Status CheckObjectKey(const std::string& key) {
  if (key.empty() || key.front() == '/') return InvalidArgument("bad object key '" + key + "'");
  size_t start = 0;
  for (;;) {
    size_t end = key.find('/', start);
    std::string part = key.substr(start, end == std::string::npos ? end : end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument("bad object key '" + key + "'");
    }
    if (end == std::string::npos) return Status::Ok();
    start = end + 1;
  }
}

std::chrono::system_clock::time_point MTime(const struct stat& st) {
  return std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::nanoseconds(st.st_mtim.tv_nsec));
}

Status CopyFd(int in, int out, const std::string& from, const std::string& to) {
  // copy_file_range lets the kernel (or a reflinking file system) do the work without a trip
  // through user space; it is refused across some file system pairs, in which case a plain
  // read/write loop follows from wherever it stopped (both offsets have advanced together).
  bool copied_any = false;
  for (;;) {
    ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, kCopyChunk, 0);
    if (n > 0) {
      copied_any = true;
      continue;
    }
    if (n == 0) {
      // Files of pseudo file systems report size 0 and copy as empty; read(2) tells the truth
      // (and returns 0 at once for a file that really is empty or fully copied).
      if (copied_any) return Status::Ok();
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) break;
    return ErrnoStatus("cannot copy " + from + " to " + to, errno);
  }
  std::vector<char> buf(kCopyBufferSize);
  for (;;) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n == 0) return Status::Ok();
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read " + from, errno);
    }
    size_t off = 0;
    while (off < static_cast<size_t>(n)) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n) - off);
      if (w < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot write " + to, errno);
      }
      off += static_cast<size_t>(w);
    }
  }
}

Result<UniqueFd> OpenRegularFile(const std::string& path, struct stat* st) {
  // O_NONBLOCK: a FIFO swapped in for the file must not hang the open (no effect on files).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound("no such file " + path);
    return ErrnoStatus("cannot open " + path, errno);
  }
  if (::fstat(fd.get(), st) != 0) return ErrnoStatus("cannot stat " + path, errno);
  if (!S_ISREG(st->st_mode)) return InvalidArgument(path + " is not a regular file");
  return fd;
}

// Best effort: the object is already committed and visible; some file systems refuse to
// fsync a directory.
void FsyncDir(const std::string& dir) {
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() >= 0) ::fsync(dir_fd.get());
}

// A writer killed mid-copy leaves its temp file behind (hidden from listings, but taking
// space). Temps of `dest` older than this are such leftovers: no copy takes that long
// between two writes of its temp file.
constexpr auto kStaleTemp = std::chrono::minutes(10);

void RemoveStaleTemps(const std::string& dir, const std::string& base) {
  std::error_code ec;
  const std::string prefix = "." + base + kTempMarker;
  auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || name.size() != prefix.size() + 6) continue;
    auto mtime = std::filesystem::last_write_time(entry.path(), ec);
    if (!ec && now - mtime > kStaleTemp) ::unlink(entry.path().c_str());
  }
}

// Writes `src` to `dest` through a hidden temp file in dest's directory: copy, fsync, ask
// `still_valid`, rename(2). The temp file never outlives a failure. The directory is then
// fsynced so the rename itself survives a crash, unless `dirs_to_sync` collects it for the
// caller to fsync once after many files. Without `durable` nothing is fsynced: the rename
// still keeps a partial file from ever showing under `dest` when the process dies.
Status CopyFileAtomic(const std::string& src, const std::string& dest,
                      const std::function<bool()>& still_valid, std::set<std::string>* dirs_to_sync,
                      bool durable = true) {
  struct stat st;
  TY_ASSIGN_OR_RETURN(UniqueFd in, OpenRegularFile(src, &st));
  std::string dir = DirName(dest);
  TY_RETURN_IF_ERROR(MakeDirs(dir));
  std::string tmpl = JoinPath(dir, "." + BaseName(dest) + kTempMarker + "XXXXXX");
  UniqueFd out(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (out.get() < 0) return ErrnoStatus("cannot create a temporary file in " + dir, errno);
  auto fail = [&](Status s) {
    out.Reset();
    ::unlink(tmpl.c_str());
    return s;
  };
  Status copied = CopyFd(in.get(), out.get(), src, tmpl);
  if (!copied.ok()) return fail(copied);
  in.Reset();
  if (::fchmod(out.get(), (st.st_mode & 0777) | S_IRUSR | S_IWUSR) != 0 ||
      (durable && ::fsync(out.get()) != 0) || out.Close() != 0) {
    return fail(ErrnoStatus("cannot flush " + tmpl, errno));
  }
  if (still_valid && !still_valid()) {
    return fail(Unavailable(src + " changed while it was uploaded; not stored"));
  }
  if (::rename(tmpl.c_str(), dest.c_str()) != 0) {
    return fail(ErrnoStatus("cannot rename " + tmpl + " to " + dest, errno));
  }
  RemoveStaleTemps(dir, BaseName(dest));
  if (!durable) return Status::Ok();
  if (dirs_to_sync != nullptr) {
    dirs_to_sync->insert(dir);
    return Status::Ok();
  }
  FsyncDir(dir);
  return Status::Ok();
}

// Copies into a directory we own: no temp file needed, but never through a symlink at the leaf.
Status CopyFileInto(const std::string& src, const std::string& dest) {
  struct stat st;
  TY_ASSIGN_OR_RETURN(UniqueFd in, OpenRegularFile(src, &st));
  TY_RETURN_IF_ERROR(MakeDirs(DirName(dest)));
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                      (st.st_mode & 0777) | S_IRUSR | S_IWUSR));
  if (out.get() < 0) return ErrnoStatus("cannot create " + dest, errno);
  TY_RETURN_IF_ERROR(CopyFd(in.get(), out.get(), src, dest));
  if (out.Close() != 0) return ErrnoStatus("cannot write " + dest, errno);
  return Status::Ok();
}

using FileVisitor =
    std::function<Status(const std::string& rel, const std::string& abs, const struct stat& st)>;

// Calls `visit` for every regular file under directory `root`, with its path relative to root.
// A symlink is followed only when it resolves within `allowed` and to a regular file; temp
// files of in-flight uploads and special files are skipped.
Status WalkFiles(const std::string& root, const std::vector<std::string>& allowed,
                 const FileVisitor& visit) {
  std::error_code ec;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  if (ec) return IoError("cannot list " + root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return IoError("cannot list " + root + ": " + ec.message());
    const std::string abs = it->path().string();
    std::string rel = it->path().lexically_relative(root).string();
    if (IsTempName(it->path().filename().string())) continue;
    struct stat st;
    if (::lstat(abs.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;  // removed while we walked
      return ErrnoStatus("cannot stat " + abs, errno);
    }
    std::string target = abs;
    if (S_ISLNK(st.st_mode)) {
      TY_ASSIGN_OR_RETURN(target, ResolveWithinRoots(abs, allowed));
      if (::stat(target.c_str(), &st) != 0) return ErrnoStatus("cannot stat " + abs, errno);
      if (S_ISDIR(st.st_mode)) {
        return InvalidArgument("symlinked directory " + abs + " is not supported");
      }
    }
    if (!S_ISREG(st.st_mode)) continue;
    TY_RETURN_IF_ERROR(visit(rel, target, st));
  }
  if (ec) return IoError("cannot list " + root + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

FileObjectStore::FileObjectStore(std::vector<std::string> roots) : roots_(std::move(roots)) {}

Result<std::string> FileObjectStore::ResolveUri(const std::string& uri) const {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme != "file") {
    return InvalidArgument("FileObjectStore serves file:// URIs only, got " + uri);
  }
  return ResolveWithinRoots(parsed.path, roots_);
}

Result<std::string> FileObjectStore::Read(const std::string& uri, uint64_t offset,
                                          std::optional<uint64_t> length, uint64_t max_bytes) {
  TY_ASSIGN_OR_RETURN(std::string src, ResolveUri(uri));
  int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return NotFound("no such object " + uri);
    return ErrnoStatus("cannot open " + src, errno);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoStatus("cannot stat " + src, errno);
  if (!S_ISREG(st.st_mode)) return NotFound(uri + " is not an object (not a regular file)");
  const auto size = static_cast<uint64_t>(st.st_size);
  uint64_t want = offset >= size ? 0 : size - offset;
  if (length) want = std::min(want, *length);
  if (want > max_bytes) {
    return ResourceExhausted("reading " + std::to_string(want) + " bytes of " + uri +
                             " exceeds the limit of " + std::to_string(max_bytes) + " bytes");
  }
  std::string out(want, '\0');
  size_t done = 0;
  while (done < want) {
    ssize_t n = ::pread(fd, out.data() + done, want - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read " + src, errno);
    }
    if (n == 0) break;  // truncated since fstat
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Status FileObjectStore::DownloadPrefix(const std::string& uri, const std::string& local_dir) {
  TY_ASSIGN_OR_RETURN(std::string src, ResolveUri(uri));
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return NotFound("No objects found under " + uri);
    return ErrnoStatus("cannot stat " + src, errno);
  }
  TY_RETURN_IF_ERROR(MakeDirs(local_dir));
  TY_ASSIGN_OR_RETURN(std::string dest_root, RealPath(local_dir));
  const std::vector<std::string> dest_roots = {dest_root};
  auto copy = [&](const std::string& rel, const std::string& from) -> Status {
    // A pre-existing symlink inside local_dir must not redirect the copy elsewhere.
    TY_ASSIGN_OR_RETURN(std::string to, ResolveWithinRoots(JoinPath(dest_root, rel), dest_roots));
    return CopyFileInto(from, to);
  };
  if (S_ISREG(st.st_mode)) {
    TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
    return copy(BaseName(parsed.path), src);
  }
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(uri + " is neither a file nor a directory");
  size_t files = 0;
  TY_RETURN_IF_ERROR(
      WalkFiles(src, roots_,
                [&](const std::string& rel, const std::string& abs, const struct stat&) -> Status {
                  ++files;
                  return copy(rel, abs);
                }));
  if (files == 0) return NotFound("No objects found under " + uri);
  return Status::Ok();
}

Status FileObjectStore::DownloadFile(const std::string& uri, const std::string& local_path) {
  TY_ASSIGN_OR_RETURN(std::string src, ResolveUri(uri));
  struct stat st;
  if (::stat(src.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return NotFound("no such object " + uri);
    return ErrnoStatus("cannot stat " + src, errno);
  }
  if (!S_ISREG(st.st_mode)) return NotFound(uri + " is not an object (not a regular file)");
  if (local_path.empty() || local_path.back() == '/') {
    return InvalidArgument("destination " + local_path + " names a directory, not a file");
  }
  return CopyFileAtomic(src, Absolutize(local_path, CurrentDir()), nullptr, nullptr,
                        /*durable=*/false);
}

Status FileObjectStore::UploadFile(const std::string& local_file, const std::string& uri) {
  return UploadFileIf(local_file, uri, nullptr);
}

Status FileObjectStore::UploadFileIf(const std::string& local_file, const std::string& uri,
                                     const std::function<bool()>& still_valid) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (!parsed.path.empty() && parsed.path.back() == '/') {
    return InvalidArgument("object URI " + uri + " ends in '/' (it names a directory)");
  }
  TY_ASSIGN_OR_RETURN(std::string dest, ResolveUri(uri));
  return CopyFileAtomic(local_file, dest, still_valid, nullptr);
}

Status FileObjectStore::UploadDirectory(const std::string& local_dir, const std::string& uri) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme != "file") {
    return InvalidArgument("FileObjectStore serves file:// URIs only, got " + uri);
  }
  TY_ASSIGN_OR_RETURN(std::string local_root, RealPath(local_dir));
  struct stat st;
  if (::stat(local_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument(local_dir + " is not a directory");
  }
  TY_RETURN_IF_ERROR(ResolveUri(uri).status());
  std::set<std::string> dirs_to_sync;
  Status walked =
      WalkFiles(local_root, {local_root},
                [&](const std::string& rel, const std::string& abs, const struct stat&) {
                  // Resolved per file: a symlink inside the destination tree could point
                  // outside the roots.
                  TY_ASSIGN_OR_RETURN(std::string dest,
                                      ResolveWithinRoots(JoinPath(parsed.path, rel), roots_));
                  return CopyFileAtomic(abs, dest, nullptr, &dirs_to_sync);
                });
  // Even after a failure: what was renamed into place should stay there.
  for (const std::string& dir : dirs_to_sync) FsyncDir(dir);
  return walked;
}

Status FileObjectStore::Delete(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  TY_RETURN_IF_ERROR(ResolveUri(uri).status());
  // Remove the named entry itself (a symlink is unlinked, not its target), found through its
  // resolved parent so the removal cannot be redirected outside the roots.
  std::string lexical = fs::path(parsed.path).lexically_normal().string();
  while (lexical.size() > 1 && lexical.back() == '/') lexical.pop_back();
  TY_ASSIGN_OR_RETURN(std::string parent, ResolveWithinRoots(DirName(lexical), roots_));
  std::string victim = JoinPath(parent, BaseName(lexical));
  for (const std::string& root : roots_) {
    Result<std::string> r = ResolveWithinRoots(root, {root});
    if (lexical == "/" || (r.ok() && (*r == victim || IsWithin(victim, *r)))) {
      return InvalidArgument("refusing to delete " + uri + ": it is (or contains) an allowed root");
    }
  }
  return RemoveAll(victim);
}

Status FileObjectStore::DeleteObjects(const std::string& base_uri,
                                      const std::vector<std::string>& keys) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(base_uri));
  if (parsed.scheme != "file") {
    return InvalidArgument("FileObjectStore serves file:// URIs only, got " + base_uri);
  }
  for (const std::string& key : keys) TY_RETURN_IF_ERROR(CheckObjectKey(key));
  // Keys come sorted from List, so most share their directory: resolve each directory once.
  // Only the leaf is unlinked, through its resolved parent, so neither a symlinked directory
  // nor a key can reach outside the roots, and unlink(2) never removes a directory (a root).
  std::map<std::string, std::string> resolved_dirs;
  for (const std::string& key : keys) {
    size_t slash = key.rfind('/');
    std::string dir_rel = slash == std::string::npos ? "" : key.substr(0, slash);
    auto it = resolved_dirs.find(dir_rel);
    if (it == resolved_dirs.end()) {
      TY_ASSIGN_OR_RETURN(std::string dir,
                          ResolveWithinRoots(JoinPath(parsed.path, dir_rel), roots_));
      it = resolved_dirs.emplace(dir_rel, std::move(dir)).first;
    }
    std::string victim = JoinPath(it->second, key.substr(slash + 1));
    if (::unlink(victim.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR && errno != EISDIR) {
      return ErrnoStatus("cannot delete " + victim, errno);
    }
  }
  return Status::Ok();
}

Result<std::vector<ObjectInfo>> FileObjectStore::List(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(std::string path, ResolveUri(uri));
  std::vector<ObjectInfo> out;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return out;
    return ErrnoStatus("cannot stat " + path, errno);
  }
  if (S_ISREG(st.st_mode)) {
    TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
    out.push_back({BaseName(parsed.path), static_cast<uint64_t>(st.st_size), MTime(st)});
    return out;
  }
  TY_RETURN_IF_ERROR(WalkFiles(
      path, roots_, [&](const std::string& rel, const std::string&, const struct stat& fst) {
        out.push_back({rel, static_cast<uint64_t>(fst.st_size), MTime(fst)});
        return Status::Ok();
      }));
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::string> FileObjectStore::ResolveLocalPath(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(std::string path, ResolveUri(uri));
  if (!PathExists(path)) return NotFound("No objects found under " + uri);
  return path;
}

}  // namespace ty::storage
