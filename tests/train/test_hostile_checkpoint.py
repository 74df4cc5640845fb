"""Checkpoints that lie (issue 19): each finding of the fuzzing is a clean CheckpointError naming
the file and the member or field, checked before anything large is allocated."""

from __future__ import annotations

import io
import json
import os
import re
import resource
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import optim
from cnnlab.train import CheckpointError, fit, load_checkpoint, restore, save_checkpoint
from cnnlab.train.checkpoint import (
    WriteError,
    atomic_write,
    read_metadata,
    remove_stale_temporaries,
)
from tests.train.helpers import bars, small_cnn


def _saved(tmp_path, name="ck.npz"):
    model = small_cnn(seed=0)
    opt = optim.Adam(model.parameters(), lr=0.01)
    x, y = bars(16)
    opt.zero_grad()
    F.cross_entropy(model(cl.tensor(x)), y).backward()
    opt.step()
    path = tmp_path / name
    save_checkpoint(path, model, opt, epoch=1, step=1)
    return path, model, opt


def _members(path) -> dict:
    """The raw bytes of every zip member (an independent reader: zipfile itself)."""
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _write(path, members: dict, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def _npy(array) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _npy_header(descr: str, shape: tuple) -> bytes:
    """A .npy version 1.0 header declaring ``shape`` of ``descr``, written by hand."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def _meta(path) -> dict:
    return json.loads(np.frombuffer(_members(path)["__meta__.npy"][128:], np.uint8)
                      .tobytes().decode())


def _replace(path, name, data):
    members = _members(path)
    members[name] = data
    _write(path, members)


# ------------------------------------------------------------------ weights
@pytest.mark.parametrize("value, dtype", [
    (np.ones(4, np.complex64), "complex64"), (np.ones(4, bool), "bool"),
    (np.array(["a", "b", "c", "d"]), "<U1"), (np.zeros(4, "V4"), "|V4"),
    (np.ones(4, np.int32), "int32"),
])
def test_a_weight_of_the_wrong_dtype_is_refused(tmp_path, value, dtype):
    path, model, _ = _saved(tmp_path)
    _replace(path, "model/0.bias.npy", _npy(value))
    message = f"{path}: member 'model/0.bias': dtype {dtype} is not allowed here (expected a " \
              "float array)"
    with pytest.raises(CheckpointError, match="^" + re.escape(message) + "$"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_and_never_written(tmp_path, bad):
    path, model, opt = _saved(tmp_path)
    w = model.state_dict()["4.weight"].copy()
    w[2, 1] = bad
    _replace(path, "model/4.weight.npy", _npy(w))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: member 'model/4.weight' holds 1 NaN or infinite value(s) of {w.size}; "
            "refused")):
        load_checkpoint(path)
    # and a model holding such a value is not saved: the old file stays
    before = path.read_bytes()
    list(model.parameters())[2].data[2, 1] = bad
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: not written: model/4.weight holds NaN or infinite values")):
        save_checkpoint(path, model, opt)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.npz"]


def test_a_declared_size_past_the_limit_is_refused_before_reading(tmp_path):
    path, model, _ = _saved(tmp_path)
    meta = _meta(path)
    meta["architecture"]["parameters"]["0.bias"] = [100_000, 100_000]
    _replace(path, "__meta__.npy", _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8)))
    _replace(path, "model/0.bias.npy", _npy_header("<f4", (100_000, 100_000)) + b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=re.escape(
                f"{path}: member 'model/0.bias': declares 40000000000 bytes (shape "
                "(100000, 100000)); the limit is 2147483648")):
            load_checkpoint(path)
        with pytest.raises(CheckpointError, match=re.escape(  # with the model: its shape
                f"{path}: member 'model/0.bias': shape (100000, 100000) does not match the "
                "model's (4,)")):
            load_checkpoint(path, model=model)
        assert tracemalloc.get_traced_memory()[1] < 20e6
    finally:
        tracemalloc.stop()


def test_a_deflated_bomb_is_never_inflated(tmp_path):
    path, model, _ = _saved(tmp_path)
    members = _members(path)
    bomb = _npy_header("<f4", (4,)) + bytes(16) + bytes(64 << 20)  # 64 MiB of zeros behind
    members["model/0.bias.npy"] = bomb
    members["junk.npy"] = bytes(64 << 20)
    for name, message in [("junk.npy", "unexpected member 'junk.npy'"),
                          ("model/0.bias.npy", "member 'model/0.bias': the zip entry holds "
                                               f"{len(bomb)} bytes but the array header "
                                               "declares 144")]:
        _write(path, {k: v for k, v in members.items() if k == name or k != "junk.npy"},
               compression=zipfile.ZIP_DEFLATED)
        assert path.stat().st_size < 1e6
        tracemalloc.start()
        try:
            with pytest.raises(CheckpointError, match=re.escape(message)):
                load_checkpoint(path)
            assert tracemalloc.get_traced_memory()[1] < 20e6  # nothing near 64 MiB
        finally:
            tracemalloc.stop()


def test_a_patched_zip_directory_is_a_clean_error(tmp_path):
    path, _, _ = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")  # the last central directory entry
    data[central + 10 : central + 12] = struct.pack("<H", 99)  # compression method 99
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"^.*ck\.npz: not a readable checkpoint: corrupt "
                                              r"or truncated \("):
        load_checkpoint(path)


# ------------------------------------------------------------------ metadata
def _with_meta(path, change):
    meta = _meta(path)
    change(meta)
    blob = json.dumps(meta).encode() if not isinstance(meta, bytes) else meta
    _replace(path, "__meta__.npy", _npy(np.frombuffer(blob, np.uint8)))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.__setitem__("epoch", "3"), "field 'epoch' must be an integer >= 0; "
                                            "received \"3\""),
    (lambda m: m.__setitem__("step", -1), "field 'step' must be an integer >= 0; received -1"),
    (lambda m: m.__setitem__("history", []), "field 'history' must be an object of a list of "
                                             "a number"),
    (lambda m: m["optimizer"].__setitem__("groups", {}), "field 'optimizer.groups' must be a "
                                                         "list of an object"),
    (lambda m: m.pop("format"), "not a cnnlab checkpoint (format None)"),
    (lambda m: m.__setitem__("extra", {"model": {"name": "lenet5"}}),
     "field 'extra.model.num_classes' is missing"),
    (lambda m: m.__setitem__("rng_states", {"a": [[[[[[[[1]]]]]]]]}),
     "field 'rng_states.a' must be JSON nested at most 4 levels"),
    (lambda m: m.__setitem__("extra", {"x": json.loads("[" * 40 + "]" * 40)}),
     "JSON nested deeper than 32 levels"),
])
def test_metadata_of_the_wrong_shape_is_refused(tmp_path, change, message):
    path, _, _ = _saved(tmp_path)
    _with_meta(path, change)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        read_metadata(path)
    with pytest.raises(CheckpointError, match=re.escape(message)):
        load_checkpoint(path)


def test_deeply_nested_metadata_is_no_recursion_error(tmp_path):
    path, _, _ = _saved(tmp_path)
    _replace(path, "__meta__.npy", _npy(np.frombuffer(b"[" * 100_000 + b"]" * 100_000,
                                                      np.uint8)))
    with pytest.raises(CheckpointError, match="JSON nested deeper than 32 levels"):
        load_checkpoint(path)


def test_wrong_generator_state_or_optimizer_settings_on_resume(tmp_path):
    path, _, _ = _saved(tmp_path)
    _with_meta(path, lambda m: m["optimizer"]["groups"][0].__setitem__("lr", "fast"))
    model = small_cnn(seed=0)
    with pytest.raises(CheckpointError, match=r"ck\.npz: optimizer state does not fit: "):
        fit(model, bars(8), optimizer=optim.Adam(model.parameters()), resume=path,
            verbose=False)


# ------------------------------------------------------------------ optimizer state
@pytest.mark.parametrize("value, message", [
    (np.ones((4,), np.int8), "dtype int8 is not allowed here (expected a float array)"),
    (np.ones((4,), bool), "dtype bool is not allowed here (expected a float array)"),
    (np.ones((4,), np.complex128), "dtype complex128 is not allowed here"),
    (np.zeros((4,), "datetime64[s]"), "dtype datetime64[s] is not allowed here"),
    (np.ones((5,), np.float32), "has shape (5,), which no weight of the model has"),
])
def test_optimizer_moments_of_the_wrong_dtype_are_refused(tmp_path, value, message):
    path, _, _ = _saved(tmp_path)
    _replace(path, "optim/1.m.npy", _npy(value))
    with pytest.raises(CheckpointError, match=re.escape(f"{path}: member 'optim/1.m") + ".*"
                       + re.escape(message)):
        load_checkpoint(path)


def test_a_negative_or_fractional_step_count_is_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    _replace(path, "optim/0.step.npy", _npy(np.int64(-3)))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: member 'optim/0.step' is a step count and must be >= 0; received -3")):
        load_checkpoint(path)
    _replace(path, "optim/0.step.npy", _npy(np.float64(2.5)))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: member 'optim/0.step': dtype float64 is not allowed here (expected an "
            "integer)")):
        load_checkpoint(path)


def test_special_files_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "ck.npz"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{fifo}: a FIFO (named pipe), not a regular file")):
        load_checkpoint(fifo)
    with pytest.raises(CheckpointError, match="/dev/zero: a character device"):
        load_checkpoint("/dev/zero")


# ------------------------------------------------------------------ disk full, temporaries
def test_disk_full_is_one_line_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path, model, opt = _saved(tmp_path, "last.npz")
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # writes past 4 KB fail (EFBIG)
    try:
        with pytest.raises(WriteError, match=re.escape(
                f"{path}: cannot write (File too large); the previous file, if any, is kept")
                ) as info:
            save_checkpoint(path, model, opt, epoch=2)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(info.value).count("\n") == 0 and isinstance(info.value, OSError)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["last.npz"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    keep = ["last.npz", ".lock", "notes.tmp", ".last.npz.tmp", "x.last.npz.abcdefgh.tmp"]
    stale = [".last.npz.k2j_9xq1.tmp", ".config.json.AbCdEfGh.tmp"]
    for name in keep + stale:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_atomic_write_error_in_the_writer_removes_the_temporary(tmp_path):
    def fail(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=re.escape(
            f"{tmp_path / 'a.json'}: cannot write (No space left on device)")):
        atomic_write(tmp_path / "a.json", fail)
    assert os.listdir(tmp_path) == []


def test_restore_still_round_trips(tmp_path):
    """The strict reader still reads what save_checkpoint writes, bit for bit (np.load is the
    oracle)."""
    path, model, opt = _saved(tmp_path)
    ckpt = load_checkpoint(path, model=model)
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:
            if name == "__meta__":
                continue
            section, key = name.split("/", 1)
            assert np.array_equal(ckpt[section][key], archive[name])
            assert ckpt[section][key].dtype == archive[name].dtype
    fresh = small_cnn(seed=5)
    restore(ckpt, fresh, optim.Adam(fresh.parameters(), lr=0.01))


def test_a_model_description_that_cannot_be_built_names_the_file(tmp_path):
    from cnnlab.cli.loaders import model_from_checkpoint

    path, _, _ = _saved(tmp_path)
    _with_meta(path, lambda m: m.__setitem__("extra", {"model": {
        "name": "lenet5", "num_classes": 4, "input_shape": [1, 28, 1]}}))
    with pytest.raises(CheckpointError, match=re.escape(
            f"{path}: the model it describes cannot be built: cannot build model 'lenet5'")):
        model_from_checkpoint(path)
