"""PNG files from image arrays with the standard library (zlib), so that thumbnails and the
report need nothing beyond NumPy.

A PNG is the 8-byte signature, then chunks (length, type, data, CRC-32 of type+data): IHDR
(width, height, bit depth 8, colour type 0 grey or 2 RGB), IDAT (the zlib-compressed rows, each
preceded by a filter byte, 0 = none), IEND.

>>> encode_png(np.zeros((28, 28), np.uint8))[:8]
b'\\x89PNG\\r\\n\\x1a\\n'
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

__all__ = ["encode_png", "to_uint8", "upscale"]


def to_uint8(image) -> np.ndarray:
    """A float image in [0, 1] (values outside are clipped) or a uint8 one, as uint8; (H, W, 1)
    becomes (H, W)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = np.round(np.clip(image.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    return image


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer ``factor`` (each pixel a factor x factor
    block), so that small digits stay sharp in a page."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(image) -> bytes:
    """The bytes of a PNG file holding ``image``: (H, W) or (H, W, 1) grey, (H, W, 3) RGB;
    uint8, or float in [0, 1]."""
    image = to_uint8(image)
    if image.ndim == 2:
        colour = 0
    elif image.ndim == 3 and image.shape[-1] == 3:
        colour = 2
    else:
        raise ValueError(f"encode_png: image must be (H, W), (H, W, 1) or (H, W, 3); received "
                         f"shape {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"encode_png: image must be at least 1x1; received shape {image.shape}")
    rows = np.ascontiguousarray(image).reshape(h, -1)  # (H, W*C)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1)  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + _chunk(b"IEND", b""))
