"""Checkpoint files: weights, optimizer state, RNG states, progress — and never pickle.

A checkpoint is one NumPy ``.npz`` archive:

* ``model/<name>``  every entry of ``model.state_dict()`` (parameters and buffers);
* ``optim/<key>``   every array of ``optimizer.state_dict()["state"]``;
* ``__meta__``      a uint8 array holding UTF-8 JSON: format and version, epoch, step, the
  optimizer's type and group settings, the RNG states of the model's generators (dropout) and of
  the training loop, the history so far, and a description of the model.

Reading trusts nothing before it is checked (issue 19): only regular files; only the members
above (any other name is refused, so nothing unexpected is inflated); each member's .npy header
(dtype, shape, declared size) is checked — against the model's weights when the model is given,
against the sizes the zip entry can hold, against ``MAX_ARRAY_BYTES`` — before its data is
read, and its data is read straight into an array of that size (a zip bomb is never inflated);
the metadata is checked against its schema (cnnlab.train.checkpoint_meta). A file that carries
a pickled object is refused before anything in it runs.

Non-finite values: a checkpoint holding NaN or inf in its weights or optimizer state is
*refused* on load, not loaded with a warning — cnnlab never writes one (``save_checkpoint``
refuses, and the training guard stops before an overflowed state reaches a checkpoint), so such
a file is damaged or diverged, and its predictions would all be NaN.

It is written to a temporary file in the same folder, flushed to disk and renamed into place
(cnnlab.train.atomic), so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from cnnlab.train.atomic import WriteError, atomic_write, remove_stale_temporaries

__all__ = [
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "restore",
    "atomic_write",
    "WriteError",
    "remove_stale_temporaries",
    "read_metadata",
    "MAX_ARRAY_BYTES",
    "generator_state",
    "set_generator_state",
]

FORMAT = "cnnlab-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, truncated, unsafe, or does not fit the model."""


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
    for name, value in arrays.items():  # never write what load_checkpoint would refuse
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise CheckpointError(f"{path}: not written: {name} holds NaN or infinite values")
    blob = json.dumps(meta).encode("utf-8")
    arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
    return atomic_write(path, lambda f: np.savez(f, **arrays))


_PICKLE_REFUSED = (
    "{path}: refused: the file contains pickled Python objects, which could run "
    "code when loaded; cnnlab checkpoints hold plain arrays only"
)

# Limits, checked on the declared sizes before anything is allocated or inflated.
MAX_ARRAY_BYTES = 1 << 31  # one array: VGG-16's largest weight is 411 MB
MAX_META_BYTES = 64 << 20  # the JSON metadata: a few KB, plus the history
MAX_MEMBERS = 100_000

_FLOAT_KINDS = "f"  # weights, optimizer moments, best weights: real floating point only


def _open_archive(path: Path):
    """(zip archive, {key: ZipInfo}, the open file) of a checkpoint, after the cheap checks."""
    from cnnlab._io import NotARegularFileError, open_regular

    try:
        f, _ = open_regular(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except NotARegularFileError as e:
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({e.strerror})") from None
    try:
        head = f.read(4)
        # np.load would take anything but .npz/.npy as a pickle: look before loading
        if not head:
            raise CheckpointError(f"{path}: not a readable checkpoint: the file is empty")
        if head[:1] == b"\x80":  # the PROTO opcode that starts a pickle (protocol 2 and later)
            raise CheckpointError(_PICKLE_REFUSED.format(path=path))
        if head != b"PK\x03\x04":
            raise CheckpointError(
                f"{path}: not a cnnlab checkpoint: not an .npz (zip) archive "
                f"(it begins with {head!r})"
            )
        f.seek(0)
        archive = zipfile.ZipFile(f)
    except CheckpointError:
        f.close()
        raise
    except _ZIP_ERRORS as e:
        f.close()
        raise CheckpointError(f"{path}: not a readable checkpoint: corrupt or truncated "
                              f"({_reason(e)})") from None
    infos = archive.infolist()
    members = {}
    try:
        if len(infos) > MAX_MEMBERS:
            raise CheckpointError(f"{path}: {len(infos)} members; a checkpoint has at most "
                                  f"{MAX_MEMBERS}")
        names = [info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                 for info in infos]
        odd = [info.filename for info in infos if not info.filename.endswith(".npy")]
        if odd:
            raise CheckpointError(f"{path}: not a cnnlab checkpoint (entries {odd[:5]} are not "
                                  ".npy arrays)")
        if "__meta__" not in names:
            raise CheckpointError(f"{path}: not a cnnlab checkpoint (no __meta__ entry; found "
                                  f"{names[:5]})")
        for key, info in zip(names, infos):
            if not info.filename.endswith(".npy") or not (
                    key == "__meta__" or key.split("/", 1)[0] in _SECTIONS):
                raise CheckpointError(
                    f"{path}: not a cnnlab checkpoint: unexpected member {info.filename!r} "
                    "(members are __meta__.npy, model/*.npy, optim/*.npy, extra/*.npy)")
            if key in members:
                raise CheckpointError(f"{path}: member {info.filename!r} appears twice")
            members[key] = info
    except BaseException:
        archive.close()
        f.close()
        raise
    return archive, members, f


_SECTIONS = ("model", "optim", "extra")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError, zlib.error, KeyError, OverflowError)


@contextlib.contextmanager
def _reading(path: Path):
    """``(archive, members)`` of the checkpoint at ``path``, closed afterwards; a zip or
    decompression error while reading becomes one CheckpointError naming the file."""
    archive, members, f = _open_archive(path)
    try:
        yield archive, members
    except CheckpointError:
        raise
    except _ZIP_ERRORS as e:
        raise CheckpointError(f"{path}: not a readable checkpoint: corrupt or truncated "
                              f"({_reason(e)})") from None
    finally:
        archive.close()
        f.close()


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return text or type(e).__name__


def _read_member(archive, info, path, key, *, kinds, shape=None, max_bytes=MAX_ARRAY_BYTES):
    """One .npy member, read only after its header (dtype, shape, size) has been checked:
    ``kinds`` the allowed dtype kinds, ``shape`` the required shape (None: any), the declared
    size at most ``max_bytes`` and equal to what the zip entry holds (so the inflater is never
    asked for more than was declared)."""
    fmt = np.lib.format
    where = f"{path}: member {key!r}"
    archive_size = os.fstat(archive.fp.fileno()).st_size
    with archive.open(info) as f:
        try:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0), (3, 0)):
                raise ValueError(f"unknown .npy format version {version}")
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else (
                fmt.read_array_header_2_0)
            shape_read, fortran, dtype = read_header(f, max_header_size=10_000)
        except (ValueError, SyntaxError, TypeError, EOFError, tokenize.TokenError) as e:
            # (NumPy parses a header with Python's tokenizer and literal_eval)
            if "pickle" in str(e) or "object" in str(e).lower():
                raise CheckpointError(_PICKLE_REFUSED.format(path=path)) from None
            raise CheckpointError(f"{where}: not a .npy array ({_reason(e)})") from None
        if dtype.hasobject:
            raise CheckpointError(_PICKLE_REFUSED.format(path=path))
        if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None:
            raise CheckpointError(f"{where}: dtype {dtype} is not allowed here (expected "
                                  f"{_KIND_WORDS[kinds]})")
        shape_read = tuple(int(v) for v in shape_read)
        if shape is not None and shape_read != tuple(shape):
            raise CheckpointError(f"{where}: shape {shape_read} does not match the model's "
                                  f"{tuple(shape)}")
        nbytes = math.prod(shape_read) * dtype.itemsize  # Python ints: no overflow
        if nbytes > max_bytes:
            raise CheckpointError(f"{where}: declares {nbytes} bytes (shape {shape_read}); the "
                                  f"limit is {max_bytes}")
        offset = f.tell()
        if info.file_size != offset + nbytes:
            raise CheckpointError(f"{where}: the zip entry holds {info.file_size} bytes but the "
                                  f"array header declares {offset + nbytes}")
        # and the entry's size must be one the file can hold: stored bytes are in the file,
        # deflate inflates at most 1032:1 (else a patched directory would have us allocate
        # gigabytes for a small file before the data runs out)
        limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else 1032)
        if info.compress_size > archive_size or info.file_size > limit + 64:
            raise CheckpointError(f"{where}: the zip entry declares {info.file_size} bytes, "
                                  f"more than its {info.compress_size} stored bytes can hold")
        array = np.empty(shape_read, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(array.reshape(-1, order="A").view(np.uint8))
        done = 0
        while done < nbytes:
            got = f.readinto(view[done:])
            if not got:
                raise CheckpointError(f"{where}: truncated ({done} of {nbytes} bytes)")
            done += got
        f.read(1)  # reach the end, which makes zipfile check the CRC
    return array


_KIND_WORDS = {_FLOAT_KINDS: "a float array", "u": "uint8 bytes", "iu": "an integer",
               "fiub": "a numeric array"}


def _check_finite(array, where) -> None:
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise CheckpointError(
            f"{where} holds {bad} NaN or infinite value(s) of {array.size}; refused (a run that "
            "diverged; train again with a lower learning rate, or resume from an earlier file)")


def _read_meta(archive, members, path) -> dict:
    from cnnlab.train import schema as S
    from cnnlab.train.checkpoint_meta import meta_schema

    raw = _read_member(archive, members["__meta__"], path, "__meta__", kinds="u",
                       max_bytes=MAX_META_BYTES)
    if raw.ndim != 1 or raw.dtype != np.uint8:
        raise CheckpointError(f"{path}: member '__meta__' must be 1-D uint8 bytes; received "
                              f"shape {raw.shape}, dtype {raw.dtype}")
    try:
        meta = S.loads(raw.tobytes(), allow_nan=True)
    except S.SchemaError as e:
        raise CheckpointError(f"{path}: the checkpoint's metadata is corrupt: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: not a cnnlab checkpoint (format {found!r})")
    try:
        return S.check(meta, meta_schema(FORMAT, VERSION))
    except S.SchemaError as e:
        raise CheckpointError(f"{path}: metadata: {e}") from None


def read_metadata(path) -> dict:
    """The checked metadata of a checkpoint, reading nothing else of the file."""
    path = Path(path)
    with _reading(path) as (archive, members):
        return _read_meta(archive, members, path)


def _state_kinds(optimizer_type: str) -> dict:
    """name -> "array"/"count" of the per-parameter state of a cnnlab optimizer type."""
    from cnnlab import optim

    cls = getattr(optim, optimizer_type, None)
    return dict(getattr(cls, "state_spec", {}) or {})


def load_checkpoint(path, model=None) -> dict:
    """Read a checkpoint: ``{"model": {name: array}, "optim": {key: array}, "extra": {...},
    "meta": dict, "path": str}``.

    Nothing is trusted before it is checked: the metadata against its schema (types, ranges,
    nesting); every member's name, dtype, shape and size from its .npy header before its data
    is read or inflated — weights must have the shapes of ``model``'s state dict (when given)
    or else the ones the metadata declares, one array is at most ``MAX_ARRAY_BYTES``; then
    every float array must be finite (a non-finite checkpoint is refused: cnnlab never writes
    one, and NaN weights would make every prediction NaN). Raises CheckpointError naming the
    file and what is wrong; a file carrying pickled objects is refused before anything in it
    runs.
    """
    path = Path(path)
    with _reading(path) as (archive, members):
        meta = _read_meta(archive, members, path)
        declared = meta.get("architecture", {}).get("parameters")
        if model is not None:
            expected = {k: tuple(np.shape(v)) for k, v in model.state_dict().items()}
        elif declared is not None:
            expected = {k: tuple(v) for k, v in declared.items()}
        else:  # a file without the architecture: any weights, each within the size limit
            expected = None
        shapes = None if expected is None else set(expected.values())
        kinds = _state_kinds(meta["optimizer"]["type"]) if "optimizer" in meta else {}
        out = {"model": {}, "optim": {}, "extra": {}}
        for key, info in members.items():
            if key == "__meta__":
                continue
            section, name = key.split("/", 1)
            if section == "model":
                if expected is not None and name not in expected:
                    raise CheckpointError(f"{path}: member {key!r} is not a weight of the model "
                                          f"(it has {len(expected)}: {_first(expected)})")
                array = _read_member(archive, info, path, key, kinds=_FLOAT_KINDS,
                                     shape=None if expected is None else expected[name])
            elif section == "optim":
                array = _read_optim(archive, info, path, key, name, kinds, shapes)
            else:  # save_checkpoint(extra_arrays=...): any numeric array within the limit
                array = _read_member(archive, info, path, key, kinds="fiub")
            _check_finite(array, f"{path}: member {key!r}")
            out[section][name] = array
        missing = [k for k in expected or () if k not in out["model"]]
        if missing:
            raise CheckpointError(f"{path}: does not match the model: weights {missing[:5]} "
                                  "are missing")
    return {**out, "meta": meta, "path": str(path)}


def _first(names) -> str:
    names = list(names)
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


def _read_optim(archive, info, path, key, name, kinds, shapes):
    """An optimizer state member ``<position>.<name>``: a float array shaped like a weight,
    or a non-negative integer step count."""
    position, _, state = name.partition(".")
    if not position.isdigit() or state not in kinds:
        raise CheckpointError(f"{path}: member {key!r} is not optimizer state (expected "
                              f"optim/<position>.<name> with name in {sorted(kinds)})")
    if kinds[state] == "count":
        array = _read_member(archive, info, path, key, kinds="iu", shape=(), max_bytes=8)
        if int(array) < 0:
            raise CheckpointError(f"{path}: member {key!r} is a step count and must be >= 0; "
                                  f"received {int(array)}")
        return array
    array = _read_member(archive, info, path, key, kinds=_FLOAT_KINDS)
    if shapes is not None and array.shape not in shapes:
        raise CheckpointError(f"{path}: member {key!r} has shape {array.shape}, which no "
                              "weight of the model has")
    return array


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
            try:
                set_generator_state(rngs[name], state)
            except (KeyError, ValueError, TypeError, OverflowError) as e:
                raise CheckpointError(f"{path}: metadata: field 'model_rngs.{name}' is not a "
                                      f"generator state ({_reason(e)})") from None
    if optimizer is not None:
        saved = meta["optimizer"]
        try:
            optimizer.load_state_dict({"groups": saved["groups"], "state": checkpoint["optim"]})
        except (KeyError, ValueError, TypeError) as e:
            msg = e.args[0] if e.args else str(e)
            raise CheckpointError(f"{path}: optimizer state does not fit: {msg}") from None
    return meta
