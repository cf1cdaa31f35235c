#include "debugger/event_file.h"

#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/json.h"

namespace ty::debugger {

namespace {

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

uint64_t LoadLe64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t LoadLe32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// A bounded protobuf wire-format reader: every read checks the remaining bytes.
class Wire {
 public:
  explicit Wire(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  Status Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) return InvalidArgument("a protobuf varint is truncated");
      auto b = static_cast<unsigned char>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return Status::Ok();
      }
    }
    return InvalidArgument("a protobuf varint is longer than 10 bytes");
  }
  Status Fixed(size_t n, const char** out) {
    if (data_.size() - pos_ < n)
      return InvalidArgument("a protobuf fixed-width field is truncated");
    *out = data_.data() + pos_;
    pos_ += n;
    return Status::Ok();
  }
  Status Bytes(std::string_view* out) {
    uint64_t len = 0;
    TY_RETURN_IF_ERROR(Varint(&len));
    if (len > data_.size() - pos_) {
      return InvalidArgument("a protobuf length-delimited field runs past the end of its message");
    }
    *out = data_.substr(pos_, len);
    pos_ += len;
    return Status::Ok();
  }
  Status Tag(uint32_t* field, uint32_t* wire_type) {
    uint64_t key = 0;
    TY_RETURN_IF_ERROR(Varint(&key));
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<uint32_t>(key & 7);
    if (*field == 0) return InvalidArgument("a protobuf field number is 0");
    return Status::Ok();
  }
  Status Skip(uint32_t wire_type) {
    const char* p = nullptr;
    std::string_view s;
    uint64_t v = 0;
    switch (wire_type) {
      case 0:
        return Varint(&v);
      case 1:
        return Fixed(8, &p);
      case 2:
        return Bytes(&s);
      case 5:
        return Fixed(4, &p);
      default:
        return InvalidArgument("unsupported protobuf wire type " + std::to_string(wire_type));
    }
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

Status ExpectWire(uint32_t got, uint32_t want, const char* field) {
  if (got != want) {
    return InvalidArgument(std::string("protobuf field ") + field + " has the wrong wire type");
  }
  return Status::Ok();
}

double HalfToDouble(uint16_t h) {
  int sign = (h >> 15) & 1;
  int exp = (h >> 10) & 0x1f;
  int frac = h & 0x3ff;
  double v;
  if (exp == 0) {
    v = std::ldexp(frac, -24);
  } else if (exp == 31) {
    v = frac ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(frac + 1024, exp - 25);
  }
  return sign ? -v : v;
}

double FloatBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Bytes per element of tensor_content, 0 for unsupported dtypes.
size_t ElementSize(int dtype) {
  switch (dtype) {
    case 1:
      return 4;  // FLOAT
    case 2:
      return 8;  // DOUBLE
    case 3:
      return 4;  // INT32
    case 4:
      return 1;  // UINT8
    case 5:
      return 2;  // INT16
    case 6:
      return 1;  // INT8
    case 9:
      return 8;  // INT64
    case 10:
      return 1;  // BOOL
    case 14:     // BFLOAT16
    case 17:     // UINT16
    case 19:     // HALF
      return 2;
    case 22:
      return 4;  // UINT32
    case 23:
      return 8;  // UINT64
    default:
      return 0;
  }
}

double DecodeElement(int dtype, const char* p) {
  uint64_t u = 0;
  switch (dtype) {
    case 1:
      return FloatBits(LoadLe32(p));
    case 2: {
      u = LoadLe64(p);
      double d;
      std::memcpy(&d, &u, 8);
      return d;
    }
    case 3:
      return static_cast<int32_t>(LoadLe32(p));
    case 4:
      return static_cast<unsigned char>(p[0]);
    case 5:
      return static_cast<int16_t>(static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                                                        (static_cast<unsigned char>(p[1]) << 8)));
    case 6:
      return static_cast<signed char>(p[0]);
    case 9:
      return static_cast<double>(static_cast<int64_t>(LoadLe64(p)));
    case 10:
      return p[0] != 0 ? 1.0 : 0.0;
    case 14: {
      uint32_t bits = (static_cast<uint32_t>(static_cast<unsigned char>(p[1])) << 24) |
                      (static_cast<uint32_t>(static_cast<unsigned char>(p[0])) << 16);
      return FloatBits(bits);
    }
    case 17:
      return static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                                   (static_cast<unsigned char>(p[1]) << 8));
    case 19:
      return HalfToDouble(static_cast<uint16_t>(static_cast<unsigned char>(p[0]) |
                                                (static_cast<unsigned char>(p[1]) << 8)));
    case 22:
      return LoadLe32(p);
    case 23:
      return static_cast<double>(LoadLe64(p));
    default:
      return 0;
  }
}

Status DecodeShape(std::string_view msg, const DecodeLimits& limits, std::vector<int64_t>* shape) {
  Wire w(msg);
  while (!w.done()) {
    uint32_t f, wt;
    TY_RETURN_IF_ERROR(w.Tag(&f, &wt));
    if (f == 2) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "TensorShapeProto.dim"));
      std::string_view dim;
      TY_RETURN_IF_ERROR(w.Bytes(&dim));
      if (shape->size() >= limits.max_dims) {
        return InvalidArgument("a tensor has more than " + std::to_string(limits.max_dims) +
                               " dimensions");
      }
      Wire d(dim);
      int64_t size = 0;
      while (!d.done()) {
        uint32_t df, dwt;
        TY_RETURN_IF_ERROR(d.Tag(&df, &dwt));
        if (df == 1 && dwt == 0) {
          uint64_t v;
          TY_RETURN_IF_ERROR(d.Varint(&v));
          size = static_cast<int64_t>(v);
        } else {
          TY_RETURN_IF_ERROR(d.Skip(dwt));
        }
      }
      if (size < 0) return InvalidArgument("a tensor dimension is negative");
      shape->push_back(size);
    } else {
      TY_RETURN_IF_ERROR(w.Skip(wt));
    }
  }
  return Status::Ok();
}

// Packed (wire type 2) or single (the field's own wire type) repeated numbers.
Status AppendRepeated(Wire* w, uint32_t wt, uint32_t elem_wt, int kind, const DecodeLimits& limits,
                      std::vector<double>* out) {
  auto one = [&](Wire* r) -> Status {
    if (out->size() >= limits.max_elements) {
      return InvalidArgument("a tensor has more than " + std::to_string(limits.max_elements) +
                             " elements");
    }
    const char* p = nullptr;
    uint64_t v = 0;
    switch (kind) {
      case 0:  // float
        TY_RETURN_IF_ERROR(r->Fixed(4, &p));
        out->push_back(FloatBits(LoadLe32(p)));
        break;
      case 1: {  // double
        TY_RETURN_IF_ERROR(r->Fixed(8, &p));
        out->push_back(DecodeElement(2, p));
        break;
      }
      case 2:  // int32 (varint, sign-extended to 64 bits)
        TY_RETURN_IF_ERROR(r->Varint(&v));
        out->push_back(static_cast<double>(static_cast<int32_t>(v)));
        break;
      case 3:  // int64
        TY_RETURN_IF_ERROR(r->Varint(&v));
        out->push_back(static_cast<double>(static_cast<int64_t>(v)));
        break;
      case 4:  // bool
        TY_RETURN_IF_ERROR(r->Varint(&v));
        out->push_back(v ? 1.0 : 0.0);
        break;
      case 5:  // half bits in an int32
        TY_RETURN_IF_ERROR(r->Varint(&v));
        out->push_back(HalfToDouble(static_cast<uint16_t>(v)));
        break;
    }
    return Status::Ok();
  };
  if (wt == 2) {
    std::string_view packed;
    TY_RETURN_IF_ERROR(w->Bytes(&packed));
    Wire r(packed);
    while (!r.done()) TY_RETURN_IF_ERROR(one(&r));
    return Status::Ok();
  }
  if (wt != elem_wt) return InvalidArgument("a TensorProto value field has the wrong wire type");
  return one(w);
}

Status DecodeTensor(std::string_view msg, const DecodeLimits& limits, NDArray* out) {
  Wire w(msg);
  std::string_view content;
  bool has_content = false;
  std::vector<double> vals;
  while (!w.done()) {
    uint32_t f, wt;
    TY_RETURN_IF_ERROR(w.Tag(&f, &wt));
    uint64_t v = 0;
    std::string_view s;
    switch (f) {
      case 1:
        TY_RETURN_IF_ERROR(ExpectWire(wt, 0, "TensorProto.dtype"));
        TY_RETURN_IF_ERROR(w.Varint(&v));
        if (v > 1000) return InvalidArgument("a tensor has an unknown dtype " + std::to_string(v));
        out->dtype = static_cast<int>(v);
        break;
      case 2:
        TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "TensorProto.tensor_shape"));
        TY_RETURN_IF_ERROR(w.Bytes(&s));
        out->shape.clear();
        TY_RETURN_IF_ERROR(DecodeShape(s, limits, &out->shape));
        break;
      case 4:
        TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "TensorProto.tensor_content"));
        TY_RETURN_IF_ERROR(w.Bytes(&content));
        has_content = true;
        break;
      case 5:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 5, 0, limits, &vals));
        break;
      case 6:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 1, 1, limits, &vals));
        break;
      case 7:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 0, 2, limits, &vals));
        break;
      case 10:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 0, 3, limits, &vals));
        break;
      case 11:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 0, 4, limits, &vals));
        break;
      case 13:
        TY_RETURN_IF_ERROR(AppendRepeated(&w, wt, 0, 5, limits, &vals));
        break;
      case 8:
        TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "TensorProto.string_val"));
        TY_RETURN_IF_ERROR(w.Bytes(&s));
        if (out->strings.size() >= limits.max_strings) {
          return InvalidArgument("a string tensor has too many elements");
        }
        out->strings.emplace_back(s);
        break;
      case 9:
      case 12:
        return InvalidArgument("complex tensors are not supported");
      default:
        TY_RETURN_IF_ERROR(w.Skip(wt));
    }
  }
  uint64_t count = 1;
  for (int64_t d : out->shape) {
    if (d != 0 && count > limits.max_elements / static_cast<uint64_t>(d)) {
      return InvalidArgument("a tensor's shape has more than " +
                             std::to_string(limits.max_elements) + " elements");
    }
    count *= static_cast<uint64_t>(d);
  }
  if (!out->strings.empty() || out->dtype == 7) {
    out->values.clear();
    return Status::Ok();
  }
  if (has_content) {
    size_t es = ElementSize(out->dtype);
    if (es == 0) {
      return InvalidArgument("tensor dtype " + std::to_string(out->dtype) + " is not supported");
    }
    if (content.size() != count * es) {
      return InvalidArgument("a tensor's content has " + std::to_string(content.size()) +
                             " bytes, its shape and dtype need " + std::to_string(count * es));
    }
    out->values.resize(count);
    if (out->dtype == 1 && std::endian::native == std::endian::little) {
      // The common case (float32 tensors), without the per-element dtype switch.
      for (uint64_t i = 0; i < count; ++i) {
        float f;
        std::memcpy(&f, content.data() + i * 4, 4);
        out->values[i] = f;
      }
      return Status::Ok();
    }
    for (uint64_t i = 0; i < count; ++i)
      out->values[i] = DecodeElement(out->dtype, content.data() + i * es);
    return Status::Ok();
  }
  if (vals.size() == count) {
    out->values = std::move(vals);
  } else if (vals.size() == 1) {  // TensorFlow's broadcast form: one value fills the shape
    out->values.assign(count, vals[0]);
  } else if (count == 0 && vals.empty()) {
    out->values.clear();
  } else {
    return InvalidArgument("a tensor has " + std::to_string(vals.size()) +
                           " values but its shape holds " + std::to_string(count));
  }
  return Status::Ok();
}

Status DecodeMetadata(std::string_view msg, EventTensor* t) {
  Wire w(msg);
  while (!w.done()) {
    uint32_t f, wt;
    TY_RETURN_IF_ERROR(w.Tag(&f, &wt));
    if (f != 1 || wt != 2) {
      TY_RETURN_IF_ERROR(w.Skip(wt));
      continue;
    }
    std::string_view pd;
    TY_RETURN_IF_ERROR(w.Bytes(&pd));
    Wire p(pd);
    std::string_view name, content;
    while (!p.done()) {
      uint32_t pf, pwt;
      TY_RETURN_IF_ERROR(p.Tag(&pf, &pwt));
      if (pf == 1 && pwt == 2) {
        TY_RETURN_IF_ERROR(p.Bytes(&name));
      } else if (pf == 2 && pwt == 2) {
        TY_RETURN_IF_ERROR(p.Bytes(&content));
      } else {
        TY_RETURN_IF_ERROR(p.Skip(pwt));
      }
    }
    if (name != "mode" && name != "mode_step") continue;
    int64_t v = 0;
    if (content.empty() || content.size() > 18) {
      return InvalidArgument("a tensor's " + std::string(name) + " metadata is not a number");
    }
    for (char c : content) {
      if (c < '0' || c > '9') {
        return InvalidArgument("a tensor's " + std::string(name) + " metadata is not a number");
      }
      v = v * 10 + (c - '0');
    }
    if (name == "mode") {
      t->mode = static_cast<int>(v);
    } else {
      t->mode_step = v;
    }
  }
  return Status::Ok();
}

Status DecodeValue(std::string_view msg, const DecodeLimits& limits, EventTensor* t,
                   bool* has_tensor) {
  Wire w(msg);
  while (!w.done()) {
    uint32_t f, wt;
    TY_RETURN_IF_ERROR(w.Tag(&f, &wt));
    std::string_view s;
    const char* p = nullptr;
    if (f == 1) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "Summary.Value.tag"));
      TY_RETURN_IF_ERROR(w.Bytes(&s));
      t->tag = std::string(s);
    } else if (f == 9) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "Summary.Value.metadata"));
      TY_RETURN_IF_ERROR(w.Bytes(&s));
      TY_RETURN_IF_ERROR(DecodeMetadata(s, t));
    } else if (f == 8) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "Summary.Value.tensor"));
      TY_RETURN_IF_ERROR(w.Bytes(&s));
      t->value = NDArray();
      TY_RETURN_IF_ERROR(DecodeTensor(s, limits, &t->value));
      *has_tensor = true;
    } else if (f == 2) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 5, "Summary.Value.simple_value"));
      TY_RETURN_IF_ERROR(w.Fixed(4, &p));
      t->value = NDArray();
      t->value.dtype = 1;
      t->value.values = {FloatBits(LoadLe32(p))};
      *has_tensor = true;
    } else {
      TY_RETURN_IF_ERROR(w.Skip(wt));
    }
  }
  return Status::Ok();
}

}  // namespace

uint32_t Crc32c(std::string_view data) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = kCrcTable[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskedCrc32c(std::string_view data) {
  uint32_t c = Crc32c(data);
  return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

Result<std::string_view> ParseRecord(std::string_view record, uint64_t max_payload_bytes) {
  if (record.size() < 16) {
    return InvalidArgument("a TFRecord is truncated (" + std::to_string(record.size()) +
                           " bytes, a record needs at least 16)");
  }
  uint64_t len = LoadLe64(record.data());
  if (LoadLe32(record.data() + 8) != MaskedCrc32c(record.substr(0, 8))) {
    return InvalidArgument("a TFRecord's length CRC does not match (corrupt record)");
  }
  if (len > max_payload_bytes) {
    return InvalidArgument("a TFRecord of " + std::to_string(len) + " bytes exceeds the limit of " +
                           std::to_string(max_payload_bytes) + " bytes");
  }
  if (record.size() - 16 != len) {
    return InvalidArgument("a TFRecord is truncated or its index length is wrong (payload of " +
                           std::to_string(len) + " bytes in a " + std::to_string(record.size()) +
                           "-byte record)");
  }
  std::string_view payload = record.substr(12, len);
  uint32_t footer = LoadLe32(record.data() + 12 + len);
  if (footer != kSmdebugConstantFooter && footer != MaskedCrc32c(payload)) {
    return InvalidArgument("a TFRecord's payload CRC does not match (corrupt record)");
  }
  return payload;
}

Result<std::vector<std::string_view>> SplitRecords(std::string_view file,
                                                   uint64_t max_payload_bytes, size_t max_records) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < file.size()) {
    if (out.size() >= max_records) return InvalidArgument("an event file has too many records");
    if (file.size() - pos < 16) return InvalidArgument("an event file ends in a truncated record");
    uint64_t len = LoadLe64(file.data() + pos);
    if (len > max_payload_bytes || len > file.size() - pos - 16) {
      // Check the length CRC first: a corrupt length deserves that message.
      TY_RETURN_IF_ERROR(ParseRecord(file.substr(pos, 16), max_payload_bytes).status());
      return InvalidArgument("an event file ends in a truncated record");
    }
    TY_ASSIGN_OR_RETURN(std::string_view payload,
                        ParseRecord(file.substr(pos, 16 + len), max_payload_bytes));
    out.push_back(payload);
    pos += 16 + len;
  }
  return out;
}

Result<std::vector<EventTensor>> DecodeEvent(std::string_view payload, const DecodeLimits& limits) {
  Wire w(payload);
  int64_t step = 0;
  std::vector<std::string_view> summaries;
  while (!w.done()) {
    uint32_t f, wt;
    TY_RETURN_IF_ERROR(w.Tag(&f, &wt));
    if (f == 2 && wt == 0) {
      uint64_t v;
      TY_RETURN_IF_ERROR(w.Varint(&v));
      step = static_cast<int64_t>(v);
    } else if (f == 5) {
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "Event.summary"));
      std::string_view s;
      TY_RETURN_IF_ERROR(w.Bytes(&s));
      summaries.push_back(s);
    } else {
      TY_RETURN_IF_ERROR(w.Skip(wt));
    }
  }
  std::vector<EventTensor> out;
  for (std::string_view summary : summaries) {
    Wire s(summary);
    while (!s.done()) {
      uint32_t f, wt;
      TY_RETURN_IF_ERROR(s.Tag(&f, &wt));
      if (f != 1) {
        TY_RETURN_IF_ERROR(s.Skip(wt));
        continue;
      }
      TY_RETURN_IF_ERROR(ExpectWire(wt, 2, "Summary.value"));
      std::string_view v;
      TY_RETURN_IF_ERROR(s.Bytes(&v));
      if (out.size() >= limits.max_values) return InvalidArgument("an event has too many values");
      EventTensor t;
      t.step = step;
      bool has_tensor = false;
      TY_RETURN_IF_ERROR(DecodeValue(v, limits, &t, &has_tensor));
      if (has_tensor) out.push_back(std::move(t));
    }
  }
  return out;
}

Result<std::pair<int64_t, std::string>> ParseIndexFileName(std::string_view key) {
  size_t slash = key.rfind('/');
  std::string_view base = slash == std::string_view::npos ? key : key.substr(slash + 1);
  constexpr std::string_view kExt = ".json";
  if (base.size() <= kExt.size() || base.substr(base.size() - kExt.size()) != kExt) {
    return InvalidArgument("index file name " + std::string(base) + " does not end in .json");
  }
  base.remove_suffix(kExt.size());
  size_t us = base.find('_');
  if (us == std::string_view::npos || us == 0 || us > 18 || us + 1 >= base.size()) {
    return InvalidArgument("index file name " + std::string(key) + " is not <step>_<worker>.json");
  }
  int64_t step = 0;
  for (char c : base.substr(0, us)) {
    if (c < '0' || c > '9') {
      return InvalidArgument("index file name " + std::string(key) + " does not start with a step");
    }
    step = step * 10 + (c - '0');
  }
  return std::make_pair(step, std::string(base.substr(us + 1)));
}

namespace {

Status CheckRelativePath(const std::string& p) {
  if (p.empty() || p.front() == '/' || p.find('\\') != std::string::npos ||
      p.find('\0') != std::string::npos) {
    return InvalidArgument("event_file_name \"" + p + "\" is not a path inside the trial");
  }
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view part(p.data() + start, end - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument("event_file_name \"" + p + "\" is not a path inside the trial");
    }
    start = end + 1;
  }
  return Status::Ok();
}

bool GetUint(const nlohmann::json& j, const char* key, uint64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || (it->is_number_integer() && *it < 0)) {
    return false;
  }
  *out = it->get<uint64_t>();
  return true;
}

}  // namespace

Result<IndexFile> ParseIndexFile(std::string_view key, std::string_view json, size_t max_entries) {
  IndexFile out;
  TY_ASSIGN_OR_RETURN(auto name, ParseIndexFileName(key));
  out.step = name.first;
  out.worker = name.second;
  TY_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(json, 8));
  if (!j.is_object()) return InvalidArgument("the index file is not a JSON object");
  auto meta = j.find("meta");
  if (meta == j.end() || !meta->is_object() || meta->empty()) {
    return InvalidArgument("the index file has no \"meta\" object");
  }
  auto tp = j.find("tensor_payload");
  auto sp = j.find("shape_payload");
  if (tp == j.end() && sp == j.end()) {
    return InvalidArgument("the index file has neither tensor_payload nor shape_payload");
  }
  auto mode = meta->find("mode");
  if (mode == meta->end() || !mode->is_string()) {
    return InvalidArgument("the index file's meta has no mode name");
  }
  std::optional<Mode> m = ParseModeName(mode->get<std::string>());
  if (!m)
    return InvalidArgument("the index file's meta.mode is not TRAIN, EVAL, PREDICT or GLOBAL");
  out.mode = *m;
  uint64_t ms = 0;
  if (!GetUint(*meta, "mode_step", &ms) || ms > (1ull << 62)) {
    return InvalidArgument("the index file's meta.mode_step is not a non-negative integer");
  }
  out.mode_step = static_cast<int64_t>(ms);
  auto ef = meta->find("event_file_name");
  if (ef == meta->end() || !ef->is_string()) {
    return InvalidArgument("the index file's meta has no event_file_name");
  }
  out.event_file_name = ef->get<std::string>();
  TY_RETURN_IF_ERROR(CheckRelativePath(out.event_file_name));
  if (tp != j.end()) {
    if (!tp->is_array()) return InvalidArgument("the index file's tensor_payload is not a list");
    if (tp->size() > max_entries) {
      return InvalidArgument("the index file lists more than " + std::to_string(max_entries) +
                             " tensors");
    }
    for (const auto& e : *tp) {
      if (!e.is_object()) return InvalidArgument("a tensor_payload entry is not an object");
      IndexEntry ie;
      auto n = e.find("tensorname");
      if (n == e.end() || !n->is_string() || n->get<std::string>().empty()) {
        return InvalidArgument("a tensor_payload entry has no tensorname");
      }
      ie.tensor_name = n->get<std::string>();
      if (!GetUint(e, "start_idx", &ie.start) || !GetUint(e, "length", &ie.length) ||
          ie.length == 0) {
        return InvalidArgument("tensor_payload entry " + ie.tensor_name +
                               " has no valid start_idx and length");
      }
      if (ie.start > (1ull << 50) || ie.length > (1ull << 50)) {
        return InvalidArgument("tensor_payload entry " + ie.tensor_name + " is out of range");
      }
      out.tensors.push_back(std::move(ie));
    }
  }
  if (sp != j.end()) {
    if (!sp->is_array()) return InvalidArgument("the index file's shape_payload is not a list");
    if (sp->size() > max_entries) {
      return InvalidArgument("the index file lists more than " + std::to_string(max_entries) +
                             " shapes");
    }
    for (const auto& e : *sp) {
      if (!e.is_object()) return InvalidArgument("a shape_payload entry is not an object");
      auto n = e.find("tensorname");
      auto s = e.find("shape");
      if (n == e.end() || !n->is_string() || s == e.end() || !s->is_array() || s->size() > 64) {
        return InvalidArgument("a shape_payload entry has no tensorname or shape");
      }
      std::vector<int64_t> shape;
      for (const auto& d : *s) {
        if (!d.is_number_integer())
          return InvalidArgument("a shape_payload dimension is not an integer");
        shape.push_back(d.get<int64_t>());
      }
      out.shapes.emplace_back(n->get<std::string>(), std::move(shape));
    }
  }
  return out;
}

Result<CollectionsFile> ParseCollectionsFile(std::string_view json) {
  CollectionsFile out;
  TY_ASSIGN_OR_RETURN(nlohmann::json j, ParseJson(json, 12));
  if (!j.is_object()) return InvalidArgument("the collections file is not a JSON object");
  auto meta = j.find("_meta");
  if (meta != j.end() && meta->is_object()) {
    uint64_t n = 0;
    if (meta->contains("num_workers")) {
      if (!GetUint(*meta, "num_workers", &n) || n < 1 || n > 4096) {
        return InvalidArgument(
            "the collections file's _meta.num_workers is not between 1 and 4096");
      }
      out.num_workers = static_cast<int>(n);
    }
  }
  auto cols = j.find("collections");
  if (cols == j.end() || !cols->is_object()) {
    return InvalidArgument("the collections file has no \"collections\" object");
  }
  if (cols->size() > 10000) return InvalidArgument("the collections file has too many collections");
  for (auto item = cols->begin(); item != cols->end(); ++item) {
    const std::string& name = item.key();
    const nlohmann::json& c = item.value();
    if (!c.is_object()) return InvalidArgument("collection " + name + " is not an object");
    Collection col;
    col.name = name;
    auto strings = [&](const char* key, auto add) -> Status {
      auto it = c.find(key);
      if (it == c.end() || it->is_null()) return Status::Ok();
      if (!it->is_array() || it->size() > 1000000) {
        return InvalidArgument("collection " + name + "'s " + key + " is not a list");
      }
      for (const auto& s : *it) {
        if (!s.is_string()) {
          return InvalidArgument("collection " + name + "'s " + key + " has a non-string entry");
        }
        add(s.get<std::string>());
      }
      return Status::Ok();
    };
    TY_RETURN_IF_ERROR(strings("include_regex",
                               [&](std::string s) { col.include_regex.push_back(std::move(s)); }));
    TY_RETURN_IF_ERROR(
        strings("tensor_names", [&](std::string s) { col.tensor_names.insert(std::move(s)); }));
    auto rc = c.find("reduction_config");
    if (rc != c.end() && rc->is_object()) {
      auto r = rc->find("reductions");
      if (r != rc->end() && r->is_string()) col.reductions = r->get<std::string>();
      auto raw = rc->find("save_raw_tensor");
      if (raw != rc->end() && raw->is_boolean()) col.save_raw_tensor = raw->get<bool>();
    }
    out.collections.push_back(std::move(col));
  }
  return out;
}

Result<double> ComputeReduction(const std::vector<double>& values, const std::string& name,
                                bool abs) {
  if (values.empty()) return InvalidArgument("cannot reduce an empty tensor");
  auto at = [&](size_t i) { return abs ? std::fabs(values[i]) : values[i]; };
  const size_t n = values.size();
  if (name == "min" || name == "max") {
    double r = at(0);
    for (size_t i = 1; i < n; ++i) {
      double v = at(i);
      if (std::isnan(v) || std::isnan(r)) {
        r = std::numeric_limits<double>::quiet_NaN();
      } else {
        r = name == "min" ? std::min(r, v) : std::max(r, v);
      }
    }
    return r;
  }
  if (name == "sum" || name == "mean") {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += at(i);
    return name == "sum" ? s : s / static_cast<double>(n);
  }
  if (name == "prod") {
    double p = 1;
    for (size_t i = 0; i < n; ++i) p *= at(i);
    return p;
  }
  if (name == "variance" || name == "std") {
    double mean = 0;
    for (size_t i = 0; i < n; ++i) mean += at(i);
    mean /= static_cast<double>(n);
    double ss = 0;
    for (size_t i = 0; i < n; ++i) ss += (at(i) - mean) * (at(i) - mean);
    double var = ss / static_cast<double>(n);  // numpy's default: biased (ddof=0)
    return name == "variance" ? var : std::sqrt(var);
  }
  if (name == "l1") {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += std::fabs(values[i]);
    return s;
  }
  if (name == "l2") {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += values[i] * values[i];
    return std::sqrt(s);
  }
  return InvalidArgument("unknown reduction '" + name +
                         "' (min, max, mean, std, variance, sum, prod, l1, l2)");
}

}  // namespace ty::debugger
