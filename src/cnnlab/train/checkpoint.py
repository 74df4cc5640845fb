"""Checkpoint files: weights, optimizer state, RNG states, progress — and never pickle.

A checkpoint is one NumPy ``.npz`` archive:

* ``model/<name>``  every entry of ``model.state_dict()`` (parameters and buffers);
* ``optim/<key>``   every array of ``optimizer.state_dict()["state"]``;
* ``__meta__``      a uint8 array holding UTF-8 JSON: format and version, epoch, step, the
  optimizer's type and group settings, the RNG states of the model's generators (dropout) and of
  the training loop, the history so far, and a description of the model.

It is loaded with ``np.load(..., allow_pickle=False)``: a file that carries a pickled object is
refused before anything in it runs. It is written to a temporary file in the same folder,
flushed to disk and renamed into place, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "restore",
    "atomic_write",
    "generator_state",
    "set_generator_state",
]

FORMAT = "cnnlab-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated, unsafe, or does not fit the model."""


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, fsync, rename into place.

    A crash at any point leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have: 0666
        # less the umask, or the same mode as the file it replaces
        os.chmod(tmp, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def generator_state(rng: np.random.Generator) -> dict:
    """The JSON-able state of a NumPy Generator (its bit generator's state dict)."""
    return rng.bit_generator.state


def set_generator_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = state


def save_checkpoint(path, model, optimizer=None, *, epoch: int = 0, step: int = 0,
                    rng_states: dict | None = None, history: dict | None = None,
                    extra: dict | None = None, extra_arrays: dict | None = None) -> Path:
    """Write a checkpoint of ``model`` (and ``optimizer``) to ``path`` atomically.

    Args:
        epoch: epochs completed; step: optimizer steps taken in total.
        rng_states: extra named generator states of the training loop (JSON-able dicts).
        history: the metrics so far (dict of lists).
        extra: any other JSON-able information (the model's description, the CLI settings).
        extra_arrays: any other named arrays (a callback's best weights, say); read back as
            ``load_checkpoint(path)["extra"]``.
    """
    arrays = {f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in (extra_arrays or {}).items()})
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": int(epoch),
        "step": int(step),
        "model_rngs": {name: generator_state(g) for name, g in model.named_rngs()},
        "rng_states": rng_states or {},
        "history": history or {},
        "extra": extra or {},
        # what the weights belong to, readable without cnnlab: the module tree and every shape
        "architecture": {
            "repr": repr(model),
            "parameters": {k: list(np.shape(v)) for k, v in model.state_dict().items()},
        },
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        arrays.update({f"optim/{k}": np.asarray(v) for k, v in state["state"].items()})
        meta["optimizer"] = {"type": type(optimizer).__name__, "groups": state["groups"]}
    blob = json.dumps(meta).encode("utf-8")
    arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


_PICKLE_REFUSED = (
    "{path}: refused: the file contains pickled Python objects, which could run "
    "code when loaded; cnnlab checkpoints hold plain arrays only"
)


def load_checkpoint(path) -> dict:
    """Read a checkpoint: ``{"model": {name: array}, "optim": {key: array}, "meta": dict}``.

    Raises CheckpointError naming the file when it is missing, not a checkpoint, truncated,
    or carries pickled objects (refused: nothing in the file is executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({e})") from None
    # np.load treats anything that is neither .npz nor .npy as a pickle: look before loading.
    if not head:
        raise CheckpointError(f"{path}: not a readable checkpoint: the file is empty")
    if head[:1] == b"\x80":  # the PROTO opcode that starts a pickle (protocol 2 and later)
        raise CheckpointError(_PICKLE_REFUSED.format(path=path))
    if head != b"PK\x03\x04":
        raise CheckpointError(
            f"{path}: not a cnnlab checkpoint: not an .npz (zip) archive "
            f"(it begins with {head!r})"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if "__meta__" not in names:
                raise CheckpointError(
                    f"{path}: not a cnnlab checkpoint (no __meta__ entry; found {names[:5]})"
                )
            data = {name: archive[name] for name in names}
            odd = [name for name, value in data.items() if not isinstance(value, np.ndarray)]
            if odd:
                raise CheckpointError(
                    f"{path}: not a cnnlab checkpoint (entries {odd[:5]} are not .npy arrays)"
                )
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(_PICKLE_REFUSED.format(path=path)) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(
            f"{path}: not a readable checkpoint: corrupt or truncated ({e})"
        ) from None
    try:
        meta = json.loads(data.pop("__meta__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the checkpoint's metadata is corrupt ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: not a cnnlab checkpoint (format {found!r})")
    model = {k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}
    optim = {k[len("optim/"):]: v for k, v in data.items() if k.startswith("optim/")}
    extra = {k[len("extra/"):]: v for k, v in data.items() if k.startswith("extra/")}
    return {"model": model, "optim": optim, "extra": extra, "meta": meta, "path": str(path)}


def restore(checkpoint: dict, model, optimizer=None) -> dict:
    """Load a checkpoint's weights (and optimizer state, generator states) into objects.

    ``checkpoint`` is what :func:`load_checkpoint` returned. Errors name the file and the
    parameter that does not fit. Returns the checkpoint's metadata.
    """
    path = checkpoint.get("path", "<checkpoint>")
    meta = checkpoint["meta"]
    if optimizer is not None:  # check before anything is loaded, so a refusal changes nothing
        if "optimizer" not in meta:
            raise CheckpointError(f"{path}: holds no optimizer state")
        if meta["optimizer"]["type"] != type(optimizer).__name__:
            raise CheckpointError(
                f"{path}: was saved with optimizer {meta['optimizer']['type']}, "
                f"not {type(optimizer).__name__}"
            )
    try:
        model.load_state_dict(checkpoint["model"])
    except (KeyError, ValueError, TypeError) as e:
        msg = e.args[0] if e.args else str(e)
        raise CheckpointError(f"{path}: does not match the model: {msg}") from None
    rngs = dict(model.named_rngs())
    for name, state in meta.get("model_rngs", {}).items():
        if name in rngs:
            set_generator_state(rngs[name], state)
    if optimizer is not None:
        saved = meta["optimizer"]
        try:
            optimizer.load_state_dict({"groups": saved["groups"], "state": checkpoint["optim"]})
        except (KeyError, ValueError) as e:
            msg = e.args[0] if e.args else str(e)
            raise CheckpointError(f"{path}: optimizer state does not fit: {msg}") from None
    return meta
