"""Builds a hook from the JSON that SageMaker writes for DebugHookConfig (spec §2.4).

Input is outside data (the job's config): bounded in size, checked in shape, with clear errors.
"""
import json
import os

from .config import ReductionConfig, SaveConfig, SaveConfigMode, parse_bool, split
from .modes import ModeKeys

DEFAULT_CONFIG_FILE = "/opt/ml/input/config/debughookconfig.json"
DEFAULT_OUT_DIR = "/opt/ml/output/tensors"
MAX_CONFIG_BYTES = 1 << 20
_PREFIX = {ModeKeys.TRAIN: "train.", ModeKeys.EVAL: "eval.", ModeKeys.PREDICT: "predict.",
           ModeKeys.GLOBAL: "global."}


def _save_config_dict(params, prefix):
    p = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
    out = {}
    for key in ("save_interval", "start_step", "end_step"):
        if key in p:
            out[key] = p[key]
    if "save_steps" in p:
        out["save_steps"] = [int(x) for x in split(p["save_steps"])]
    return out


def save_config_modes(params, base=None):
    """Per mode: the bare keys, overridden by the mode-prefixed ones, over `base` (the hook's)."""
    bare = _save_config_dict(params, "")
    modes = {m: {**bare, **_save_config_dict(params, _PREFIX[m])} for m in ModeKeys}
    if base:
        modes = {m: {**base[m], **modes[m]} for m in ModeKeys}
    return modes


def _load(path):
    with open(path, "rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError("%s is larger than %d bytes" % (path, MAX_CONFIG_BYTES))
    try:
        d = json.loads(data)
    except ValueError as e:
        raise ValueError("%s is not valid JSON: %s" % (path, e))
    if not isinstance(d, dict):
        raise ValueError("%s must hold a JSON object" % path)
    return d


def _dict_or_empty(v, what):
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError("%s must be an object" % what)
    return v


def create_hook_from_json_config(hook_cls, path=None):
    """None when no explicit path is given and the config file is absent, or USE_SMDEBUG is off."""
    if path is None:
        if os.environ.get("USE_SMDEBUG", "true").lower() in ("0", "false", "no", "off"):
            return None
        path = os.environ.get("SMDEBUG_CONFIG_FILE_PATH", DEFAULT_CONFIG_FILE)
        if not os.path.exists(path):
            return None
    d = _load(path)
    hook_params = _dict_or_empty(d.get("HookParameters"), "HookParameters")
    base_modes = save_config_modes(hook_params)
    reduction_config = ReductionConfig.from_dict(hook_params) if "reductions" in hook_params else None
    include_regex = split(hook_params["include_regex"]) if "include_regex" in hook_params else None
    colls = d.get("CollectionConfigurations")
    if colls is not None and not isinstance(colls, list):
        raise ValueError("CollectionConfigurations must be a list")
    include_collections = None
    if colls is not None:
        include_collections = []
        for c in colls:
            if not isinstance(c, dict) or not isinstance(c.get("CollectionName"), str):
                raise ValueError("each CollectionConfigurations entry needs a CollectionName string")
            include_collections.append(c["CollectionName"])
    tb_dir = hook_params.get("tensorboard_dir")
    export_tb = parse_bool(hook_params.get("export_tensorboard"), False)
    hook = hook_cls(
        out_dir=d.get("LocalPath", DEFAULT_OUT_DIR),
        export_tensorboard=export_tb,
        tensorboard_dir=tb_dir,
        dry_run=parse_bool(hook_params.get("dry_run"), False),
        reduction_config=reduction_config,
        save_config=SaveConfig.from_dict(base_modes),
        include_regex=include_regex,
        include_collections=include_collections,
        include_workers=hook_params.get("include_workers", "one"),
        save_all=parse_bool(hook_params.get("save_all"), False),
    )
    for c in colls or []:
        params = _dict_or_empty(c.get("CollectionParameters"), "CollectionParameters")
        coll = hook.collection_manager.get(c["CollectionName"])
        modes = save_config_modes(params, base=base_modes)
        coll.save_config = {m: SaveConfigMode.from_dict(v) for m, v in modes.items()}
        if "reductions" in params:
            coll.reduction_config = ReductionConfig.from_dict(params)
        if "include_regex" in params:
            coll.include(split(params["include_regex"]))
        if "save_histogram" in params:
            coll.save_histogram = parse_bool(params["save_histogram"], True)
    return hook
