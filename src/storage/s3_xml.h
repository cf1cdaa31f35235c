// S3's XML bodies: parsing the responses S3Client reads (errors, listings, multipart results,
// batch-delete results) with libxml2, and building the request bodies it sends. Element names
// are matched without regard to the S3 namespace; text is returned entity-decoded.
// Internal to the storage module (S3Client and its tests). Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/s3_client.h"

namespace ty::storage {

// Bounds on every S3 response body parsed here, enforced while parsing: a document past either
// is treated like a malformed one. S3's own documents nest 3 levels and a 1,000-key listing is
// well under 4 MB; an endpoint that is not S3 (or a hostile one) cannot make the agent or the
// server recurse or allocate beyond these. A DOCTYPE is refused too (no entities, no fetches).
inline constexpr int kMaxS3XmlDepth = 32;
inline constexpr size_t kMaxS3XmlBytes = size_t{32} << 20;

// An S3 <Error> document.
struct S3ErrorBody {
  std::string code;      // "NoSuchKey"
  std::string message;   // "The specified key does not exist."
  std::string region;    // <Region>, sent with some redirects
  std::string endpoint;  // <Endpoint>, sent with PermanentRedirect
};

// True and fills `out` when `xml` is an <Error> document; false for anything else (including
// an empty or malformed body).
bool ParseS3Error(std::string_view xml, S3ErrorBody* out);

// A ListObjectsV2 result. Keys, prefixes and StartAfter are URL-decoded when the response says
// <EncodingType>url</EncodingType> (servers that ignore encoding-type send them raw).
// kIoError for a body that is not a ListBucketResult.
Result<S3ListPage> ParseListObjectsV2(std::string_view xml);

// The <UploadId> of an InitiateMultipartUploadResult. kIoError when missing.
Result<std::string> ParseInitiateMultipartUpload(std::string_view xml);

// The <ETag> (quotes removed) of a CompleteMultipartUploadResult. kIoError for anything else;
// callers check for an <Error> document first (ParseS3Error).
Result<std::string> ParseCompleteMultipartUpload(std::string_view xml);

// The per-key <Error> entries of a DeleteResult. kIoError for a body that is not a DeleteResult.
Result<std::vector<S3DeleteError>> ParseDeleteResult(std::string_view xml);

// Escapes &, <, >, ", ' and the whitespace controls \t \n \r (as character references, so a key
// keeps them exactly).
std::string XmlEscape(std::string_view s);

// True when `s` holds a character XML 1.0 cannot carry at all (controls other than \t \n \r):
// such keys cannot go in a DeleteObjects body.
bool HasXmlForbiddenChar(std::string_view s);

// <Delete><Quiet>true</Quiet><Object><Key>...</Key></Object>...</Delete>
std::string BuildDeleteRequest(const std::vector<std::string>& keys);

// <CompleteMultipartUpload><Part><PartNumber>n</PartNumber><ETag>"..."</ETag></Part>...
std::string BuildCompleteMultipartUpload(const std::vector<S3CompletedPart>& parts);

// <CreateBucketConfiguration><LocationConstraint>region</LocationConstraint>...
std::string BuildCreateBucketConfiguration(const std::string& region);

// Percent-decoding (as in encoding-type=url listings); '+' is left alone. Malformed escapes
// are kept as they are.
std::string UrlDecode(std::string_view s);

}  // namespace ty::storage
