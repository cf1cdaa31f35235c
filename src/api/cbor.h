// CBOR (RFC 8949), the subset smithy RPC v2 uses: a bounded reader into a small item tree and
// a writer that always picks the shortest head. Hand-written: Debian's libcbor is a C library
// whose streaming API would need as much glue as this, and the reader must enforce our bounds
// (depth, item count, declared lengths against the bytes left) before it allocates anything.
//
// Thread contract: CborReadLimits, CborItem and CborWriter are plain values; ReadCbor is a pure
// function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ty::api {

struct CborItem {
  enum class Kind {
    kUnsigned,   // major 0: value in u
    kNegative,   // major 1: the integer -1 - u
    kBytes,      // major 2 (definite or indefinite, chunks joined): bytes in s
    kText,       // major 3: UTF-8 in s (not validated here)
    kArray,      // major 4: elements in items
    kMap,        // major 5: keys and values alternate in items
    kTag,        // major 6: tag number in u, the tagged item in items[0]
    kFloat,      // major 7 half/single/double: value in d
    kBool,       // major 7 simple 20/21: u is 0 or 1
    kNull,       // major 7 simple 22
    kUndefined,  // major 7 simple 23 (and other simple values)
  };
  Kind kind = Kind::kNull;
  uint64_t u = 0;
  double d = 0;
  std::string s;
  std::vector<CborItem> items;
};

struct CborReadLimits {
  size_t max_depth = 64;       // nesting of arrays, maps and tags
  size_t max_items = 1 << 20;  // data items in total
};

// Reads exactly one data item from `data` (trailing bytes are an error). Returns "" or what is
// wrong with the input ("truncated input at byte 12", "nesting deeper than 64", ...).
std::string ReadCbor(std::string_view data, const CborReadLimits& limits, CborItem* out);

// Appends CBOR to a byte string. Each call writes one head (and its payload for strings and
// scalars); arrays and maps are written as a definite-length head followed by their elements.
class CborWriter {
 public:
  void Unsigned(uint64_t v) { Head(0, v); }
  void Integer(int64_t v);
  void Bytes(std::string_view b);
  void Text(std::string_view t);
  void ArrayHead(uint64_t n) { Head(4, n); }
  void MapHead(uint64_t n) { Head(5, n); }
  void Tag(uint64_t tag) { Head(6, tag); }
  void Double(double v);  // always float64
  void Bool(bool v) { out_.push_back(static_cast<char>(v ? 0xf5 : 0xf4)); }
  void Null() { out_.push_back(static_cast<char>(0xf6)); }

  const std::string& bytes() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Head(uint8_t major, uint64_t v);
  std::string out_;
};

}  // namespace ty::api
