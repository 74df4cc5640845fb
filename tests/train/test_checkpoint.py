"""Checkpoint files: round trip, bad files named with what is wrong, pickle refused, atomic."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import optim
from cnnlab.train import CheckpointError, fit, load_checkpoint, restore, save_checkpoint
from cnnlab.train.checkpoint import atomic_write
from tests.train.helpers import assert_bitwise_equal, bars, small_cnn, weights


def _trained(seed=0, dropout=0.5, batch_norm=True, steps=3, opt_cls=optim.Adam, channels=4):
    """A model and optimizer after a few steps (so the optimizer has state)."""
    model = small_cnn(seed=seed, dropout=dropout, batch_norm=batch_norm, channels=channels)
    opt = opt_cls(model.parameters(), lr=0.01)
    x, y = bars(16, seed=seed)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(cl.tensor(x)), y).backward()
        opt.step()
    return model, opt


def _one_step(model, opt, seed=1):
    x, y = bars(16, seed=seed)
    opt.zero_grad()
    F.cross_entropy(model(cl.tensor(x)), y).backward()
    opt.step()


def _meta_bytes(**meta):
    meta = {"format": "cnnlab-checkpoint", "version": 1, "epoch": 0, "step": 0, **meta}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


# ------------------------------------------------------------------------ round trip
def test_round_trip_of_weights_optimizer_rngs_and_progress(tmp_path):
    model, opt = _trained()
    path = tmp_path / "sub" / "ck.npz"  # the folder is created
    loop_rng = np.random.default_rng(5)
    out = save_checkpoint(
        path,
        model,
        opt,
        epoch=3,
        step=17,
        rng_states={"loader": loop_rng.bit_generator.state},
        history={"loss": [1.0, 0.5]},
        extra={"note": "hello"},
    )
    assert out == path and path.is_file()
    assert os.listdir(path.parent) == ["ck.npz"]  # no temporary file left behind

    # The file, read with plain NumPy and no pickle: arrays under model/ and optim/, JSON meta.
    with np.load(path, allow_pickle=False) as raw:
        files = set(raw.files)
        meta = json.loads(raw["__meta__"].tobytes().decode())
        for k, v in model.state_dict().items():
            assert np.array_equal(raw[f"model/{k}"], v) and raw[f"model/{k}"].dtype == v.dtype
        for k, v in opt.state_dict()["state"].items():
            assert np.array_equal(raw[f"optim/{k}"], v)
    assert files == (
        {f"model/{k}" for k in model.state_dict()}
        | {f"optim/{k}" for k in opt.state_dict()["state"]}
        | {"__meta__"}
    )
    assert (meta["format"], meta["version"], meta["epoch"], meta["step"]) == (
        "cnnlab-checkpoint",
        1,
        3,
        17,
    )
    assert meta["optimizer"] == {"type": "Adam", "groups": opt.state_dict()["groups"]}
    assert meta["history"] == {"loss": [1.0, 0.5]} and meta["extra"] == {"note": "hello"}
    assert meta["rng_states"]["loader"] == loop_rng.bit_generator.state
    ((name, rng),) = model.named_rngs()
    assert meta["model_rngs"] == {name: rng.bit_generator.state}

    ckpt = load_checkpoint(path)
    assert ckpt["path"] == str(path) and ckpt["meta"] == meta
    # Restore into a new model (other weights, other dropout seed) and a new optimizer.
    model2 = small_cnn(seed=42, dropout=0.5, batch_norm=True)
    opt2 = optim.Adam(model2.parameters(), lr=0.5)
    assert restore(ckpt, model2, opt2) == meta
    assert_bitwise_equal(weights(model2), weights(model))
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["groups"] == s1["groups"] and s2["groups"][0]["lr"] == 0.01
    assert_bitwise_equal(s2["state"], s1["state"])
    # From here both continue identically: same dropout masks, same Adam moments and count.
    _one_step(model, opt)
    _one_step(model2, opt2)
    assert_bitwise_equal(weights(model2), weights(model))


def test_checkpoint_without_optimizer_and_float64_model(tmp_path):
    model = small_cnn(seed=3).double()
    save_checkpoint(tmp_path / "w.npz", model)
    ckpt = load_checkpoint(tmp_path / "w.npz")
    assert "optimizer" not in ckpt["meta"] and ckpt["optim"] == {}
    assert ckpt["model"]["0.weight"].dtype == np.float64
    other = small_cnn(seed=4).double()
    restore(ckpt, other)
    assert_bitwise_equal(weights(other), weights(model))
    with pytest.raises(CheckpointError, match=r"w\.npz: holds no optimizer state$"):
        restore(ckpt, other, optim.SGD(other.parameters(), lr=0.1))


# ------------------------------------------------------------------------ bad files
def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(CheckpointError, match=rf"^{path}: no such checkpoint file$"):
        load_checkpoint(path)
    model = small_cnn()
    with pytest.raises(CheckpointError, match=r"last\.npz: no such checkpoint file"):
        fit(
            model,
            bars(8),
            optimizer=optim.SGD(model.parameters(), lr=0.1),
            resume=tmp_path,
            verbose=False,
        )


def test_random_bytes_and_empty_file_are_not_checkpoints(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(b"\x01\x02" + np.random.default_rng(0).bytes(998))
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: not a cnnlab checkpoint: not an \.npz \(zip\) archive "
        r"\(it begins with b'\\x01\\x02",
    ):
        load_checkpoint(path)
    text = tmp_path / "notes.npz"
    text.write_text("hello, I am not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.npz: not a cnnlab checkpoint: not an"):
        load_checkpoint(text)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(
        CheckpointError,
        match=rf"^{empty}: not a readable checkpoint: the file "
        r"is empty$",
    ):
        load_checkpoint(empty)


def test_a_single_npy_array_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(
        CheckpointError,
        match=r"array\.npz: not a cnnlab checkpoint: not an "
        r"\.npz \(zip\) archive \(it begins with b'\\x93NUM'",
    ):
        load_checkpoint(path)


def test_npz_without_meta_or_with_bad_meta(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weights=np.ones(3), bias=np.zeros(2))
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: not a cnnlab checkpoint \(no __meta__ "
        r"entry; found \['weights', 'bias'\]\)$",
    ):
        load_checkpoint(path)
    bad_json = tmp_path / "badjson.npz"
    np.savez(bad_json, __meta__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(
        CheckpointError,
        match=r"badjson\.npz: the checkpoint's metadata is "
        r"corrupt",
    ):
        load_checkpoint(bad_json)
    other = tmp_path / "other.npz"
    np.savez(other, __meta__=np.frombuffer(b'{"format": "keras"}', np.uint8))
    with pytest.raises(
        CheckpointError,
        match=r"other\.npz: not a cnnlab checkpoint \(format "
        r"'keras'\)$",
    ):
        load_checkpoint(other)
    listy = tmp_path / "list.npz"
    np.savez(listy, __meta__=np.frombuffer(b"[1, 2]", np.uint8))
    with pytest.raises(
        CheckpointError,
        match=r"list\.npz: not a cnnlab checkpoint \(format "
        r"'list'\)$",
    ):
        load_checkpoint(listy)


def test_zip_entries_that_are_not_arrays(tmp_path):
    path = tmp_path / "zipped.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__meta__", json.dumps({"format": "cnnlab-checkpoint"}))
        z.writestr("model/0.weight", b"\x00" * 16)
    with pytest.raises(
        CheckpointError,
        match=r"zipped\.npz: not a cnnlab checkpoint \(entries "
        r"\['__meta__', 'model/0\.weight'\] are not ",
    ):
        load_checkpoint(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999, 10])
def test_truncated_checkpoint(tmp_path, keep):
    model, opt = _trained()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt)
    data = path.read_bytes()
    cut = int(len(data) * keep) if keep < 1 else keep
    path.write_bytes(data[:cut])
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: not a readable checkpoint: corrupt or "
        r"truncated \(",
    ):
        load_checkpoint(path)


def test_corrupted_bytes_are_caught_by_the_zip_checksum(tmp_path):
    model, _ = _trained(batch_norm=False, dropout=0.0)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model)
    data = bytearray(path.read_bytes())
    # Flip a byte inside the dense weights' data (the last array written before __meta__).
    blob = model.state_dict()["4.weight"].tobytes()
    at = bytes(data).index(blob[:64]) + 100
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError,
        match=r"ck\.npz: not a readable checkpoint: corrupt or "
        r"truncated \(Bad CRC-32 for file "
        r"'model/4\.weight\.npy'\)",
    ):
        load_checkpoint(path)


def test_shape_mismatch_names_the_file_and_the_parameter(tmp_path):
    model, opt = _trained(channels=4, batch_norm=False)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt)
    other = small_cnn(seed=9, channels=8, dropout=0.5)
    before = weights(other)
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: does not match the model: load_state_dict for "
        r"Sequential: parameter '0\.weight' has shape \(3, 3, 1, 8\) in the "
        r"model but \(3, 3, 1, 4\) in the state dict$",
    ):
        restore(load_checkpoint(path), other)
    assert_bitwise_equal(weights(other), before)  # nothing changed
    # The same through fit(resume=...), which checks the shapes before reading the weights.
    with pytest.raises(CheckpointError, match=r"ck\.npz: member 'model/0\.weight': shape "
                       r"\(3, 3, 1, 4\) does not match the model's \(3, 3, 1, 8\)$"):
        fit(other, bars(8), optimizer=optim.Adam(other.parameters()), resume=path, verbose=False)


def test_missing_and_unexpected_names(tmp_path):
    model, _ = _trained(batch_norm=False)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model)
    with pytest.raises(
        CheckpointError,
        match=r"ck\.npz: does not match the model: load_state_dict for "
        r"Sequential: missing \['1\.gamma', '1\.beta', ",
    ):
        restore(load_checkpoint(path), small_cnn(batch_norm=True, dropout=0.5))


def test_non_numeric_entry_names_the_file_and_the_parameter(tmp_path):
    model = small_cnn(seed=0)
    path = tmp_path / "text.npz"
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["model/0.bias"] = np.array(["a", "b", "c", "d"])
    np.savez(path, __meta__=_meta_bytes(), **arrays)
    with pytest.raises(
        CheckpointError,
        match=r"text\.npz: member 'model/0\.bias': dtype <U1 is not allowed here "
        r"\(expected a float array\)$",
    ):
        restore(load_checkpoint(path), small_cnn(seed=1))


def test_optimizer_mismatches(tmp_path):
    model, opt = _trained(batch_norm=False)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt)
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"ck\.npz: was saved with optimizer Adam, not SGD$"):
        fresh = small_cnn(dropout=0.5)
        restore(ckpt, fresh, optim.SGD(fresh.parameters(), lr=0.1))
    fresh = small_cnn(dropout=0.5)
    params = list(fresh.parameters())
    with pytest.raises(CheckpointError, match=r"ck\.npz: optimizer state does not fit: "):
        restore(ckpt, fresh, optim.Adam(params[:2]))


def test_a_weights_only_file_cannot_be_resumed_by_fit(tmp_path):
    model, opt = _trained(batch_norm=False, dropout=0.0)
    save_checkpoint(tmp_path / "w.npz", model, opt)
    with pytest.raises(CheckpointError, match=r"w\.npz: holds no training state to resume from"):
        fit(model, bars(8), optimizer=opt, resume=tmp_path / "w.npz", verbose=False)


# ------------------------------------------------------------------------ pickle
class MakesAFile:
    """Unpickling this calls open(marker, 'w'): a payload that leaves a trace when it runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_payload_works_when_loaded_unsafely(tmp_path):
    """Guard: the payload used below really runs when pickle is allowed."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(MakesAFile(marker))).close()
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = MakesAFile(marker)
    np.savez(path, __meta__=_meta_bytes(), **{"model/0.weight": payload})
    with np.load(path, allow_pickle=True) as z:
        z["model/0.weight"][0].close()
    assert marker.exists()


def test_npz_with_a_pickled_object_array_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = MakesAFile(marker)
    model = small_cnn()
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["model/0.weight"] = payload
    np.savez(path, __meta__=_meta_bytes(), **arrays)
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: refused: the file contains pickled "
        r"Python objects, which could run code",
    ):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"pickle"):
        fit(
            model,
            bars(8),
            optimizer=optim.SGD(model.parameters(), lr=0.1),
            resume=path,
            verbose=False,
        )
    assert not marker.exists()


def test_pickled_meta_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = MakesAFile(marker)
    np.savez(path, __meta__=payload)
    with pytest.raises(CheckpointError, match=r"evil\.npz: refused: .*pickled"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_raw_pickle_renamed_npz_is_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"weights": MakesAFile(marker)}, protocol=protocol))
    with pytest.raises(
        CheckpointError,
        match=rf"^{path}: refused: the file contains pickled "
        r"Python objects",
    ):
        load_checkpoint(path)
    assert not marker.exists()


def test_protocol_0_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(MakesAFile(marker), protocol=0))
    with pytest.raises(CheckpointError, match=r"model\.npz: not a cnnlab checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


# ------------------------------------------------------------------------ atomic write
class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_atomic_write_failure_keeps_the_old_file_and_no_temp(tmp_path, error):
    path = tmp_path / "file.bin"
    path.write_bytes(b"old contents")

    def write(f):
        f.write(b"new half-writ")
        raise error("mid-write")

    with pytest.raises(error, match="mid-write"):
        atomic_write(path, write)
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_atomic_write_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    atomic_write(path, lambda f: f.write(b"one"))
    atomic_write(path, lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["file.bin"]


def test_save_checkpoint_failing_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _trained()
    path = tmp_path / "last.npz"
    save_checkpoint(path, model, opt, epoch=1, step=3)
    before = path.read_bytes()
    _one_step(model, opt)

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(path, model, opt, epoch=2, step=4)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.npz"]
    assert load_checkpoint(path)["meta"]["epoch"] == 1


def test_refused_optimizer_leaves_the_model_untouched(tmp_path):
    model, opt = _trained(batch_norm=False)
    path = tmp_path / "ck.npz"
    save_checkpoint(path, model, opt)
    fresh = small_cnn(dropout=0.5, seed=7)
    before = weights(fresh)
    with pytest.raises(CheckpointError, match="was saved with optimizer Adam, not SGD"):
        restore(load_checkpoint(path), fresh, optim.SGD(fresh.parameters(), lr=0.1))
    assert_bitwise_equal(weights(fresh), before)


def test_extra_arrays_round_trip(tmp_path):
    model, opt = _trained(batch_norm=False)
    path = tmp_path / "ck.npz"
    extra = {"callbacks/0/w": np.arange(6.0).reshape(2, 3)}
    save_checkpoint(path, model, opt, extra_arrays=extra)
    ckpt = load_checkpoint(path)
    assert list(ckpt["extra"]) == ["callbacks/0/w"]
    np.testing.assert_array_equal(ckpt["extra"]["callbacks/0/w"], extra["callbacks/0/w"])
    assert set(ckpt["model"]) == set(model.state_dict())  # extras do not leak into the weights


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        new = atomic_write(tmp_path / "new.bin", lambda f: f.write(b"x"))
        assert (new.stat().st_mode & 0o777) == 0o644  # as open() would: 0666 less the umask
        existing = tmp_path / "existing.bin"
        existing.write_bytes(b"old")
        existing.chmod(0o640)
        atomic_write(existing, lambda f: f.write(b"new"))
        assert (existing.stat().st_mode & 0o777) == 0o640  # a replaced file keeps its mode
    finally:
        os.umask(umask)
