#include "server/config.h"

#include <yaml-cpp/yaml.h>

namespace ty::server {

Status ParseListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument("--listen wants HOST:PORT, got '" + listen + "'");
  }
  *host = listen.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  // Digits only: std::stoi alone would take " 80" and "+80".
  std::string digits = listen.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos || std::stoi(digits) > 65535) {
    return InvalidArgument("--listen has a bad port: '" + listen + "'");
  }
  *port = std::stoi(digits);
  return Status::Ok();
}

Status LoadConfigFile(const std::string& path, ServerConfig* c) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) return InvalidArgument(path + ": the config must be a YAML mapping");
    for (const auto& kv : root) {
      std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "listen") {
        c->listen = v.as<std::string>();
      } else if (key == "data_dir") {
        c->data_dir = v.as<std::string>();
      } else if (key == "region") {
        c->region = v.as<std::string>();
      } else if (key == "file_roots") {
        c->file_roots = v.as<std::vector<std::string>>();
      } else if (key == "credentials_file") {
        c->credentials_file = v.as<std::string>();
      } else if (key == "isolation") {
        c->isolation = v.as<std::string>();
        if (c->isolation != "auto" && c->isolation != "bwrap" && c->isolation != "none") {
          return InvalidArgument(path + ": isolation must be auto, bwrap or none");
        }
      } else if (key == "stop_grace_seconds") {
        c->stop_grace = std::chrono::seconds(v.as<int64_t>());
      } else if (key == "max_body_bytes") {
        c->max_body_bytes = v.as<size_t>();
      } else if (key == "http_threads") {
        c->http_threads = v.as<int>();
      } else if (key == "images") {
        if (!v.IsNull() && !v.IsSequence()) {
          return InvalidArgument(path + ": images must be a list of entries");
        }
        for (const auto& img : v) {
          launch::ImageRule rule;
          rule.match = img["match"].as<std::string>();
          std::string runtime = img["runtime"] ? img["runtime"].as<std::string>() : "command";
          if (runtime == "python-framework") {
            rule.entry.runtime = model::ImageEntry::Runtime::kPythonFramework;
          } else if (runtime == "command") {
            rule.entry.runtime = model::ImageEntry::Runtime::kCommand;
            if (!img["command"]) {
              return InvalidArgument(path + ": image '" + rule.match + "' needs a command");
            }
            rule.entry.command = img["command"].as<std::vector<std::string>>();
          } else {
            return InvalidArgument(path + ": image runtime must be command or python-framework");
          }
          if (img["workdir"]) rule.entry.workdir = img["workdir"].as<std::string>();
          if (img["env"]) rule.entry.env = img["env"].as<std::map<std::string, std::string>>();
          c->images.push_back(std::move(rule));
        }
      } else {
        return InvalidArgument(path + ": unknown config key '" + key + "'");
      }
    }
  } catch (const YAML::Exception& e) {
    return InvalidArgument(path + ": " + e.what());
  }
  return Status::Ok();
}

}  // namespace ty::server
