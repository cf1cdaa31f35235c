"""Byte-level encoders for smdebug's on-disk format (spec §1.4-1.5), without libprotobuf.

Pure functions, thread-safe. Each `encode_*` returns the exact bytes the Python protobuf runtime
produces for the same message (fields in field-number order, proto3 defaults omitted), so files
compare byte for byte with smdebug's.
"""
import struct

# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, one table lookup per byte.
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)
del _i, _c


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# smdebug writes this constant instead of the payload's CRC (spec §1.4); its reader expects it.
FOOTER = struct.pack("<I", masked_crc32c(b"0x12345678"))
assert FOOTER == b"\xb3\xc0\x2d\x06"


def frame_record(payload):
    """One TFRecord: length, masked CRC of the length bytes, payload, constant footer."""
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc32c(header)) + payload + FOOTER


def _varint(v):
    if v < 0:
        v &= 0xFFFFFFFFFFFFFFFF  # int64 negatives take ten bytes, as protobuf writes them
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _len_field(tag_byte, data):
    return bytes((tag_byte,)) + _varint(len(data)) + data


# TensorFlow DataType values (spec §1.5) by numpy dtype string.
DTYPES = {
    "float16": 19, "float32": 1, "float64": 2, "int32": 3, "int64": 9, "uint8": 4,
    "uint16": 17, "uint32": 22, "uint64": 23, "int8": 6, "int16": 5, "complex64": 8,
    "complex128": 18, "bool": 10,
}

_MODE_STEP = _len_field(0x0A, b"mode_step")
_MODE = _len_field(0x0A, b"mode")


def encode_metadata(mode_value, mode_step):
    """SummaryMetadata with the two PluginData entries smdebug writes: mode_step, then mode."""
    d1 = _MODE_STEP + _len_field(0x12, str(mode_step).encode())
    d2 = _MODE + _len_field(0x12, str(mode_value).encode())
    return _len_field(0x0A, d1) + _len_field(0x0A, d2)


def encode_tensor(array, tag):
    """TensorProto of a numpy array: dtype, shape with the "<tag>_<dimsize>" dim names, content."""
    shape = b""
    for d in array.shape:
        dim = (b"\x08" + _varint(d) if d else b"") + _len_field(0x12, ("%s_%d" % (tag, d)).encode())
        shape += _len_field(0x12, dim)
    kind = array.dtype.kind
    if kind in ("U", "O", "S"):
        # Strings: dtype left at DT_INVALID, one string_val per element (smdebug's form).
        out = _len_field(0x12, shape)
        for s in array:
            out += _len_field(0x42, s if isinstance(s, bytes) else str(s).encode())
        return out
    dt = DTYPES.get(array.dtype.name)
    if dt is None:
        raise TypeError("numpy dtype %s is not supported" % array.dtype)
    content = array.tobytes()
    out = b"\x08" + _varint(dt) + _len_field(0x12, shape)
    if content:
        out += _len_field(0x22, content)
    return out


def encode_event(wall_time, step, tag, tensor_bytes, metadata_bytes):
    """Event{wall_time, step, summary{value{tag, tensor, metadata}}}."""
    value = _len_field(0x0A, tag.encode()) + _len_field(0x42, tensor_bytes) + _len_field(0x4A, metadata_bytes)
    summary = _len_field(0x0A, value)
    out = b"\x09" + struct.pack("<d", wall_time) if wall_time else b""
    if step:
        out += b"\x10" + _varint(step)
    return out + _len_field(0x2A, summary)
