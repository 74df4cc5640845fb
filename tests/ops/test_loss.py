"""Losses: hand-computed numbers, PyTorch forward/backward on generated shapes, stability at
extreme logits, masks and dtype rules. Gradient checks and pinned error messages live in the
registry (tests/ops/opinfo_loss.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import functional as F

TOL = {np.float32: 1e-4, np.float64: 1e-9}
DTYPES = st.sampled_from([np.float32, np.float64])


def assert_close(actual, expected, dtype):
    """Relative tolerance of the dtype, scaled by the size of the expected values."""
    expected = np.asarray(expected, dtype=np.float64)
    rtol = TOL[dtype]
    atol = rtol * max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ hand-computed numbers
def test_cross_entropy_by_hand():
    # logits (0, ln 3): softmax (1/4, 3/4)
    z = cl.tensor(np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]]), requires_grad=True)
    loss = F.cross_entropy(z, np.array([0, 1]))
    assert loss.shape == ()
    np.testing.assert_allclose(float(loss), (np.log(4.0) + np.log(4 / 3)) / 2, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[-0.75 / 2, 0.75 / 2], [0.25 / 2, -0.25 / 2]], rtol=1e-12)


def test_cross_entropy_label_smoothing_by_hand():
    # K = 2, eps = 0.2: target for label 0 is (0.9, 0.1); equal logits give log 2 whatever
    z = cl.tensor(np.zeros((1, 2)), requires_grad=True)
    loss = F.cross_entropy(z, np.array([0]), label_smoothing=0.2)
    np.testing.assert_allclose(float(loss), np.log(2.0), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[0.5 - 0.9, 0.5 - 0.1]], rtol=1e-12)


def test_cross_entropy_probabilities_by_hand():
    z = cl.tensor(np.zeros((1, 4)), requires_grad=True)
    p = cl.tensor(np.array([[0.5, 0.5, 0.0, 0.0]]), requires_grad=True)
    loss = F.cross_entropy(z, p)
    np.testing.assert_allclose(float(loss), np.log(4.0), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[-0.25, -0.25, 0.25, 0.25]], rtol=1e-12)
    np.testing.assert_allclose(p.grad, [[np.log(4.0)] * 4], rtol=1e-12)  # -log softmax


def test_bce_with_mask_by_hand():
    # z = 0 everywhere: each known entry costs log 2, gradient (1/2 - y) / count
    z = cl.tensor(np.zeros((2, 2)), requires_grad=True)
    y = np.array([[1.0, np.nan], [0.0, 1.0]])
    mask = np.array([[True, False], [True, True]])
    loss = F.binary_cross_entropy_with_logits(z, y, mask)
    np.testing.assert_allclose(float(loss), np.log(2.0), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(z.grad, [[-0.5 / 3, 0.0], [0.5 / 3, -0.5 / 3]], rtol=1e-12)


def test_bce_nothing_known_is_zero_with_zero_gradient():
    z = cl.tensor(np.ones((2, 3)), requires_grad=True)
    y = cl.tensor(np.full((2, 3), np.nan), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, y, np.zeros((2, 3)))
    assert loss.shape == () and float(loss) == 0.0
    loss.backward()
    np.testing.assert_array_equal(z.grad, np.zeros((2, 3)))
    np.testing.assert_array_equal(y.grad, np.zeros((2, 3)))


def test_mse_by_hand():
    pred = cl.tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    target = cl.tensor(np.array([1.0, 0.0, 3.0, 6.0]), requires_grad=True)
    loss = F.mse_loss(pred, target)
    np.testing.assert_allclose(float(loss), (4 + 4) / 4, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(pred.grad, [0.0, 1.0, 0.0, -1.0], rtol=1e-12)
    np.testing.assert_allclose(target.grad, [0.0, -1.0, 0.0, 1.0], rtol=1e-12)


# ------------------------------------------------------------------ PyTorch oracle
def _grads(torch, fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    loss = fn(*ts)
    loss.backward()
    return loss.detach().numpy(), [t.grad.numpy() for t in ts]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    k=st.integers(1, 7),
    smoothing=st.sampled_from([0.0, 0.1, 0.5]),
    dtype=DTYPES,
    seed=st.integers(0, 2**31 - 1),
)
def test_cross_entropy_labels_matches_torch(torch, n, k, smoothing, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (3 * rng.normal(size=(n, k))).astype(dtype)
    labels = rng.integers(0, k, size=n)
    tz = cl.tensor(z, requires_grad=True)
    loss = F.cross_entropy(tz, labels, label_smoothing=smoothing)
    loss.backward()
    ref, (gz,) = _grads(
        torch,
        lambda t: torch.nn.functional.cross_entropy(
            t, torch.tensor(labels), label_smoothing=smoothing
        ),
        z,
    )
    assert loss.dtype == dtype and tz.grad.dtype == dtype
    assert_close(loss.numpy(), ref, dtype)
    assert_close(tz.grad, gz, dtype)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    k=st.integers(1, 7),
    smoothing=st.sampled_from([0.0, 0.1, 0.5]),
    dtype=DTYPES,
    seed=st.integers(0, 2**31 - 1),
)
def test_cross_entropy_probabilities_matches_torch(torch, n, k, smoothing, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (3 * rng.normal(size=(n, k))).astype(dtype)
    p = rng.dirichlet(np.ones(k), size=n).astype(dtype)
    tz, tp = cl.tensor(z, requires_grad=True), cl.tensor(p, requires_grad=True)
    loss = F.cross_entropy(tz, tp, label_smoothing=smoothing)
    loss.backward()
    ref, (gz, gp) = _grads(
        torch, lambda a, b: torch.nn.functional.cross_entropy(a, b, label_smoothing=smoothing), z, p
    )
    assert_close(loss.numpy(), ref, dtype)
    assert_close(tz.grad, gz, dtype)
    assert_close(tp.grad, gp, dtype)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
    masked=st.booleans(),
    soft=st.booleans(),
    dtype=DTYPES,
    seed=st.integers(0, 2**31 - 1),
)
def test_bce_with_logits_matches_torch(torch, shape, masked, soft, dtype, seed):
    rng = np.random.default_rng(seed)
    z = (3 * rng.normal(size=shape)).astype(dtype)
    y = (rng.uniform(size=shape) if soft else rng.integers(0, 2, size=shape)).astype(dtype)
    mask = rng.random(shape) < 0.6 if masked else np.ones(shape, dtype=bool)
    tz, ty = cl.tensor(z, requires_grad=True), cl.tensor(y, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(tz, ty, mask if masked else None)
    if mask.any():
        loss.backward()

    def torch_loss(a, b):
        per = torch.nn.functional.binary_cross_entropy_with_logits(a, b, reduction="none")
        return per[torch.tensor(mask)].mean()

    if not mask.any():  # torch's mean of nothing is NaN; ours is 0 by definition
        assert float(loss) == 0.0
        return
    ref, (gz, gy) = _grads(torch, torch_loss, z, y)
    assert loss.dtype == dtype
    assert_close(loss.numpy(), ref, dtype)
    assert_close(tz.grad, gz, dtype)
    assert_close(ty.grad, gy, dtype)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple),
    dtype=DTYPES,
    seed=st.integers(0, 2**31 - 1),
)
def test_mse_matches_torch(torch, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape).astype(dtype)
    b = rng.normal(size=shape).astype(dtype)
    ta, tb = cl.tensor(a, requires_grad=True), cl.tensor(b, requires_grad=True)
    loss = F.mse_loss(ta, tb)
    loss.backward()
    ref, (ga, gb) = _grads(torch, torch.nn.functional.mse_loss, a, b)
    assert loss.shape == () and loss.dtype == dtype
    assert_close(loss.numpy(), ref, dtype)
    assert_close(ta.grad, ga, dtype)
    assert_close(tb.grad, gb, dtype)


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extreme_logits_are_finite(torch, dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], dtype=dtype)
    for target in (np.array([1, 2]), np.array([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]], dtype=dtype)):
        tz = cl.tensor(z, requires_grad=True)
        loss = F.cross_entropy(tz, target)
        loss.backward()
        assert np.isfinite(float(loss)) and np.all(np.isfinite(tz.grad))
        ref, (gz,) = _grads(
            torch, lambda t, y=target: torch.nn.functional.cross_entropy(t, torch.tensor(y)), z
        )
        assert_close(loss.numpy(), ref, dtype)
        assert_close(tz.grad, gz, dtype)
    # label 1 in row 0 costs 2000 nats; label 2 in row 1 costs nothing
    np.testing.assert_allclose(float(F.cross_entropy(cl.tensor(z), np.array([1, 2]))), 1000.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_extreme_logits_are_finite(torch, dtype):
    z = np.array([1000.0, -1000.0, 1000.0, -1000.0], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    tz = cl.tensor(z, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(tz, y)
    loss.backward()
    np.testing.assert_allclose(float(loss), 2000.0 / 4, rtol=TOL[dtype])
    np.testing.assert_allclose(tz.grad, [0.0, 0.0, 0.25, -0.25], atol=1e-12)
    ref, (gz,) = _grads(
        torch, lambda t: torch.nn.functional.binary_cross_entropy_with_logits(t, torch.tensor(y)), z
    )
    assert_close(loss.numpy(), ref, dtype)
    assert_close(tz.grad, gz, dtype)


# ------------------------------------------------------------------ inputs and dtypes
def test_labels_as_int_tensor_list_and_unsigned_agree():
    z = np.random.default_rng(0).normal(size=(3, 4))
    expected = float(F.cross_entropy(cl.tensor(z), np.array([1, 3, 0])))
    for labels in (cl.tensor(np.array([1, 3, 0])), [1, 3, 0], np.array([1, 3, 0], np.uint8)):
        assert float(F.cross_entropy(cl.tensor(z), labels)) == expected


def test_label_error_lists_every_bad_value_and_the_range():
    z = cl.tensor(np.zeros((5, 3)))
    with pytest.raises(ValueError) as info:
        F.cross_entropy(z, np.array([0, 5, -2, 5, 2]))
    message = str(info.value)
    assert message.startswith("cross_entropy: labels must be in [0, 3)")
    assert "received label value(s) -2, 5 (3 of 5 labels out of range)" in message


def test_float32_logits_with_float64_targets_stay_float32():
    rng = np.random.default_rng(1)
    z = cl.tensor(rng.normal(size=(3, 4)).astype(np.float32), requires_grad=True)
    p = rng.dirichlet(np.ones(4), size=3)  # float64 array
    losses = [
        F.cross_entropy(z, p),
        F.binary_cross_entropy_with_logits(z, rng.uniform(size=(3, 4)), np.ones((3, 4))),
        F.mse_loss(z, rng.normal(size=(3, 4))),
    ]
    for loss in losses:
        assert loss.dtype == np.float32
        z.grad = None
        loss.backward()
        assert z.grad.dtype == np.float32


def test_bce_int_targets_and_int_mask():
    z = cl.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    a = F.binary_cross_entropy_with_logits(z, np.array([1, 0, 1]), np.array([1, 1, 0]))
    b = F.binary_cross_entropy_with_logits(z[:2], np.array([1.0, 0.0]))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-12)
