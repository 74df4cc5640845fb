"""IDX files and MNIST/Fashion-MNIST loading: values, checks and the error messages."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import DataError, DataFileNotFoundError, fashion_mnist, mnist, read_idx, write_idx
from cnnlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx
from tests.data.helpers import MNIST_NAMES, fake_mnist, idx_bytes, write_file

FULL_MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"


def test_parse_idx_known_bytes():
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3]) + bytes([1, 2, 3, 4, 5, 6])
    arr = parse_idx(raw)
    assert arr.dtype == np.uint8 and arr.shape == (2, 1, 3)
    assert arr.tolist() == [[[1, 2, 3]], [[4, 5, 6]]]
    assert arr.flags.writeable


def test_parse_idx_other_types_big_endian():
    # int16 (type 0x0B), shape (3,): values stored big-endian
    raw = bytes([0, 0, 0x0B, 1]) + struct.pack(">i", 3) + struct.pack(">3h", -2, 300, 7)
    assert parse_idx(raw).tolist() == [-2, 300, 7]
    raw = bytes([0, 0, 0x0D, 1]) + struct.pack(">i", 2) + struct.pack(">2f", 1.5, -0.25)
    assert parse_idx(raw).tolist() == [1.5, -0.25]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_write_idx_round_trip(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, arr)
        back = read_idx(tmp_path / name)
        assert back.dtype == arr.dtype and np.array_equal(back, arr)
    if dtype == np.uint8:  # raw bytes are exactly the independently built ones
        assert (tmp_path / "a.idx").read_bytes() == idx_bytes(arr)
        assert (tmp_path / "a.idx.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "plain.gz").write_bytes(idx_bytes(arr))  # raw despite the name
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(arr)))  # gzip without the name
    assert np.array_equal(read_idx(tmp_path / "plain.gz"), arr)
    assert np.array_equal(read_idx(tmp_path / "packed"), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_root(tmp_path, gz):
    truth = fake_mnist(tmp_path, gz=gz)
    for split in ("train", "test"):
        ds = mnist(split, root=tmp_path)
        images, labels = truth[split]
        assert ds.x.shape == (len(images), 28, 28, 1) and ds.x.dtype == np.float32
        assert ds.y.dtype == np.int64
        assert np.array_equal(ds.x[..., 0], images.astype(np.float32) / np.float32(255))
        assert np.array_equal(ds.y, labels)
        assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0
        assert ds.classes == [str(d) for d in range(10)]


def test_fashion_mnist_from_root(tmp_path):
    truth = fake_mnist(tmp_path)
    ds = fashion_mnist("test", root=tmp_path)
    assert np.array_equal(ds.y, truth["test"][1])
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"


def test_bad_split():
    with pytest.raises(ValueError, match=r"mnist: split must be 'train' or 'test'; received 'dev'"):
        mnist("dev")


def test_error_bad_magic_names_file(tmp_path):
    fake_mnist(tmp_path, gz=False)
    images = tmp_path / MNIST_NAMES["train"][0]
    # a labels header where the images header should be
    data = bytearray(images.read_bytes())
    data[:4] = struct.pack(">i", LABELS_MAGIC)
    images.write_bytes(bytes(data))
    msg = (
        f"{images}: bad magic number 2049 (0x00000801); expected 2051 (0x00000803) for an IDX "
        f"images file"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        mnist("train", root=tmp_path)


def test_error_bad_labels_magic(tmp_path):
    fake_mnist(tmp_path, gz=False)
    labels = tmp_path / MNIST_NAMES["test"][1]
    labels.write_bytes(b"\x12\x34\x56\x78" + labels.read_bytes()[4:])
    msg = (
        f"{labels}: bad magic number 305419896 (0x12345678); expected 2049 (0x00000801) for an "
        f"IDX labels file"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        mnist("test", root=tmp_path)


def test_error_generic_bad_magic(tmp_path):
    path = write_file(tmp_path / "x.idx", b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(DataError, match=re.escape(f"{path}: bad magic number 0x01020801; an IDX")):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_error_truncated_names_file(tmp_path, gz):
    fake_mnist(tmp_path, n_test=5, gz=False)
    images = tmp_path / MNIST_NAMES["test"][0]
    data = images.read_bytes()[:-36]  # needs 16 + 5*784 = 3936 bytes
    images.unlink()
    path = write_file(images, data, gz)
    msg = (
        f"{path}: file is truncated: the header says shape (5, 28, 28) of uint8, which needs "
        f"3936 bytes, but the file has 3900"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        mnist("test", root=tmp_path)


def test_error_too_long(tmp_path):
    path = write_file(tmp_path / "l.idx", idx_bytes(np.arange(4, dtype=np.uint8)) + b"xx")
    msg = (
        f"{path}: file is too long: the header says shape (4,) of uint8, which needs 12 bytes, "
        f"but the file has 14"
    )
    with pytest.raises(DataError, match=re.escape(msg)):
        read_idx(path)


def test_error_short_files(tmp_path):
    path = write_file(tmp_path / "e.idx", b"\x00\x00")
    with pytest.raises(DataError, match=re.escape(f"{path}: not an IDX file: 2 bytes is shorter")):
        read_idx(path)
    path = write_file(tmp_path / "h.idx", b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(
        DataError, match=re.escape(f"{path}: truncated header: 3 dimensions need 16")
    ):
        read_idx(path)


def test_error_truncated_gzip(tmp_path):
    packed = gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    path = write_file(tmp_path / "cut.gz", packed[: len(packed) // 2])
    with pytest.raises(DataError, match=re.escape(f"{path}: truncated gzip stream")):
        read_idx(path)
    path = write_file(tmp_path / "bad.gz", b"\x1f\x8b" + b"\xff" * 40)
    with pytest.raises(DataError, match=re.escape(f"{path}: corrupt gzip stream")):
        read_idx(path)


def test_error_count_mismatch(tmp_path):
    fake_mnist(tmp_path, n_train=10, gz=True)
    labels_name = MNIST_NAMES["train"][1]
    (tmp_path / (labels_name + ".gz")).unlink()
    labels = write_file(tmp_path / labels_name, idx_bytes(np.zeros(9, np.uint8)), gz=True)
    images = tmp_path / (MNIST_NAMES["train"][0] + ".gz")
    msg = f"{labels}: has 9 labels but {images} has 10 images; the counts must match"
    with pytest.raises(DataError, match=re.escape(msg)):
        mnist("train", root=tmp_path)


def test_error_wrong_image_size(tmp_path):
    fake_mnist(tmp_path, n_test=3, gz=False)
    images = write_file(
        tmp_path / MNIST_NAMES["test"][0], idx_bytes(np.zeros((3, 32, 32), np.uint8))
    )
    with pytest.raises(DataError, match=re.escape(f"{images}: images are 32x32; expected 28x28")):
        mnist("test", root=tmp_path)


def test_error_label_out_of_range(tmp_path):
    fake_mnist(tmp_path, n_test=3, gz=False)
    labels = write_file(tmp_path / MNIST_NAMES["test"][1], idx_bytes(np.array([1, 12, 3])))
    with pytest.raises(DataError, match=re.escape(f"{labels}: label 12 at item 1 is outside 0..9")):
        mnist("test", root=tmp_path)


def test_error_missing_file(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / (MNIST_NAMES["test"][1] + ".gz")).unlink()
    missing = tmp_path / MNIST_NAMES["test"][1]
    with pytest.raises(DataFileNotFoundError, match=re.escape(f"{missing}[.gz]: no such file")):
        mnist("test", root=tmp_path)
    with pytest.raises(FileNotFoundError):  # also catchable as the builtin
        mnist("test", root=tmp_path)
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope'}: no such directory")):
        mnist("test", root=tmp_path / "nope")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'x'}: no such file")):
        read_idx(tmp_path / "x")


def test_fashion_mnist_without_root_or_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path))
    with pytest.raises(DataFileNotFoundError, match="pass download=True"):
        fashion_mnist("train")


def test_magic_constants():
    assert IMAGES_MAGIC == 2051 and LABELS_MAGIC == 2049


@pytest.mark.skipif(not FULL_MNIST.is_dir(), reason="full MNIST files not present")
def test_real_mnist():
    train = mnist("train", root=FULL_MNIST)
    test = mnist("test", root=FULL_MNIST)
    assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
    assert np.bincount(train.y).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.x.min() == 0.0 and train.x.max() == 1.0
