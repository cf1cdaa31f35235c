"""Training modes, numbered as smdebug numbers them (the `mode` plugin data holds the value)."""
from enum import Enum


class ModeKeys(Enum):
    TRAIN = 1
    EVAL = 2
    PREDICT = 3
    GLOBAL = 4


TRAIN = ModeKeys.TRAIN
EVAL = ModeKeys.EVAL
PREDICT = ModeKeys.PREDICT
GLOBAL = ModeKeys.GLOBAL
ALLOWED_MODES = [TRAIN, EVAL, PREDICT, GLOBAL]
