// Staging: builds the instance tree that becomes /opt/ml (spec section 5.2)
// before the training process starts, and uploads the artifacts after it ends.
// Every function here does blocking file and object-store I/O on the calling
// thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/agent_protocol.h"
#include "storage/object_stores.h"

namespace ty::agent {

// How the instance tree is seen by the training process.
struct InstanceView {
  std::string instance_dir;  // host path of the tree
  bool sandboxed = false;    // true: the tree is bound at /opt/ml (bubblewrap)
  // true: the training process runs as an unprivileged host uid (agent/sandbox.h), so a
  // file:// channel is bound only when others may read all of it; otherwise it is copied and
  // the copy made readable.
  bool unprivileged = false;
  // Read-only bind mounts (host source, sandbox target), for file:// channels.
  std::vector<std::pair<std::string, std::string>> ro_binds;

  // "/opt/ml" when sandboxed, else instance_dir.
  std::string ml_root() const;
  // Where the sandbox path `path` lives on the host: "" when it is hidden
  // (a tmpfs in the sandbox). Identity when not sandboxed.
  std::string HostPath(const std::string& path) const;
};

// Stages the tree under view->instance_dir: input/config/{hyperparameters,
// resourceconfig,inputdataconfig[,checkpointconfig]}.json, input/data/<channel>
// (file:// channels are bind-mounted read-only when sandboxed and the source is
// a directory the sandbox can read, copied otherwise), model/, output/data/, output/intermediate/,
// code/, the debugger hook's and TensorBoard's local directories with
// debughookconfig.json / tensorboardoutputconfig.json / profilerconfig.json (spec/debugger.md
// section 2.4), the server's python/ folder bound read-only at kSandboxPythonDir
// (python-framework runtime, sandboxed), and the checkpoint directory (restored from the checkpoint
// URI when one is set; nothing there is fine). For the python-framework runtime,
// sagemaker_submit_directory (a file:// URI or an absolute path within the file
// roots; a directory or a tar.gz) is copied/unpacked into code/.
// Appends bind mounts to view->ro_binds.
// Errors: NotFound for a channel with no data; InvalidArgument for a bad
// channel name, a checkpoint path outside /opt/ml, or a source outside the
// file roots; IoError for file-system failures.
Status StageInstance(const model::InstanceConfig& c, InstanceView* view);

// Uploads model/ and output/data/ to <S3OutputPath>/<job>/output/ (as
// model.tar.gz and output.tar.gz, or under model/ and data/ when output
// compression is off). Only algo-1 uploads (other hosts return Ok without
// uploading). Sets *model_artifacts to the model's URI when uploaded.
// `model_dir` / `data_dir` override the instance's own model/ and output/data/ (a multi-node
// job's leader uploads the trees merged from every instance).
Status UploadArtifacts(const model::InstanceConfig& c, std::string* model_artifacts,
                       const std::string& model_dir = "", const std::string& data_dir = "");

// Merges the trees `sources` (in order) into `dest` with hard links (copies across file
// systems): a relative path present in several sources comes from the first that has it, and
// each later one is named in *clashes as "<path> (from <source>)". Missing sources are skipped.
Status MergeTrees(const std::vector<std::string>& sources, const std::string& dest,
                  std::vector<std::string>* clashes);

// The storage this instance may use: the file roots and the server's S3 store.
storage::StorageConfig StorageConfigOf(const model::InstanceConfig& c);

// ShardedByS3Key: the keys host `host_index` (1-based) of `host_count` gets. Keys are sorted and
// dealt round-robin (key i goes to host i mod N + 1): deterministic, disjoint, covering, and the
// counts differ by at most one. Objects are never split, so with fewer objects than hosts some
// hosts get none.
std::vector<std::string> ShardKeys(std::vector<std::string> keys, int host_index, int host_count);

// Host path of the checkpoint directory; InvalidArgument when the configured
// local path is not under /opt/ml.
Result<std::string> CheckpointHostDir(const model::InstanceConfig& c);

// Host path of `path`, a directory under /opt/ml as the training process sees it (`what` names
// it in errors); InvalidArgument when it is not under /opt/ml.
Result<std::string> OptMlHostDir(const model::InstanceConfig& c, const std::string& path,
                                 const std::string& what);

// Host paths of the debugger hook's and TensorBoard's local directories ("" when the job has
// none), and the host directory the agent writes the profiler's system metrics into (outside
// the instance tree: the training process can neither see nor swap it).
struct DebuggerDirs {
  std::string debug;
  std::string tensorboard;
  std::string profiler;          // <instance_dir>.profiler (holds system/...); "" when off
  std::string profiler_staging;  // <instance_dir>.profiler-staging: files being written
};
Result<DebuggerDirs> DebuggerHostDirs(const model::InstanceConfig& c);

}  // namespace ty::agent
