"""Helpers for the CLI tests: tiny IDX datasets written byte by byte, and running ``cnnlab``.

Every test runs the real command in a subprocess (``python -m cnnlab ...``) with its working
folder in a temporary directory and a timeout, and reads what it printed and wrote.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.data.helpers import MNIST_NAMES as IDX_NAMES  # one test-side IDX writer
from tests.data.helpers import idx_bytes

TIMEOUT = 120  # seconds: any one command; the tests' own runs take a few seconds


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 28, 28) uint8: class k is a bright 8x8 square at its own place, jittered, on noise."""
    n = len(labels)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        row = 3 + 10 * (int(k) // 3) + int(rng.integers(-2, 3))
        col = 3 + 10 * (int(k) % 3) + int(rng.integers(-2, 3))
        row, col = min(max(row, 0), 20), min(max(col, 0), 20)
        images[i, row : row + 8, col : col + 8] = 255
    return images


def make_idx_dataset(folder, num_classes: int = 4, n_train: int = 200, n_test: int = 100,
                     seed: int = 0, gz: bool = False) -> Path:
    """Write the four MNIST-named IDX files of a synthetic ``num_classes``-class task."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = (np.arange(n) % num_classes).astype(np.uint8)
        rng.shuffle(labels)
        images = synthetic_images(labels, rng)
        for name, array in zip(IDX_NAMES[split], (images, labels)):
            data = idx_bytes(array)
            path = folder / name
            if gz:
                data, path = gzip.compress(data), folder / (name + ".gz")
            path.write_bytes(data)
    return folder


def cli_env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # many small runs: threads only add overhead
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def cnnlab_args(*args) -> list[str]:
    return [sys.executable, "-m", "cnnlab", *map(str, args)]


def run_cli(*args, cwd, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``python -m cnnlab ARGS`` in ``cwd``; returns the finished process (text output)."""
    return subprocess.run(cnnlab_args(*args), cwd=cwd, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout, check=False)


def show(result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def assert_ok(result) -> None:
    assert result.returncode == 0, show(result)
    assert "Traceback" not in result.stdout + result.stderr, show(result)


def assert_user_error(result, *words) -> str:
    """Exit 2, exactly one stderr line ``cnnlab: error: ...`` holding every word, no traceback.

    Returns the message line.
    """
    assert "Traceback" not in result.stdout + result.stderr, show(result)
    assert result.returncode == 2, show(result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, show(result)
    line = lines[0]
    assert line.startswith("cnnlab: error: "), show(result)
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    return line


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def read_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
