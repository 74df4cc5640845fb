"""Download data files into the cache: HTTPS, md5 verified, written atomically.

The cache is ``$CNNLAB_DATA`` when set, else ``~/.cache/cnnlab``. A download streams into a
temporary file in the destination folder (``.NAME.XXXX.part``), checks the length the server
announced and the md5 from the table below, and only then renames it into place
(``os.replace``, atomic on one file system). On any failure (network error, truncated body,
wrong checksum, Ctrl-C) the temporary file is removed: the cache never holds a half-written
or unverified file under a data file's name.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cnnlab.data.errors import DataError

__all__ = [
    "FASHION_MNIST_MD5",
    "FASHION_MNIST_MIRROR",
    "MNIST_MD5",
    "MNIST_MIRROR",
    "cache_dir",
    "download",
    "file_md5",
]

# The canonical gzip files; md5 of the .gz files as distributed (the same table torchvision
# and the mirrors' users check).
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MIRROR = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
)
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def cache_dir() -> Path:
    """Where downloads go: ``$CNNLAB_DATA`` if set (and not empty), else ``~/.cache/cnnlab``."""
    env = os.environ.get("CNNLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "cnnlab"


def file_md5(path) -> str:
    """The hex md5 digest of a file's bytes."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise DataError(
        f"{url}: refusing to download: the URL must be https:// (plain http:// is allowed "
        f"only for 127.0.0.1 or localhost)"
    )


def download(url: str, dest, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to the file ``dest``, verified against ``md5`` (None: no check).

    Writes to a temporary file next to ``dest`` and renames it into place only when the
    body is complete (the announced Content-Length) and its md5 matches; otherwise removes it
    and raises DataError naming the URL and the problem. Returns ``dest`` as a Path.
    """
    _check_url(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.md5(usedforsecurity=False)
        received = 0
        announced = None
        with os.fdopen(fd, "wb") as f:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    announced = int(length) if length and length.isdigit() else None
                    for block in iter(lambda: response.read(1 << 16), b""):
                        f.write(block)
                        h.update(block)
                        received += len(block)
            except http.client.IncompleteRead as exc:
                received += len(exc.partial)
            except urllib.error.HTTPError as exc:
                raise DataError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DataError(f"{url}: download failed: {reason}") from None
            if announced is not None and received != announced:
                raise DataError(
                    f"{url}: download truncated: received {received} of {announced} bytes; "
                    f"nothing was saved"
                )
            f.flush()
            os.fsync(f.fileno())
        digest = h.hexdigest()
        if md5 is not None and digest != md5.lower():
            raise DataError(
                f"{url}: md5 mismatch: expected {md5}, got {digest} ({received} bytes); the "
                f"file is corrupt or not the one expected, nothing was saved"
            )
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return dest


def fetch_files(base_url: str, folder, names, md5_table: dict) -> None:
    """Make sure ``folder`` holds each of ``names`` with the right md5, downloading as needed.

    A file already there is kept when its md5 matches (or none is known) and fetched again
    (atomically replaced) when it does not.
    """
    folder = Path(folder)
    base = base_url if base_url.endswith("/") else base_url + "/"
    for name in names:
        path = folder / name
        expected = md5_table.get(name)
        if path.exists() and (expected is None or file_md5(path) == expected.lower()):
            continue
        download(base + name, path, expected)
