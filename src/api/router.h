// ApiRouter: the one front door of every AWS service Trainyard serves on its endpoint. The only
// API class server/ talks to.
//
// For each request:
//   1. the first codec that Recognizes() it fixes the protocol (none: an AWS JSON error, from
//      the JSON codec wherever it is in the list);
//   2. the service: for JSON and CBOR the one whose target prefix the request addresses, for
//      query and rest-json the one whose signing name is the credential scope's service (and
//      that speaks the protocol);
//   3. SigV4 for that service's signing name: a scope for another service is
//      InvalidSignatureException "Credential should be scoped to correct service";
//   4. the codec decodes the operation and its input document; ValidateRequest checks it
//      against the service's model;
//   5. Service::Call; its output or error is encoded by the same codec.
// Every response carries x-amzn-RequestId. Nothing a request holds makes Handle throw: a
// throwing service is an InternalFailure (500), logged with the request id.
//
// Thread contract: configure (AddCodec, AddService, SetObserver) before the first Handle;
// Handle and RenderError may then run on any number of threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/protocol.h"
#include "api/service.h"
#include "api/sigv4_verifier.h"
#include "common/clock.h"

namespace ty::api {

// What the router saw of one request, for counters (the Prometheus endpoint).
struct RequestRecord {
  std::string_view service;     // the service id ("SageMaker", "CloudWatch Logs"); "" unknown
  std::string_view operation;   // "" when not decoded
  int status = 0;               // HTTP status sent
  std::string_view error_type;  // "" on success
  std::chrono::nanoseconds latency{0};
};

class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  // Called once per request, on the handling thread, after the response is built. Must not
  // block.
  virtual void OnRequest(const RequestRecord& record) = 0;
};

struct RouterOptions {
  // Larger bodies are refused (413), unless the service was added with a larger limit of its
  // own. The HTTP layer must admit the largest of them.
  size_t max_body_bytes = 1 << 20;
};

class ApiRouter {
 public:
  // REQUIRES: verifier and clock outlive the router.
  ApiRouter(RouterOptions options, const SigV4Verifier* verifier, const Clock* clock);
  ~ApiRouter();
  ApiRouter(const ApiRouter&) = delete;
  ApiRouter& operator=(const ApiRouter&) = delete;

  // Codecs are asked in the order added.
  void AddCodec(std::unique_ptr<ProtocolCodec> codec);
  // `max_body_bytes` 0: the options' limit. A service whose requests are larger by nature
  // (CloudWatch Logs' PutLogEvents: 1 MiB of events is more than 1 MiB of JSON) sets its own.
  void AddService(std::shared_ptr<Service> service, size_t max_body_bytes = 0);
  // The largest body any service takes: what the HTTP layer must read.
  size_t MaxBodyBytes() const;
  void SetObserver(RequestObserver* observer) { observer_ = observer; }

  WireResponse Handle(const HttpRequestParts& req);

  // An error the HTTP layer raised before a handler saw the whole request (bad head, body too
  // large), rendered in the protocol the request looks like (AWS JSON 1.1 when unknown).
  // `req` may be partial (no body).
  WireResponse RenderError(const HttpRequestParts& req, const ApiError& error) const;

  // The signing names of the services added ("sagemaker", "logs", ...), for the start line.
  std::vector<std::string> SigningNames() const;

 private:
  struct Route;
  const ProtocolCodec* CodecFor(const HttpRequestParts& req) const;
  // The AWS JSON codec (the first codec when there is none): the error shape for requests in
  // no protocol, whatever order the codecs were added in.
  const ProtocolCodec* FallbackCodec() const;
  const Route* ServiceFor(const ProtocolCodec& codec, const HttpRequestParts& req,
                          ApiError* error) const;
  WireResponse Finish(const ProtocolCodec& codec, const ServiceModel* model, ApiError error,
                      const std::string& request_id) const;

  const RouterOptions options_;
  const SigV4Verifier* const verifier_;
  const Clock* const clock_;
  std::vector<std::unique_ptr<ProtocolCodec>> codecs_;
  std::vector<std::unique_ptr<Route>> routes_;
  RequestObserver* observer_ = nullptr;
};

}  // namespace ty::api
