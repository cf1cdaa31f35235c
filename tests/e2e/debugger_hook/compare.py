"""Compares two trial directories file by file, masking each Event's wall_time (8 bytes)."""
import os
import struct


def masked_records(data):
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<Q", data, pos)
        rec = bytearray(data[pos:pos + 16 + n])
        assert len(rec) == 16 + n, "truncated record"
        assert rec[12] == 0x09, "record does not start with Event.wall_time"
        rec[13:21] = b"\0" * 8
        out.append(bytes(rec))
        pos += 16 + n
    return out


def trial_files(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            out[os.path.relpath(p, root)] = p
    return out


def diff_trials(a, b):
    """A list of differences (empty when equal modulo wall_time)."""
    fa, fb = trial_files(a), trial_files(b)
    diffs = []
    if sorted(fa) != sorted(fb):
        diffs.append("file sets differ: only in %s: %s; only in %s: %s" % (
            a, sorted(set(fa) - set(fb)), b, sorted(set(fb) - set(fa))))
    for rel in sorted(set(fa) & set(fb)):
        da, db = open(fa[rel], "rb").read(), open(fb[rel], "rb").read()
        if rel.endswith(".tfevents"):
            ra, rb = masked_records(da), masked_records(db)
            if ra != rb:
                i = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb)))
                diffs.append("%s: record %d differs (%d vs %d records)" % (rel, i, len(ra), len(rb)))
        elif da != db:
            diffs.append("%s differs:\n  %s\n  %s" % (rel, da[:600], db[:600]))
    return diffs
