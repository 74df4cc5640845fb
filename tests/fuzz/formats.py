"""The fuzzed formats: for each, a good file to start from, a mutator, and a check of one mutant
against an oracle that does not use the code under test.

Every mutant must end in one of two outcomes:

* ``"error"``: the reader's clean error (DataError, CheckpointError, CLIError), one line that
  names the file;
* ``"loaded"``: what was read equals what an independent reader makes of the same bytes
  (stdlib json, zipfile + NumPy's own .npy reader, a from-scratch IDX parser, Pillow directly),
  and fits the schema (finite weights, settings in range).

Anything else (another exception, a traceback, a wrong load) raises AssertionError naming the
mutant. ``run(name, seed, count, folder)`` fuzzes one format and counts the outcomes.
"""

from __future__ import annotations

import collections
import gzip
import io
import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from tests.fuzz import mutate

__all__ = ["FORMATS", "run"]


def _clean(error: Exception, path: Path) -> str:
    text = str(error)
    assert "\n" not in text, f"a message of several lines: {text!r}"
    assert str(path) in text, f"the message does not name the file: {text!r}"
    return "error"


# ------------------------------------------------------------------ config.json
def _config_base(folder: Path):
    from cnnlab.cli.train import DEFAULTS

    return {**DEFAULTS, "lr": 0.001, "data_dir": "/data/mnist", "freeze": ["features.0"]}


def _valid_settings(s: dict) -> bool:
    """The settings' rules, written out again from the CLI's documentation (the oracle)."""
    from cnnlab import models

    def integer(v, low):
        return type(v) is int and v >= low

    def number(v, low, high=math.inf):
        return type(v) in (int, float) and math.isfinite(v) and low <= v < high

    return (
        s["model"] in models.names()
        and s["dataset"] in ("mnist", "fashion_mnist", "cifar10", "folder")
        and (s["data_dir"] is None or type(s["data_dir"]) is str)
        and type(s["download"]) is bool and type(s["augment"]) is bool
        and integer(s["epochs"], 1) and integer(s["batch_size"], 1) and integer(s["seed"], 0)
        and s["optimizer"] in ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw")
        and number(s["lr"], 0) and number(s["l2"], 0)
        and s["schedule"] in ("none", "step", "exponential", "inverse", "sqrt", "cosine")
        and (s["dropout"] is None or number(s["dropout"], 0, 1))
        and number(s["val_fraction"], 0, 1)
        and (s["from_checkpoint"] is None or type(s["from_checkpoint"]) is str)
        and (s["freeze"] is None or (type(s["freeze"]) is list
                                     and all(type(v) is str for v in s["freeze"])))
        and (s["num_classes"] is None or integer(s["num_classes"], 1))
    )


def _config_check(path: Path, base) -> str:
    from cnnlab.cli.common import CLIError
    from cnnlab.cli.config import read_config

    try:
        settings = read_config(path)
    except CLIError as e:
        return _clean(e, path)
    from cnnlab.cli.config import settings_schema
    from cnnlab.cli.train import DEFAULTS

    expected = json.loads(path.read_bytes())  # the oracle: the stdlib's reading of the file
    added = set(settings) - set(expected)  # only settings newer than the schema get defaults
    assert set(expected) <= set(settings) and added <= settings_schema().optional, added
    assert all(settings[k] == DEFAULTS[k] for k in added)
    for key, value in expected.items():  # no silent default: exactly what the file says
        assert settings[key] == value, f"{key}: {settings[key]!r} but the file says {value!r}"
    assert _valid_settings(settings), f"accepted settings that break the rules: {settings}"
    return "loaded"


# ------------------------------------------------------------------ checkpoint (.npz)
def _model():
    from cnnlab import models

    return models.get("lenet5", num_classes=4, seed=0)


def _checkpoint_base(folder: Path) -> bytes:
    from cnnlab import optim
    from cnnlab.train import ModelCheckpoint, fit

    rng = np.random.default_rng(0)
    x = rng.random((32, 28, 28, 1), dtype=np.float32)
    y = np.arange(32) % 4
    model = _model()
    fit(model, (x, y), optimizer=optim.Adam(model.parameters()), epochs=1, batch_size=16,
        verbose=False, callbacks=[ModelCheckpoint(folder / "base", monitor="loss")],
        extra={"model": {"name": "lenet5", "num_classes": 4, "input_shape": [28, 28, 1],
                         "dropout": None, "dataset": "mnist", "data_dir": None,
                         "classes": ["a", "b", "c", "d"]}})
    return (folder / "base" / "last.npz").read_bytes()


def _checkpoint_check(path: Path, base) -> str:
    from cnnlab import optim
    from cnnlab.cli.common import CLIError
    from cnnlab.cli.loaders import model_from_checkpoint
    from cnnlab.train import CheckpointError, load_checkpoint, restore

    outcomes = set()
    try:  # the CLI's way (evaluate, predict, --from): the description, then the weights
        model_from_checkpoint(path)
        outcomes.add("loaded")
    except (CheckpointError, CLIError) as e:
        outcomes.add(_clean(e, path))
    try:  # the API's way (fit(resume=...)): weights and optimizer state into a model
        model = _model()
        ckpt = load_checkpoint(path, model=model)
        restore(ckpt, model, optim.Adam(model.parameters()))
    except CheckpointError as e:
        outcomes.add(_clean(e, path))
        return "error"
    # the oracle: NumPy's own reader of the same archive agrees on every array
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            if name == "__meta__":
                continue
            section, key = name.split("/", 1)
            theirs = archive[name]
            assert theirs.dtype.kind in "fiub", f"{name}: accepted dtype {theirs.dtype}"
            assert np.array_equal(ckpt[section][key], theirs), f"{name} differs from np.load"
            if theirs.dtype.kind == "f":
                assert np.isfinite(theirs).all(), f"{name}: accepted non-finite values"
    state = model.state_dict()
    for key, value in ckpt["model"].items():
        assert np.array_equal(state[key], value), f"{key} not restored"
    return "loaded" if outcomes == {"loaded"} else "error"


# ------------------------------------------------------------------ IDX
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_base(folder: Path) -> list:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 7, 5), dtype=np.uint8)
    raw = struct.pack(">BBBB3i", 0, 0, 8, 3, *images.shape) + images.tobytes()
    labels = rng.integers(-300, 300, 9).astype(">i2")
    raw2 = struct.pack(">BBBBi", 0, 0, 0x0B, 1, 9) + labels.tobytes()
    return [raw, gzip.compress(raw), raw2, gzip.compress(raw2)]


def _idx_reference(data: bytes):
    """An IDX parser written from the format's description alone: the array, or None."""
    if data[:2] == b"\x1f\x8b":
        if len(data) > 3 and data[3] & 0xE0:  # reserved flag bits: an error (RFC 1952 2.3.1.2)
            return None
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error):
            return None
    if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_TYPES:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    shape = struct.unpack(f">{ndim}i", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    if min(shape, default=0) < 0 or len(data) != 4 + 4 * ndim + math.prod(shape) * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)


def _idx_check(path: Path, base) -> str:
    from cnnlab.data import DataError
    from cnnlab.data.idx import read_idx

    expected = _idx_reference(path.read_bytes())
    try:
        arr = read_idx(path)
    except DataError as e:
        _clean(e, path)
        assert expected is None, f"refused a file the reference reads: {e}"
        return "error"
    assert expected is not None, f"accepted a file the reference refuses: shape {arr.shape}"
    assert arr.shape == expected.shape and np.array_equal(arr, expected)
    return "loaded"


# ------------------------------------------------------------------ images (PNG, JPEG)
def _image_base(folder: Path) -> list:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for fmt, mode, shape in [("PNG", "RGB", (6, 5, 3)), ("PNG", "L", (7, 4)),
                             ("JPEG", "RGB", (8, 8, 3))]:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


def _image_check(path: Path, base) -> str:
    import warnings

    from PIL import Image

    from cnnlab.data import DataError
    from cnnlab.data.images import MAX_PIXELS, load_image

    try:
        arr = load_image(path)
    except DataError as e:
        return _clean(e, path)
    with warnings.catch_warnings():  # the oracle: Pillow directly on the same bytes
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            assert im.size[0] * im.size[1] <= MAX_PIXELS, "accepted an image past the limit"
            expected = np.asarray(im.convert("RGB"), dtype=np.uint8)
    assert arr.dtype == np.float32 and arr.shape == expected.shape
    assert np.array_equal(arr, expected.astype(np.float32) / np.float32(255))
    return "loaded"


FORMATS = {  # name: (file name, base builder, mutator, check)
    "config": ("config.json", _config_base, mutate.mutate_json_text, _config_check),
    "checkpoint": ("ck.npz", _checkpoint_base, mutate.mutate_npz, _checkpoint_check),
    "idx": ("data.idx", _idx_base, mutate.mutate_bytes, _idx_check),
    "image": ("image.png", _image_base, mutate.mutate_bytes, _image_check),
}


def run(name: str, seed: int, count: int, folder) -> tuple[collections.Counter, list]:
    """Fuzz format ``name`` with ``count`` mutants from ``seed``: (outcome counts, failures).

    Mutant ``i`` comes from the Generator seeded with (seed, i), so any one can be rerun alone.
    """
    file_name, make_base, mutator, check = FORMATS[name]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bases = make_base(folder)
    bases = bases if isinstance(bases, list) else [bases]
    counts, failures = collections.Counter(), []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        base = bases[i % len(bases)]
        data = mutator(base, rng)
        path = folder / f"{i}-{file_name}"
        path.write_bytes(data)
        try:
            outcome = check(path, base)
        except Exception as e:  # noqa: BLE001 - every other exception is a finding
            outcome = "bad"
            failures.append((i, f"{type(e).__name__}: {str(e)[:300]}"))
        counts[outcome] += 1
        if outcome != "bad":
            path.unlink()  # keep the failing mutants to look at
    return counts, failures
