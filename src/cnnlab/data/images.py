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

__all__ = ["MAX_PIXELS", "image_folder", "load_image"]

# The largest image read, in pixels (H * W), checked from the file's header before anything is
# decoded: 2**24 is 16.8 megapixels (4096 x 4096), more than a 12-megapixel camera photo, and a
# decoded RGB float32 copy of it is 200 MB; a network's input is a few hundred pixels a side.
# Pass ``max_pixels`` for a larger image.
MAX_PIXELS = 1 << 24


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


def load_image(path, size=None, grayscale: bool = False,
               max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read one PNG/JPEG (any format Pillow reads) as float32 (H, W, C) in [0, 1].

    size        (H, W) (or one number for a square) to resize to, bilinear; None keeps it
    grayscale   one channel (Pillow's "L" conversion) instead of RGB (alpha is dropped)
    max_pixels  the largest H * W accepted, read from the file's header before decoding
                (default MAX_PIXELS, 16.8 megapixels)

    Only regular files are read (a FIFO or a device is an error, never a hang). Raises
    DataError naming the file when it is missing, not a regular file, too large, or not a
    readable image.

    Shape: (H, W, 1) if grayscale else (H, W, 3).
    """
    from cnnlab._io import NotARegularFileError, open_regular

    image_mod = _pil()
    size = _size_pair(size)
    path = os.fspath(path)
    try:
        f, _ = open_regular(path)
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{path}: no such file") from None
    except NotARegularFileError as exc:
        raise DataError(f"{exc}; an image must be one") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        with f, warnings.catch_warnings():
            # Pillow's own warning comes at 89 megapixels; ours (below) is an error, and sooner
            warnings.simplefilter("ignore", image_mod.DecompressionBombWarning)
            with image_mod.open(f) as im:
                w, h = im.size  # from the header: nothing decoded yet
                if w * h > max_pixels:
                    raise DataError(
                        f"{path}: the image is {h}x{w} = {w * h} pixels; the limit is "
                        f"{max_pixels} (pass max_pixels= to read larger images)"
                    )
                im = im.convert("L" if grayscale else "RGB")
                if size is not None and im.size != (size[1], size[0]):
                    im = im.resize((size[1], size[0]), image_mod.BILINEAR)  # PIL takes (W, H)
                arr = np.asarray(im, dtype=np.uint8)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, image_mod.DecompressionBombError) as exc:
        reason = (
            str(exc).replace(f"'{path}'", "").replace(path, "").strip(" :") or type(exc).__name__
        )
        raise DataError(f"{path}: not a readable image ({reason})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]  # (H, W) -> (H, W, 1)
    return arr.astype(np.float32) / np.float32(255)


def image_folder(path, size=None, grayscale: bool = False, strict: bool = False,
                 max_pixels: int = MAX_PIXELS) -> ArrayDataset:
    """A labelled dataset from a folder with one subfolder of images per class.

    ``path/cat/1.png, path/dog/a.jpg, ...``: the sorted subfolder names are the classes
    (labels 0..K-1, ``ds.classes``), the files in each are read in sorted order (names
    starting with '.' are skipped). Every image is resized to ``size`` (H, W), a size fixed in
    advance (the model's input size, say); with ``size=None`` nothing is resized and every
    image must have the same size (a DataError names the first that differs) — the size is
    never taken from whichever image comes first. Images are converted to RGB (or grayscale);
    each is checked against ``max_pixels`` before it is decoded (see :func:`load_image`).

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
                img = load_image(file, size, grayscale, max_pixels)
            except DataError as exc:
                if strict:
                    raise
                skipped.append((str(file), str(exc)))
                continue
            if images and img.shape != images[0].shape:
                h, w = images[0].shape[:2]
                raise DataError(
                    f"{file}: the image is {img.shape[0]}x{img.shape[1]} but {files[0]} is "
                    f"{h}x{w}; with size=None the images must all have one size (pass size="
                    "(H, W) to resize them all to it)"
                )
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
