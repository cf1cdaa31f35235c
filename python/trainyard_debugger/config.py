"""SaveConfig and ReductionConfig (spec §2.2, §2.3), with smdebug's semantics and JSON forms.

Plain value objects; not thread-safe (the hook uses them from the training thread).
"""
from .modes import ModeKeys

DEFAULT_SAVE_INTERVAL = 500
ALLOWED_REDUCTIONS = ["min", "max", "mean", "std", "variance", "sum", "prod"]
ALLOWED_NORMS = ["l1", "l2"]


class SaveConfigMode:
    """When one mode saves: `step in save_steps` OR (start <= step < end AND step % interval == 0)."""

    def __init__(self, save_interval=None, start_step=None, end_step=None, save_steps=None):
        self.save_interval = DEFAULT_SAVE_INTERVAL if save_interval is None else int(save_interval)
        self.save_steps = [] if save_steps is None else save_steps
        self.start_step = 0 if start_step is None else int(start_step)
        self.end_step = None if end_step is None else int(end_step)
        if not isinstance(self.save_steps, list) or not all(isinstance(x, int) for x in self.save_steps):
            raise ValueError("save_steps=%r must be a list of int" % (self.save_steps,))
        if self.save_interval <= 0:
            raise ValueError("save_interval=%r must be positive" % self.save_interval)

    def should_save_step(self, step):
        if self.save_steps and step in self.save_steps:
            return True
        if step < self.start_step or (self.end_step is not None and step >= self.end_step):
            return False
        return step % self.save_interval == 0  # modulus on the absolute step, as smdebug

    def to_json_dict(self):
        return {"save_interval": self.save_interval, "save_steps": self.save_steps,
                "start_step": self.start_step, "end_step": self.end_step}

    @classmethod
    def from_dict(cls, params, defaults=None):
        if params is None:
            return None
        defaults = defaults or {}
        return cls(**{k: params.get(k, defaults.get(k))
                      for k in ("save_interval", "start_step", "end_step", "save_steps")})

    def __eq__(self, other):
        return isinstance(other, SaveConfigMode) and self.to_json_dict() == other.to_json_dict()

    def __repr__(self):
        return "SaveConfigMode(%r)" % self.to_json_dict()


class SaveConfig:
    """One SaveConfigMode per mode. A mode left None is filled from the hook's config."""

    def __init__(self, mode_save_configs=None, save_interval=None, start_step=None, end_step=None,
                 save_steps=None):
        if mode_save_configs is None:
            self.mode_save_configs = {
                m: SaveConfigMode(save_interval, start_step, end_step, save_steps) for m in ModeKeys}
        else:
            for m, v in mode_save_configs.items():
                if not isinstance(m, ModeKeys) or not (v is None or isinstance(v, SaveConfigMode)):
                    raise ValueError("mode_save_configs must map ModeKeys to SaveConfigMode")
            for m in ModeKeys:
                mode_save_configs.setdefault(m, None)
            self.mode_save_configs = mode_save_configs

    def get_save_config(self, mode):
        return self.mode_save_configs[mode]

    def should_save_step(self, mode, step):
        return self.mode_save_configs[mode].should_save_step(step)

    def merge_default_save_config(self, default):
        for m in ModeKeys:
            if self.mode_save_configs[m] is None:
                self.mode_save_configs[m] = default.mode_save_configs[m] or SaveConfigMode()

    def to_json_dict(self):
        return {m.name: (c.to_json_dict() if c else None) for m, c in self.mode_save_configs.items()}

    @classmethod
    def from_dict(cls, params, default_values=None):
        if params is None:
            return None
        params = {(ModeKeys[k] if isinstance(k, str) else k): v for k, v in params.items()}
        params = {k: (SaveConfigMode.from_dict(v, default_values) if isinstance(v, dict) else v)
                  for k, v in params.items()}
        return cls(mode_save_configs=params)

    @classmethod
    def parse(cls, obj):
        if obj is None:
            return cls()
        if isinstance(obj, SaveConfig):
            return obj
        if isinstance(obj, SaveConfigMode):
            return cls(mode_save_configs={m: obj for m in ModeKeys})
        if isinstance(obj, dict):
            return cls.from_dict(obj)
        raise TypeError("save_config=%r cannot be parsed into a SaveConfig" % (obj,))

    def __eq__(self, other):
        return isinstance(other, SaveConfig) and all(
            self.mode_save_configs[m] == other.mode_save_configs[m] for m in ModeKeys)

    def __repr__(self):
        return "SaveConfig(%r)" % self.mode_save_configs


def parse_bool(v, default):
    if v is None:
        return default
    if v in (True, False):
        return bool(v)
    if str(v).lower() in ("true", "false"):
        return str(v).lower() == "true"
    raise ValueError("boolean expected, found %r" % (v,))


def split(s):
    return [x.strip() for x in str(s).split(",")]


class ReductionConfig:
    """Reductions saved instead of (or besides) the raw tensor."""

    def __init__(self, reductions=None, abs_reductions=None, norms=None, abs_norms=None,
                 save_raw_tensor=False, save_shape=False):
        self.reductions = list(reductions or [])
        self.abs_reductions = list(abs_reductions or [])
        self.norms = list(norms or [])
        self.abs_norms = list(abs_norms or [])
        self.save_raw_tensor = save_raw_tensor
        self.save_shape = save_shape
        for name, allowed in (("reductions", ALLOWED_REDUCTIONS), ("abs_reductions", ALLOWED_REDUCTIONS),
                              ("norms", ALLOWED_NORMS), ("abs_norms", ALLOWED_NORMS)):
            bad = [x for x in getattr(self, name) if x not in allowed]
            if bad:
                raise ValueError("%s can only be one of %s, not %s" % (name, ",".join(allowed), bad))
        if not isinstance(save_raw_tensor, bool) or not isinstance(save_shape, bool):
            raise ValueError("save_raw_tensor and save_shape must be booleans")

    @classmethod
    def from_dict(cls, params):
        """The JSON form: one comma-separated `reductions` string (abs_*_norm, abs_*, *_norm, rest)."""
        if params is None:
            return None
        r, n, ar, an = [], [], [], []
        for red in split(params.get("reductions", "")):
            if not red:
                continue
            if red.startswith("abs_"):
                (an if red.endswith("_norm") else ar).append(red.split("_")[1])
            else:
                (n.append(red.split("_")[0]) if red.endswith("_norm") else r.append(red))
        # smdebug passes these strings through and then rejects them (spec §2.4 pitfall); we parse.
        return cls(r, ar, n, an, parse_bool(params.get("save_raw_tensor"), False),
                   parse_bool(params.get("save_shape"), False))

    def to_json_dict(self):
        parts = (self.reductions + ["%s_norm" % x for x in self.norms]
                 + ["abs_%s" % x for x in self.abs_reductions] + ["abs_%s_norm" % x for x in self.abs_norms])
        return {"save_raw_tensor": self.save_raw_tensor, "reductions": ",".join(parts),
                "save_shape": self.save_shape}

    def __eq__(self, other):
        return isinstance(other, ReductionConfig) and self.__dict__ == other.__dict__

    def __repr__(self):
        return "ReductionConfig(%r)" % self.__dict__
