#include "server/launcher_factory.h"

namespace ty::server {

Result<launch::SlurmLauncherOptions> SlurmOptionsFor(const ServerConfig& config,
                                                     const std::string& server_id) {
  launch::SlurmLauncherOptions o = config.slurm;
  if (o.server_url.empty()) {
    std::string host;
    int port = 0;
    TY_RETURN_IF_ERROR(ParseListen(config.listen, &host, &port));
    const bool local_only = host.empty() || host == "0.0.0.0" || host == "::" ||
                            host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
    if (local_only || port == 0) {
      return InvalidArgument(
          "slurm.server_url is required: the agents on the Slurm nodes report to it, and listen " +
          config.listen + " is " +
          (port == 0 ? std::string("a port chosen at start") : "not an address the nodes reach") +
          " (e.g. listen: 10.0.0.5:8080, or slurm.server_url: http://10.0.0.5:8080)");
    }
    o.server_url = "http://" + config.listen;
  }
  while (!o.server_url.empty() && o.server_url.back() == '/') o.server_url.pop_back();
  if (o.job_name_prefix == launch::SlurmLauncherOptions{}.job_name_prefix) {
    o.job_name_prefix = "ty-" + server_id.substr(0, 12) + "-";
  }
  if (o.agent_binary.empty()) o.agent_binary = config.agent_binary;
  TY_RETURN_IF_ERROR(launch::ValidateSlurmOptions(o));
  return o;
}

Result<std::unique_ptr<launch::SlurmLauncher>> MakeSlurmLauncher(const ServerConfig& config,
                                                                 const std::string& server_id) {
  TY_ASSIGN_OR_RETURN(launch::SlurmLauncherOptions o, SlurmOptionsFor(config, server_id));
  return std::make_unique<launch::SlurmLauncher>(std::move(o));
}

}  // namespace ty::server
