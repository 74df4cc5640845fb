"""IDX and image files that lie (issue 19): sizes checked before allocation, gzip inflated no
further than the header declares, special files refused without hanging, and a split that
keeps the dataset in memory once."""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from cnnlab.data import ArrayDataset, ArrayView, DataError, image_folder, load_image
from cnnlab.data.idx import parse_idx, read_idx
from cnnlab.data.splits import split_indices, train_dev_split


def _header(code: int, shape: tuple) -> bytes:
    return struct.pack(f">BBBB{len(shape)}i", 0, 0, code, len(shape), *shape)


# ------------------------------------------------------------------ IDX
def test_a_gzip_bomb_stops_at_the_declared_size(tmp_path):
    # 10 labels declared, 64 MiB of zeros behind them: a 64 KB file
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(_header(8, (10,)) + bytes(64 << 20), compresslevel=9))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=re.escape(
                f"{path}: file is too long: the header says shape (10,) of uint8, which needs "
                "18 bytes, but the file has more")):
            read_idx(path)
        assert tracemalloc.get_traced_memory()[1] < 2e6  # inflated a chunk, not 64 MiB
    finally:
        tracemalloc.stop()


def test_a_declared_size_no_gzip_can_hold_is_refused_before_inflating(tmp_path):
    path = tmp_path / "liar.gz"
    path.write_bytes(gzip.compress(_header(8, (60000, 28, 28)) + bytes(100)))
    with pytest.raises(DataError, match=re.escape(
            f"{path}: file is truncated: the header says shape (60000, 28, 28) of uint8, which "
            "needs 47040016 bytes, more than a gzip file of")):
        read_idx(path)


def test_a_size_product_past_int64_is_a_data_error(tmp_path):
    big = 2**31 - 1
    path = tmp_path / "huge.idx"
    path.write_bytes(_header(0x0E, (big, big, big)) + bytes(8))
    needed = 16 + big**3 * 8  # Python ints: the exact number, not an overflowed one
    with pytest.raises(DataError, match=re.escape(
            f"{path}: file is truncated: the header says shape ({big}, {big}, {big}) of "
            f"float64, which needs {needed} bytes, but the file has 24")):
        read_idx(path)


@pytest.mark.parametrize("special, kind", [("fifo", "a FIFO (named pipe)"),
                                           ("/dev/zero", "a character device")])
def test_special_files_are_refused_not_read(tmp_path, special, kind):
    path = special
    if special == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)  # a plain open() would wait for a writer forever
    with pytest.raises(DataError, match=re.escape(f"{path}: {kind}, not a regular file")):
        read_idx(path)


def test_gzip_stream_checks_and_concatenated_members(tmp_path):
    data = _header(8, (2, 3)) + bytes(range(6))
    # two gzip members, as `cat a.gz b.gz` makes: one file to gunzip
    path = tmp_path / "two.gz"
    path.write_bytes(gzip.compress(data[:7]) + gzip.compress(data[7:]))
    assert read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]]
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF  # the CRC of the trailer
    with pytest.raises(DataError, match=re.escape("x.gz: corrupt gzip stream (Error -3 while "
                                                  "decompressing data: incorrect data check)")):
        parse_idx(bytes(packed), "x.gz")


def test_the_streamed_reader_agrees_with_numpy(tmp_path):
    """Oracle: the payload decoded with NumPy from gzip.decompress of the same bytes."""
    rng = np.random.default_rng(0)
    for code, dtype in [(8, "u1"), (9, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"),
                        (0x0E, ">f8")]:
        values = rng.integers(-100, 100, (3, 5, 4)).astype(dtype)
        raw = _header(code, values.shape) + values.tobytes()
        for blob in (raw, gzip.compress(raw)):
            arr = parse_idx(blob)
            assert arr.dtype == np.dtype(dtype).newbyteorder("=") and arr.flags.writeable
            expected = np.frombuffer(zlib.decompress(blob, 31) if blob[:2] == b"\x1f\x8b"
                                     else blob, dtype, offset=16).reshape(3, 5, 4)
            assert np.array_equal(arr, expected)


# ------------------------------------------------------------------ images
def _png(width: int, height: int) -> bytes:
    """A grayscale PNG whose header declares width x height (its data is one tiny row)."""
    pytest.importorskip("PIL")
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_an_image_past_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "tall.png"
    path.write_bytes(_png(28, 1_000_000))  # the fuzzing's 254-byte, 28-megapixel PNG
    assert path.stat().st_size < 300
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=re.escape(
                f"{path}: the image is 1000000x28 = 28000000 pixels; the limit is 16777216 "
                "(pass max_pixels= to read larger images)")):
            load_image(path)
        assert tracemalloc.get_traced_memory()[1] < 5e6
    finally:
        tracemalloc.stop()
    (tmp_path / "a").mkdir()
    os.replace(path, tmp_path / "a" / "tall.png")
    with pytest.raises(DataError, match="pixels; the limit is"):
        image_folder(tmp_path, size=(28, 28), strict=True)


def test_a_fifo_is_refused_by_load_image(tmp_path):
    pytest.importorskip("PIL")
    path = tmp_path / "x.png"
    os.mkfifo(path)
    with pytest.raises(DataError, match=re.escape(f"{path}: a FIFO (named pipe), not a regular "
                                                  "file; an image must be one")):
        load_image(path)


def test_image_folder_uses_the_given_size_whatever_comes_first(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    for cls, name, shape in [("a", "0tiny.png", (2, 2)), ("a", "1big.png", (300, 200)),
                             ("b", "x.png", (28, 28))]:
        (tmp_path / cls).mkdir(exist_ok=True)
        Image.fromarray(np.full(shape, 100, np.uint8)).save(tmp_path / cls / name)
    ds = image_folder(tmp_path, size=(28, 28), grayscale=True)
    assert ds.x.shape == (3, 28, 28, 1)
    assert np.allclose(ds.x, 100 / 255)  # a constant image resizes to the same constant


# ------------------------------------------------------------------ splits
def test_a_split_is_a_view_of_the_images(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((200, 4, 4, 1), dtype=np.float32)
    y = np.arange(200) % 4
    full = ArrayDataset(x, y, classes=["a", "b", "c", "d"])
    train, dev = train_dev_split(full, 0.25, seed=3, stratify=True)
    assert isinstance(train, ArrayView) and train.base is full and dev.base is full
    dev_idx, train_idx = split_indices(y, [50], seed=3, stratify=True)  # the same split
    assert np.array_equal(train.indices, train_idx) and np.array_equal(dev.indices, dev_idx)
    batch = np.array([5, 0, 149])
    bx, by = train.batch(batch)
    assert np.array_equal(bx, x[train_idx[batch]]) and np.array_equal(by, y[train_idx[batch]])
    assert np.array_equal(train.x, x[train_idx]) and train.classes == full.classes
    x[train_idx[0]] = -1.0  # nothing was copied: the view sees a change of the base
    assert (train[0][0] == -1.0).all()
    # a split of a split is still one view of the base
    inner, _ = train_dev_split(train, 0.5, seed=0)
    assert inner.base is full


def test_a_cifar_batch_that_is_a_fifo_is_refused(tmp_path):
    from cnnlab.data import cifar10

    os.mkfifo(tmp_path / "test_batch.bin")
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "test_batch.bin"))):
        cifar10("test", root=tmp_path)
