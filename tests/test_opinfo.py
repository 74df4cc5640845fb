"""Generic checks run over every op in the registry (tests/opinfo.py)."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from tests.opinfo import all_ops

OPS = all_ops()
SAMPLES = [
    pytest.param(op, i, id=f"{op.name}-{i}")
    for op in OPS
    for i in range(len(op.samples(np.random.default_rng(0))))
]
ERRORS = [
    pytest.param(op, i, id=f"{op.name}-err{i}") for op in OPS for i in range(len(op.errors()))
]


def _sample(op, i):
    return op.samples(np.random.default_rng(1234 + i))[i]


def test_registry_is_not_empty():
    assert len(OPS) >= 1


@pytest.mark.parametrize("op,i", SAMPLES)
def test_gradcheck_float64(op, i):
    s = _sample(op, i)
    wrt = [
        k
        for k, a in enumerate(s.args)
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and k not in s.constant
    ]
    if not wrt:
        pytest.skip("no differentiable input")
    args = list(s.args)
    consts = {k: args[k] for k in range(len(args)) if k not in wrt}

    def f(*ts):
        call = [consts[k] if k in consts else ts[k] for k in range(len(args))]
        return op.fn(*call, **s.kwargs)

    inputs = [a if k in wrt else np.zeros(1) for k, a in enumerate(args)]
    rel = cl.gradcheck(f, inputs, wrt=wrt)
    assert rel < op.gradcheck_tol, rel.describe()


@pytest.mark.parametrize("op,i", SAMPLES)
def test_float32_stays_float32(op, i):
    if not op.check_float32:
        pytest.skip("op opts out")
    s = _sample(op, i)
    ts = []
    for k, a in enumerate(s.args):
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            ts.append(cl.tensor(a.astype(np.float32), requires_grad=k not in s.constant))
        else:
            ts.append(a)
    y = op.fn(*ts, **s.kwargs)
    assert y.dtype == np.float32
    if y.requires_grad:
        y.backward(np.ones(y.shape, dtype=np.float32))
        for t in ts:
            if isinstance(t, cl.Tensor) and t.requires_grad:
                assert t.grad is not None and t.grad.dtype == np.float32


@pytest.mark.parametrize("op,i", ERRORS)
def test_error_messages(op, i):
    case = op.errors()[i]
    with pytest.raises(case.error, match=case.match):
        op.fn(*case.args, **case.kwargs)
