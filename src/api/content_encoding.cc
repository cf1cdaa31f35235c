#include "api/content_encoding.h"

#include <zlib.h>

#include <algorithm>

namespace ty::api {

bool InflateGzip(std::string_view in, size_t max_bytes, std::string* out, std::string* error) {
  out->clear();
  z_stream z{};
  // 16 + MAX_WBITS: a gzip wrapper only (not zlib, not raw deflate).
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    *error = "cannot start a gzip decoder";
    return false;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) break;
    size_t got = sizeof(buf) - z.avail_out;
    if (out->size() + got > max_bytes) {
      inflateEnd(&z);
      *error = "the gzip body inflates past the limit of " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    out->append(buf, got);
    if (rc == Z_OK && got == 0 && z.avail_in == 0) {  // input ended inside the stream
      rc = Z_BUF_ERROR;
      break;
    }
  }
  bool trailing = rc == Z_STREAM_END && z.avail_in != 0;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) {
    *error = rc == Z_BUF_ERROR ? "the gzip body is truncated" : "the gzip body is corrupt";
    return false;
  }
  if (trailing) {
    *error = "bytes follow the gzip stream";
    return false;
  }
  return true;
}

}  // namespace ty::api
