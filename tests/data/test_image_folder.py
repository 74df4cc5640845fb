"""image_folder and load_image through Pillow (skipped without it), and the missing-Pillow error."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from cnnlab.data import DataError, image_folder, load_image


def test_missing_pillow_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` fail
    with pytest.raises(ImportError, match=re.escape('pip install "cnnlab[images]"')):
        image_folder(tmp_path)


@pytest.fixture()
def Image():
    return pytest.importorskip("PIL.Image")


def _save(Image, path, array):
    Image.fromarray(array).save(path)


def test_image_folder(tmp_path, Image):
    rng = np.random.default_rng(0)
    pixels = {
        ("cat", "a.png"): rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        ("cat", "b.png"): rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
        ("dog", "c.png"): rng.integers(0, 256, (6, 5, 3), dtype=np.uint8),
    }
    for (cls, name), arr in pixels.items():
        (tmp_path / cls).mkdir(exist_ok=True)
        _save(Image, tmp_path / cls / name, arr)
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / ".hidden").write_text("skipped silently")
    (tmp_path / "README").write_text("a file at the top is not a class")
    with pytest.warns(UserWarning, match=re.escape(str(tmp_path / "dog" / "notes.txt"))):
        ds = image_folder(tmp_path)
    assert ds.classes == ["cat", "dog"]
    assert ds.y.tolist() == [0, 0, 1] and ds.y.dtype == np.int64
    assert ds.x.shape == (3, 6, 5, 3) and ds.x.dtype == np.float32
    for i, key in enumerate(sorted(pixels)):  # PNG is lossless: the exact pixels come back
        assert np.array_equal(ds.x[i] * np.float32(255), pixels[key].astype(np.float32))
    assert ds.files[2].endswith("c.png") and ds.skipped == [str(tmp_path / "dog" / "notes.txt")]


def test_resize_grayscale_and_jpeg(tmp_path, Image):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _save(Image, tmp_path / "a" / "big.png", np.full((40, 30, 3), 200, np.uint8))
    _save(Image, tmp_path / "b" / "x.jpg", np.full((10, 12, 3), 50, np.uint8))
    ds = image_folder(tmp_path, size=(8, 9), grayscale=True)
    assert ds.x.shape == (2, 8, 9, 1)
    assert np.allclose(ds.x[0], 200 / 255) and np.allclose(ds.x[1], 50 / 255, atol=3 / 255)
    # size None: no resizing, and never the first image's size (issue 19): sizes must agree
    with pytest.raises(DataError, match=re.escape(
            f"{tmp_path / 'b' / 'x.jpg'}: the image is 10x12 but {tmp_path / 'a' / 'big.png'} "
            "is 40x30; with size=None the images must all have one size")):
        image_folder(tmp_path)


def test_strict_and_errors(tmp_path, Image):
    (tmp_path / "a").mkdir()
    _save(Image, tmp_path / "a" / "ok.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(
        DataError, match=re.escape(f"{tmp_path / 'a' / 'broken.png'}: not a readable image")
    ):
        image_folder(tmp_path, strict=True)
    with pytest.warns(UserWarning, match="skipped 1 unreadable file"):
        assert len(image_folder(tmp_path)) == 1
    with pytest.raises(DataError, match="no class subfolders"):
        image_folder(tmp_path / "a")
    with pytest.raises(DataError, match="no such directory"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty" / "c").mkdir(parents=True)
    with pytest.raises(DataError, match="no readable images"):
        image_folder(tmp_path / "empty")


def test_load_image(tmp_path, Image):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    _save(Image, tmp_path / "g.png", arr)
    x = load_image(tmp_path / "g.png", grayscale=True)
    assert x.shape == (3, 4, 1) and np.array_equal(
        x[..., 0] * np.float32(255), arr.astype(np.float32)
    )
    assert load_image(tmp_path / "g.png").shape == (3, 4, 3)
    assert load_image(tmp_path / "g.png", size=7).shape == (7, 7, 3)
    (tmp_path / "t.txt").write_text("hello")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 't.txt'}: not a readable image")):
        load_image(tmp_path / "t.txt")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.png'}: no such file")):
        load_image(tmp_path / "nope.png")
