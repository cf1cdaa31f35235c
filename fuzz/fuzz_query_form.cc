// The AWS query decoder on one input: the bytes are a form body (or, with a leading '?', a GET
// query string) that QueryCodec decodes against the embedded CloudWatch model (Action picks the
// operation, so the model-driven walk of lists, maps and nested structures is reached), then the
// decoded document is written back as XML and the form text is XML-escaped. A crash, a sanitizer
// report or an escaping exception is a finding; so is an escaped text that is not valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/query_codec.h"
#include "api/service_model.h"
#include "api/wire_format.h"

namespace {

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model = ty::api::ServiceModel::Embedded("cloudwatch");
  static const ty::api::QueryCodec codec;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ty::HttpRequestParts req;
  if (!text.empty() && text[0] == '?') {
    req.method = "GET";
    req.query = std::string(text.substr(1));
  } else {
    req.method = "POST";
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}};
    req.body = std::string(text);
  }
  req.path = "/";
  if (!codec.Recognizes(req)) return 0;
  auto decoded = codec.Decode(req, *model);
  if (auto* call = std::get_if<ty::api::DecodedCall>(&decoded)) {
    const ty::api::Operation* op = model->FindOperation(call->operation);
    if (op == nullptr) std::abort();  // Decode checks the Action
    if (op->input != nullptr) (void)ty::api::DocumentToQueryXml(call->input, *op->input);
    (void)codec.Encode(*model, *op, call->input, "fuzz");
  } else {
    auto r = codec.EncodeError(model.get(), std::get<ty::api::ApiError>(decoded), "fuzz");
    if (!ValidUtf8(r.body)) std::abort();
  }
  if (!ValidUtf8(ty::api::XmlEscape(text))) std::abort();
  return 0;
}
