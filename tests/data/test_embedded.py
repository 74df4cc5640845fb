"""The MNIST subset shipped inside the package: counts, balance, licence, reproducibility."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import mnist

ROOT = Path(__file__).resolve().parents[2]
FULL_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
EMBEDDED = resources.files("cnnlab.data") / "embedded"
FULL_TRAIN = np.array([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
FULL_TEST = np.array([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])


def test_counts_and_class_balance():
    train, test = mnist("train"), mnist("test")
    assert train.x.shape == (15000, 28, 28, 1) and test.x.shape == (2500, 28, 28, 1)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert 0.0 == train.x.min() and train.x.max() == 1.0
    for ds, full in ((train, FULL_TRAIN), (test, FULL_TEST)):
        counts = np.bincount(ds.y, minlength=10)
        # stratified: each digit gets its share of the full split, to within one image
        assert np.all(np.abs(counts - full * len(ds) / full.sum()) < 1)
    assert np.bincount(train.y).tolist() == [
        1481,
        1686,
        1490,
        1533,
        1460,
        1355,
        1479,
        1566,
        1463,
        1487,
    ]
    assert np.bincount(test.y).tolist() == [245, 284, 258, 253, 246, 223, 239, 257, 243, 252]


def test_size_and_licence():
    files = {p.name: p for p in EMBEDDED.iterdir()}
    assert set(files) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "LICENSE",
        "README.md",
    }
    assert sum(len(p.read_bytes()) for p in files.values()) <= 3_000_000
    for name in ("LICENSE", "README.md"):
        text = files[name].read_text()
        assert "CC BY-SA 3.0" in text
        for person in ("Yann LeCun", "Corinna Cortes", "Christopher J.C. Burges"):
            assert person in text


def test_product_never_names_the_shared_folder():
    for path in (ROOT / "src").rglob("*.py"):
        text = path.read_text()
        assert "shared/datasets" not in text and "../shared" not in text, path


@pytest.mark.skipif(not FULL_MNIST.is_dir(), reason="full MNIST files not present")
def test_script_reproduces_the_files_from_the_full_set(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_embedded", ROOT / "scripts" / "make_embedded_mnist.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(FULL_MNIST), "--out", str(tmp_path)]) == 0
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        assert (tmp_path / name).read_bytes() == (EMBEDDED / name).read_bytes(), name
    # the test images are images of the full test set, with their labels
    full = mnist("test", root=FULL_MNIST)
    sub = mnist("test")
    keys = {img.tobytes(): lab for img, lab in zip(full.x, full.y)}
    assert all(keys.get(img.tobytes()) == lab for img, lab in zip(sub.x[:200], sub.y[:200]))
