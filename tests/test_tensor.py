"""The autograd engine: graph order, reuse, broadcasting, no_grad, and the shape ops' backward.

Every gradient here is checked against an independent oracle: finite differences
(``cl.gradcheck``), a formula worked out by hand, or PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab.gradcheck import gradcheck_model

RNG = np.random.default_rng(0)


def _check(fn, *arrays):
    rel = cl.gradcheck(fn, list(arrays))
    assert rel < 1e-7, rel.describe()


# ------------------------------------------------------------------ a tensor used twice
# A leaf reached both directly and through a chain must get its gradient only once every path
# into it is summed: these are the graphs that a push-time "seen" mark gets wrong.
@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t + F.sigmoid(t),
        lambda t: F.sigmoid(t) + t,
        lambda t: t * F.sigmoid(t),  # SiLU
        lambda t: F.sigmoid(t) * t,
        lambda t: F.exp(t) / F.exp(t).sum(),  # softmax by hand
        lambda t: t + F.tanh(F.sigmoid(F.exp(t))),  # a long path and a short one
        lambda t: (t * t) * t + t,
    ],
    ids=["x+f(x)", "f(x)+x", "x*f(x)", "f(x)*x", "e/sum(e)", "x+long", "x*x*x+x"],
)
def test_reused_tensor_gets_every_path(fn):
    _check(fn, RNG.normal(size=(3, 4)))


def test_reused_tensor_exact_value():
    # d/dx (x + x*x) = 1 + 2x: no finite differences needed
    x = cl.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    (x + x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, 1 + 2 * x.data)


def test_reused_intermediate_node():
    # h is used by two later ops; its own input must see both contributions
    def fn(t):
        h = F.tanh(t)
        return h * F.exp(h) + h

    _check(fn, RNG.normal(size=(5,)))


def test_diamond_against_torch(torch):
    x0 = RNG.normal(size=(4, 3))
    x = cl.tensor(x0, requires_grad=True)
    a = F.sigmoid(x)
    y = (a * x + F.exp(a) - x).sum()
    y.backward()
    xt = torch.tensor(x0, requires_grad=True)
    at = torch.sigmoid(xt)
    (at * xt + torch.exp(at) - xt).sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-12)


def test_grad_accumulates_over_backward_calls():
    x = cl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


# ------------------------------------------------------------------ long chains
def test_long_chain_has_no_recursion_limit():
    x = cl.tensor(np.array([0.5]), requires_grad=True)
    y = x
    for _ in range(5000):  # far past Python's default recursion limit of 1000
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**5000], rtol=1e-9)


# ------------------------------------------------------------------ broadcasting
@pytest.mark.parametrize(
    "sa,sb",
    [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 3))],
)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_gradients_reduce_to_input_shape(sa, sb, op):
    f = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
    }[op]
    a = RNG.normal(size=sa)
    b = RNG.uniform(0.5, 2.0, size=sb)
    ta, tb = cl.tensor(a, requires_grad=True), cl.tensor(b, requires_grad=True)
    f(ta, tb).sum().backward()
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape
    _check(f, a, b)


# ------------------------------------------------------------------ no_grad, detach
def test_no_grad_builds_no_graph():
    x = cl.tensor(RNG.normal(size=(2, 3)), requires_grad=True)
    with cl.no_grad():
        y = F.relu(x * 2.0).sum()
    assert not y.requires_grad and y._ctx is None
    y2 = (x * 2.0).sum()
    assert y2.requires_grad and y2._ctx is not None


def test_detach_stops_the_gradient():
    x = cl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * x.detach()  # d/dx = x (the detached factor is a constant)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])


def test_float_defaults():
    assert cl.tensor([1.0, 2.0]).dtype == np.float32
    assert cl.tensor(np.array([1.0])).dtype == np.float64


# ------------------------------------------------------------------ shape ops
@pytest.mark.parametrize("axes", [(1, 0, 2), (-1, 0, 1), (2, -3, -2), (-1, -2, -3), None])
def test_transpose_backward_any_axes(axes, torch):
    x0 = RNG.normal(size=(2, 3, 4))
    _check(lambda t: F.transpose(t, axes) * cl.tensor(np.arange(24.0).reshape(
        np.transpose(x0, axes).shape)), x0)
    x = cl.tensor(x0, requires_grad=True)
    y = F.transpose(x, axes)
    gy = RNG.normal(size=y.shape)
    y.backward(gy)
    perm = tuple(range(3))[::-1] if axes is None else axes
    xt = torch.tensor(x0, requires_grad=True)
    xt.permute(*perm).backward(torch.tensor(gy))
    np.testing.assert_array_equal(x.grad, xt.grad.numpy())


@pytest.mark.parametrize(
    "sa,sb",
    [((3,), (3,)), ((3,), (3, 4)), ((3,), (2, 3, 4)), ((2, 5, 3), (3,)), ((4, 3), (3, 2)),
     ((2, 4, 3), (3, 2)), ((4, 3), (2, 3, 5)), ((1, 4, 3), (2, 3, 5))],
)
def test_matmul_backward_all_ranks(sa, sb, torch):
    a0, b0 = RNG.normal(size=sa), RNG.normal(size=sb)
    _check(lambda a, b: F.matmul(a, b), a0, b0)
    a, b = cl.tensor(a0, requires_grad=True), cl.tensor(b0, requires_grad=True)
    y = F.matmul(a, b)
    gy = RNG.normal(size=y.shape)
    y.backward(gy)
    at, bt = torch.tensor(a0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    (at @ bt).backward(torch.tensor(gy))
    np.testing.assert_allclose(a.grad, at.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.grad, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pow_keeps_float32_with_numpy_exponent():
    x = cl.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = x ** np.float64(2.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_pow_rejects_array_exponent():
    with pytest.raises(TypeError, match="power: the exponent must be a real number"):
        cl.tensor([1.0, 2.0]) ** np.array([1.0, 2.0])


def test_linear_rejects_mixed_dtypes():
    x = cl.tensor(np.ones((2, 3), dtype=np.float32))
    w = cl.tensor(np.ones((3, 4), dtype=np.float64))
    with pytest.raises(TypeError, match="linear: x is float32 but w is float64"):
        F.linear(x, w)


def test_conv_second_backward_adds_the_same_gradient_again():
    # conv2d keeps its input, not its window matrix, so a second backward through the same
    # graph works (and accumulates, as PyTorch's retain_graph would)
    x = cl.tensor(RNG.normal(size=(1, 5, 5, 2)), requires_grad=True)
    w = cl.tensor(RNG.normal(size=(3, 3, 2, 4)), requires_grad=True)
    y = F.conv2d(x, w).sum()
    y.backward()
    first_x, first_w = x.grad.copy(), w.grad.copy()
    y.backward()
    np.testing.assert_allclose(w.grad, 2 * first_w, rtol=1e-12)
    np.testing.assert_allclose(x.grad, 2 * first_x, rtol=1e-12)


# ------------------------------------------------------------------ gradcheck itself
def test_gradcheck_names_a_wrong_backward():
    class BadSquare(cl.Function):  # forward x^2, backward claims 3x
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return (3 * self.x * gy,)

    # the error x * v (v the random cotangent) is largest where |x| is far the largest
    x = np.array([[0.01, -0.02], [100.0, 0.03]])
    rel = cl.gradcheck(lambda c, t: BadSquare().apply(t) * c, [np.ones(1), x], wrt=[1])
    assert rel > 0.1
    assert rel.input == 1 and rel.index == (1, 0)
    assert "input 1 at element (1, 0)" in rel.describe()
    with pytest.raises(cl.GradcheckError, match=r"input 1 at element \(1, 0\)"):
        cl.gradcheck(lambda c, t: BadSquare().apply(t) * c, [np.ones(1), x], wrt=[1], tol=1e-7)


def test_gradcheck_passes_a_right_backward():
    assert cl.gradcheck(lambda t: t * t, [RNG.normal(size=(3,))]) < 1e-9


# ------------------------------------------------------------------ gradcheck_model
def _small_model():
    from cnnlab import nn

    return nn.Sequential(nn.Conv2D(1, 2, 3, seed=0), nn.ReLU(), nn.Flatten(),
                         nn.Dense(8, 3, seed=1))


def test_gradcheck_model_checks_a_model_and_leaves_it_as_found():
    model = _small_model().double().eval()
    before = model.state_dict()
    x = RNG.normal(size=(2, 4, 4, 1))
    result = gradcheck_model(model, x, np.array([0, 2]), max_elements=None)
    assert result < 1e-7, result.describe()
    assert set(result.per_parameter) == {n for n, _ in model.named_parameters()}
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert all(p.grad is None for p in model.parameters())


def test_gradcheck_model_refuses_float32():
    with pytest.raises(ValueError, match=r"float64.*model\.double\(\)"):
        gradcheck_model(_small_model(), RNG.normal(size=(2, 4, 4, 1)), np.array([0, 1]))


def test_gradcheck_model_refuses_training_dropout():
    from cnnlab import nn

    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Dense(4, 2, seed=0)).double()
    with pytest.raises(ValueError, match=r"dropout in training mode.*model\.eval\(\)"):
        gradcheck_model(model, RNG.normal(size=(2, 2, 2, 1)), np.array([0, 1]))


def test_gradcheck_model_restores_batch_norm_statistics():
    from cnnlab import nn

    model = nn.Sequential(nn.Dense(3, 4, bias=False, seed=0), nn.BatchNorm1D(4),
                          nn.Dense(4, 2, seed=1)).double()  # training mode: stats would move
    before = model.state_dict()
    result = gradcheck_model(model, RNG.normal(size=(5, 3)), np.array([0, 1, 1, 0, 1]))
    assert result < 1e-7, result.describe()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_comparisons_are_elementwise_without_gradient():
    a = cl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = cl.tensor(np.array([1.0, 0.0, 3.0]))
    np.testing.assert_array_equal(a == b, [True, False, True])
    np.testing.assert_array_equal(a != b, [False, True, False])
    np.testing.assert_array_equal(a == 2.0, [False, True, False])
    np.testing.assert_array_equal(a > b, [False, True, False])
    assert len({a, b}) == 2  # still hashable by identity
