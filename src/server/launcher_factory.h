// Builds the launcher the server config names (`launcher: local | slurm`). Only the Slurm
// launcher is built here; LocalLauncher is made by server.cc with its network options.
// Thread-safe (pure apart from the launcher it makes).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "launch/slurm_launcher.h"
#include "server/config.h"

namespace ty::server {

// config.slurm with its defaults filled in: server_url from `listen` when it is neither a
// loopback nor a wildcard address and names a port; job_name_prefix "ty-<server_id>-" when the
// config left the default; agent_binary from config.agent_binary. kInvalidArgument naming the
// key at fault (a missing partition, a server_url the nodes could not reach).
Result<launch::SlurmLauncherOptions> SlurmOptionsFor(const ServerConfig& config,
                                                     const std::string& server_id);

// The SlurmLauncher of `config` (REQUIRES: config.launcher == "slurm").
Result<std::unique_ptr<launch::SlurmLauncher>> MakeSlurmLauncher(const ServerConfig& config,
                                                                 const std::string& server_id);

}  // namespace ty::server
