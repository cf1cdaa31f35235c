#include "agent/staging.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/container_env.h"
#include "agent/sandbox.h"
#include "common/fs.h"
#include "common/json.h"
#include "storage/archive.h"
#include "storage/object_store.h"
#include "storage/object_stores.h"
#include "storage/uri.h"

namespace ty::agent {
namespace {

namespace fs = std::filesystem;

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True when `path` is `dir` or below it (string form, both normalised).
bool Under(const std::string& path, const std::string& dir) {
  return path == dir || StartsWith(path, dir + "/");
}

std::string Normalize(const std::string& p) {
  std::string n = fs::path(p).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

Status ValidateChannelName(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos ||
      name == ".") {
    return InvalidArgument("invalid channel name '" + name + "'");
  }
  return Status::Ok();
}

bool IsDirectory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool DirHasEntries(const std::string& p) {
  std::error_code ec;
  fs::directory_iterator it(p, ec);
  return !ec && it != fs::directory_iterator();
}

Status CopyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy(from, to,
           fs::copy_options::recursive | fs::copy_options::overwrite_existing |
               fs::copy_options::copy_symlinks,
           ec);
  if (ec) return IoError("cannot copy " + from + " to " + to + ": " + ec.message());
  return Status::Ok();
}

// AWS's wording, so scripts and people who know SageMaker recognise it.
Status NoObjects(const model::InstanceConfig& c, const std::string& uri) {
  std::string msg = "No S3 objects found under S3 URL \"" + uri +
                    "\" given in input data source. Please ensure that the bucket exists in the "
                    "selected region (" +
                    c.region + "), that objects exist under that S3 prefix";
  auto parsed = storage::ParseStorageUri(uri);
  if (parsed.ok() && parsed->scheme == "s3") {
    msg += ", and that the storage credentials have s3:ListBucket permission on bucket \"" +
           parsed->bucket + "\"";
  }
  return NotFound(msg + ".");
}

// A relative key that stays inside the channel directory.
Status CheckRelativeKey(const std::string& key, const std::string& where) {
  if (key.empty() || key[0] == '/' || key.back() == '/') {
    return InvalidArgument(where + ": '" + key + "' is not a relative object key");
  }
  for (const auto& part : fs::path(key)) {
    if (part == "..") return InvalidArgument(where + ": '" + key + "' climbs out of the channel");
  }
  return Status::Ok();
}

// Downloads (uri, local path) pairs, a few at a time (each store also parallelises large objects).
Status DownloadAll(storage::ObjectStore* store,
                   const std::vector<std::pair<std::string, std::string>>& items) {
  constexpr size_t kWorkers = 8;
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first;
  auto work = [&] {
    for (size_t i = next++; i < items.size(); i = next++) {
      Status s = store->DownloadFile(items[i].first, items[i].second);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first.ok()) first = s;
        next = items.size();
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 0; t < std::min(kWorkers, items.size()); ++t) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  return first;
}

// The objects of a ManifestFile channel: [{"prefix": "s3://b/p/"}, "key1", "key2", ...].
Result<std::vector<std::string>> ReadManifest(const model::InstanceConfig& c,
                                              const model::Channel& ch, const std::string& scratch,
                                              std::string* prefix) {
  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(ch.uri, StorageConfigOf(c)));
  std::string local = JoinPath(scratch, "manifest");
  Status s = store->DownloadFile(ch.uri, local);
  if (s.code() == StatusCode::kNotFound) {
    return NotFound("the manifest file " + ch.uri + " of channel '" + ch.name + "' does not exist");
  }
  TY_RETURN_IF_ERROR(s.WithPrefix("cannot read the manifest of channel '" + ch.name + "'"));
  TY_ASSIGN_OR_RETURN(std::string text, ReadFile(local));
  std::string where = "manifest " + ch.uri;
  auto parsed = ParseJson(text);
  const bool parsed_ok = parsed.ok();
  nlohmann::json j = parsed_ok ? std::move(parsed).value() : nlohmann::json();
  if (!parsed_ok || !j.is_array() || j.empty() || !j[0].is_object() || !j[0].contains("prefix") ||
      !j[0]["prefix"].is_string()) {
    return InvalidArgument(where +
                           " is not a manifest: expected a JSON array whose first element "
                           "is {\"prefix\": \"s3://bucket/path/\"} followed by object keys");
  }
  *prefix = j[0]["prefix"].get<std::string>();
  TY_RETURN_IF_ERROR(storage::ParseStorageUri(*prefix).status().WithPrefix(where + ": prefix"));
  if (prefix->back() != '/') *prefix += '/';
  std::vector<std::string> keys;
  for (size_t i = 1; i < j.size(); ++i) {
    if (!j[i].is_string()) {
      return InvalidArgument(where + ": entry " + std::to_string(i) + " is not a string key");
    }
    std::string key = j[i].get<std::string>();
    TY_RETURN_IF_ERROR(CheckRelativeKey(key, where));
    keys.push_back(std::move(key));
  }
  return keys;
}

Status StageChannel(const model::InstanceConfig& c, const model::Channel& ch, InstanceView* view) {
  TY_RETURN_IF_ERROR(ValidateChannelName(ch.name));
  std::string dest = JoinPath(view->instance_dir, "input/data/" + ch.name);
  TY_RETURN_IF_ERROR(RemoveAll(dest));
  TY_RETURN_IF_ERROR(MakeDirs(dest));
  const int host_count = std::max<int>(1, static_cast<int>(c.hosts.size()));
  const bool sharded = ch.distribution_type == "ShardedByS3Key" && host_count > 1;
  const std::string where = "channel '" + ch.name + "'";

  if (ch.data_type == "ManifestFile") {
    std::string scratch = JoinPath(c.instance_dir, ".trainyard/manifest-" + ch.name);
    TY_RETURN_IF_ERROR(MakeDirs(scratch));
    std::string prefix;
    auto keys = ReadManifest(c, ch, scratch, &prefix);
    (void)RemoveAll(scratch);
    TY_RETURN_IF_ERROR(keys.status());
    std::vector<std::string> mine = *keys;
    if (sharded) mine = ShardKeys(*keys, c.host_index, host_count);
    if (keys->empty()) return NoObjects(c, ch.uri);
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(prefix, StorageConfigOf(c)));
    std::vector<std::pair<std::string, std::string>> items;
    for (const auto& k : mine) items.emplace_back(prefix + k, JoinPath(dest, k));
    Status s = DownloadAll(store.get(), items);
    if (s.code() == StatusCode::kNotFound) {
      return NotFound(where + ": an object listed in the manifest " + ch.uri +
                      " does not exist: " + s.message());
    }
    return s.WithPrefix(where);
  }

  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(ch.uri, StorageConfigOf(c)));
  TY_ASSIGN_OR_RETURN(storage::StorageUri uri, storage::ParseStorageUri(ch.uri));
  if (view->sandboxed && uri.scheme == "file" && !sharded) {
    auto local = store->ResolveLocalPath(ch.uri);
    if (!local.ok() && local.status().code() == StatusCode::kNotFound) return NoObjects(c, ch.uri);
    TY_RETURN_IF_ERROR(local.status());
    if (IsDirectory(*local)) {
      if (!DirHasEntries(*local)) return NoObjects(c, ch.uri);
      // An unprivileged sandbox cannot read what only root may: such a channel is copied.
      if (!view->unprivileged || TreeReadableByOthers(*local)) {
        view->ro_binds.emplace_back(*local, std::string(kOptMl) + "/input/data/" + ch.name);
        return Status::Ok();
      }
    }
  }
  if (sharded) {
    auto listed = store->List(ch.uri);
    TY_RETURN_IF_ERROR(listed.status().WithPrefix(where));
    std::vector<std::string> keys;
    for (const auto& o : *listed) keys.push_back(o.key);
    if (keys.empty()) return NoObjects(c, ch.uri);
    if (keys.size() == 1) {  // objects are never split: the one object goes to algo-1
      if (c.host_index != 1) return Status::Ok();
      return store->DownloadPrefix(ch.uri, dest).WithPrefix(where);
    }
    std::string base = ch.uri;
    if (base.back() != '/') base += '/';
    std::vector<std::pair<std::string, std::string>> items;
    for (const auto& k : ShardKeys(keys, c.host_index, host_count)) {
      TY_RETURN_IF_ERROR(CheckRelativeKey(k, where));
      items.emplace_back(base + k, JoinPath(dest, k));
    }
    return DownloadAll(store.get(), items).WithPrefix(where);
  }
  Status s = store->DownloadPrefix(ch.uri, dest);
  if (s.code() == StatusCode::kNotFound) return NoObjects(c, ch.uri);
  TY_RETURN_IF_ERROR(s.WithPrefix(where));
  if (!DirHasEntries(dest)) return NoObjects(c, ch.uri);
  return Status::Ok();
}

// Places the python-framework user code (sagemaker_submit_directory) in code/.
Status StageCode(const model::InstanceConfig& c, const std::string& code_dir) {
  if (c.image.runtime != model::ImageEntry::Runtime::kPythonFramework ||
      !c.spec.container_entrypoint.empty()) {
    return Status::Ok();
  }
  ToolkitParams p = ParseToolkitParams(c.spec.hyperparameters);
  const std::string& src = p.submit_directory;
  if (src.empty() || Normalize(src) == std::string(kOptMl) + "/code") return Status::Ok();
  std::string local;
  std::string scratch = JoinPath(c.instance_dir, ".trainyard/code-download");
  if (StartsWith(src, "file://")) {
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(src, StorageConfigOf(c)));
    TY_ASSIGN_OR_RETURN(local, store->ResolveLocalPath(src));
  } else if (StartsWith(src, "s3://")) {
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(src, StorageConfigOf(c)));
    TY_RETURN_IF_ERROR(RemoveAll(scratch));
    TY_RETURN_IF_ERROR(store->DownloadPrefix(src, scratch));
    std::string base = src.substr(src.find_last_of('/') + 1);
    local = JoinPath(scratch, base);
    if (!PathExists(local)) local = scratch;
  } else if (StartsWith(src, "/")) {
    TY_ASSIGN_OR_RETURN(local, storage::ResolveWithinRoots(src, c.file_roots));
  } else {
    return InvalidArgument("sagemaker_submit_directory '" + src +
                           "' is neither a file:// or s3:// URI nor an absolute path");
  }
  Status s;
  if (IsDirectory(local)) {
    s = CopyTree(local, code_dir);
  } else if (EndsWith(local, ".tar.gz") || EndsWith(local, ".tgz") || EndsWith(local, ".tar")) {
    s = storage::UnpackArchive(local, code_dir);
  } else if (!PathExists(local)) {
    s = NotFound("sagemaker_submit_directory '" + src + "' does not exist");
  } else {
    s = InvalidArgument("sagemaker_submit_directory '" + src +
                        "' is neither a directory nor a tar.gz archive");
  }
  (void)RemoveAll(scratch);
  return s.WithPrefix("cannot stage the user code");
}

std::string OutputBase(const model::InstanceConfig& c) {
  std::string base = c.spec.output_path;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + c.job_name + "/output/";
}

}  // namespace

namespace {

// The debugger's config files and local directories. Paths in the files are as the training
// process sees them.
Status StageDebugger(const model::InstanceConfig& c, const InstanceView& view,
                     const std::string& config_dir) {
  TY_ASSIGN_OR_RETURN(DebuggerDirs dirs, DebuggerHostDirs(c));
  auto seen = [&](const std::string& host) {
    return view.sandboxed ? std::string(kOptMl) + host.substr(c.instance_dir.size()) : host;
  };
  if (c.spec.debug_hook) {
    TY_RETURN_IF_ERROR(MakeDirs(dirs.debug));
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "debughookconfig.json"),
                                       DebugHookConfigJson(c.spec, seen(dirs.debug)), 0644,
                                       /*durable=*/false));
  }
  if (c.spec.tensorboard) {
    TY_RETURN_IF_ERROR(MakeDirs(dirs.tensorboard));
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "tensorboardoutputconfig.json"),
                                       TensorBoardConfigJson(c.spec, seen(dirs.tensorboard)), 0644,
                                       /*durable=*/false));
  }
  if (c.spec.profiler) {
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "profilerconfig.json"),
                                       ProfilerConfigJson(c.spec), 0644, /*durable=*/false));
  }
  if (!dirs.profiler.empty()) {
    // Earlier runs of this tree (a restarted agent) leave nothing half-written behind.
    TY_RETURN_IF_ERROR(RemoveAll(dirs.profiler_staging));
    TY_RETURN_IF_ERROR(MakeDirs(JoinPath(dirs.profiler, "system"), 0700));
    TY_RETURN_IF_ERROR(MakeDirs(dirs.profiler_staging, 0700));
  }
  return Status::Ok();
}

// The server's python/ folder, bound read-only at kSandboxPythonDir. An unprivileged sandbox
// reads only what others may: a folder it could not read is copied beside the tree (root's,
// readable) and the copy bound instead.
Status StagePythonDir(const model::InstanceConfig& c, InstanceView* view) {
  std::string source = c.python_dir;
  if (view->unprivileged && !TreeReadableByOthers(source)) {
    std::string base = c.instance_dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    std::string copy = base + ".python";
    TY_RETURN_IF_ERROR(RemoveAll(copy));
    TY_RETURN_IF_ERROR(CopyTree(source, copy));
    TY_RETURN_IF_ERROR(MakeTreeReadable(copy));
    source = copy;
  }
  view->ro_binds.emplace_back(source, kSandboxPythonDir);
  return Status::Ok();
}

}  // namespace

storage::StorageConfig StorageConfigOf(const model::InstanceConfig& c) {
  storage::StorageConfig config;
  config.file_roots = c.file_roots;
  if (!c.storage_s3.is_null()) {
    auto s3 = storage::S3SettingsFromJson(c.storage_s3);
    if (s3.ok()) config.s3 = std::move(s3).value();  // else s3:// URIs are refused by name
  }
  return config;
}

std::vector<std::string> ShardKeys(std::vector<std::string> keys, int host_index, int host_count) {
  std::sort(keys.begin(), keys.end());
  if (host_count <= 1) return keys;
  std::vector<std::string> mine;
  for (size_t i = static_cast<size_t>(host_index - 1); i < keys.size();
       i += static_cast<size_t>(host_count)) {
    mine.push_back(keys[i]);
  }
  return mine;
}

std::string InstanceView::ml_root() const { return sandboxed ? kOptMl : instance_dir; }

std::string InstanceView::HostPath(const std::string& path) const {
  if (!sandboxed) return path;
  std::string p = Normalize(path);
  for (auto it = ro_binds.rbegin(); it != ro_binds.rend(); ++it) {
    if (Under(p, it->second)) return it->first + p.substr(it->second.size());
  }
  if (Under(p, kOptMl)) return instance_dir + p.substr(sizeof(kOptMl) - 1);
  if (Under(p, "/tmp") || Under(p, "/opt")) return "";
  return p;
}

Result<std::string> OptMlHostDir(const model::InstanceConfig& c, const std::string& path,
                                 const std::string& what) {
  std::string local = Normalize(path);
  if (!Under(local, kOptMl) || local == kOptMl || path.find("..") != std::string::npos) {
    return InvalidArgument(what + " '" + path + "' must be a directory under /opt/ml");
  }
  return c.instance_dir + local.substr(sizeof(kOptMl) - 1);
}

Result<DebuggerDirs> DebuggerHostDirs(const model::InstanceConfig& c) {
  DebuggerDirs d;
  if (c.spec.debug_hook) {
    TY_ASSIGN_OR_RETURN(
        d.debug, OptMlHostDir(c, c.spec.debug_hook->local_path, "DebugHookConfig.LocalPath"));
  }
  if (c.spec.tensorboard) {
    TY_ASSIGN_OR_RETURN(d.tensorboard, OptMlHostDir(c, c.spec.tensorboard->local_path,
                                                    "TensorBoardOutputConfig.LocalPath"));
  }
  if (c.spec.profiler && !c.spec.profiler->disabled) {
    std::string base = c.instance_dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    d.profiler = base + ".profiler";
    d.profiler_staging = base + ".profiler-staging";
  }
  return d;
}

Result<std::string> CheckpointHostDir(const model::InstanceConfig& c) {
  std::string local = Normalize(
      c.spec.checkpoint_local_path.empty() ? "/opt/ml/checkpoints" : c.spec.checkpoint_local_path);
  if (!Under(local, kOptMl) || local == kOptMl) {
    return InvalidArgument("CheckpointConfig.LocalPath '" + c.spec.checkpoint_local_path +
                           "' must be a directory under /opt/ml");
  }
  return c.instance_dir + local.substr(sizeof(kOptMl) - 1);
}

Status StageInstance(const model::InstanceConfig& c, InstanceView* view) {
  const std::string& dir = view->instance_dir;
  if (dir.empty() || dir[0] != '/') {
    return InvalidArgument("instance_dir must be an absolute path");
  }
  for (const char* sub :
       {"input/config", "input/data", "model", "output/data", "output/intermediate", "code"}) {
    TY_RETURN_IF_ERROR(MakeDirs(JoinPath(dir, sub)));
  }
  std::string config_dir = JoinPath(dir, "input/config");
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "hyperparameters.json"),
                                     HyperparametersJson(c.spec), 0644, /*durable=*/false));
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "resourceconfig.json"),
                                     ResourceConfigJson(c), 0644, /*durable=*/false));
  TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "inputdataconfig.json"),
                                     InputDataConfigJson(c.spec), 0644, /*durable=*/false));
  if (c.spec.checkpoint_uri) {
    TY_ASSIGN_OR_RETURN(std::string ckpt, CheckpointHostDir(c));
    TY_RETURN_IF_ERROR(MakeDirs(ckpt));
    std::string local_path = view->sandboxed ? std::string(kOptMl) + ckpt.substr(dir.size()) : ckpt;
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "checkpointconfig.json"),
                                       CheckpointConfigJson(c.spec, local_path)));
    TY_ASSIGN_OR_RETURN(auto store,
                        storage::MakeObjectStore(*c.spec.checkpoint_uri, StorageConfigOf(c)));
    Status s = store->DownloadPrefix(*c.spec.checkpoint_uri, ckpt);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      return s.WithPrefix("cannot restore checkpoints");
    }
  }
  TY_RETURN_IF_ERROR(StageDebugger(c, *view, config_dir));
  if (view->sandboxed && !c.python_dir.empty() &&
      c.image.runtime == model::ImageEntry::Runtime::kPythonFramework) {
    TY_RETURN_IF_ERROR(StagePythonDir(c, view));
  }
  for (const auto& ch : c.spec.channels) TY_RETURN_IF_ERROR(StageChannel(c, ch, view));
  return StageCode(c, JoinPath(dir, "code"));
}

Status MergeTrees(const std::vector<std::string>& sources, const std::string& dest,
                  std::vector<std::string>* clashes) {
  namespace fs = std::filesystem;
  TY_RETURN_IF_ERROR(MakeDirs(dest));
  std::error_code ec;
  for (const std::string& src : sources) {
    if (!fs::is_directory(src, ec)) continue;
    for (auto it = fs::recursive_directory_iterator(src, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      const fs::path rel = fs::relative(it->path(), src, ec);
      if (ec) break;
      const fs::path to = fs::path(dest) / rel;
      if (it->is_directory(ec) && !it->is_symlink(ec)) {
        if (fs::exists(to, ec) && !fs::is_directory(to, ec)) {
          clashes->push_back(rel.string() + " (from " + src + ")");
          it.disable_recursion_pending();
        } else {
          fs::create_directories(to, ec);
        }
        continue;
      }
      if (fs::exists(fs::symlink_status(to, ec))) {
        clashes->push_back(rel.string() + " (from " + src + ")");
        continue;
      }
      if (it->is_symlink(ec)) {
        fs::copy_symlink(it->path(), to, ec);
      } else {
        fs::create_hard_link(it->path(), to, ec);
        if (ec) fs::copy_file(it->path(), to, ec);  // another file system
      }
      if (ec) break;
    }
    if (ec) return IoError("cannot merge " + src + " into " + dest + ": " + ec.message());
  }
  return Status::Ok();
}

Status UploadArtifacts(const model::InstanceConfig& c, std::string* model_artifacts,
                       const std::string& model_dir_override,
                       const std::string& data_dir_override) {
  if (c.host_index != 1 || c.spec.output_path.empty()) return Status::Ok();
  std::string base = OutputBase(c);
  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(base, StorageConfigOf(c)));
  std::string model_dir =
      model_dir_override.empty() ? JoinPath(c.instance_dir, "model") : model_dir_override;
  std::string data_dir =
      data_dir_override.empty() ? JoinPath(c.instance_dir, "output/data") : data_dir_override;
  TY_RETURN_IF_ERROR(MakeDirs(model_dir));
  TY_RETURN_IF_ERROR(MakeDirs(data_dir));
  if (c.spec.compress_output) {
    std::string scratch = JoinPath(c.instance_dir, ".trainyard/upload");
    TY_RETURN_IF_ERROR(MakeDirs(scratch));
    std::string model_tar = JoinPath(scratch, "model.tar.gz");
    std::string output_tar = JoinPath(scratch, "output.tar.gz");
    TY_RETURN_IF_ERROR(storage::PackDirectory(model_dir, model_tar));
    TY_RETURN_IF_ERROR(store->UploadFile(model_tar, base + "model.tar.gz"));
    *model_artifacts = base + "model.tar.gz";
    TY_RETURN_IF_ERROR(storage::PackDirectory(data_dir, output_tar));
    TY_RETURN_IF_ERROR(store->UploadFile(output_tar, base + "output.tar.gz"));
    (void)RemoveAll(scratch);
  } else {
    TY_RETURN_IF_ERROR(store->UploadDirectory(model_dir, base + "model/"));
    *model_artifacts = base + "model/";
    TY_RETURN_IF_ERROR(store->UploadDirectory(data_dir, base + "data/"));
  }
  return Status::Ok();
}

}  // namespace ty::agent
