"""Test helpers: IDX and CIFAR files written byte by byte with struct (independent of cnnlab)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """The IDX bytes of a uint8 array: magic (0x0000 08 D), D big-endian sizes, the data."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 + array.ndim
    header = struct.pack(">i", magic) + b"".join(struct.pack(">i", s) for s in array.shape)
    return header + array.tobytes()


def write_file(path: Path, data: bytes, gz: bool = False) -> Path:
    path = Path(path)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_mnist(folder: Path, n_train: int = 30, n_test: int = 12, gz: bool = True, seed: int = 0):
    """Write the four MNIST files with random images and labels; return them per split."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images_name, labels_name = MNIST_NAMES[split]
        write_file(folder / images_name, idx_bytes(images), gz)
        write_file(folder / labels_name, idx_bytes(labels), gz)
        out[split] = (images, labels)
    return out


def cifar_records(images_hwc: np.ndarray, labels) -> bytes:
    """CIFAR-10 binary records: per image 1 label byte then the R, G, B 32x32 planes."""
    out = bytearray()
    for img, label in zip(images_hwc, labels):
        out.append(int(label))
        for ch in range(3):
            for row in range(32):
                out.extend(bytes(int(v) for v in img[row, :, ch]))
    return bytes(out)
