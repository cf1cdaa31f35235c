// Turns a validated CreateTrainingJob body into a JobSpec, enforcing the
// semantic rules the service model cannot express (spec section 2.1) and
// rejecting, by name, members Trainyard does not support yet.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/api_error.h"
#include "common/status.h"
#include "model/training_job.h"

namespace ty::services {

struct RequestPolicy {
  std::vector<std::string> file_roots;  // canonical dirs file:// URIs may point into
  // Accounts with their own roots (canonical), instead of file_roots.
  std::map<std::string, std::vector<std::string>> account_file_roots;

  // The policy a caller of `account` is held to: its own roots when it has some.
  RequestPolicy ForAccount(const std::string& account) const {
    auto it = account_file_roots.find(account);
    if (it == account_file_roots.end()) return {file_roots, {}};
    return {it->second, {}};
  }
};

// REQUIRES: body passed model validation. kInvalidArgument with the reason.
Result<model::JobSpec> ParseCreateTrainingJob(const nlohmann::json& body,
                                              const RequestPolicy& policy);

// Checks one URI: file:// inside the roots, s3:// not supported yet.
Status CheckUri(const std::string& what, const std::string& uri, const RequestPolicy& policy);

}  // namespace ty::services
