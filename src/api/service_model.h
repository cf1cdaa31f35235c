// ServiceModel: one AWS service's API model (botocore JSON format, pruned by
// tools/prune_service_model.py) that the protocol codecs and request validation
// walk. It holds the service's metadata (protocols, target prefix, signing name),
// every shape reachable from the served operations with each shape's constraints
// (required members, min/max, pattern, enum) and serialization traits
// (locationName, flattened, timestampFormat, error codes), and its references to
// other shapes resolved to pointers.
//
// Thread contract: immutable after Load(); any number of threads may read a
// loaded model concurrently (RE2 matching is thread-safe).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace re2 {
class RE2;
}

namespace ty::api {

enum class ShapeType {
  kStructure,
  kList,
  kMap,
  kString,
  kInteger,
  kLong,
  kFloat,
  kDouble,
  kBoolean,
  kTimestamp,
  kBlob,
};

// The model's name for a type ("structure", "integer", ...).
const char* ShapeTypeName(ShapeType type);

struct Shape;

struct Member {
  std::string name;              // as in the model and the JSON document ("TrainingJobName")
  std::string shape_name;        // target shape ("TrainingJobName")
  const Shape* shape = nullptr;  // resolved target; never null in a loaded model
  bool required = false;
  // Serialization traits (empty/false: none). location: "header", "headers", "querystring",
  // "uri", "statusCode" (rest protocols); location_name: the wire name there, or the XML/query
  // name of the member.
  std::string location;
  std::string location_name;
  std::string query_name;        // ec2/query override of the form key
  std::string timestamp_format;  // "iso8601", "unixTimestamp", "rfc822"
  bool flattened = false;
  bool jsonvalue = false;  // a string holding JSON (rest headers)
};

struct Shape {
  std::string name;
  ShapeType type = ShapeType::kString;

  // kStructure: members in model order (alphabetical in the pruned model).
  std::vector<Member> members;
  bool is_union = false;  // exactly one member may be set (not enforced by ValidateRequest)
  // rest protocols: the member that is the whole HTTP body (a blob or string sent raw, or a
  // structure sent as the body's document); empty: the body holds the unlocated members.
  std::string payload;
  // kList: element shape. kMap: key and value shapes.
  const Shape* list_member = nullptr;
  const Shape* map_key = nullptr;
  const Shape* map_value = nullptr;
  // XML/query names of list elements and map entries ("member", "key", "value" when empty).
  std::string list_member_name;
  std::string map_key_name;
  std::string map_value_name;
  bool flattened = false;
  std::string timestamp_format;  // kTimestamp: the shape's default wire format, if any
  // Error shapes: the modeled exception, its code on the wire (query: <Code>; defaults to the
  // shape name), HTTP status and whether the caller is at fault.
  bool exception = false;
  std::string error_code;
  int error_http_status = 0;
  bool sender_fault = true;

  // Length (string, blob: code points/bytes; list/map: element count) or value bounds
  // (numbers). Model bounds are integral.
  std::optional<int64_t> min;
  std::optional<int64_t> max;
  std::string pattern;  // empty: none
  // Null when there is no pattern or RE2 could not compile it (then it is not checked).
  std::shared_ptr<const re2::RE2> regex;
  std::vector<std::string> enum_values;  // empty: not an enum

  // Returns the member named `name` (exact, case-sensitive), or null.
  const Member* FindMember(std::string_view member_name) const;
  // True when the string fully matches `pattern`, or when there is no usable pattern.
  bool MatchesPattern(std::string_view value) const;
  bool IsScalar() const {
    return type != ShapeType::kStructure && type != ShapeType::kList && type != ShapeType::kMap;
  }
};

struct Operation {
  std::string name;
  const Shape* input = nullptr;     // null: the operation takes no input
  const Shape* output = nullptr;    // null: the operation returns no body
  std::vector<std::string> errors;  // modeled error shape names
  std::string result_wrapper;       // query: the <Op>Result element of the output
  // rest protocols: the route ("POST", "/2015-03-31/functions/{FunctionName}/invocations")
  // and the success status.
  std::string http_method = "POST";
  std::string request_uri = "/";
  int response_code = 200;
};

// The model's metadata: what the router and codecs need to know about the service.
struct ServiceMetadata {
  std::string api_version;      // "2010-08-01": query's Version
  std::string endpoint_prefix;  // "monitoring"
  std::string signing_name;     // from the model; SigningName() falls back to endpoint_prefix
  std::string target_prefix;    // JSON/CBOR: "GraniteServiceVersion20100801"
  std::string json_version;     // "1.0" or "1.1"
  std::string protocol;         // botocore's "protocol": "json", "query", "rest-json", ...
  std::vector<std::string> protocols;  // every protocol the service speaks (protocol if none)
  std::string service_id;              // "CloudWatch"
  std::string xml_namespace;           // query responses
  bool aws_query_compatible = false;   // JSON/CBOR errors also carry x-amzn-query-error
  // The SigV4 scope service: signingName, else endpointPrefix.
  const std::string& SigningName() const {
    return signing_name.empty() ? endpoint_prefix : signing_name;
  }
  bool Speaks(std::string_view p) const;
};

class ServiceModel {
 public:
  // Parses a botocore-format model. Errors (kInvalidArgument): text is not JSON, a shape has an
  // unknown type, or a reference names a shape that is not in the model. A pattern RE2 cannot
  // compile is not an error: that shape's pattern is skipped (see uncompilable_patterns()).
  static Result<std::shared_ptr<const ServiceModel>> Load(std::string_view json_text);

  // The SageMaker model embedded at build time, loaded once on first use (thread-safe). Null
  // only if the embedded text does not load, which service_model_test rules out.
  static std::shared_ptr<const ServiceModel> Embedded();
  // The embedded model of `service` ("sagemaker", "logs", "cloudwatch", "trainyard"), loaded
  // once; null for an unknown name.
  static std::shared_ptr<const ServiceModel> Embedded(std::string_view service);

  const ServiceMetadata& metadata() const { return metadata_; }
  // True when some structure member is renamed on the wire (a locationName other than its
  // name): JSON and CBOR bodies then use that name instead of the member's.
  bool has_wire_names() const { return has_wire_names_; }

  // Null when the model has no such operation / shape.
  const Operation* FindOperation(std::string_view name) const;
  const Shape* FindShape(std::string_view name) const;

  const std::map<std::string, Operation, std::less<>>& operations() const { return operations_; }
  const std::map<std::string, Shape, std::less<>>& shapes() const { return shapes_; }
  // Shapes whose pattern RE2 rejected, sorted.
  const std::vector<std::string>& uncompilable_patterns() const { return uncompilable_patterns_; }

 private:
  ServiceModel() = default;

  // std::map nodes are stable, so Shape pointers stay valid.
  std::map<std::string, Shape, std::less<>> shapes_;
  std::map<std::string, Operation, std::less<>> operations_;
  std::vector<std::string> uncompilable_patterns_;
  ServiceMetadata metadata_;
  bool has_wire_names_ = false;
};

// The pruned SageMaker model JSON compiled into the binary
// (src/api/data/sagemaker-model.json).
std::string_view EmbeddedSageMakerModel();
// The model text of `service` compiled into the binary (src/api/data/<service>-model.json);
// empty for an unknown service.
std::string_view EmbeddedModelText(std::string_view service);

}  // namespace ty::api
