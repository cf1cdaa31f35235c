"""trainyard_debugger: a PyTorch hook that writes smdebug's on-disk format, without smdebug.

Port a script written for smdebug by changing its import:
    from trainyard_debugger import Hook, SaveConfig, ReductionConfig, modes
See README.md, "Debugger hook (python/trainyard_debugger)".
"""
from . import modes
from .collections import Collection, CollectionKeys
from .config import ReductionConfig, SaveConfig, SaveConfigMode
from .hook import Hook, get_hook
from .modes import ModeKeys

__all__ = ["Hook", "get_hook", "SaveConfig", "SaveConfigMode", "ReductionConfig", "modes", "ModeKeys",
           "CollectionKeys", "Collection"]
