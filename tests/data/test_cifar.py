"""CIFAR-10 binary batches written by the test: round trip, layout and errors."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cnnlab.data import DataError, DataFileNotFoundError, cifar10
from tests.data.helpers import cifar_records


def _write_batches(folder, per_file=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth = {"train": ([], []), "test": ([], [])}
    names = [("train", f"data_batch_{i}.bin") for i in range(1, 6)] + [("test", "test_batch.bin")]
    for split, name in names:
        images = rng.integers(0, 256, size=(per_file, 32, 32, 3), dtype=np.uint8)  # HWC
        labels = rng.integers(0, 10, size=per_file)
        (folder / name).write_bytes(cifar_records(images, labels))
        truth[split][0].append(images)
        truth[split][1].append(labels)
    return {s: (np.concatenate(i), np.concatenate(l)) for s, (i, l) in truth.items()}


@pytest.mark.parametrize("nested", [False, True])
def test_round_trip(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-bin" if nested else tmp_path
    truth = _write_batches(folder)
    for split, n in (("train", 15), ("test", 3)):
        ds = cifar10(split, root=tmp_path)
        images, labels = truth[split]
        assert ds.x.shape == (n, 32, 32, 3) and ds.x.dtype == np.float32
        assert ds.y.dtype == np.int64 and np.array_equal(ds.y, labels)
        assert np.array_equal(np.round(ds.x * 255).astype(np.uint8), images)
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"


def test_channel_layout(tmp_path):
    """A record whose R plane is all 10, G 20, B 30 gives pixels (10, 20, 30)/255."""
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1024
    (tmp_path / "test_batch.bin").write_bytes(record)
    ds = cifar10("test", root=tmp_path)
    assert ds.y.tolist() == [7]
    assert np.array_equal(ds.x[0, 5, 9] * 255, np.array([10, 20, 30], np.float32))
    # row-major planes: the byte after the label is pixel (0, 0) red, byte 33 is (1, 0) red
    record = bytearray(3073)
    record[1 + 32] = 200  # red of row 1, column 0
    record[1 + 1024 + 5] = 100  # green of row 0, column 5
    (tmp_path / "test_batch.bin").write_bytes(bytes(record))
    x = cifar10("test", root=tmp_path).x[0] * 255
    assert x[1, 0, 0] == 200 and x[0, 5, 1] == 100 and np.count_nonzero(x) == 2


def test_error_length(tmp_path):
    _write_batches(tmp_path)
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-10])
    msg = f"{path}: length 9209 bytes is not a positive multiple of 3073 (a record is 1 label byte"
    with pytest.raises(DataError, match=re.escape(msg)):
        cifar10("test", root=tmp_path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match=re.escape(f"{path}: length 0 bytes")):
        cifar10("test", root=tmp_path)


def test_error_label(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(bytes([3]) + bytes(3072) + bytes([11]) + bytes(3072))
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'test_batch.bin'}: label 11 at record 1")
    ):
        cifar10("test", root=tmp_path)


def test_error_missing(tmp_path):
    _write_batches(tmp_path)
    (tmp_path / "data_batch_4.bin").unlink()
    with pytest.raises(
        DataFileNotFoundError, match=re.escape(f"{tmp_path / 'data_batch_4.bin'}: no such file")
    ):
        cifar10("train", root=tmp_path)
    with pytest.raises(ValueError, match="cifar10: split must be 'train' or 'test'"):
        cifar10("valid", root=tmp_path)
