"""The IDX file format of MNIST and Fashion-MNIST: read (raw or gzip) and write.

Layout (all integers big-endian)::

    bytes 0-1   zero
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     number of dimensions D
    then        D int32 sizes (for images: count, rows, cols; for labels: count)
    then        the data, row-major, prod(sizes) items of the type

So the magic number (bytes 0-3 as one int32) is 2051 = 0x00000803 for uint8 images and
2049 = 0x00000801 for uint8 labels. A file whose first two bytes are 1f 8b is gzip and is
decompressed first, whatever its name.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from cnnlab.data.errors import DataError, DataFileNotFoundError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "parse_idx", "read_idx", "write_idx"]

IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension (count)

_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in _TYPES.items()}


def _decompress(data: bytes, name: str) -> bytes:
    """Gunzip ``data`` when it starts with the gzip magic 1f 8b; raw bytes pass through."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise DataError(f"{name}: truncated gzip stream (the compressed file ends early)") from None
    except (OSError, zlib.error) as exc:
        raise DataError(f"{name}: corrupt gzip stream ({exc})") from None


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Parse the bytes of an IDX file (raw or gzip) into an array of its type and shape.

    ``name`` is used in error messages (the file's path). ``expected_magic`` (e.g.
    ``IMAGES_MAGIC``) makes any other magic number an error.

    Raises DataError naming the file for a short header, a bad magic number, an unknown type
    code, or a length that does not match the sizes in the header (truncated or too long).

    >>> import numpy as np
    >>> raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    >>> parse_idx(raw).shape
    (2, 3)
    """
    data = _decompress(data, name)
    if len(data) < 4:
        raise DataError(
            f"{name}: not an IDX file: {len(data)} bytes is shorter than the 4-byte magic number"
        )
    (magic,) = struct.unpack(">i", data[:4])
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{name}: bad magic number {magic} (0x{magic & 0xFFFFFFFF:08x}); expected "
            f"{expected_magic} (0x{expected_magic:08x}) for an IDX "
            f"{'images' if expected_magic == IMAGES_MAGIC else 'labels'} file"
        )
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in _TYPES:
        raise DataError(
            f"{name}: bad magic number 0x{magic & 0xFFFFFFFF:08x}; an IDX file starts with two "
            f"zero bytes, a type code (0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E) and the number of "
            f"dimensions"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{name}: truncated header: {ndim} dimensions need {header} header bytes, "
            f"but the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}i", data[4:header])
    if any(s < 0 for s in shape):
        raise DataError(f"{name}: negative size in the header: shape {shape}")
    dtype = _TYPES[code]
    needed = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != needed:
        what = "truncated" if len(data) < needed else "too long"
        raise DataError(
            f"{name}: file is {what}: the header says shape {shape} of {dtype.name}, which "
            f"needs {needed} bytes, but the file has {len(data)}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # native order, writable


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw, or gzip whatever its name) into a NumPy array.

    See :func:`parse_idx` for the checks. A missing file raises DataFileNotFoundError (a
    DataError and a FileNotFoundError) naming it.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not an IDX file") from None
    return parse_idx(data, path, expected_magic)


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; gzip it when ``compress`` (default: name ends in .gz).

    The gzip header carries no file name and time stamp 0, so the bytes depend only on the
    array (reproducible builds of the embedded subset).
    """
    path = os.fspath(path)
    arr = np.ascontiguousarray(array)
    native = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
    if native not in _CODES:
        raise TypeError(
            f"write_idx: IDX stores uint8, int8, int16, int32, float32 or float64; "
            f"received dtype {arr.dtype}"
        )
    code = _CODES[native]
    header = struct.pack(f">BBBB{arr.ndim}i", 0, 0, code, arr.ndim, *arr.shape)
    payload = header + arr.astype(_TYPES[code], copy=False).tobytes()
    if compress is None:
        compress = path.endswith(".gz")
    with open(path, "wb") as f:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=9, mtime=0) as gz:
                gz.write(payload)
        else:
            f.write(payload)
