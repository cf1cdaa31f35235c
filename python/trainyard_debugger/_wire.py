"""Byte-level encoders for smdebug's on-disk format (spec §1.4-1.5), without libprotobuf.

Pure functions, thread-safe. Each `encode_*` returns the exact bytes the Python protobuf runtime
produces for the same message (fields in field-number order, proto3 defaults omitted), so files
compare byte for byte with smdebug's.
"""
import struct

import numpy as np

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


def tensor_parts(array, tag):
    """TensorProto of a numpy array as (head, content): dtype, shape with smdebug's
    "<tag>_<dimsize>" dim names, then the raw little-endian C-order content, which is left as
    a memoryview of the array (no copy; the caller writes it before the array changes)."""
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
        return out, b""
    dt = DTYPES.get(array.dtype.name)
    if dt is None:
        raise TypeError("numpy dtype %s is not supported" % array.dtype)
    head = b"\x08" + _varint(dt) + _len_field(0x12, shape)
    if array.nbytes == 0:
        return head, b""
    content = memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")
    return head + b"\x22" + _varint(len(content)), content


def encode_tensor(array, tag):
    head, content = tensor_parts(array, tag)
    return head + bytes(content)


def record_parts(wall_time, step, tag, array, mode_value, mode_step):
    """One framed record, Event{wall_time, step, summary{value{tag, tensor, metadata}}}, as a
    list of byte pieces whose join is the record; lengths are computed, the content not copied."""
    t_head, content = tensor_parts(array, tag)
    t_len = len(t_head) + len(content)
    v_head = _len_field(0x0A, tag.encode()) + b"\x42" + _varint(t_len)
    v_tail = _len_field(0x4A, encode_metadata(mode_value, mode_step))
    v_len = len(v_head) + t_len + len(v_tail)
    s_head = b"\x0a" + _varint(v_len)
    s_len = len(s_head) + v_len
    e_head = b"\x09" + struct.pack("<d", wall_time) if wall_time else b""
    if step:
        e_head += b"\x10" + _varint(step)
    e_head += b"\x2a" + _varint(s_len)
    n = len(e_head) + s_len
    header = struct.pack("<Q", n)
    header += struct.pack("<I", masked_crc32c(header))
    return [header, e_head, s_head, v_head, t_head, content, v_tail, FOOTER], len(header) + n + 4


def frame_event(wall_time, step, tag, array, mode_value, mode_step):
    parts, _ = record_parts(wall_time, step, tag, array, mode_value, mode_step)
    return b"".join(bytes(p) for p in parts)
