#include "storage/s3_object_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <limits>
#include <semaphore>
#include <thread>
#include <utility>

#include "common/fs.h"
#include "common/mutex.h"
#include "storage/uri.h"

namespace ty::storage {
namespace {

namespace fs = std::filesystem;

constexpr char kTempMarker[] = ".ty-tmp-";     // same hidden temp names as FileObjectStore
constexpr uint64_t kMinPartSize = 5ull << 20;  // S3's minimum for every part but the last
constexpr uint64_t kMaxParts = 10000;
constexpr uint64_t kReadIntoMemoryBelow = 1ull << 20;  // one pread beats two passes
constexpr size_t kDeleteBatch = 1000;

bool IsTempName(const std::string& name) {
  return !name.empty() && name[0] == '.' && name.find(kTempMarker) != std::string::npos;
}

std::string BaseName(const std::string& key) {
  size_t slash = key.rfind('/');
  return slash == std::string::npos ? key : key.substr(slash + 1);
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The key of `rel` below the URI key `base` ("" is the bucket; "p/" a prefix; "p" a directory).
std::string JoinKey(const std::string& base, const std::string& rel) {
  if (base.empty()) return rel;
  if (base.back() == '/') return base + rel;
  return base + "/" + rel;
}

struct S3Uri {
  std::string bucket;
  std::string key;
};

Result<S3Uri> ParseS3(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(StorageUri parsed, ParseStorageUri(uri));
  if (parsed.scheme != "s3") {
    return InvalidArgument("S3ObjectStore serves s3:// URIs only, got " + uri);
  }
  return S3Uri{parsed.bucket, parsed.key};
}

Result<S3Uri> ParseS3Object(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(uri));
  if (u.key.empty()) return InvalidArgument("S3 URI " + uri + " names a bucket, not an object");
  if (u.key.back() == '/') {
    return InvalidArgument("object URI " + uri + " ends in '/' (it names a prefix)");
  }
  return u;
}

// A relative key must stay inside the directory it is copied into.
Status CheckRelativeKey(const std::string& rel, const std::string& full_key) {
  if (rel.empty() || rel.front() == '/') {
    return InvalidArgument("S3 key '" + full_key +
                           "' would land outside the destination directory");
  }
  size_t start = 0;
  while (start <= rel.size()) {
    size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string_view part(rel.data() + start, end - start);
    if (part == "..") {
      return InvalidArgument("S3 key '" + full_key +
                             "' would land outside the destination directory ('..')");
    }
    start = end + 1;
  }
  return Status::Ok();
}

uint64_t PartSizeFor(uint64_t size, uint64_t configured) {
  uint64_t part = std::max(configured, kMinPartSize);
  if ((size + part - 1) / part > kMaxParts) {
    part = (size + kMaxParts - 1) / kMaxParts;
    part = (part + (1 << 20) - 1) & ~static_cast<uint64_t>((1 << 20) - 1);  // whole MiB
  }
  return part;
}

Result<UniqueFd> OpenForUpload(const std::string& path, struct stat* st) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound("no such file " + path);
    return ErrnoStatus("cannot open " + path, errno);
  }
  if (::fstat(fd.get(), st) != 0) return ErrnoStatus("cannot stat " + path, errno);
  if (!S_ISREG(st->st_mode)) return InvalidArgument(path + " is not a regular file");
  return fd;
}

Result<std::string> ReadAll(int fd, uint64_t size, const std::string& path) {
  std::string data(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, data.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("cannot read " + path, errno);
    }
    if (n == 0) return IoError(path + " shrank while it was read");
    done += static_cast<uint64_t>(n);
  }
  return data;
}

// Counts the outstanding work of one public call and keeps its first error. With a limit, Add
// blocks while that many units are outstanding (bounds open files and queued tasks).
class TaskGroup {
 public:
  explicit TaskGroup(int limit = 0) : limit_(limit) {}

  void Add() {
    MutexLock lock(&mu_);
    while (limit_ > 0 && pending_ >= limit_) cv_.Wait(&mu_);
    ++pending_;
  }
  void Done(const Status& s) {
    MutexLock lock(&mu_);
    if (!s.ok() && first_.ok()) {
      first_ = s;
      failed_.store(true);
    }
    --pending_;
    cv_.SignalAll();
  }
  Status Wait() {
    MutexLock lock(&mu_);
    while (pending_ != 0) cv_.Wait(&mu_);
    return first_;
  }
  bool failed() const { return failed_.load(); }
  void Fail(const Status& s) {
    MutexLock lock(&mu_);
    if (first_.ok()) first_ = s;
    failed_.store(true);
  }

 private:
  const int limit_;
  Mutex mu_;
  CondVar cv_;
  int pending_ TY_GUARDED_BY(mu_) = 0;
  Status first_ TY_GUARDED_BY(mu_);
  std::atomic<bool> failed_{false};
};

}  // namespace

// The store's transfer threads (started on demand, up to max_concurrency) and the request gate
// that keeps at most max_concurrency requests in flight, whichever thread makes them. Tasks are
// leaves: they never wait for other tasks, so the pool cannot deadlock; the continuation of a
// file (its parts) is queued at the front so files finish before new ones start.
class S3ObjectStore::Pool {
 public:
  explicit Pool(int threads) : max_threads_(std::max(1, threads)), gate_(max_threads_) {}

  ~Pool() {
    std::vector<std::thread> threads;
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      threads.swap(threads_);
    }
    cv_.SignalAll();
    for (std::thread& t : threads) t.join();
  }

  void Submit(std::function<void()> task, bool urgent = false) {
    {
      MutexLock lock(&mu_);
      if (urgent) {
        queue_.push_front(std::move(task));
      } else {
        queue_.push_back(std::move(task));
      }
      if (static_cast<int>(queue_.size()) > idle_ &&
          static_cast<int>(threads_.size()) < max_threads_) {
        threads_.emplace_back([this] { Run(); });
      }
    }
    cv_.Signal();
  }

  // Runs `fn` (one S3 request) holding a request slot.
  template <typename Fn>
  auto Request(Fn&& fn) {
    gate_.acquire();
    struct Release {
      std::counting_semaphore<>* g;
      ~Release() { g->release(); }
    } release{&gate_};
    return fn();
  }

 private:
  void Run() {
    MutexLock lock(&mu_);
    for (;;) {
      ++idle_;
      while (!stopping_ && queue_.empty()) cv_.Wait(&mu_);
      --idle_;
      if (queue_.empty()) return;  // stopping
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      lock.Unlock();
      task();
      lock.Lock();
    }
  }

  const int max_threads_;
  std::counting_semaphore<> gate_;
  Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> queue_ TY_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ TY_GUARDED_BY(mu_);
  int idle_ TY_GUARDED_BY(mu_) = 0;  // threads waiting for work
  bool stopping_ TY_GUARDED_BY(mu_) = false;
};

struct S3ObjectStore::Listed {
  S3ListEntry entry;  // full key
  std::string rel;    // relative to the listed URI
};

namespace {

// One file being downloaded in parts: shared by its part tasks; the last to finish commits.
struct Download {
  std::string bucket;
  std::string key;
  std::string dest;
  std::string tmp;
  UniqueFd fd;
  Mutex mu;
  int parts_left TY_GUARDED_BY(mu) = 0;
  Status status TY_GUARDED_BY(mu);          // the first failure
  std::function<void(const Status&)> done;  // reports the file's outcome (once)

  void Fail(const Status& s) {
    MutexLock lock(&mu);
    if (status.ok()) status = s;
  }

  // Closes, then renames into place or removes the temp file.
  void Finish() {
    Status s;
    {
      MutexLock lock(&mu);
      s = status;
    }
    if (s.ok() && fd.Close() != 0) s = ErrnoStatus("cannot write " + tmp, errno);
    fd.Reset();
    if (s.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
      s = ErrnoStatus("cannot rename " + tmp + " to " + dest, errno);
    }
    if (!s.ok()) ::unlink(tmp.c_str());
    done(s);
  }
};

// Reserves `size` bytes for a file the ranges will be written into, so a full disk fails the
// download before any byte is fetched; file systems without fallocate(2) get a sparse file.
Status Preallocate(int fd, uint64_t size, const std::string& path) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return Status::Ok();
  if (errno != EOPNOTSUPP && errno != ENOSYS) return ErrnoStatus("cannot allocate " + path, errno);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    return ErrnoStatus("cannot size " + path, errno);
  }
  return Status::Ok();
}

// Creates the hidden temp file beside `dest` (parents created).
Status CreateTemp(Download* d) {
  std::string dir = DirName(d->dest);
  TY_RETURN_IF_ERROR(MakeDirs(dir));
  std::string tmpl = JoinPath(dir, "." + BaseName(d->dest) + kTempMarker + "XXXXXX");
  UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus("cannot create a temporary file in " + dir, errno);
  ::fchmod(fd.get(), 0644);
  d->tmp = tmpl;
  d->fd = std::move(fd);
  return Status::Ok();
}

// One multipart upload in flight: shared by its part tasks; the last to finish completes or
// aborts it.
struct Upload {
  std::string bucket;
  std::string key;
  std::string path;
  UniqueFd fd;
  uint64_t size = 0;
  uint64_t part_size = 0;
  std::string upload_id;
  std::function<bool()> still_valid;
  Mutex mu;
  std::vector<S3CompletedPart> parts TY_GUARDED_BY(mu);
  int parts_left TY_GUARDED_BY(mu) = 0;
  Status status TY_GUARDED_BY(mu);  // the first failure
  std::function<void(const Status&)> done;
};

}  // namespace

S3ObjectStore::S3ObjectStore(S3Settings settings, S3ClientOptions client_options)
    : settings_(std::move(settings)),
      client_(std::make_unique<S3Client>(settings_, std::move(client_options))),
      pool_(std::make_unique<Pool>(settings_.max_concurrency)) {}

S3ObjectStore::~S3ObjectStore() = default;

Result<std::vector<S3ObjectStore::Listed>> S3ObjectStore::ListUnder(const std::string& bucket,
                                                                    const std::string& key,
                                                                    bool include_markers) {
  std::vector<Listed> out;
  auto add_all = [&](const std::string& prefix) -> Status {
    S3ListOptions options;
    options.prefix = prefix;
    return client_->ListObjectsV2Pages(bucket, options, [&](S3ListPage& page) {
      for (S3ListEntry& e : page.objects) {
        if (!e.key.starts_with(prefix)) continue;
        std::string rel = e.key.substr(prefix.size());
        if (!include_markers && (rel.empty() || rel.back() == '/')) continue;
        out.push_back({std::move(e), std::move(rel)});
      }
      return Status::Ok();
    });
  };
  if (key.empty() || key.back() == '/') {
    TY_RETURN_IF_ERROR(pool_->Request([&] { return add_all(key); }));
    return out;
  }
  // The object `key` itself sorts before every other key that starts with it, so the first
  // entry of a one-key listing is it when it exists.
  S3ListOptions one;
  one.prefix = key;
  one.max_keys = 1;
  TY_ASSIGN_OR_RETURN(S3ListPage first,
                      pool_->Request([&] { return client_->ListObjectsV2(bucket, one); }));
  if (!first.objects.empty() && first.objects.front().key == key) {
    S3ListEntry e = std::move(first.objects.front());
    out.push_back({std::move(e), BaseName(key)});
  }
  TY_RETURN_IF_ERROR(pool_->Request([&] { return add_all(key + "/"); }));
  return out;
}

Result<std::vector<ObjectInfo>> S3ObjectStore::List(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(uri));
  TY_ASSIGN_OR_RETURN(std::vector<Listed> listed, ListUnder(u.bucket, u.key, false));
  std::vector<ObjectInfo> out;
  out.reserve(listed.size());
  for (Listed& l : listed) {
    out.push_back({std::move(l.rel), l.entry.size, l.entry.last_modified, std::move(l.entry.etag)});
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Result<std::string> S3ObjectStore::Read(const std::string& uri, uint64_t offset,
                                        std::optional<uint64_t> length, uint64_t max_bytes) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3Object(uri));
  if (length && *length > max_bytes) {
    return ResourceExhausted("reading " + std::to_string(*length) + " bytes of " + uri +
                             " exceeds the limit of " + std::to_string(max_bytes) + " bytes");
  }
  if (length && *length == 0) return std::string();
  S3GetOptions o;
  if (length) {
    o.range = std::make_pair(offset, *length);
  } else if (offset > 0) {
    o.range = std::make_pair(offset, std::numeric_limits<uint64_t>::max() - offset);
  }
  o.on_headers = [&](const S3ObjectMeta& meta) -> Status {
    uint64_t avail = offset >= meta.size ? 0 : meta.size - offset;
    if (!length && avail > max_bytes) {
      return ResourceExhausted("reading " + std::to_string(avail) + " bytes of " + uri +
                               " exceeds the limit of " + std::to_string(max_bytes) + " bytes");
    }
    return Status::Ok();
  };
  Result<std::string> r = client_->GetObjectToString(u.bucket, u.key, o);
  if (!r.ok() && o.range && r.status().message().find("InvalidRange") != std::string::npos) {
    return std::string();  // the range starts at or past the end of the object
  }
  return r;
}

Result<std::string> S3ObjectStore::ResolveLocalPath(const std::string& uri) {
  return FailedPrecondition("s3:// objects have no local path (" + uri + ")");
}

// ---- Downloads ----

namespace {

// Schedules the ranged GETs [from, size) of `d` on `pool` (front of the queue); the last one to
// finish commits the file.
template <typename PoolT>
void ScheduleRanges(PoolT* pool, S3Client* client, const std::shared_ptr<Download>& d,
                    uint64_t from, uint64_t size, uint64_t part_size, const std::string& etag,
                    const TaskGroup* group) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (uint64_t off = from; off < size; off += part_size) {
    ranges.emplace_back(off, std::min(part_size, size - off));
  }
  {
    MutexLock lock(&d->mu);
    d->parts_left += static_cast<int>(ranges.size());
  }
  for (const auto& r : ranges) {
    pool->Submit(
        [pool, client, d, r, etag, group] {
          bool skip;
          {
            MutexLock lock(&d->mu);
            skip = !d->status.ok() || (group != nullptr && group->failed());
          }
          if (!skip) {
            S3GetOptions o;
            o.range = r;
            o.if_match = etag;
            Result<S3ObjectMeta> got = pool->Request([&] {
              return client->GetObjectToFile(d->bucket, d->key, o, d->fd.get(), r.first);
            });
            if (!got.ok()) d->Fail(got.status());
          }
          bool last;
          {
            MutexLock lock(&d->mu);
            last = --d->parts_left == 0;
          }
          if (last) d->Finish();
        },
        /*urgent=*/true);
  }
}

}  // namespace

Status S3ObjectStore::DownloadFile(const std::string& uri, const std::string& local_path) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3Object(uri));
  auto d = std::make_shared<Download>();
  d->bucket = u.bucket;
  d->key = u.key;
  d->dest = local_path;
  TY_RETURN_IF_ERROR(CreateTemp(d.get()));
  TaskGroup group;
  group.Add();
  d->done = [&group](const Status& s) { group.Done(s); };
  // The first request asks for up to multipart_threshold bytes: a smaller object arrives whole
  // (and is MD5-checked); for a larger one the remaining ranges start as soon as its headers
  // say how large it is, while the first range is still streaming.
  const uint64_t first_len = std::max<uint64_t>(settings_.multipart_threshold, 1);
  const uint64_t part = std::max<uint64_t>(settings_.part_size, 1 << 20);
  {
    MutexLock lock(&d->mu);
    d->parts_left = 1;
  }
  S3GetOptions o;
  o.range = std::make_pair(uint64_t{0}, first_len);
  o.on_headers = [&](const S3ObjectMeta& meta) -> Status {
    if (meta.size > first_len) {
      TY_RETURN_IF_ERROR(Preallocate(d->fd.get(), meta.size, d->tmp));
      ScheduleRanges(pool_.get(), client_.get(), d, first_len, meta.size, part, meta.etag, nullptr);
    }
    return Status::Ok();
  };
  Result<S3ObjectMeta> first =
      pool_->Request([&] { return client_->GetObjectToFile(u.bucket, u.key, o, d->fd.get(), 0); });
  if (!first.ok()) d->Fail(first.status());
  bool last;
  {
    MutexLock lock(&d->mu);
    last = --d->parts_left == 0;
  }
  if (last) d->Finish();
  return group.Wait();
}

Status S3ObjectStore::DownloadPrefix(const std::string& uri, const std::string& local_dir) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(uri));
  TY_ASSIGN_OR_RETURN(std::vector<Listed> listed, ListUnder(u.bucket, u.key, false));
  if (listed.empty()) return NotFound("No S3 objects found under S3 URL " + uri);
  for (const Listed& l : listed) TY_RETURN_IF_ERROR(CheckRelativeKey(l.rel, l.entry.key));
  TY_RETURN_IF_ERROR(MakeDirs(local_dir));
  TY_ASSIGN_OR_RETURN(std::string dest_root, RealPath(local_dir));
  const std::vector<std::string> dest_roots = {dest_root};

  const uint64_t threshold = std::max<uint64_t>(settings_.multipart_threshold, 1);
  const uint64_t part = std::max<uint64_t>(settings_.part_size, 1 << 20);
  TaskGroup group(2 * std::max(1, settings_.max_concurrency));
  for (const Listed& l : listed) {
    if (group.failed()) break;
    // A symlink already in local_dir must not redirect the copy elsewhere.
    Result<std::string> dest = ResolveWithinRoots(JoinPath(dest_root, l.rel), dest_roots);
    if (!dest.ok()) {
      group.Fail(dest.status());
      break;
    }
    group.Add();
    auto d = std::make_shared<Download>();
    d->bucket = u.bucket;
    d->key = l.entry.key;
    d->dest = *dest;
    d->done = [&group](const Status& s) { group.Done(s); };
    const uint64_t size = l.entry.size;
    const std::string etag = l.entry.etag;
    pool_->Submit([this, d, size, etag, threshold, part, &group] {
      if (group.failed()) {
        d->done(Status::Ok());
        return;
      }
      Status s = CreateTemp(d.get());
      if (!s.ok()) {
        d->done(s);
        return;
      }
      if (size >= threshold) {
        Status sized = Preallocate(d->fd.get(), size, d->tmp);
        if (!sized.ok()) {
          d->Fail(sized);
          d->Finish();
          return;
        }
        ScheduleRanges(pool_.get(), client_.get(), d, 0, size, part, etag, &group);
        return;
      }
      Result<S3ObjectMeta> got = pool_->Request([&] {
        return client_->GetObjectToFile(d->bucket, d->key, S3GetOptions(), d->fd.get(), 0);
      });
      if (!got.ok()) d->Fail(got.status());
      d->Finish();
    });
  }
  return group.Wait();
}

// ---- Uploads ----

namespace {

template <typename PoolT>
void FinishUpload(PoolT* pool, S3Client* client, const std::shared_ptr<Upload>& up) {
  Status s;
  std::vector<S3CompletedPart> parts;
  {
    MutexLock lock(&up->mu);
    s = up->status;
    parts = up->parts;
  }
  if (s.ok() && up->still_valid && !up->still_valid()) {
    s = Unavailable(up->path + " changed while it was uploaded; not stored");
  }
  if (s.ok()) {
    Result<std::string> etag = pool->Request(
        [&] { return client->CompleteMultipartUpload(up->bucket, up->key, up->upload_id, parts); });
    s = etag.status();
  }
  if (!s.ok()) {
    // Best effort: a failure here leaves parts a bucket lifecycle rule must clean up.
    (void)pool->Request(
        [&] { return client->AbortMultipartUpload(up->bucket, up->key, up->upload_id); });
  }
  up->fd.Reset();
  up->done(s);
}

struct UploadJob {
  std::string local_file;
  std::string bucket;
  std::string key;
  std::function<bool()> still_valid;
  std::function<void(const Status&)> done;
};

// Uploads job.local_file as s3://bucket/key and calls job.done exactly once with the outcome.
// The first step (open; the PUT of a small file, or CreateMultipartUpload) runs on the calling
// thread; the parts of a large file run on the pool, and the last one to finish completes (or
// aborts) the upload there. `group` (may be null) cancels parts not yet started when it fails.
template <typename PoolT>
void StartUpload(PoolT* pool, S3Client* client, const S3Settings& settings, UploadJob job,
                 const TaskGroup* group) {
  struct stat st;
  Result<UniqueFd> opened = OpenForUpload(job.local_file, &st);
  if (!opened.ok()) {
    job.done(opened.status());
    return;
  }
  UniqueFd fd = std::move(opened).value();
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const uint64_t threshold = std::max<uint64_t>(settings.multipart_threshold, 1);

  if (size < threshold) {
    Status s;
    if (size < kReadIntoMemoryBelow || job.still_valid) {
      // Validated bytes are exactly the bytes sent.
      Result<std::string> data = ReadAll(fd.get(), size, job.local_file);
      if (!data.ok()) {
        job.done(data.status());
        return;
      }
      if (job.still_valid && !job.still_valid()) {
        job.done(Unavailable(job.local_file + " changed while it was uploaded; not stored"));
        return;
      }
      s = pool->Request(
                  [&] { return client->PutObject(job.bucket, job.key, S3Body::Memory(*data)); })
              .status();
    } else {
      s = pool->Request([&] {
                return client->PutObject(job.bucket, job.key, S3Body::FileRange(fd.get(), 0, size));
              })
              .status();
    }
    job.done(s);
    return;
  }

  auto up = std::make_shared<Upload>();
  up->bucket = job.bucket;
  up->key = job.key;
  up->path = job.local_file;
  up->fd = std::move(fd);
  up->size = size;
  up->part_size = PartSizeFor(size, settings.part_size);
  up->still_valid = std::move(job.still_valid);
  up->done = std::move(job.done);
  Result<std::string> id =
      pool->Request([&] { return client->CreateMultipartUpload(up->bucket, up->key); });
  if (!id.ok()) {
    up->done(id.status());
    return;
  }
  up->upload_id = *id;
  const int nparts = static_cast<int>((size + up->part_size - 1) / up->part_size);
  {
    MutexLock lock(&up->mu);  // not shared yet, but the analysis cannot know that
    up->parts.resize(static_cast<size_t>(nparts));
    up->parts_left = nparts;
  }
  for (int i = 0; i < nparts; ++i) {
    pool->Submit(
        [pool, client, up, i, group] {
          bool skip;
          {
            MutexLock lock(&up->mu);
            skip = !up->status.ok() || (group != nullptr && group->failed());
          }
          if (!skip) {
            const uint64_t off = static_cast<uint64_t>(i) * up->part_size;
            const uint64_t len = std::min(up->part_size, up->size - off);
            Result<std::string> etag = pool->Request([&] {
              return client->UploadPart(up->bucket, up->key, up->upload_id, i + 1,
                                        S3Body::FileRange(up->fd.get(), off, len));
            });
            MutexLock lock(&up->mu);
            if (etag.ok()) {
              up->parts[static_cast<size_t>(i)] = {i + 1, *etag};
            } else if (up->status.ok()) {
              up->status = etag.status();
            }
          } else {
            MutexLock lock(&up->mu);
            if (up->status.ok()) up->status = Unavailable("upload of " + up->path + " cancelled");
          }
          bool last;
          {
            MutexLock lock(&up->mu);
            last = --up->parts_left == 0;
          }
          if (last) FinishUpload(pool, client, up);
        },
        /*urgent=*/true);
  }
}

}  // namespace

Status S3ObjectStore::UploadFile(const std::string& local_file, const std::string& uri) {
  return UploadFileIf(local_file, uri, nullptr);
}

Status S3ObjectStore::UploadFileIf(const std::string& local_file, const std::string& uri,
                                   const std::function<bool()>& still_valid) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3Object(uri));
  TaskGroup group;
  group.Add();
  UploadJob job{local_file, u.bucket, u.key, still_valid,
                [&group](const Status& s) { group.Done(s); }};
  StartUpload(pool_.get(), client_.get(), settings_, std::move(job), nullptr);
  return group.Wait();
}

Status S3ObjectStore::UploadDirectory(const std::string& local_dir, const std::string& uri) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(uri));
  TY_ASSIGN_OR_RETURN(std::string local_root, RealPath(local_dir));
  struct stat st;
  if (::stat(local_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return InvalidArgument(local_dir + " is not a directory");
  }
  // Walk first: a refused symlink fails the call before anything is stored.
  std::vector<std::pair<std::string, std::string>> files;  // rel, absolute source
  std::error_code ec;
  fs::recursive_directory_iterator it(local_root, fs::directory_options::none, ec);
  if (ec) return IoError("cannot list " + local_root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return IoError("cannot list " + local_root + ": " + ec.message());
    const std::string abs = it->path().string();
    if (IsTempName(it->path().filename().string())) continue;
    struct stat lst;
    if (::lstat(abs.c_str(), &lst) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus("cannot stat " + abs, errno);
    }
    std::string target = abs;
    if (S_ISLNK(lst.st_mode)) {
      TY_ASSIGN_OR_RETURN(target, ResolveWithinRoots(abs, {local_root}));
      if (::stat(target.c_str(), &lst) != 0) return ErrnoStatus("cannot stat " + abs, errno);
      if (S_ISDIR(lst.st_mode)) {
        return InvalidArgument("symlinked directory " + abs + " is not supported");
      }
    }
    if (!S_ISREG(lst.st_mode)) continue;
    files.emplace_back(it->path().lexically_relative(local_root).string(), target);
  }
  if (ec) return IoError("cannot list " + local_root + ": " + ec.message());

  TaskGroup group(2 * std::max(1, settings_.max_concurrency));
  for (auto& [rel, abs] : files) {
    if (group.failed()) break;
    group.Add();
    UploadJob job{abs, u.bucket, JoinKey(u.key, rel), nullptr,
                  [&group](const Status& s) { group.Done(s); }};
    Pool* pool = pool_.get();
    S3Client* client = client_.get();
    const S3Settings* settings = &settings_;
    const TaskGroup* g = &group;
    pool_->Submit([pool, client, settings, g, job = std::move(job)]() mutable {
      if (g->failed()) {
        job.done(Status::Ok());
        return;
      }
      StartUpload(pool, client, *settings, std::move(job), g);
    });
  }
  return group.Wait();
}

// ---- Deletes ----

namespace {

Status DeleteErrorsStatus(const std::string& bucket, const std::vector<S3DeleteError>& errors) {
  std::string msg = "S3 refused to delete " + std::to_string(errors.size()) + " object(s) in " +
                    "bucket '" + bucket + "':";
  bool denied = false;
  for (size_t i = 0; i < errors.size() && i < 5; ++i) {
    msg += " " + errors[i].key + " (" + errors[i].code + ")";
    if (errors[i].code == "AccessDenied") denied = true;
  }
  if (errors.size() > 5) msg += " ...";
  return denied ? Status(StatusCode::kPermissionDenied, msg) : IoError(msg);
}

}  // namespace

Status S3ObjectStore::DeleteObjects(const std::string& base_uri,
                                    const std::vector<std::string>& keys) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(base_uri));
  if (keys.empty()) return Status::Ok();
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const std::string& k : keys) full.push_back(JoinKey(u.key, k));
  TaskGroup group;
  for (size_t start = 0; start < full.size(); start += kDeleteBatch) {
    group.Add();
    std::vector<std::string> batch(
        full.begin() + static_cast<ptrdiff_t>(start),
        full.begin() + static_cast<ptrdiff_t>(std::min(full.size(), start + kDeleteBatch)));
    pool_->Submit([this, &group, bucket = u.bucket, batch = std::move(batch)] {
      if (group.failed()) {
        group.Done(Status::Ok());
        return;
      }
      Result<std::vector<S3DeleteError>> r =
          pool_->Request([&] { return client_->DeleteObjects(bucket, batch); });
      if (!r.ok()) {
        group.Done(r.status());
      } else if (!r->empty()) {
        group.Done(DeleteErrorsStatus(bucket, *r));
      } else {
        group.Done(Status::Ok());
      }
    });
  }
  return group.Wait();
}

Status S3ObjectStore::Delete(const std::string& uri) {
  TY_ASSIGN_OR_RETURN(S3Uri u, ParseS3(uri));
  TY_ASSIGN_OR_RETURN(std::vector<Listed> listed, ListUnder(u.bucket, u.key, true));
  if (listed.empty()) return Status::Ok();
  std::vector<std::string> keys;
  keys.reserve(listed.size());
  for (Listed& l : listed) keys.push_back(std::move(l.entry.key));
  // Full keys: delete relative to the bucket.
  return DeleteObjects("s3://" + u.bucket, keys);
}

}  // namespace ty::storage
