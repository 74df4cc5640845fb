"""Fixtures of the ONNX tests: the onnx package and onnxruntime, required in CI.

With ``CNNLAB_REQUIRE_ORACLES=1`` (CI) a missing package fails the test instead of skipping
it, like the PyTorch oracle in tests/conftest.py.
"""

from __future__ import annotations

import importlib

import pytest

from tests.oracles import missing


def _require(module: str, pip: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"{module} is not installed (pip install {pip})")


@pytest.fixture(scope="session")
def onnx():
    """The onnx package (cnnlab's ``onnx`` extra)."""
    return _require("onnx", "onnx")


@pytest.fixture(scope="session")
def ort(onnx):
    """onnxruntime, the independent runtime the exported graphs are checked with."""
    return _require("onnxruntime", "onnxruntime")


def run_ort(ort, path, x):
    """Outputs of the ONNX file ``path`` in onnxruntime (one thread) for the input ``x``."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: x})
