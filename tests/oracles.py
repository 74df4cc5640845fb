"""The one rule for a test's oracle or real component that is not installed (PyTorch, onnx,
onnxruntime, Optuna, PostgreSQL, Chromium, MPI): skipped on a developer's machine, a failure
when ``CNNLAB_REQUIRE_ORACLES=1`` (CI), so that CI can never pass by skipping them."""

from __future__ import annotations

import os

import pytest

__all__ = ["required", "missing"]


def required() -> bool:
    """True when oracles and components must be there (``CNNLAB_REQUIRE_ORACLES=1``)."""
    return os.environ.get("CNNLAB_REQUIRE_ORACLES") == "1"


def missing(what: str):
    """Skip the test (``what``: the missing thing and how to install it), or fail it when
    oracles are required."""
    if required():
        pytest.fail(f"CNNLAB_REQUIRE_ORACLES=1 but {what}")
    pytest.skip(what)
