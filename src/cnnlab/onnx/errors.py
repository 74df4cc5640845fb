"""ONNXError: a model file that cnnlab cannot read, or a model it cannot write."""

from __future__ import annotations

__all__ = ["ONNXError"]


class ONNXError(ValueError):
    """One line naming the file (or model) and what is wrong with it.

    Raised for a file that is not ONNX or is truncated, an opset or operator cnnlab does not
    run (all of them listed at once), a graph whose shapes do not infer, and a cnnlab model
    holding an op that has no ONNX form.
    """
