"""Image files through Pillow (the optional extra ``images``): one image, or a class folder.

Legend: H/W height and width, C channels (1 grayscale, 3 RGB).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from cnnlab.data.dataset import ArrayDataset
from cnnlab.data.errors import DataError, DataFileNotFoundError

__all__ = ["image_folder", "load_image"]


def _pil():
    """The PIL.Image module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            'reading image files needs Pillow: pip install "cnnlab[images]"'
        ) from None
    return Image


def _size_pair(size):
    if size is None:
        return None
    h, w = (size, size) if np.ndim(size) == 0 else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"image size must be (H, W) with H, W >= 1; received {size!r}")
    return int(h), int(w)


def load_image(path, size=None, grayscale: bool = False) -> np.ndarray:
    """Read one PNG/JPEG (any format Pillow reads) as float32 (H, W, C) in [0, 1].

    size       (H, W) (or one number for a square) to resize to, bilinear; None keeps it
    grayscale  one channel (Pillow's "L" conversion) instead of RGB (alpha is dropped)

    Raises DataError naming the file when it is missing or not a readable image.

    Shape: (H, W, 1) if grayscale else (H, W, 3).
    """
    image_mod = _pil()
    size = _size_pair(size)
    path = os.fspath(path)
    try:
        with image_mod.open(path) as im:
            im = im.convert("L" if grayscale else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), image_mod.BILINEAR)  # PIL takes (W, H)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
        reason = (
            str(exc).replace(f"'{path}'", "").replace(path, "").strip(" :") or type(exc).__name__
        )
        raise DataError(f"{path}: not a readable image ({reason})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]  # (H, W) -> (H, W, 1)
    return arr.astype(np.float32) / np.float32(255)


def image_folder(path, size=None, grayscale: bool = False, strict: bool = False) -> ArrayDataset:
    """A labelled dataset from a folder with one subfolder of images per class.

    ``path/cat/1.png, path/dog/a.jpg, ...``: the sorted subfolder names are the classes
    (labels 0..K-1, ``ds.classes``), the files in each are read in sorted order (names
    starting with '.' are skipped). Every image is resized to ``size`` (H, W), or to the
    first image's size when None, and converted to RGB (or grayscale).

    A file Pillow cannot read is skipped with a warning that names it (``strict=True``: a
    DataError instead). ``ds.files`` lists the file of each item, ``ds.skipped`` the
    skipped ones. Needs Pillow (``pip install "cnnlab[images]"``).

    Shape: x (N, H, W, 3) (or (N, H, W, 1) grayscale) float32 in [0, 1]; y (N,) int64.
    """
    _pil()
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataFileNotFoundError(
            f"{root}: no such directory (image_folder needs a folder with one subfolder per class)"
        )
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root}: no class subfolders (image_folder expects one folder per "
            f"class, e.g. {root}/cat/*.png, {root}/dog/*.png)"
        )
    size = _size_pair(size)
    images, labels, files, skipped = [], [], [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            try:
                img = load_image(file, size, grayscale)
            except DataError as exc:
                if strict:
                    raise
                skipped.append((str(file), str(exc)))
                continue
            if size is None:
                size = img.shape[:2]
            images.append(img)
            labels.append(label)
            files.append(str(file))
    if skipped:
        warnings.warn(
            f"image_folder: skipped {len(skipped)} unreadable file(s): "
            + "; ".join(message for _, message in skipped),
            stacklevel=2,
        )
    if not images:
        raise DataError(f"{root}: no readable images in the class folders {classes}")
    ds = ArrayDataset(np.stack(images), np.asarray(labels, dtype=np.int64), classes=classes)
    ds.files = files
    ds.skipped = [f for f, _ in skipped]
    return ds
