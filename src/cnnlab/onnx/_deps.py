"""The real ``onnx`` package, imported only when a function needs it (an optional extra).

This package is ``cnnlab.onnx``; the protobuf library it reads and writes is the top-level
``onnx``. Importing it by absolute name through :mod:`importlib` keeps the two apart.
"""

from __future__ import annotations

import importlib

__all__ = ["onnx", "numpy_helper"]

_HINT = 'cnnlab.onnx needs the onnx package: pip install "cnnlab[onnx]"'


def onnx():
    """The top-level ``onnx`` module, or an ImportError that names the extra."""
    try:
        return importlib.import_module("onnx")
    except ImportError as e:
        raise ImportError(f"{_HINT} ({e})") from None


def numpy_helper():
    """``onnx.numpy_helper`` (TensorProto <-> ndarray)."""
    onnx()
    return importlib.import_module("onnx.numpy_helper")
