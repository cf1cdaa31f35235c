// ApiClient: how the CLI reaches a Trainyard server the way AWS clients do:
// endpoint from --endpoint-url, else AWS_ENDPOINT_URL_SAGEMAKER, else
// AWS_ENDPOINT_URL; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
// else AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) with
// AWS_PROFILE (default "default"); region from AWS_REGION/AWS_DEFAULT_REGION.
// With nothing configured, the server recorded in ~/.trainyard/server.json.
// Not thread-safe.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/sigv4.h"
#include "common/status.h"

namespace httplib {
class Client;
}

namespace ty::cli {

struct Endpoint {
  std::string url;  // http://host:port
  AwsCredentials credentials;
  std::string region = "us-east-1";
  bool from_default_data_dir = false;  // found via ~/.trainyard, not configured
};

// The default data dir of the embedded server: $TRAINYARD_HOME or ~/.trainyard.
std::string DefaultDataDir();

// Endpoint of the server in `data_dir` (from server.json + its credentials).
Result<Endpoint> EndpointFromDataDir(const std::string& data_dir);

// kNotFound when no endpoint is configured and no local server is recorded.
Result<Endpoint> ResolveEndpoint(const std::string& endpoint_flag);

// Reads one profile of an AWS shared-credentials file.
Result<AwsCredentials> ReadProfile(const std::string& file, const std::string& profile);

class ApiClient {
 public:
  explicit ApiClient(Endpoint endpoint);
  ~ApiClient();
  // Calls `target` (e.g. "SageMaker.DescribeTrainingJob"). An AWS error comes
  // back as a Status whose message is "<__type>: <message>"; kUnavailable when
  // the server cannot be reached.
  Result<nlohmann::json> Call(const std::string& target, const nlohmann::json& body);
  // True when the server answers (any HTTP answer counts).
  bool Reachable();
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Endpoint endpoint_;
  std::string host_header_;
  std::unique_ptr<httplib::Client> http_;
};

}  // namespace ty::cli
