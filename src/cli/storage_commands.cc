#include "cli/storage_commands.h"

#include <sys/stat.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <optional>
#include <set>
#include <vector>

#include "common/fs.h"
#include "storage/object_stores.h"
#include "storage/s3_client.h"
#include "storage/s3_settings.h"
#include "storage/tree_sync.h"
#include "storage/uri.h"

namespace ty::cli {
namespace {

using storage::ObjectInfo;
using storage::ObjectStore;
using storage::StorageUri;

// One command-line location: a store URI (s3:// or file://) or a local path.
struct Location {
  std::string text;  // as the user wrote it
  std::optional<StorageUri> uri;
  bool is_s3() const { return uri && uri->scheme == "s3"; }
  bool is_file_uri() const { return uri && uri->scheme == "file"; }
};

// "scheme://..." is a URI (an unknown scheme is an error, not a local path named "ftp:").
Result<Location> Classify(const std::string& arg) {
  Location loc{arg, std::nullopt};
  size_t colon = arg.find("://");
  bool scheme_like = colon != std::string::npos && colon > 0;
  for (size_t i = 0; scheme_like && i < colon; ++i) {
    char c = arg[i];
    scheme_like = std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  }
  if (scheme_like) {
    TY_ASSIGN_OR_RETURN(StorageUri parsed, storage::ParseStorageUri(arg));
    loc.uri = std::move(parsed);
  }
  if (arg.empty()) return InvalidArgument("empty path");
  return loc;
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[unit]);
  }
  return buf;
}

// "2026-01-31 12:34:56" in local time, as `aws s3 ls` prints LastModified.
std::string LocalTime(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Prints an error the way every storage subcommand does; returns `code`.
int Fail(std::ostream& err, const std::string& command, const std::string& message, int code) {
  err << "trainyard storage " << command << ": " << message << "\n";
  return code;
}

// The stores for one command: file:// anywhere on this machine, s3:// with settings resolved
// like the AWS CLI's (only when an s3:// URI is involved, so a broken ~/.aws file does not
// get in the way of a file:// copy).
class Stores {
 public:
  static Result<std::unique_ptr<Stores>> Make(const std::vector<Location>& locations,
                                              const std::string& endpoint_url,
                                              const std::string& profile) {
    storage::StorageConfig config;
    config.file_roots = {"/"};
    bool needs_s3 = false;
    for (const Location& l : locations) needs_s3 = needs_s3 || l.is_s3();
    if (needs_s3) {
      TY_ASSIGN_OR_RETURN(storage::S3Settings s3, ResolveSettings(endpoint_url, profile));
      config.s3 = std::move(s3);
    }
    return std::unique_ptr<Stores>(new Stores(std::move(config)));
  }

  static Result<storage::S3Settings> ResolveSettings(const std::string& endpoint_url,
                                                     const std::string& profile) {
    storage::S3SettingsOverrides overrides;
    if (!endpoint_url.empty()) {
      std::string e = endpoint_url;
      while (e.size() > 1 && e.back() == '/') e.pop_back();
      overrides.endpoint = e;
    }
    if (!profile.empty()) overrides.profile = profile;
    return storage::ResolveS3Settings(overrides, storage::ProcessEnv());
  }

  Result<ObjectStore*> For(const std::string& uri) { return stores_.For(uri); }

 private:
  explicit Stores(storage::StorageConfig config) : stores_(std::move(config)) {}
  storage::ObjectStores stores_;
};

// A sync's or cp's two ends once resolved: the local path, and the store URI.
struct Ends {
  bool upload = true;
  std::string local;  // as the user wrote it (a file:// URI's decoded path)
  std::string uri;
};

// Exactly one end must be a store and the other local; a file:// URI facing an s3:// URI
// counts as local. Returns InvalidArgument otherwise.
Result<Ends> ResolveEnds(const Location& src, const Location& dst) {
  auto local_of = [](const Location& l) { return l.uri ? l.uri->path : l.text; };
  if (src.uri && dst.uri) {
    if (src.is_s3() && dst.is_s3()) {
      return InvalidArgument(
          "copying from one s3:// location to another is not supported; "
          "one side must be a local path");
    }
    // file:// to s3:// uploads, s3:// to file:// downloads; file:// to file:// uploads.
    if (dst.is_s3()) return Ends{true, local_of(src), dst.text};
    if (src.is_s3()) return Ends{false, local_of(dst), src.text};
    return Ends{true, local_of(src), dst.text};
  }
  if (!src.uri && !dst.uri) {
    return InvalidArgument("both " + src.text + " and " + dst.text +
                           " are local paths; one side must be an s3:// or file:// URI");
  }
  if (dst.uri) return Ends{true, src.text, dst.text};
  return Ends{false, dst.text, src.text};
}

int RunSync(const Location& src, const Location& dst, const std::string& endpoint_url,
            const std::string& profile, bool delete_extra, bool dry_run, bool quiet, int workers,
            std::ostream& out, std::ostream& err) {
  Result<Ends> ends = ResolveEnds(src, dst);
  if (!ends.ok()) return Fail(err, "sync", ends.status().message(), 2);
  auto stores = Stores::Make({src, dst}, endpoint_url, profile);
  if (!stores.ok()) return Fail(err, "sync", stores.status().message(), 2);
  Result<ObjectStore*> store = (*stores)->For(ends->uri);
  if (!store.ok()) return Fail(err, "sync", store.status().message(), 2);

  storage::TreeSyncOptions options;
  options.direction =
      ends->upload ? storage::SyncDirection::kUpload : storage::SyncDirection::kDownload;
  options.local_dir = ends->local;
  options.uri = ends->uri;
  options.delete_extra = delete_extra;
  options.dry_run = dry_run;
  options.workers = workers;
  options.on_event = [&](const storage::SyncEvent& e) {
    const char* verb = e.action == storage::SyncAction::kUpload     ? "upload"
                       : e.action == storage::SyncAction::kDownload ? "download"
                                                                    : "delete";
    if (!e.status.ok()) {
      err << verb << " failed: "
          << (e.action == storage::SyncAction::kDelete ? e.destination
                                                       : e.source + " to " + e.destination)
          << ": " << e.status.message() << "\n";
      return;
    }
    if (quiet) return;
    if (e.dry_run) out << "(dryrun) ";
    out << verb << ": ";
    if (e.action == storage::SyncAction::kDelete) {
      out << e.destination << "\n";
    } else {
      out << e.source << " to " << e.destination << "\n";
    }
  };
  auto start = std::chrono::steady_clock::now();
  storage::TreeSyncStats stats;
  Status s = storage::SyncTree(**store, options, &stats);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet && (s.ok() || stats.files_copied + stats.files_failed + stats.files_deleted > 0)) {
    char rate[64] = "";
    if (!dry_run && secs > 0 && stats.bytes_copied > 0) {
      std::snprintf(rate, sizeof(rate), ", %s/s",
                    HumanBytes(static_cast<uint64_t>(stats.bytes_copied / secs)).c_str());
    }
    char took[32];
    std::snprintf(took, sizeof(took), "%.2f s", secs);
    out << (dry_run ? "(dryrun) " : "") << "sync: " << stats.files_copied << " file"
        << (stats.files_copied == 1 ? "" : "s") << (dry_run ? " to " : " ")
        << (ends->upload ? "upload" : "download") << (dry_run ? "" : "ed") << " ("
        << HumanBytes(stats.bytes_copied) << "), " << stats.files_deleted
        << (dry_run ? " to delete" : " deleted") << ", " << stats.files_unchanged << " unchanged";
    if (stats.files_failed > 0) out << ", " << stats.files_failed << " failed";
    if (stats.files_skipped > 0) out << ", " << stats.files_skipped << " skipped";
    out << " in " << took << rate << "\n";
  }
  out.flush();
  if (!s.ok()) return Fail(err, "sync", s.message(), 1);
  return 0;
}

int RunLs(const Location& loc, const std::string& endpoint_url, const std::string& profile,
          bool recursive, std::ostream& out, std::ostream& err) {
  if (!loc.uri) return Fail(err, "ls", loc.text + " is not an s3:// or file:// URI", 2);
  auto stores = Stores::Make({loc}, endpoint_url, profile);
  if (!stores.ok()) return Fail(err, "ls", stores.status().message(), 2);
  Result<ObjectStore*> store = (*stores)->For(loc.text);
  if (!store.ok()) return Fail(err, "ls", store.status().message(), 2);
  Result<std::vector<ObjectInfo>> listed = (*store)->List(loc.text);
  if (!listed.ok()) return Fail(err, "ls", listed.status().message(), 1);
  if (listed->empty()) return 1;  // as `aws s3 ls`: nothing printed, exit 1

  // Recursive s3:// listings show keys from the bucket's root, as `aws s3 ls --recursive` does;
  // file:// listings show paths relative to the URI.
  std::string key_prefix;
  if (recursive && loc.is_s3() && !loc.uri->key.empty()) {
    const std::string& k = loc.uri->key;
    bool single_object = k.back() != '/' && listed->size() == 1 && (*listed)[0].key == BaseName(k);
    if (single_object) {
      key_prefix = k.substr(0, k.size() - BaseName(k).size());
    } else {
      key_prefix = k.back() == '/' ? k : k + "/";
    }
  }
  std::set<std::string> dirs;
  for (const ObjectInfo& o : *listed) {
    size_t slash = o.key.find('/');
    if (!recursive && slash != std::string::npos) {
      dirs.insert(o.key.substr(0, slash + 1));
      continue;
    }
  }
  for (const std::string& d : dirs) out << std::setw(31) << "PRE " << d << "\n";
  for (const ObjectInfo& o : *listed) {
    if (!recursive && o.key.find('/') != std::string::npos) continue;
    out << LocalTime(o.mtime) << " " << std::setw(10) << o.size << " " << key_prefix << o.key
        << "\n";
  }
  return 0;
}

int RunCp(const Location& src, const Location& dst, const std::string& endpoint_url,
          const std::string& profile, bool quiet, std::ostream& out, std::ostream& err) {
  Result<Ends> ends = ResolveEnds(src, dst);
  if (!ends.ok()) return Fail(err, "cp", ends.status().message(), 2);
  auto stores = Stores::Make({src, dst}, endpoint_url, profile);
  if (!stores.ok()) return Fail(err, "cp", stores.status().message(), 2);
  Result<ObjectStore*> store = (*stores)->For(ends->uri);
  if (!store.ok()) return Fail(err, "cp", store.status().message(), 2);

  std::string local = ends->local;
  std::string uri = ends->uri;
  Status s;
  if (ends->upload) {
    struct stat st;
    if (::stat(local.c_str(), &st) != 0) {
      return Fail(err, "cp", "The user-provided path " + local + " does not exist.", 1);
    }
    if (S_ISDIR(st.st_mode)) {
      return Fail(err, "cp", local + " is a directory (use `trainyard storage sync`)", 2);
    }
    if (uri.back() == '/') uri += BaseName(local);
    s = (*store)->UploadFile(local, uri);
  } else {
    if (uri.back() == '/') return Fail(err, "cp", uri + " names a prefix, not an object", 2);
    struct stat st;
    if (local.back() == '/' || (::stat(local.c_str(), &st) == 0 && S_ISDIR(st.st_mode))) {
      local = JoinPath(local, BaseName(uri));
    }
    s = (*store)->DownloadFile(uri, local);
  }
  const char* verb = ends->upload ? "upload" : "download";
  std::string what = ends->upload ? local + " to " + uri : uri + " to " + local;
  if (!s.ok()) {
    err << verb << " failed: " << what << ": " << s.message() << "\n";
    return 1;
  }
  if (!quiet) out << verb << ": " << what << "\n";
  return 0;
}

int RunMb(const Location& loc, const std::string& endpoint_url, const std::string& profile,
          std::ostream& out, std::ostream& err) {
  if (!loc.is_s3() || !loc.uri->key.empty()) {
    return Fail(err, "mb", "expected s3://BUCKET, got " + loc.text, 2);
  }
  auto settings = Stores::ResolveSettings(endpoint_url, profile);
  if (!settings.ok()) return Fail(err, "mb", settings.status().message(), 2);
  storage::S3Client client(*settings);
  Status s = client.CreateBucket(loc.uri->bucket);
  if (!s.ok()) {
    err << "make_bucket failed: " << loc.text << ": " << s.message() << "\n";
    return 1;
  }
  out << "make_bucket: " << loc.uri->bucket << "\n";
  return 0;
}

}  // namespace

StorageCommands::StorageCommands(CLI::App& app) {
  group_ = app.add_subcommand(
      "storage", "Sync, list and copy files to and from s3:// and file:// stores (like aws s3)");
  group_->require_subcommand(1);
  // Lets --endpoint-url/--profile follow the subcommand, as with the AWS CLI.
  group_->fallthrough();
  group_->add_option("--endpoint-url", endpoint_url_,
                     "S3 endpoint (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, ~/.aws/config)");
  group_->add_option("--profile", profile_, "Profile in ~/.aws/credentials and ~/.aws/config");

  sync_ = group_->add_subcommand(
      "sync",
      "Mirror a local directory and a store prefix (either way); only new and changed "
      "files move");
  sync_->add_option("src", src_, "Source: a local directory or s3:// / file:// prefix")->required();
  sync_->add_option("dst", dst_, "Destination: the other kind")->required();
  sync_->add_flag("--delete", delete_, "Remove destination files the source lacks");
  sync_->add_flag("--dryrun", dry_run_, "Show what would be done, change nothing");
  sync_->add_flag("--quiet", quiet_, "Print only errors");
  sync_->add_option("--workers", workers_, "Files transferred at once (default 16)")
      ->check(CLI::Range(1, 256));

  ls_ = group_->add_subcommand("ls", "List the objects under a URI");
  ls_->add_option("uri", src_, "s3://bucket[/prefix] or file:///dir")->required();
  ls_->add_flag("--recursive", recursive_, "Every object, not one level");

  cp_ = group_->add_subcommand("cp", "Copy one file to or from a store");
  cp_->add_option("src", src_, "Source file or object URI")->required();
  cp_->add_option("dst", dst_, "Destination (ending in '/': keep the source's name)")->required();
  cp_->add_flag("--quiet", quiet_, "Print only errors");

  mb_ = group_->add_subcommand("mb", "Create a bucket");
  mb_->add_option("uri", src_, "s3://bucket")->required();
}

bool StorageCommands::chosen() const { return group_ != nullptr && group_->parsed(); }

int StorageCommands::Run(std::ostream& out, std::ostream& err) {
  const char* name = *sync_ ? "sync" : *ls_ ? "ls" : *cp_ ? "cp" : "mb";
  Result<Location> src = Classify(src_);
  if (!src.ok()) return Fail(err, name, src.status().message(), 2);
  if (*ls_) return RunLs(*src, endpoint_url_, profile_, recursive_, out, err);
  if (*mb_) return RunMb(*src, endpoint_url_, profile_, out, err);
  Result<Location> dst = Classify(dst_);
  if (!dst.ok()) return Fail(err, name, dst.status().message(), 2);
  if (*sync_) {
    return RunSync(*src, *dst, endpoint_url_, profile_, delete_, dry_run_, quiet_, workers_, out,
                   err);
  }
  return RunCp(*src, *dst, endpoint_url_, profile_, quiet_, out, err);
}

}  // namespace ty::cli
