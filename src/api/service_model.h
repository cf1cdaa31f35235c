// ServiceModel: the SageMaker API model (botocore JSON format, pruned by
// tools/prune_service_model.py) that request validation walks. It holds every
// shape reachable from the served operations, with each shape's constraints
// (required members, min/max, pattern, enum) and its references to other
// shapes resolved to pointers.
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
  std::string name;              // PascalCase, as sent on the wire ("TrainingJobName")
  std::string shape_name;        // target shape ("TrainingJobName")
  const Shape* shape = nullptr;  // resolved target; never null in a loaded model
  bool required = false;
};

struct Shape {
  std::string name;
  ShapeType type = ShapeType::kString;

  // kStructure: members in model order (alphabetical in the pruned model).
  std::vector<Member> members;
  bool is_union = false;  // exactly one member may be set (not enforced by ValidateRequest)
  // kList: element shape. kMap: key and value shapes.
  const Shape* list_member = nullptr;
  const Shape* map_key = nullptr;
  const Shape* map_value = nullptr;

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
};

class ServiceModel {
 public:
  // Parses a botocore-format model. Errors (kInvalidArgument): text is not JSON, a shape has an
  // unknown type, or a reference names a shape that is not in the model. A pattern RE2 cannot
  // compile is not an error: that shape's pattern is skipped (see uncompilable_patterns()).
  static Result<std::shared_ptr<const ServiceModel>> Load(std::string_view json_text);

  // The model embedded at build time, loaded once on first use (thread-safe). Null only if the
  // embedded text does not load, which service_model_test rules out.
  static std::shared_ptr<const ServiceModel> Embedded();

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
};

// The pruned SageMaker model JSON compiled into the binary
// (src/api/data/sagemaker-model.json).
std::string_view EmbeddedSageMakerModel();

}  // namespace ty::api
