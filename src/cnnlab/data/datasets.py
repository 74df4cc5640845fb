"""Standard datasets: MNIST and Fashion-MNIST (IDX files), CIFAR-10 (its binary version).

Each returns an ArrayDataset: images (N, H, W, C) float32 in [0, 1] (channels-last), labels
int64, and ``classes`` naming the labels. Every file is checked (magic number, dimensions,
counts, length, label range); a problem raises DataError naming the file and what is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import ArrayDataset
from cnnlab.data.errors import DataError, DataFileNotFoundError
from cnnlab.data.fetch import (
    FASHION_MNIST_MD5,
    FASHION_MNIST_MIRROR,
    MNIST_MD5,
    MNIST_MIRROR,
    cache_dir,
    fetch_files,
)
from cnnlab.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx

__all__ = ["cifar10", "fashion_mnist", "load_idx_pair", "mnist"]

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _check_split(op: str, split) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"{op}: split must be 'train' or 'test'; received {split!r}")


def _read_bytes(path) -> bytes:
    """The bytes of a file (a Path, or a Traversable inside the package); a path must be a
    regular file (a FIFO or a device is an error, not a hang or an endless read)."""
    from cnnlab._io import NotARegularFileError, open_regular

    try:
        if not isinstance(path, (str, os.PathLike)):
            return path.read_bytes()
        f, _ = open_regular(path)
        with f:
            return f.read()
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a data file") from None
    except NotARegularFileError as e:
        if "directory" in str(e):
            raise DataError(f"{path}: is a directory, not a data file") from None
        raise DataError(f"{e}; a data file must be one") from None


def load_idx_pair(images_path, labels_path, image_shape=(28, 28), num_classes=10):
    """Read an IDX images file and its labels file, checked against each other.

    Returns ``images`` (N, H, W) uint8 and ``labels`` (N,) int64. Raises DataError naming the
    file when a magic number, the image dimensions (``image_shape``), the counts, a file's
    length or a label (must be in 0..num_classes-1) is wrong.
    """
    images = parse_idx(_read_bytes(images_path), str(images_path), IMAGES_MAGIC)
    labels = parse_idx(_read_bytes(labels_path), str(labels_path), LABELS_MAGIC)
    if image_shape is not None and images.shape[1:] != tuple(image_shape):
        raise DataError(
            f"{images_path}: images are {images.shape[1]}x{images.shape[2]}; expected "
            f"{image_shape[0]}x{image_shape[1]}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: has {len(labels)} labels but {images_path} has {len(images)} "
            f"images; the counts must match"
        )
    if len(labels) and labels.max() >= num_classes:
        bad = int(np.argmax(labels >= num_classes))
        raise DataError(
            f"{labels_path}: label {labels[bad]} at item {bad} is outside 0..{num_classes - 1}"
        )
    return images, labels.astype(np.int64)


def _find(folder: Path, name: str, op: str, hint: str) -> Path:
    """``folder/name`` or ``folder/name.gz``, whichever exists."""
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataFileNotFoundError(f"{folder / name}[.gz]: no such file ({op} needs it; {hint})")


def _to_float_images(images: np.ndarray) -> np.ndarray:
    x = images[..., None].astype(np.float32)  # (N, H, W, 1)
    x /= np.float32(255)  # in place: one float copy of the images in memory, not two
    return x


@dataclass(frozen=True)
class _IdxSource:
    """Where an IDX dataset comes from: its name, cache folder, mirror, checksums, classes."""

    op: str
    subdir: str  # under the cache folder; also names the mirror variable CNNLAB_<SUBDIR>_MIRROR
    mirror: str
    md5: dict
    classes: list
    embedded: bool  # a subset ships inside the package


_MNIST = _IdxSource("mnist", "mnist", MNIST_MIRROR, MNIST_MD5, MNIST_CLASSES, True)
_FASHION_MNIST = _IdxSource(
    "fashion_mnist",
    "fashion-mnist",
    FASHION_MNIST_MIRROR,
    FASHION_MNIST_MD5,
    FASHION_MNIST_CLASSES,
    False,
)


def _idx_dataset(src: _IdxSource, split, root, download, mirror, md5) -> ArrayDataset:
    _check_split(src.op, split)
    images_name, labels_name = _IDX_FILES[split]
    if root is None and not download and src.embedded:
        folder = resources.files("cnnlab.data") / "embedded"
        images, labels = load_idx_pair(
            folder / (images_name + ".gz"), folder / (labels_name + ".gz")
        )
        return ArrayDataset(_to_float_images(images), labels, classes=src.classes)
    folder = Path(root).expanduser() if root is not None else cache_dir() / src.subdir
    if download:
        table = dict(src.md5 if md5 is None else md5)
        env = os.environ.get(f"CNNLAB_{src.subdir.upper().replace('-', '_')}_MIRROR")
        base = mirror or env or src.mirror
        fetch_files(base, folder, [images_name + ".gz", labels_name + ".gz"], table)
    if root is not None and not folder.is_dir():
        raise DataFileNotFoundError(f"{folder}: no such directory ({src.op} root)")
    hint = "pass download=True to fetch it" + ("" if root is None else " into this folder")
    images, labels = load_idx_pair(
        _find(folder, images_name, src.op, hint), _find(folder, labels_name, src.op, hint)
    )
    return ArrayDataset(_to_float_images(images), labels, classes=src.classes)


def mnist(split, root=None, download=False, mirror=None, md5=None) -> ArrayDataset:
    """MNIST handwritten digits: ``split`` 'train' (60000) or 'test' (10000), 28x28, labels 0-9.

    root      a folder with the standard IDX files (raw or .gz: train-images-idx3-ubyte,
              train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte).
              None: the subset shipped inside cnnlab (15000 train / 2500 test images,
              stratified; CC BY-SA 3.0, see cnnlab/data/embedded/README.md), unless download.
    download  fetch the missing .gz files first, into ``root`` or, for root None, into
              ``$CNNLAB_DATA/mnist`` (default ``~/.cache/cnnlab/mnist``); md5 verified, written
              atomically (see cnnlab.data.fetch)
    mirror    base URL for download (default $CNNLAB_MNIST_MIRROR, else MNIST_MIRROR)
    md5       {file name: md5} to check instead of MNIST_MD5 (a None value skips a check)

    Shape: x (N, 28, 28, 1) float32 in [0, 1]; y (N,) int64.

    >>> mnist("test").x.shape
    (2500, 28, 28, 1)
    """
    return _idx_dataset(_MNIST, split, root, download, mirror, md5)


def fashion_mnist(split, root=None, download=False, mirror=None, md5=None) -> ArrayDataset:
    """Fashion-MNIST (Zalando): 10 kinds of clothing, same format and sizes as MNIST.

    Arguments as for :func:`mnist`, except that nothing is shipped inside cnnlab: root None
    reads (or with download=True fills) ``$CNNLAB_DATA/fashion-mnist`` (default
    ``~/.cache/cnnlab/fashion-mnist``). Mirror: $CNNLAB_FASHION_MNIST_MIRROR, else
    FASHION_MNIST_MIRROR; checksums FASHION_MNIST_MD5.

    Shape: x (N, 28, 28, 1) float32 in [0, 1]; y (N,) int64.
    """
    return _idx_dataset(_FASHION_MNIST, split, root, download, mirror, md5)


_CIFAR_RECORD = 1 + 3 * 32 * 32  # 1 label byte, then 3072 pixel bytes: R plane, G, B (CHW)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch file -> images (n, 32, 32, 3) uint8, labels (n,) int64."""
    data = _read_bytes(path)
    if len(data) == 0 or len(data) % _CIFAR_RECORD:
        raise DataError(
            f"{path}: length {len(data)} bytes is not a positive multiple of {_CIFAR_RECORD} "
            f"(a record is 1 label byte + 3072 pixel bytes); the file is truncated or not a "
            f"CIFAR-10 binary batch"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)  # (n, 3073)
    labels = records[:, 0].astype(np.int64)  # (n,)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{path}: label {labels[bad]} at record {bad} is outside 0..9")
    chw = records[:, 1:].reshape(-1, 3, 32, 32)  # (n, C, H, W)
    return chw.transpose(0, 2, 3, 1), labels  # (n, H, W, C)


def cifar10(split, root=None) -> ArrayDataset:
    """CIFAR-10 from its binary version (no pickle): 32x32 colour images in 10 classes.

    root  the folder with data_batch_1.bin ... data_batch_5.bin and test_batch.bin, or the
          folder holding ``cifar-10-batches-bin/`` (as the archive unpacks); None:
          ``$CNNLAB_DATA/cifar10`` (default ``~/.cache/cnnlab/cifar10``)

    Each file is records of 1 label byte and 3072 pixel bytes (the red, green and blue
    32x32 planes, rows top to bottom); they are turned channels-last.

    Shape: x (N, 32, 32, 3) float32 in [0, 1]; y (N,) int64 (N = 50000 train, 10000 test).
    """
    _check_split("cifar10", split)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    folder = Path(root).expanduser() if root is not None else cache_dir() / "cifar10"
    nested = folder / "cifar-10-batches-bin"
    if not (folder / names[0]).exists() and (nested / names[0]).exists():
        folder = nested
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataFileNotFoundError(
            f"{folder / missing[0]}: no such file (cifar10 {split} needs {', '.join(names)})"
        )
    parts = [_read_cifar_batch(folder / n) for n in names]
    images = np.concatenate([p[0] for p in parts])  # (N, 32, 32, 3) uint8
    labels = np.concatenate([p[1] for p in parts])
    x = images.astype(np.float32)
    x /= np.float32(255)  # in place: one float copy in memory, not two
    return ArrayDataset(x, labels, classes=CIFAR10_CLASSES)
