"""Shared fixtures: the PyTorch oracle, required when CNNLAB_REQUIRE_ORACLES=1."""

from __future__ import annotations

import pytest

from tests.oracles import missing


def _load_torch():
    try:
        import torch
    except ImportError:
        missing("torch (the PyTorch oracle) is not installed (pip install torch==2.13.0)")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def torch():
    """The torch module (CPU). Skips when missing, fails when oracles are required."""
    return _load_torch()


@pytest.fixture
def threads(request):
    """cnnlab's runtime with this many batch-chunk threads (ops/parallel.py) for one test,
    given back after it; use with ``@pytest.mark.parametrize("threads", [1, 3], indirect=True)``."""
    from cnnlab import runtime
    from cnnlab.ops import parallel

    with runtime.configure(threads=request.param, keep_memory=False):
        # the threads really run (threadpoolctl, a test requirement, is installed)
        assert parallel.share_count() == request.param
        yield request.param
