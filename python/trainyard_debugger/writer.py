"""One step's output for one worker: the event file and its index JSON (spec §1.2, §1.3, §1.6).

Records are written synchronously (no background thread): the offsets in the index are known at
once. Files go to `<name>.tmp` and are renamed at close(), the event file before the index is
written, so the index never points to a missing file. Not thread-safe; one writer per step.
"""
import json
import os
import time

from . import _wire


class StepWriter:
    def __init__(self, out_dir, step, worker):
        self.step = step
        s = "%012d" % step
        self.event_rel = "events/%s/%s_%s.tfevents" % (s, s, worker)
        self.event_path = os.path.join(out_dir, self.event_rel)
        self.index_path = os.path.join(out_dir, "index", "%09d" % (step // 1000), "%s_%s.json" % (s, worker))
        self._f = None
        self._pos = 0
        self.meta = {}
        self.tensor_payload = []
        self.shape_payload = []

    def write_tensor(self, array, name, mode, mode_step, timestamp=None):
        """Appends one Event holding `array` (a numpy array) under the tag `name`."""
        parts, length = _wire.record_parts(timestamp if timestamp else time.time(), self.step, name,
                                           array, mode.value, mode_step)
        if self._f is None:
            os.makedirs(os.path.dirname(self.event_path), exist_ok=True)
            self._f = open(self.event_path + ".tmp", "wb")
        self._f.writelines(parts)
        if "event_file_name" not in self.meta:
            self.meta = {"mode": mode.name, "mode_step": int(mode_step), "event_file_name": self.event_rel}
        self.tensor_payload.append({"tensorname": name, "start_idx": self._pos, "length": length})
        self._pos += length

    def write_shape(self, name, shape, mode, mode_step):
        if not self.meta:
            self.meta = {"mode": mode.name, "mode_step": mode_step}
        self.shape_payload.append({"tensorname": name, "originalname": name, "shape": list(shape)})

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
            os.replace(self.event_path + ".tmp", self.event_path)
        if self.meta and (self.tensor_payload or self.shape_payload):
            from .collections import write_atomically
            write_atomically(self.index_path, json.dumps(
                {"meta": self.meta, "tensor_payload": self.tensor_payload,
                 "shape_payload": self.shape_payload}).encode())
            self.meta, self.tensor_payload, self.shape_payload = {}, [], []
