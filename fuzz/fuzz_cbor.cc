// The RPC v2 CBOR decoder on one input: byte 0 picks an operation of the embedded CloudWatch
// model, the rest is the request body. The body is read by the bounded CBOR reader and turned
// into a document by the model; an accepted document is encoded back to CBOR and must decode to
// the same document (the encoder and decoder agree). A crash, a sanitizer report, an escaping
// exception or a round trip that differs is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/cbor.h"
#include "api/cbor_codec.h"
#include "api/service_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model = ty::api::ServiceModel::Embedded("cloudwatch");
  static const std::vector<const ty::api::Shape*> inputs = [] {
    std::vector<const ty::api::Shape*> v;
    for (const auto& [name, op] : model->operations()) {
      if (op.input != nullptr) v.push_back(op.input);
      if (op.output != nullptr) v.push_back(op.output);
    }
    return v;
  }();
  if (size < 1) return 0;
  const ty::api::Shape& shape = *inputs[data[0] % inputs.size()];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  ty::api::CborItem item;
  (void)ty::api::ReadCbor(body, {}, &item);

  nlohmann::json doc;
  if (!ty::api::CborToDocument(body, shape, &doc).empty()) return 0;
  std::string again = ty::api::DocumentToCbor(doc, &shape);
  nlohmann::json back;
  if (!ty::api::CborToDocument(again, shape, &back).empty()) std::abort();
  if (back != doc) std::abort();
  (void)doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
