"""ONNX interchange: export cnnlab models, import ONNX CNNs, and an ONNX backend.

* :func:`export` writes a model as an ONNX file (opset 17): images in ONNX's NCHW order by
  default (``input_layout='nhwc'`` for a graph that takes cnnlab's channels-last images), the
  weights transposed once, at export.
* :func:`load` reads an ONNX CNN as a trainable cnnlab Module taking channels-last images.
* :mod:`cnnlab.onnx.backend` runs ONNX graphs in ONNX's own layout through :func:`load`, behind
  ONNX's ``onnx.backend.base.Backend`` interface (for ONNX's conformance tests).

Needs the ``onnx`` package (``pip install "cnnlab[onnx]"``), imported on first use only.
"""

from __future__ import annotations

import importlib

from cnnlab.onnx.errors import ONNXError
from cnnlab.onnx.export import OPSET, export
from cnnlab.onnx.graph import ONNXModel
from cnnlab.onnx.load import load, supported_operators

__all__ = ["export", "load", "supported_operators", "ONNXModel", "ONNXError", "OPSET",
           "backend"]


def __getattr__(name):
    if name == "backend":  # imports onnx: only when asked for
        return importlib.import_module("cnnlab.onnx.backend")
    raise AttributeError(f"module 'cnnlab.onnx' has no attribute {name!r}")
