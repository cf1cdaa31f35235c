// Server: the composition root. Wires the store, launcher, image catalog,
// controller, credentials, verifier and API behind one HTTP server, and
// owns their lifetimes. The only module that knows every implementation.
//
// Threads: the HTTP server's I/O threads and its two worker pools (API calls;
// agents' reports), see server/http_server.h, plus the controller's loop;
// Start/Shutdown from one owner thread.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "server/config.h"

namespace ty::server {

class Server {
 public:
  // Opens the data dir (creating it, the store and credentials as needed).
  static Result<std::unique_ptr<Server>> Create(ServerConfig config);
  ~Server();

  // Binds, re-adopts active jobs, starts serving in the background, and
  // writes <data_dir>/server.json and server.url. Returns once ready.
  Status Start();
  // "http://HOST:PORT" once started.
  const std::string& url() const;
  // Stops serving; running jobs fail (their agents are killed). Idle
  // connections close at once; requests already in a handler are answered.
  // With wait_for_connections false it returns without waiting for those
  // requests and the HTTP threads; the caller must then end the process
  // (std::_Exit) rather than destroy the Server.
  void Shutdown(bool wait_for_connections = true);
  // Blocks until Shutdown (from another thread or a signal).
  void Wait();

  const ServerConfig& config() const;
  // One line on where s3:// URIs go: "s3 endpoint <url> (region r, path-style|virtual-hosted
  // addressing, credentials from <source>)". Never the secret.
  std::string StorageSummary() const;
  // Which launcher runs the jobs and what it found, one "key: ..." line each (the local one:
  // its network and capacity; Slurm: the cluster, its partitions and nodes, or why it cannot be
  // reached).
  std::string LauncherSummary() const;
  // How training processes are sandboxed (one line; says so when it is weaker than designed).
  std::string SandboxSummary() const;
  // Where file:// URIs may point (one line): the roots, or "none (why)".
  std::string FileRootsSummary() const;
  // Settings the operator chose that weaken isolation, one loud line each.
  const std::vector<std::string>& Warnings() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ty::server
