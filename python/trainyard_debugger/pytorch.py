"""`trainyard_debugger.pytorch.Hook`, mirroring `smdebug.pytorch.Hook`."""
from . import modes
from .collections import CollectionKeys
from .config import ReductionConfig, SaveConfig, SaveConfigMode
from .hook import Hook, get_hook

__all__ = ["Hook", "get_hook", "SaveConfig", "SaveConfigMode", "ReductionConfig", "modes", "CollectionKeys"]
