#include "common/json.h"

#include <string>

namespace ty {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTooDeepPrefix = "JSON nested deeper than ";

// Forwards every event to nlohmann's own DOM builder, counting open containers; past the limit
// it returns false, which makes sax_parse stop at once (before the container is built).
class DepthLimitedDomBuilder {
 public:
  DepthLimitedDomBuilder(json& root, size_t max_depth) : dom_(root, false), max_depth_(max_depth) {}

  bool null() { return dom_.null(); }
  bool boolean(bool v) { return dom_.boolean(v); }
  bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
  bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
  bool number_float(json::number_float_t v, const json::string_t& s) {
    return dom_.number_float(v, s);
  }
  bool string(json::string_t& v) { return dom_.string(v); }
  bool binary(json::binary_t& v) { return dom_.binary(v); }
  bool key(json::string_t& v) { return dom_.key(v); }

  bool start_object(std::size_t n) { return Open() && dom_.start_object(n); }
  bool end_object() {
    --depth_;
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return Open() && dom_.start_array(n); }
  bool end_array() {
    --depth_;
    return dom_.end_array();
  }

  template <class Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const Exception& ex) {
    syntax_error_ = ex.what();
    return false;
  }

  bool too_deep() const { return too_deep_; }
  const std::string& syntax_error() const { return syntax_error_; }

 private:
  bool Open() {
    if (depth_ >= max_depth_) {
      too_deep_ = true;
      return false;
    }
    ++depth_;
    return true;
  }

  // nlohmann's internal DOM builder: the same code json::parse uses, so values come out exactly
  // as they would from json::parse. allow_exceptions=false: errors are reported, never thrown.
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  size_t max_depth_;
  size_t depth_ = 0;
  bool too_deep_ = false;
  std::string syntax_error_;
};

}  // namespace

Result<json> ParseJson(std::string_view text, size_t max_depth) {
  json root;
  DepthLimitedDomBuilder builder(root, max_depth);
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json,
                         /*strict=*/true);
  } catch (const json::exception& e) {
    // The DOM builder can still throw for sizes it cannot represent; that is bad input too.
    return InvalidArgument(std::string("not valid JSON: ") + e.what());
  }
  if (builder.too_deep()) {
    return InvalidArgument(std::string(kTooDeepPrefix) + std::to_string(max_depth) +
                           " levels (objects and arrays inside each other)");
  }
  if (!ok) {
    std::string why = builder.syntax_error();
    // nlohmann's messages start with "[json.exception.parse_error.101] "; the rest says where.
    if (auto bracket = why.find("] ");
        why.rfind("[json.exception", 0) == 0 && bracket != std::string::npos) {
      why = why.substr(bracket + 2);
    }
    return InvalidArgument("not valid JSON: " + why);
  }
  return root;
}

bool IsJsonTooDeep(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument &&
         std::string_view(status.message()).rfind(kTooDeepPrefix, 0) == 0;
}

}  // namespace ty
