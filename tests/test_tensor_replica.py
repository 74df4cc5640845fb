"""Function.replica() and Function.from_settings(): a new op with an op's settings and none of
its cache (what record_ops lists and the Predictor replays). Oracles: the attributes the op held
before its forward ran, the nested-loop references, np.transpose, dropout's mask drawn here from
a Generator of the same seed, and the original op's own backward."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab.reference.conv import conv_forward
from cnnlab.reference.pool import pool_forward
from cnnlab.tensor import record_ops
from tests.opinfo import all_ops

SAMPLES = [
    pytest.param(op, i, id=f"{op.name}-{i}")
    for op in all_ops()
    for i in range(len(op.samples(np.random.default_rng(0))))
]


def _recorded(op, i):
    """Every op the registry's sample i of ``op`` applies, with gradients on (so each keeps its
    cache): (function, input arrays, output array, settings)."""
    s = op.samples(np.random.default_rng(1234 + i))[i]
    args = [cl.tensor(a, requires_grad=k not in s.constant)
            if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for k, a in enumerate(s.args)]
    with record_ops() as ops:
        op.fn(*args, **s.kwargs)
    if not ops:
        pytest.skip("the sample applies no op (dropout in eval mode returns its input)")
    return [(fn, [None if t is None else t.data for t in ins], out.data, settings)
            for fn, ins, out, settings in ops]


@pytest.mark.parametrize("op,i", SAMPLES)
def test_replica_after_forward_has_the_settings_and_no_cache(op, i):
    for fn, _, _, settings in _recorded(op, i):
        twin = fn.replica()
        assert type(twin) is type(fn)
        # the attributes the op held before its forward (record_ops' settings), nothing more
        assert set(vars(twin)) == set(settings)
        cache = set(vars(fn)) - set(settings) - {"needs_grad", "inputs"}
        assert not cache & set(vars(twin))
        assert twin.needs_grad == ()  # the class default: apply sets it per call


@pytest.mark.parametrize("op,i", SAMPLES)
def test_replica_computes_what_the_original_computed(op, i):
    """Forward on the same inputs gives the original's output, from a replica of the op as it
    was before its forward (made from record_ops' settings) and, for an op that draws no random
    numbers, from a replica taken after it; backward of the replica's own cache gives the
    original's gradients."""
    rng = np.random.default_rng(i)
    for fn, arrays, out, settings in _recorded(op, i):
        twins = [type(fn).from_settings(settings).replica()]
        if not any(isinstance(v, np.random.Generator) for v in settings.values()):
            twins.append(fn.replica())
        for twin in twins:
            twin.needs_grad = fn.needs_grad
            np.testing.assert_array_equal(twin.forward(*arrays), out)
            if not any(fn.needs_grad):
                continue
            gy = rng.normal(size=np.shape(out)).astype(np.result_type(out))
            mine, theirs = twin.backward(gy), fn.backward(gy)
            mine = mine if isinstance(mine, tuple) else (mine,)
            theirs = theirs if isinstance(theirs, tuple) else (theirs,)
            assert len(mine) == len(theirs)
            for a, b in zip(mine, theirs):
                if b is not None:
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_conv_replica_after_forward_holds_no_input():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 6, 7, 3)), rng.normal(size=(3, 3, 3, 4)), rng.normal(size=4)
    with record_ops() as ops:
        y = F.conv2d(cl.tensor(x, requires_grad=True), cl.tensor(w), cl.tensor(b), stride=2,
                     padding=1)
    (conv, _, _, settings), = ops
    twin = conv.replica()
    assert hasattr(conv, "kernel") and not hasattr(twin, "kernel")  # the kernel keeps x
    assert not any(isinstance(v, np.ndarray) and v.size >= x.size for v in vars(twin).values())
    assert (twin.stride, twin.pads) == ((2, 2), ((1, 1), (1, 1)))
    twin.needs_grad = (False, False, False)
    ref, _ = conv_forward(x, w, b, stride=2, pad=1)
    np.testing.assert_allclose(twin.forward(x, w, b), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.data, ref, rtol=1e-12, atol=1e-12)


def test_pool_replica_after_forward_holds_no_input():
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3))
    pool = F.max_pool2d(cl.tensor(x, requires_grad=True), 2)._ctx
    twin = pool.replica()
    assert hasattr(pool, "x_pad") and hasattr(pool, "y")
    assert not hasattr(twin, "x_pad") and not hasattr(twin, "y") and twin.size == (2, 2)
    ref, _ = pool_forward(x, 2, 2, mode="max")
    np.testing.assert_array_equal(twin.forward(x), ref)


def test_transpose_replica_keeps_its_axes_setting():
    """Transpose's forward does not overwrite ``axes``: a replica of a transpose with axes
    None reverses the axes of an input of any rank (forward keeps its permutation in
    the cache)."""
    t = F.transpose(cl.tensor(np.zeros((2, 3, 4)), requires_grad=True))._ctx
    twin = t.replica()
    assert twin.axes is None and t.axes is None
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(twin.forward(x), np.transpose(x))


def test_dropout_replica_from_the_trace_replays_the_traced_mask():
    """record_ops takes the settings before forward: an op made from them draws the traced
    mask, every time, while a replica of the op after its forward draws the next one."""
    x = np.ones((4, 5))
    gen = np.random.default_rng(3)
    with record_ops() as ops:
        y = F.dropout(cl.tensor(x), 0.5, training=True, rng=gen)
    (fn, _, _, settings), = ops
    oracle = np.random.default_rng(3)  # D = (U < keep_prob), y = x * D / keep_prob
    first = (oracle.random(x.shape) < 0.5) * 2.0
    second = (oracle.random(x.shape) < 0.5) * 2.0
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(y.data, first)
    before = type(fn).from_settings(settings)
    for _ in range(2):  # each replica starts from the Generator as it was in the trace
        np.testing.assert_array_equal(before.replica().forward(x), first)
    np.testing.assert_array_equal(fn.replica().forward(x), second)  # the Generator as it is now
    # replicas draw from copies: the caller's Generator moved only by the traced forward
    np.testing.assert_array_equal(gen.random(3), np.random.default_rng(3).random(23)[20:])


def test_replica_copies_from_settings_shares():
    rm, rv = np.zeros(2), np.ones(2)
    x = cl.tensor(np.array([[1.0, 2.0], [3.0, 6.0]]))
    with record_ops() as ops:
        F.batch_norm(x, None, None, rm, rv, training=True, momentum=0.5)
    (fn, _, _, settings), = ops
    np.testing.assert_allclose(rm, [1.0, 2.0])  # 0.5 * 0 + 0.5 * mean
    np.testing.assert_array_equal(settings["running_mean"], [0.0, 0.0])  # taken before forward
    shared = type(fn).from_settings(settings)
    assert shared.running_mean is settings["running_mean"]
    twin = shared.replica()
    assert twin.running_mean is not settings["running_mean"]
    twin.needs_grad = (False,)
    twin.forward(x.data)  # a training forward updates the replica's statistics only
    np.testing.assert_allclose(twin.running_mean, [1.0, 2.0])
    np.testing.assert_array_equal(settings["running_mean"], [0.0, 0.0])
    np.testing.assert_allclose(rm, [1.0, 2.0])
