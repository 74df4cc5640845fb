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
import io
import math
import os
import struct
import zlib

import numpy as np

from cnnlab._io import NotARegularFileError, open_regular
from cnnlab.data.errors import DataError, DataFileNotFoundError

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "MAX_IDX_BYTES", "parse_idx", "read_idx",
           "write_idx"]

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


MAX_IDX_BYTES = 1 << 34  # 16 GiB of data: far past any IDX dataset (full MNIST: 47 MB)
_DEFLATE_MAX_RATIO = 1032  # deflate cannot inflate one byte into more than 1032
_CHUNK = 1 << 16


class _Gunzip:
    """A gzip stream read a bounded piece at a time: ``read(n)`` inflates at most ``n``
    bytes, so a small file that would inflate to gigabytes is never inflated past what the
    header declared. Concatenated gzip members are read one after the other."""

    def __init__(self, raw, name: str):
        self.raw, self.name = raw, name
        self.z = zlib.decompressobj(wbits=31)
        self.pending = b""  # compressed input not yet given to the inflater

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            if self.z.eof:
                rest = self.z.unused_data + self.pending + self.raw.read(_CHUNK)
                if not rest.strip(b"\0"):
                    break  # the end (trailing zero padding is tolerated, as gzip does)
                if rest[:2] != b"\x1f\x8b":
                    raise DataError(f"{self.name}: corrupt gzip stream (data after its end)")
                self.z, self.pending = zlib.decompressobj(wbits=31), rest
            if not self.pending and not self.z.unconsumed_tail:
                self.pending = self.raw.read(_CHUNK)
                if not self.pending:
                    raise DataError(f"{self.name}: truncated gzip stream (the compressed file "
                                    "ends early)")
            data = self.z.unconsumed_tail or self.pending
            if not self.z.unconsumed_tail:
                self.pending = b""
            try:
                out += self.z.decompress(data, n - len(out))
            except zlib.error as exc:
                raise DataError(f"{self.name}: corrupt gzip stream ({exc})") from None
        return bytes(out)


def _read_exactly(stream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        piece = stream.read(min(n - len(out), 1 << 24))
        if not piece:
            break
        out += piece
    return out


def _parse(stream, name: str, expected_magic, size: int | None, compressed: int | None):
    """Read an IDX file from ``stream``: the header, the checks, then exactly the data.

    ``size``: the total length when known (a raw file), checked before the data is read;
    ``compressed``: the gzip file's length (bounds what its data can inflate to).
    """
    head = _read_exactly(stream, 4)
    if len(head) < 4:
        raise DataError(
            f"{name}: not an IDX file: {len(head)} bytes is shorter than the 4-byte magic number"
        )
    (magic,) = struct.unpack(">i", head)
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{name}: bad magic number {magic} (0x{magic & 0xFFFFFFFF:08x}); expected "
            f"{expected_magic} (0x{expected_magic:08x}) for an IDX "
            f"{'images' if expected_magic == IMAGES_MAGIC else 'labels'} file"
        )
    code, ndim = head[2], head[3]
    if head[0] != 0 or head[1] != 0 or code not in _TYPES:
        raise DataError(
            f"{name}: bad magic number 0x{magic & 0xFFFFFFFF:08x}; an IDX file starts with two "
            f"zero bytes, a type code (0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E) and the number of "
            f"dimensions"
        )
    header = 4 + 4 * ndim
    sizes = _read_exactly(stream, 4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DataError(
            f"{name}: truncated header: {ndim} dimensions need {header} header bytes, "
            f"but the file has {4 + len(sizes)}"
        )
    shape = struct.unpack(f">{ndim}i", sizes)
    if any(s < 0 for s in shape):
        raise DataError(f"{name}: negative size in the header: shape {shape}")
    dtype = _TYPES[code]
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no int64 overflow
    needed = header + nbytes
    what = f"the header says shape {shape} of {dtype.name}, which needs {needed} bytes"
    if size is not None and size != needed:
        kind = "truncated" if size < needed else "too long"
        raise DataError(f"{name}: file is {kind}: {what}, but the file has {size}")
    if nbytes > MAX_IDX_BYTES:
        raise DataError(f"{name}: {what}; the limit is {MAX_IDX_BYTES} bytes of data")
    if compressed is not None and needed > _DEFLATE_MAX_RATIO * compressed + _CHUNK:
        raise DataError(f"{name}: file is truncated: {what}, more than a gzip file of "
                        f"{compressed} bytes can hold")
    data = bytearray(nbytes) if size is not None else bytearray()
    if size is not None:  # a raw file: read into the buffer
        view, done = memoryview(data), 0
        while done < nbytes:
            got = stream.readinto(view[done:])
            if not got:
                raise DataError(f"{name}: file is truncated: {what}, but the file has "
                                f"{header + done}")
            done += got
    else:  # inflate piece by piece, never past what the header declared
        while len(data) < nbytes:
            piece = stream.read(min(nbytes - len(data), 1 << 24))
            if not piece:
                raise DataError(f"{name}: file is truncated: {what}, but the file has "
                                f"{header + len(data)}")
            data += piece
        if stream.read(1):
            raise DataError(f"{name}: file is too long: {what}, but the file has more")
    arr = np.frombuffer(data, dtype=dtype).reshape(shape)  # writable: over a bytearray
    return arr if dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def _stream(raw, name: str, size: int):
    """(stream, total size or None, compressed size or None) for raw or gzip bytes."""
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return _Gunzip(raw, name), None, size
    return raw, size, None


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """Parse the bytes of an IDX file (raw or gzip) into an array of its type and shape.

    ``name`` is used in error messages (the file's path). ``expected_magic`` (e.g.
    ``IMAGES_MAGIC``) makes any other magic number an error.

    Raises DataError naming the file for a short header, a bad magic number, an unknown type
    code, or a length that does not match the sizes in the header (truncated or too long). A
    gzip stream is inflated only as far as the header's sizes: a small file that would inflate
    to gigabytes stops at the first byte past them.

    >>> import numpy as np
    >>> raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    >>> parse_idx(raw).shape
    (2, 3)
    """
    stream, size, compressed = _stream(io.BytesIO(data), name, len(data))
    return _parse(stream, name, expected_magic, size, compressed)


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw, or gzip whatever its name) into a NumPy array.

    See :func:`parse_idx` for the checks; the file's length is compared with the header's
    sizes before its data is read, and only regular files are read (a FIFO or a device is an
    error, not a hang or an endless read). A missing file raises DataFileNotFoundError (a
    DataError and a FileNotFoundError) naming it.
    """
    path = os.fspath(path)
    try:
        f, size = open_regular(path)
    except FileNotFoundError:
        raise DataFileNotFoundError(f"{path}: no such file") from None
    except NotARegularFileError as exc:
        if "directory" in str(exc):
            raise DataError(f"{path}: is a directory, not an IDX file") from None
        raise DataError(f"{str(exc)}; an IDX file must be one") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    with f:
        try:
            stream, size, compressed = _stream(f, path, size)
            return _parse(stream, path, expected_magic, size, compressed)
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


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
