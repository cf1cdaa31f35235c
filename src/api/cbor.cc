#include "api/cbor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

namespace ty::api {
namespace {

constexpr uint8_t kBreak = 0xff;

class Reader {
 public:
  Reader(std::string_view data, const CborReadLimits& limits) : data_(data), limits_(limits) {}

  std::string Read(CborItem* out) {
    if (!Item(out, 0)) return error_;
    if (pos_ != data_.size()) {
      return "trailing bytes after the data item at byte " + std::to_string(pos_);
    }
    return "";
  }

 private:
  bool Fail(std::string what) {
    if (error_.empty()) error_ = std::move(what) + " at byte " + std::to_string(pos_);
    return false;
  }
  bool Byte(uint8_t* b) {
    if (pos_ >= data_.size()) return Fail("truncated input");
    *b = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool Uint(int n, uint64_t* v) {
    if (data_.size() - pos_ < static_cast<size_t>(n)) return Fail("truncated input");
    uint64_t r = 0;
    for (int i = 0; i < n; ++i) r = (r << 8) | static_cast<uint8_t>(data_[pos_++]);
    *v = r;
    return true;
  }
  // The argument of a head with additional info `info` (0..27); indefinite (31) is the caller's.
  bool Argument(uint8_t info, uint64_t* v) {
    if (info < 24) {
      *v = info;
      return true;
    }
    switch (info) {
      case 24:
        return Uint(1, v);
      case 25:
        return Uint(2, v);
      case 26:
        return Uint(4, v);
      case 27:
        return Uint(8, v);
      default:
        return Fail("reserved additional information " + std::to_string(info));
    }
  }
  bool Count() {
    if (++items_ > limits_.max_items) {
      return Fail("more than " + std::to_string(limits_.max_items) + " data items");
    }
    return true;
  }
  // Declared lengths are checked against the bytes left before anything is reserved: every
  // string byte and every element needs at least one input byte.
  bool Fits(uint64_t n) {
    if (n > data_.size() - pos_)
      return Fail("a length of " + std::to_string(n) + " exceeds the remaining input");
    return true;
  }

  bool String(uint8_t major, uint8_t info, std::string* out) {
    if (info == 31) {
      for (;;) {
        uint8_t b = 0;
        if (!Byte(&b)) return false;
        if (b == kBreak) return true;
        if ((b >> 5) != major || (b & 31) == 31) {
          --pos_;
          return Fail("an indefinite-length string chunk of another type");
        }
        uint64_t n = 0;
        if (!Argument(b & 31, &n) || !Fits(n)) return false;
        out->append(data_.substr(pos_, n));
        pos_ += n;
      }
    }
    uint64_t n = 0;
    if (!Argument(info, &n) || !Fits(n)) return false;
    out->assign(data_.substr(pos_, n));
    pos_ += n;
    return true;
  }

  bool Container(CborItem* out, uint8_t info, size_t depth, bool map) {
    if (depth >= limits_.max_depth) {
      return Fail("nesting deeper than " + std::to_string(limits_.max_depth));
    }
    if (info == 31) {
      for (;;) {
        if (pos_ >= data_.size()) return Fail("truncated input");
        if (static_cast<uint8_t>(data_[pos_]) == kBreak) {
          ++pos_;
          break;
        }
        out->items.emplace_back();
        if (!Item(&out->items.back(), depth + 1)) return false;
        if (map) {
          out->items.emplace_back();
          if (!Item(&out->items.back(), depth + 1)) return false;
        }
      }
      return true;
    }
    uint64_t n = 0;
    if (!Argument(info, &n)) return false;
    if (map && n > (data_.size() - pos_) / 2) return Fits(UINT64_MAX);
    if (!Fits(n)) return false;
    uint64_t total = map ? n * 2 : n;
    out->items.reserve(std::min<uint64_t>(total, 1024));
    for (uint64_t i = 0; i < total; ++i) {
      out->items.emplace_back();
      if (!Item(&out->items.back(), depth + 1)) return false;
    }
    return true;
  }

  bool Item(CborItem* out, size_t depth) {
    if (!Count()) return false;
    uint8_t b = 0;
    if (!Byte(&b)) return false;
    uint8_t major = b >> 5;
    uint8_t info = b & 31;
    switch (major) {
      case 0:
      case 1:
        if (info == 31) return Fail("an indefinite-length integer");
        out->kind = major == 0 ? CborItem::Kind::kUnsigned : CborItem::Kind::kNegative;
        return Argument(info, &out->u);
      case 2:
      case 3:
        out->kind = major == 2 ? CborItem::Kind::kBytes : CborItem::Kind::kText;
        return String(major, info, &out->s);
      case 4:
      case 5:
        out->kind = major == 4 ? CborItem::Kind::kArray : CborItem::Kind::kMap;
        return Container(out, info, depth, major == 5);
      case 6:
        if (info == 31) return Fail("an indefinite-length tag");
        if (depth >= limits_.max_depth) {
          return Fail("nesting deeper than " + std::to_string(limits_.max_depth));
        }
        out->kind = CborItem::Kind::kTag;
        if (!Argument(info, &out->u)) return false;
        out->items.emplace_back();
        return Item(&out->items.back(), depth + 1);
      default:
        return Simple(out, info);
    }
  }

  bool Simple(CborItem* out, uint8_t info) {
    uint64_t v = 0;
    switch (info) {
      case 20:
      case 21:
        out->kind = CborItem::Kind::kBool;
        out->u = info == 21;
        return true;
      case 22:
        out->kind = CborItem::Kind::kNull;
        return true;
      case 25: {
        if (!Uint(2, &v)) return false;
        out->kind = CborItem::Kind::kFloat;
        out->d = HalfToDouble(static_cast<uint16_t>(v));
        return true;
      }
      case 26: {
        if (!Uint(4, &v)) return false;
        auto bits = static_cast<uint32_t>(v);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        out->kind = CborItem::Kind::kFloat;
        out->d = f;
        return true;
      }
      case 27: {
        if (!Uint(8, &v)) return false;
        double d;
        std::memcpy(&d, &v, sizeof d);
        out->kind = CborItem::Kind::kFloat;
        out->d = d;
        return true;
      }
      case 31:
        --pos_;
        return Fail("an unexpected break");
      case 24:
        if (!Uint(1, &v)) return false;
        out->kind = CborItem::Kind::kUndefined;
        return true;
      default:
        if (info >= 28) return Fail("reserved additional information " + std::to_string(info));
        out->kind = CborItem::Kind::kUndefined;
        return true;
    }
  }

  static double HalfToDouble(uint16_t h) {
    int exp = (h >> 10) & 0x1f;
    int mant = h & 0x3ff;
    double v;
    if (exp == 0) {
      v = std::ldexp(mant, -24);
    } else if (exp != 31) {
      v = std::ldexp(mant + 1024, exp - 25);
    } else {
      v = mant == 0 ? INFINITY : NAN;
    }
    return (h & 0x8000) ? -v : v;
  }

  std::string_view data_;
  const CborReadLimits& limits_;
  size_t pos_ = 0;
  size_t items_ = 0;
  std::string error_;
};

}  // namespace

std::string ReadCbor(std::string_view data, const CborReadLimits& limits, CborItem* out) {
  *out = CborItem();
  return Reader(data, limits).Read(out);
}

void CborWriter::Head(uint8_t major, uint64_t v) {
  auto m = static_cast<uint8_t>(major << 5);
  if (v < 24) {
    out_.push_back(static_cast<char>(m | v));
    return;
  }
  int n;
  if (v <= 0xff) {
    out_.push_back(static_cast<char>(m | 24));
    n = 1;
  } else if (v <= 0xffff) {
    out_.push_back(static_cast<char>(m | 25));
    n = 2;
  } else if (v <= 0xffffffffULL) {
    out_.push_back(static_cast<char>(m | 26));
    n = 4;
  } else {
    out_.push_back(static_cast<char>(m | 27));
    n = 8;
  }
  for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void CborWriter::Integer(int64_t v) {
  if (v >= 0) {
    Head(0, static_cast<uint64_t>(v));
  } else {
    Head(1, static_cast<uint64_t>(-(v + 1)));
  }
}

void CborWriter::Bytes(std::string_view b) {
  Head(2, b.size());
  out_.append(b);
}

void CborWriter::Text(std::string_view t) {
  Head(3, t.size());
  out_.append(t);
}

void CborWriter::Double(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  out_.push_back(static_cast<char>(0xfb));
  for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

}  // namespace ty::api
