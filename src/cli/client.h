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
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/service_model.h"
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

// Calls AWS JSON services (1.0 or 1.1) on one endpoint: the signing name, X-Amz-Target
// prefix and content type of each call come from the service's embedded model
// (api::ServiceModel::Embedded), so the CLI speaks to `logs` as it does to `sagemaker`.
class ApiClient {
 public:
  explicit ApiClient(Endpoint endpoint);
  ~ApiClient();
  // Calls `operation` of the service `model` describes. An AWS error comes back as a Status
  // whose message is "<__type>: <message>" (kNotFound for a ResourceNotFoundException,
  // kInvalidArgument for other 4xx); kUnavailable when the server cannot be reached or
  // answers 5xx. kInvalidArgument when the model's protocol is not AWS JSON.
  Result<nlohmann::json> Call(const api::ServiceModel& model, const std::string& operation,
                              const nlohmann::json& body);
  // Calls `target` ("SageMaker.DescribeTrainingJob", "Logs_20140328.GetLogEvents"): the
  // embedded model whose target prefix it names. kInvalidArgument for an unknown prefix.
  Result<nlohmann::json> Call(const std::string& target, const nlohmann::json& body);
  // A rest-json service's reply (Lambda), as received.
  struct RestReply {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    // The value of header `name` (case-insensitive), or "".
    std::string Header(const std::string& name) const;
  };
  // Sends one SigV4-signed request for `signing_name` ("lambda"): `path` as on the wire
  // (percent-encoded), `query` without '?'. kUnavailable when the server cannot be reached;
  // any HTTP status is a reply (the caller reads the error from it).
  Result<RestReply> CallRest(const std::string& signing_name, const std::string& method,
                             const std::string& path, const std::string& query,
                             const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers = {});
  // True when the server answers (any HTTP answer counts).
  bool Reachable();
  const Endpoint& endpoint() const { return endpoint_; }

 private:
  Endpoint endpoint_;
  std::string host_header_;
  std::unique_ptr<httplib::Client> http_;
};

}  // namespace ty::cli
