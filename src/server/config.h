// ServerConfig: everything `trainyard server` can be told, from flags and
// an optional YAML file (--config). See README "Server configuration".
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"
#include "launch/image_catalog.h"

namespace ty::server {

struct ServerConfig {
  std::string listen = "127.0.0.1:0";       // HOST:PORT; port 0 picks a free port
  std::string data_dir;                     // SQLite state, credentials, job trees
  std::string region = "us-east-1";
  std::vector<std::string> file_roots;      // default: data dir + the starting directory
  std::string credentials_file;             // default: <data_dir>/credentials (created)
  std::string isolation = "auto";           // auto | bwrap | none
  std::chrono::seconds stop_grace{120};     // SIGTERM -> SIGKILL of a stopping job
  size_t max_body_bytes = 1 << 20;          // larger API bodies are refused
  int http_threads = 64;                    // one per open connection (agents keep one each)
  std::vector<launch::ImageRule> images;    // image catalog entries (before built-ins)
  std::string agent_binary;                 // default: this executable
};

// Reads a YAML config file over `config` (keys: listen, data_dir, region,
// file_roots, credentials_file, isolation, stop_grace_seconds,
// max_body_bytes, http_threads, images: [{match, runtime, command, workdir, env}]).
Status LoadConfigFile(const std::string& path, ServerConfig* config);

// Splits "HOST:PORT". kInvalidArgument when malformed.
Status ParseListen(const std::string& listen, std::string* host, int* port);

}  // namespace ty::server
