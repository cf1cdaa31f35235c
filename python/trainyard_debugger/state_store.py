"""The spot state store: <checkpoint dir>/metadata.json (spec §4), smdebug's keys and layout.

metadata.json is a JSON array of states; the hook resumes from the one with the highest
`latest-global-step-seen`. We write it atomically (tmp + rename), so a checkpoint sync never
uploads a torn file. The change scan stats files only (no reads) and tolerates files that
vanish mid-walk (SageMaker's uploader renames them). Not thread-safe.
"""
import json
import os

from .collections import write_atomically

TRAINING_RUN = "training-run"
SAVED = "latest-global-step-saved"
SEEN = "latest-global-step-seen"
MODE_STEP = "latest-mode-step"
METADATA = "metadata.json"
DEFAULT_CHECKPOINT_CONFIG = "/opt/ml/input/config/checkpointconfig.json"
MAX_METADATA_BYTES = 16 << 20


def checkpoint_dir():
    path = os.environ.get("CHECKPOINT_CONFIG_FILE_PATH", DEFAULT_CHECKPOINT_CONFIG)
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError):
        return None
    p = d.get("LocalPath") if isinstance(d, dict) else None
    return p if isinstance(p, str) and p else None


def _ignored(name):
    return name == METADATA or "sagemaker-uploaded" in name or name.endswith(".tmp") and name.startswith(METADATA)


class StateStore:
    def __init__(self, cp_dir=None):
        self.dir = cp_dir if cp_dir is not None else checkpoint_dir()
        self.states = []
        self._snapshot = None
        if self.dir is None:
            return
        self.path = os.path.join(self.dir, METADATA)
        self.states = self._read()
        self._snapshot = self._scan()

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_METADATA_BYTES + 1)
        except OSError:
            return []
        if len(data) > MAX_METADATA_BYTES:
            raise ValueError("%s is larger than %d bytes" % (self.path, MAX_METADATA_BYTES))
        try:
            raw = json.loads(data)
        except ValueError as e:
            raise ValueError("%s is not JSON: %s" % (self.path, e))
        states = []
        for s in raw if isinstance(raw, list) else []:
            if not (isinstance(s, dict) and isinstance(s.get(SEEN), int) and isinstance(s.get(MODE_STEP), dict)
                    and isinstance(s.get(TRAINING_RUN), int)):
                raise ValueError("%s holds a malformed state: %r" % (self.path, s))
            states.append({TRAINING_RUN: s[TRAINING_RUN], SAVED: s.get(SAVED), SEEN: s[SEEN],
                           MODE_STEP: s[MODE_STEP]})
        states.sort(key=lambda s: s[SEEN])
        return states

    def last_state(self):
        return self.states[-1] if self.states else None

    def _scan(self):
        """(relative path, size, mtime_ns) of every checkpoint file, sorted; stat only."""
        out = []
        stack = [self.dir]
        while stack:
            d = stack.pop()
            try:
                it = os.scandir(d)
            except OSError:
                continue
            with it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(e.path)
                        elif not _ignored(e.name):
                            st = e.stat(follow_symlinks=False)
                            out.append((e.path, st.st_size, st.st_mtime_ns))
                    except OSError:
                        continue  # vanished mid-walk
        out.sort()
        return out

    def checkpoint_changed(self):
        """True once per change of the checkpoint dir's files (names, sizes or mtimes)."""
        if self.dir is None:
            return False
        snap = self._scan()
        if not snap or snap == self._snapshot:
            return False
        self._snapshot = snap
        return True

    def append(self, state):
        if self.dir is None:
            return
        if self.states and self.states[-1] == state:
            return
        self.states.append(state)
        write_atomically(self.path, json.dumps(self.states).encode())
        self._snapshot = self._scan()
