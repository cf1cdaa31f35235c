// FunctionRuntime: runs Lambda functions on this machine. Each function gets a small pool of
// warm workers: a sandboxed `python3 -u bootstrap.py` (bootstrap.py, Trainyard's own runtime)
// that imports the handler once and then loops on the Lambda Runtime API 2018-06-01, which this
// class answers (HandleRuntimeApi; the server puts it on a loopback listener). One invocation
// at a time per worker; idle workers are reaped after `idle_timeout`; a worker that timed out,
// crashed or ran out of memory is killed and not reused.
//
// The sandbox is a job's (agent/sandbox.h): bubblewrap, its own /tmp, the code read-only at
// /var/task and the runtime at /var/runtime, the server's files hidden, memory held to
// MemorySize by an instance cgroup (agent/resource_limits.h) where the machine allows it.
// The worker's environment is Lambda's (§6.5 of the spec) plus credentials minted for the
// function's account (a KeyMinter) and AWS_ENDPOINT_URL = the server.
//
// Logs: every invocation's START / output / END / REPORT lines go to the log group
// /aws/lambda/<function> of the function's account, one stream per worker (LogSink).
//
// Thread contract: every public method may be called from any thread. Invoke blocks until the
// invocation ends (at most the function's Timeout plus the worker's start); HandleRuntimeApi
// blocks in GET next until the worker gets an invocation or is retired.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "functions/function_store.h"
#include "model/agent_protocol.h"

namespace ty::functions {

// Where a worker's log lines go: CloudWatch Logs of the function's account.
class LogSink {
 public:
  virtual ~LogSink() = default;
  // Appends (timestamp ms, line) events to stream `stream` of group `group` in `account`,
  // creating both as needed. Errors are the sink's to report; the runtime ignores them.
  virtual void Append(const std::string& account, const std::string& group,
                      const std::string& stream,
                      const std::vector<std::pair<int64_t, std::string>>& events) = 0;
};

// Mints the credentials a function's workers call Trainyard with: a session key of the
// function's own account, valid on this server only.
class KeyMinter {
 public:
  virtual ~KeyMinter() = default;
  struct Key {
    std::string access_key_id, secret_access_key, session_token;
  };
  virtual Key Mint(const std::string& account) = 0;
  // The key stops working (its worker is gone).
  virtual void Revoke(const std::string& access_key_id) = 0;
};

struct RuntimeOptions {
  std::string data_dir;  // workers' scratch under <data_dir>/functions/.workers
  std::string region = "us-east-1";
  std::string python = "/usr/bin/python3";  // every python3.x runtime runs on it
  std::string bwrap_path = "/usr/bin/bwrap";
  bool sandboxed = true;         // false: isolation none (workers run as the server's user)
  model::SandboxConfig sandbox;  // as jobs get it (user namespace, uid, hidden paths)
  bool memory_limits = true;     // hold workers to MemorySize with a cgroup where possible
  int max_workers_per_function = 4;
  int max_workers = 16;  // over every function
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds init_timeout{std::chrono::seconds(10)};  // import of the handler
  size_t max_log_bytes_per_invocation = 256 << 10;  // beyond it lines are dropped (and counted)
  size_t max_line_bytes = 16 << 10;                 // longer lines are cut
  size_t max_response_bytes = 6 << 20;              // Lambda's synchronous payload limit
};

struct InvokeRequest {
  std::string payload;         // the event, JSON text ("" means null... sent as {} by SDKs)
  std::string client_context;  // JSON text from X-Amz-Client-Context, or ""
  bool tail_log = false;       // LogType Tail: return the last 4 KB of the log
};

struct InvokeResult {
  std::string payload;         // the handler's result as JSON, or the error document
  std::string function_error;  // "" or "Unhandled"
  std::string log_tail;        // last 4 KB of the invocation's log (when asked)
  std::string request_id;
  bool timed_out = false;
  bool busy = false;  // no worker was free: TooManyRequestsException
};

// What the Runtime API listener passes in and gets back (no HTTP types here).
struct RuntimeRequest {
  std::string method;
  std::string path;               // "/2018-06-01/runtime/invocation/next", ...
  std::string token;              // the Trainyard-Worker-Token header
  std::string error_type_header;  // Lambda-Runtime-Function-Error-Type
  std::string body;
};
struct RuntimeResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class FunctionRuntime {
 public:
  // REQUIRES: sink and minter outlive the runtime.
  FunctionRuntime(RuntimeOptions options, LogSink* sink, KeyMinter* minter);
  ~FunctionRuntime();
  FunctionRuntime(const FunctionRuntime&) = delete;
  FunctionRuntime& operator=(const FunctionRuntime&) = delete;

  // Where workers reach the server: the Runtime API listener ("127.0.0.1:PORT") and the AWS
  // endpoint (the server's URL). REQUIRES: before the first Invoke.
  void SetAddresses(std::string runtime_api, std::string endpoint_url);

  // Runs one invocation of `fn` (its code at `code_dir`) on a warm worker, starting one when
  // none is free and the pools allow. Never fails as a call: a handler error, timeout or crash
  // is in the result (function_error "Unhandled"); no free worker within the function's
  // timeout is `busy`.
  InvokeResult Invoke(const FunctionConfig& fn, const std::string& code_dir,
                      const InvokeRequest& request);

  // The function changed (new code or configuration) or was deleted: its idle workers end now,
  // busy ones when their invocation does.
  void Retire(const std::string& account, const std::string& name);

  RuntimeResponse HandleRuntimeApi(const RuntimeRequest& request);

  // Kills every worker and stops the reaper. Idempotent.
  void Shutdown();

  // For tests and the CLI: live workers of one function.
  int WorkerCount(const std::string& account, const std::string& name);

 private:
  struct Worker;
  struct Invocation;
  std::shared_ptr<Worker> StartWorker(const FunctionConfig& fn, const std::string& code_dir,
                                      std::string* error);
  void KillWorker(const std::shared_ptr<Worker>& w);
  void ReadOutput(const std::shared_ptr<Worker>& w);
  void DrainOutput(Worker& w);
  void ReaperLoop();
  static std::string FunctionKey(const std::string& account, const std::string& name) {
    return account + "/" + name;
  }

  const RuntimeOptions options_;
  LogSink* const sink_;
  KeyMinter* const minter_;
  std::string runtime_api_;
  std::string endpoint_url_;
  std::string bootstrap_dir_;  // holds bootstrap.py, readable by the sandbox

  Mutex mu_;
  CondVar cv_;  // a worker changed state, an invocation finished
  std::map<std::string, std::shared_ptr<Worker>> by_token_ TY_GUARDED_BY(mu_);
  int starting_or_live_ TY_GUARDED_BY(mu_) = 0;
  bool shut_down_ TY_GUARDED_BY(mu_) = false;
  std::thread reaper_;
};

// The bootstrap's source (bootstrap.py), embedded at build time.
std::string_view BootstrapSource();

}  // namespace ty::functions
