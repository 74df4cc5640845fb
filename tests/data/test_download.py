"""Downloads against a local HTTP server on 127.0.0.1 (no other network): md5, atomicity."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import re
import threading
from typing import ClassVar

import numpy as np
import pytest

from cnnlab.data import DataError, cache_dir, download, fashion_mnist, fetch, mnist
from tests.data.helpers import MNIST_NAMES, idx_bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict] = {}  # path -> (body, mode); each server gets its own
    hits: ClassVar[list] = []

    def do_GET(self):
        self.hits.append(self.path)
        if self.path not in self.routes:
            self.send_error(404, "Not Found")
            return
        body, mode = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "truncate":  # announce the full length, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "corrupt":  # the right length, wrong bytes
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    """A local server; returns (base_url, routes, hits). Routes: '/name' -> (bytes, mode)."""
    routes, hits = {}, []
    handler = type("Handler", (_Handler,), {"routes": routes, "hits": hits})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", routes, hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_DATA", str(path))
    return path


def _serve_mnist(routes, n=(20, 8), mode="ok", seed=0):
    """Fake gzip MNIST files on the server; returns (md5 table, the arrays per split)."""
    rng = np.random.default_rng(seed)
    table, truth = {}, {}
    for split, count in zip(("train", "test"), n):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        truth[split] = (images, labels)
        for name, arr in zip(MNIST_NAMES[split], (images, labels)):
            body = gzip.compress(idx_bytes(arr))
            routes["/" + name + ".gz"] = (body, mode)
            table[name + ".gz"] = hashlib.md5(body).hexdigest()
    return table, truth


def _files(folder):
    """Every file under ``folder`` (hidden and temporary ones included)."""
    return sorted(
        os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
    )


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x"
    monkeypatch.delenv("CNNLAB_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "cnnlab"


def test_mnist_download_into_cache(server, cache):
    base, routes, hits = server
    table, truth = _serve_mnist(routes)
    ds = mnist("test", download=True, mirror=base, md5=table)
    images, labels = truth["test"]
    assert np.array_equal(ds.y, labels)
    assert np.array_equal(ds.x[..., 0], images / np.float32(255))
    assert _files(cache) == ["mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"]
    # verified files in the cache are not fetched again; the same folder loads without download
    n_hits = len(hits)
    mnist("test", download=True, mirror=base, md5=table)
    assert len(hits) == n_hits
    assert np.array_equal(mnist("test", root=cache / "mnist").y, labels)


def test_download_into_root_and_fashion(server, tmp_path, cache):
    base, routes, _ = server
    table, truth = _serve_mnist(routes, seed=1)
    ds = fashion_mnist("train", root=tmp_path / "fm", download=True, mirror=base, md5=table)
    assert np.array_equal(ds.y, truth["train"][1])
    assert _files(tmp_path / "fm") == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert not cache.exists()


def test_mirror_from_environment(server, cache, monkeypatch):
    base, routes, _ = server
    table, truth = _serve_mnist(routes, seed=2)
    monkeypatch.setenv("CNNLAB_FASHION_MNIST_MIRROR", base)
    ds = fashion_mnist("test", download=True, md5=table)
    assert np.array_equal(ds.y, truth["test"][1])
    assert (cache / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_truncated_body_leaves_nothing(server, cache):
    base, routes, _ = server
    table, _ = _serve_mnist(routes, mode="truncate")
    url = base + "t10k-images-idx3-ubyte.gz"
    with pytest.raises(
        DataError, match=re.escape(url) + r": download truncated: received \d+ of \d+ bytes"
    ):
        mnist("test", download=True, mirror=base, md5=table)
    assert _files(cache) == []


def test_corrupt_body_fails_md5_and_leaves_nothing(server, cache):
    base, routes, _ = server
    table, _ = _serve_mnist(routes, mode="corrupt")
    url = base + "t10k-images-idx3-ubyte.gz"
    expected = table["t10k-images-idx3-ubyte.gz"]
    with pytest.raises(
        DataError, match=re.escape(f"{url}: md5 mismatch: expected {expected}, got ")
    ):
        mnist("test", download=True, mirror=base, md5=table)
    assert _files(cache) == []


def test_http_error(server, cache):
    base, _, _ = server
    with pytest.raises(
        DataError, match=re.escape(base + "t10k-images-idx3-ubyte.gz") + ".*HTTP 404"
    ):
        mnist("test", download=True, mirror=base, md5={})
    assert _files(cache) == []


def test_failed_redownload_keeps_the_old_file(server, tmp_path):
    base, routes, _ = server
    routes["/f.bin"] = (b"new contents" * 100, "corrupt")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")
    good_md5 = hashlib.md5(b"new contents" * 100).hexdigest()
    with pytest.raises(DataError, match="md5 mismatch"):
        download(base + "f.bin", dest, good_md5)
    assert dest.read_bytes() == b"old" and _files(tmp_path) == ["f.bin"]
    routes["/f.bin"] = (b"new contents" * 100, "ok")
    assert download(base + "f.bin", dest, good_md5) == dest
    assert dest.read_bytes() == b"new contents" * 100 and _files(tmp_path) == ["f.bin"]


def test_bad_cached_file_is_fetched_again(server, cache):
    base, routes, _ = server
    table, truth = _serve_mnist(routes, seed=3)
    folder = cache / "mnist"
    folder.mkdir(parents=True)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    ds = mnist("test", download=True, mirror=base, md5=table)
    assert np.array_equal(ds.y, truth["test"][1])


def test_interrupted_download_removes_temp_file(server, tmp_path, monkeypatch):
    base, routes, _ = server
    routes["/g.bin"] = (b"x" * 1000, "ok")

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        download(base + "g.bin", tmp_path / "g.bin")
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "url", ["http://example.com/mnist/x.gz", "ftp://127.0.0.1/x.gz", "file:///etc/passwd"]
)
def test_refuses_non_https(tmp_path, url):
    with pytest.raises(
        DataError, match=re.escape(f"{url}: refusing to download: the URL must be https://")
    ):
        download(url, tmp_path / "x.gz")
    assert _files(tmp_path) == []


def test_default_tables_and_mirrors():
    assert fetch.MNIST_MIRROR == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert fetch.FASHION_MNIST_MIRROR.startswith("https://")
    for table in (fetch.MNIST_MD5, fetch.FASHION_MNIST_MD5):
        assert sorted(table) == sorted(n + ".gz" for pair in MNIST_NAMES.values() for n in pair)
        assert all(re.fullmatch(r"[0-9a-f]{32}", v) for v in table.values())
    assert fetch.MNIST_MD5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
