"""Training: fit/evaluate/predict, callbacks, and checkpoint files that never lose work."""

from cnnlab.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    JSONLogger,
    LRScheduler,
    ModelCheckpoint,
)
from cnnlab.train.checkpoint import CheckpointError, load_checkpoint, restore, save_checkpoint
from cnnlab.train.fit import (
    History,
    NonFiniteLossError,
    NonFiniteStateError,
    Trainer,
    evaluate,
    fit,
    predict,
)

__all__ = [
    "fit",
    "evaluate",
    "predict",
    "History",
    "Trainer",
    "NonFiniteLossError",
    "NonFiniteStateError",
    "Callback",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRScheduler",
    "CSVLogger",
    "JSONLogger",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "restore",
]
