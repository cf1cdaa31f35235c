"""`trainyard_debugger.pytorch.Hook`, mirroring `smdebug.pytorch.Hook`."""
from . import modes  # noqa: F401
from .collections import CollectionKeys  # noqa: F401
from .config import ReductionConfig, SaveConfig, SaveConfigMode  # noqa: F401
from .hook import Hook  # noqa: F401
