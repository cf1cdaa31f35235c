#include "agent/staging.h"

#include <sys/stat.h>

#include <filesystem>

#include "agent/container_env.h"
#include "common/fs.h"
#include "storage/archive.h"
#include "storage/object_store.h"
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

Status StageChannel(const model::InstanceConfig& c, const model::Channel& ch, InstanceView* view) {
  TY_RETURN_IF_ERROR(ValidateChannelName(ch.name));
  std::string dest = JoinPath(view->instance_dir, "input/data/" + ch.name);
  TY_RETURN_IF_ERROR(RemoveAll(dest));
  TY_RETURN_IF_ERROR(MakeDirs(dest));
  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(ch.uri, c.file_roots));
  TY_ASSIGN_OR_RETURN(storage::StorageUri uri, storage::ParseStorageUri(ch.uri));
  if (view->sandboxed && uri.scheme == "file") {
    auto local = store->ResolveLocalPath(ch.uri);
    if (!local.ok() && local.status().code() == StatusCode::kNotFound) {
      return NotFound("no data found under " + ch.uri + " for channel '" + ch.name + "'");
    }
    TY_RETURN_IF_ERROR(local.status());
    if (IsDirectory(*local)) {
      if (!DirHasEntries(*local)) {
        return NotFound("no data found under " + ch.uri + " for channel '" + ch.name + "'");
      }
      view->ro_binds.emplace_back(*local, std::string(kOptMl) + "/input/data/" + ch.name);
      return Status::Ok();
    }
  }
  Status s = store->DownloadPrefix(ch.uri, dest);
  if (s.code() == StatusCode::kNotFound) {
    return NotFound("no data found under " + ch.uri + " for channel '" + ch.name + "'");
  }
  TY_RETURN_IF_ERROR(s.WithPrefix("channel '" + ch.name + "'"));
  if (!DirHasEntries(dest)) {
    return NotFound("no data found under " + ch.uri + " for channel '" + ch.name + "'");
  }
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
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(src, c.file_roots));
    TY_ASSIGN_OR_RETURN(local, store->ResolveLocalPath(src));
  } else if (StartsWith(src, "s3://")) {
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(src, c.file_roots));
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
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(config_dir, "hyperparameters.json"), HyperparametersJson(c.spec), 0644, /*durable=*/false));
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(config_dir, "resourceconfig.json"), ResourceConfigJson(c), 0644, /*durable=*/false));
  TY_RETURN_IF_ERROR(
      WriteFileAtomic(JoinPath(config_dir, "inputdataconfig.json"), InputDataConfigJson(c.spec), 0644, /*durable=*/false));
  if (c.spec.checkpoint_uri) {
    TY_ASSIGN_OR_RETURN(std::string ckpt, CheckpointHostDir(c));
    TY_RETURN_IF_ERROR(MakeDirs(ckpt));
    std::string local_path = view->sandboxed ? std::string(kOptMl) + ckpt.substr(dir.size()) : ckpt;
    TY_RETURN_IF_ERROR(WriteFileAtomic(JoinPath(config_dir, "checkpointconfig.json"),
                                       CheckpointConfigJson(c.spec, local_path)));
    TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(*c.spec.checkpoint_uri, c.file_roots));
    Status s = store->DownloadPrefix(*c.spec.checkpoint_uri, ckpt);
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      return s.WithPrefix("cannot restore checkpoints");
    }
  }
  for (const auto& ch : c.spec.channels) TY_RETURN_IF_ERROR(StageChannel(c, ch, view));
  return StageCode(c, JoinPath(dir, "code"));
}

Status UploadArtifacts(const model::InstanceConfig& c, std::string* model_artifacts) {
  if (c.host_index != 1 || c.spec.output_path.empty()) return Status::Ok();
  std::string base = OutputBase(c);
  TY_ASSIGN_OR_RETURN(auto store, storage::MakeObjectStore(base, c.file_roots));
  std::string model_dir = JoinPath(c.instance_dir, "model");
  std::string data_dir = JoinPath(c.instance_dir, "output/data");
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
