"""l2_penalty (value and gradient by hand) and clip_grad_norm (by hand and against torch)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import optim
from cnnlab.nn.parameter import Parameter


# --------------------------------------------------------------------- l2_penalty
def test_l2_penalty_value_and_gradient():
    rng = np.random.default_rng(0)
    w1 = Parameter(rng.normal(size=(3, 3, 2, 4)))  # conv weight (HWIO)
    w2 = Parameter(rng.normal(size=(5, 2)))  # dense weight
    b = Parameter(rng.normal(size=(2,)))  # bias: excluded by default
    gamma = Parameter(rng.normal(size=(4,)), regularize=False)
    lam, m = 0.7, 32
    penalty = optim.l2_penalty([w1, w2, b, gamma], lam, m)
    frobenius = sum(float(np.sum(w.data**2)) for w in (w1, w2))
    assert penalty.shape == () and penalty.dtype == np.float64
    assert penalty.item() == pytest.approx(lam / (2 * m) * frobenius, rel=1e-12)
    penalty.backward()
    for w in (w1, w2):
        np.testing.assert_allclose(w.grad, lam / m * w.data, rtol=1e-12)  # dW = lambda/m W
    assert b.grad is None and gamma.grad is None


def test_l2_penalty_plain_tensors_and_forced_flags():
    mat = cl.tensor(np.full((2, 2), 2.0), requires_grad=True)  # 2-D tensor: regularized
    vec = cl.tensor(np.full(3, 5.0), requires_grad=True)  # 1-D tensor: not
    forced = Parameter(np.full(3, 1.0), regularize=True)  # a 1-D one, opted in
    penalty = optim.l2_penalty([mat, vec, forced], lam=2.0, m=4)
    assert penalty.item() == pytest.approx(2.0 / 8 * (16.0 + 3.0))


def test_l2_penalty_float32_and_empty():
    w = Parameter(np.ones((2, 3), dtype=np.float32))
    assert optim.l2_penalty([w], 0.1, 10).dtype == np.float32
    zero = optim.l2_penalty([Parameter(np.ones(3))], 0.1, 10)
    assert zero.item() == 0.0 and zero.shape == ()


def test_l2_penalty_matches_sgd_weight_decay():
    # the penalty's gradient lambda/m W equals SGD's weight_decay = lambda/m
    rng = np.random.default_rng(1)
    a = Parameter(rng.normal(size=(3, 4)))
    b = Parameter(a.data.copy())
    lam, m = 0.3, 6
    optim.l2_penalty([a], lam, m).backward()
    opt_a = optim.SGD([a], lr=0.1)
    opt_b = optim.SGD([b], lr=0.1, weight_decay=lam / m)
    b.grad = np.zeros_like(b.data)
    opt_a.step()
    opt_b.step()
    np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


@pytest.mark.parametrize(
    "lam, m, message",
    [
        (-0.1, 10, "l2_penalty: lam must be a number >= 0; received lam=-0.1"),
        (0.1, 0, r"l2_penalty: m \(the number of training examples\) must be > 0; received m=0"),
        ("1", 10, "l2_penalty: lam must be a number >= 0; received lam='1'"),
    ],
)
def test_l2_penalty_errors(lam, m, message):
    with pytest.raises(ValueError, match=message):
        optim.l2_penalty([Parameter(np.ones((2, 2)))], lam, m)


# --------------------------------------------------------------------- clip_grad_norm
def test_clip_grad_norm_by_hand():
    a = cl.tensor(np.zeros(2), requires_grad=True)
    b = cl.tensor(np.zeros((1, 1)), requires_grad=True)
    none = cl.tensor(np.zeros(3), requires_grad=True)
    a.grad = np.array([3.0, 0.0])
    b.grad = np.array([[4.0]])  # global norm sqrt(9 + 16) = 5
    norm = optim.clip_grad_norm([a, b, none], max_norm=1.0)
    assert norm == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3.0 * scale, 0.0], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [[4.0 * scale]], rtol=1e-15)
    assert none.grad is None


def test_clip_grad_norm_leaves_small_gradients():
    a = cl.tensor(np.zeros(2), requires_grad=True)
    a.grad = np.array([0.3, 0.4])
    grad = a.grad
    assert optim.clip_grad_norm(a, max_norm=1.0) == pytest.approx(0.5, rel=1e-15)
    assert a.grad is grad
    np.testing.assert_array_equal(a.grad, [0.3, 0.4])
    assert optim.clip_grad_norm([cl.tensor(np.zeros(2), requires_grad=True)], 1.0) == 0.0


def test_clip_grad_norm_float32_in_place():
    a = cl.tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    a.grad = np.full(4, 10.0, dtype=np.float32)
    grad = a.grad
    optim.clip_grad_norm([a], 2.0)
    assert a.grad is grad and a.grad.dtype == np.float32
    assert float(np.linalg.norm(a.grad)) == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize("max_norm", [0.5, 3.0, 100.0])
def test_clip_grad_norm_matches_torch(torch, max_norm):
    rng = np.random.default_rng(int(max_norm * 10))
    shapes = [(3, 3, 2, 4), (4,), (5, 2)]
    grads = [rng.normal(size=s) for s in shapes]
    ours = [cl.tensor(np.zeros(s), requires_grad=True) for s in shapes]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    for p, t, g in zip(ours, theirs, grads):
        p.grad = g.copy()
        t.grad = torch.from_numpy(g.copy())
    norm = optim.clip_grad_norm(ours, max_norm)
    tnorm = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert norm == pytest.approx(float(tnorm), rel=1e-9)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 10.0))
def test_clip_grad_norm_property(seed, max_norm):
    rng = np.random.default_rng(seed)
    ps = [cl.tensor(np.zeros(s), requires_grad=True) for s in [(2, 3), (4,)]]
    originals = [rng.normal(size=p.shape) * rng.uniform(0.01, 10) for p in ps]
    for p, g in zip(ps, originals):
        p.grad = g.copy()
    before = np.sqrt(sum(np.sum(g**2) for g in originals))
    assert optim.clip_grad_norm(ps, max_norm) == pytest.approx(before, rel=1e-12)
    after = np.sqrt(sum(np.sum(p.grad**2) for p in ps))
    assert after <= max_norm * (1 + 1e-9)
    scale = min(1.0, max_norm / (before + 1e-6))  # same direction, one factor
    for p, g in zip(ps, originals):
        np.testing.assert_allclose(p.grad, g * scale, rtol=1e-12)


def test_clip_grad_norm_errors():
    p = cl.tensor(np.zeros(2), requires_grad=True)
    with pytest.raises(
        ValueError, match="clip_grad_norm: max_norm must be > 0; received max_norm=0"
    ):
        optim.clip_grad_norm([p], 0)
    with pytest.raises(
        TypeError,
        match="clip_grad_norm: params must be Tensors or Parameters; "
        "received ndarray at position 0",
    ):
        optim.clip_grad_norm([np.zeros(2)], 1.0)
