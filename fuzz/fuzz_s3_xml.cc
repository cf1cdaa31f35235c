// The S3 XML parser on one input: byte 0 picks the response parser (as S3Client would call it
// for that request), the rest is the body an S3 endpoint sent.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/s3_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view xml(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      ty::storage::S3ErrorBody e;
      (void)ty::storage::ParseS3Error(xml, &e);
      break;
    }
    case 1:
      (void)ty::storage::ParseListObjectsV2(xml);
      break;
    case 2:
      (void)ty::storage::ParseInitiateMultipartUpload(xml);
      break;
    case 3:
      (void)ty::storage::ParseCompleteMultipartUpload(xml);
      break;
    default:
      (void)ty::storage::ParseDeleteResult(xml);
      break;
  }
  return 0;
}
