"""SGD, RMSprop, Adam, AdamW updates: hand-computed steps, NumPy re-statements of the textbook
formulas, torch.optim, the scope of weight decay, and dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import optim
from cnnlab.nn.parameter import Parameter
from tests.optim._problems import OPTIMIZERS, make_noise, quadratic, run, set_grads


# --------------------------------------------------------------------- hand-computed steps
def test_sgd_momentum_by_hand():
    # f(w) = w^2, g = 2w, w0 = 1, lr = 0.1, beta = 0.9:
    # v1 = 2, w1 = 0.8; v2 = 0.9*2 + 1.6 = 3.4, w2 = 0.46; v3 = 3.06 + 0.92 = 3.98, w3 = 0.062
    w = cl.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.9)
    for expected in (0.8, 0.46, 0.062):
        w.grad = 2 * w.data
        opt.step()
        assert w.data[0] == pytest.approx(expected, rel=1e-12)


def test_sgd_plain_and_nesterov_by_hand():
    w = cl.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.25)
    w.grad = 2 * w.data
    opt.step()
    assert w.data[0] == 0.5  # 1 - 0.25 * 2
    # Nesterov, beta = 0.5, lr = 0.1, w0 = 1: v1 = 2, w1 = 1 - 0.1 (2 + 0.5*2) = 0.7;
    # g2 = 1.4, v2 = 1 + 1.4 = 2.4, w2 = 0.7 - 0.1 (1.4 + 1.2) = 0.44
    w = cl.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.SGD([w], lr=0.1, momentum=0.5, nesterov=True)
    for expected in (0.7, 0.44):
        w.grad = 2 * w.data
        opt.step()
        assert w.data[0] == pytest.approx(expected, rel=1e-12)


def test_rmsprop_by_hand():
    # f = w^2, w0 = 1, lr 0.01, beta 0.9: s1 = 0.1 * 4 = 0.4, w1 = 1 - 0.01 * 2 / sqrt(0.4)
    w = cl.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.RMSprop([w], lr=0.01)
    w.grad = 2 * w.data
    opt.step()
    assert w.data[0] == pytest.approx(1 - 0.02 / (math.sqrt(0.4) + 1e-8), rel=1e-12)
    assert w.data[0] == pytest.approx(0.9683772239, rel=1e-9)


def test_adam_by_hand():
    # step 1: m_hat = g, v_hat = g^2, so W moves by lr (to 0.9) whatever g is;
    # step 2: g = 1.8, m = 0.36, v = 0.007236, m_hat = 0.36 / 0.19, v_hat = 0.007236 / 0.001999
    w = cl.tensor(np.array([1.0]), requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = 2 * w.data
    opt.step()
    assert w.data[0] == pytest.approx(0.9, rel=1e-8)
    w.grad = 2 * w.data
    opt.step()
    step2 = 0.1 * (0.36 / 0.19) / math.sqrt(0.007236 / 0.001999)
    assert w.data[0] == pytest.approx(0.9 - step2, rel=1e-8)
    assert w.data[0] == pytest.approx(0.80041223, rel=1e-7)


# --------------------------------------------------------------------- NumPy re-statements
def _reference(name, params, curv, noise):
    """The textbook updates written out again, step by step, on copies of the weights."""
    ws = [p.data.copy() for p in params]
    decay = [p.regularize for p in params]
    vel = [np.zeros_like(w) for w in ws]
    sq = [np.zeros_like(w) for w in ws]
    for t, step_noise in enumerate(noise, start=1):
        for i, (w, a, n) in enumerate(zip(ws, curv, step_noise)):
            g = a * w + n
            if name == "sgd":
                ws[i] = w - 0.1 * g
            elif name in ("momentum", "nesterov"):
                lr, beta = (0.05, 0.9) if name == "momentum" else (0.05, 0.8)
                if name == "momentum" and decay[i]:
                    g = g + 0.01 * w
                vel[i] = beta * vel[i] + g
                step = g + beta * vel[i] if name == "nesterov" else vel[i]
                ws[i] = w - lr * step
            elif name == "rmsprop":
                if decay[i]:
                    g = g + 0.02 * w
                sq[i] = 0.9 * sq[i] + 0.1 * g**2
                ws[i] = w - 0.01 * g / (np.sqrt(sq[i]) + 1e-8)
            else:  # adam, adamw
                if name == "adam" and decay[i]:
                    g = g + 0.01 * w
                if name == "adamw" and decay[i]:
                    w = w - 0.01 * 0.1 * w
                vel[i] = 0.9 * vel[i] + 0.1 * g
                sq[i] = 0.999 * sq[i] + 0.001 * g**2
                m_hat, v_hat = vel[i] / (1 - 0.9**t), sq[i] / (1 - 0.999**t)
                ws[i] = w - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)
    return ws


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_matches_numpy_restatement(name):
    params, curv = quadratic(1)
    noise = make_noise(2, 6, [p.shape for p in params])
    expected = _reference(name, params, curv, noise)
    opt = OPTIMIZERS[name](params)
    for step_noise in noise:
        set_grads(params, curv, step_noise)
        opt.step()
    for p, e in zip(params, expected):
        np.testing.assert_allclose(p.data, e, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------- torch.optim
TORCH_CASES = [
    ("sgd-plain", lambda ps: optim.SGD(ps, lr=0.1), "SGD", {"lr": 0.1}),
    (
        "sgd-momentum",
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
        "SGD",
        {"lr": 0.05, "momentum": 0.9},
    ),
    (
        "sgd-nesterov",
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    ),
    (
        "sgd-decay",
        lambda ps: optim.SGD(ps, lr=0.05, momentum=0.5, weight_decay=0.1),
        "SGD",
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
    ),
    (
        "rmsprop",
        lambda ps: optim.RMSprop(ps, lr=0.01, beta=0.95, eps=1e-6, weight_decay=0.05),
        "RMSprop",
        {"lr": 0.01, "alpha": 0.95, "eps": 1e-6, "weight_decay": 0.05},
    ),
    (
        "adam",
        lambda ps: optim.Adam(ps, lr=0.02, beta1=0.8, beta2=0.99),
        "Adam",
        {"lr": 0.02, "betas": (0.8, 0.99)},
    ),
    (
        "adam-decay",
        lambda ps: optim.Adam(ps, lr=0.02, weight_decay=0.1),
        "Adam",
        {"lr": 0.02, "weight_decay": 0.1},
    ),
    (
        "adamw",
        lambda ps: optim.AdamW(ps, lr=0.02, weight_decay=0.3),
        "AdamW",
        {"lr": 0.02, "weight_decay": 0.3},
    ),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_optim(torch, case):
    _, make, torch_name, torch_kw = case
    params, curv = quadratic(3)
    noise = make_noise(4, 10, [p.shape for p in params])
    tw, tb = (torch.tensor(p.data.copy(), requires_grad=True) for p in params)
    # torch decays everything it is given; our bias has regularize=False, so give torch the
    # bias in a group without weight decay
    groups = [{"params": [tw]}, {"params": [tb]}]
    if "weight_decay" in torch_kw:
        groups[1]["weight_decay"] = 0.0
    topt = getattr(torch.optim, torch_name)(groups, **torch_kw)
    opt = make(params)
    for step_noise in noise:
        set_grads(params, curv, step_noise)
        for tp, a, n in zip((tw, tb), curv, step_noise):
            tp.grad = torch.from_numpy(a * tp.detach().numpy() + n)
        opt.step()
        topt.step()
    for p, tp in zip(params, (tw, tb)):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_param_groups_match_torch(torch):
    params, curv = quadratic(5)
    noise = make_noise(6, 10, [p.shape for p in params])
    tw, tb = (torch.tensor(p.data.copy(), requires_grad=True) for p in params)
    opt = optim.Adam(
        [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.1, "beta1": 0.5}], lr=0.01
    )
    topt = torch.optim.Adam(
        [{"params": [tw]}, {"params": [tb], "lr": 0.1, "betas": (0.5, 0.999)}], lr=0.01
    )
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.1]
    assert opt.param_groups[1]["beta2"] == 0.999  # taken from the optimizer's defaults
    for step_noise in noise:
        set_grads(params, curv, step_noise)
        for tp, a, n in zip((tw, tb), curv, step_noise):
            tp.grad = torch.from_numpy(a * tp.detach().numpy() + n)
        opt.step()
        topt.step()
    for p, tp in zip(params, (tw, tb)):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------- weight decay scope
@pytest.mark.parametrize("cls", [optim.SGD, optim.RMSprop, optim.Adam, optim.AdamW])
def test_weight_decay_skips_params_that_are_not_regularized(cls):
    rng = np.random.default_rng(8)
    bias = Parameter(rng.normal(size=(4,)))  # 1-D: regularize False
    gamma = Parameter(rng.normal(size=(2, 4)), regularize=False)  # e.g. batch-norm scale
    plain_vec = cl.tensor(rng.normal(size=(4,)), requires_grad=True)  # plain 1-D tensor
    weight = Parameter(rng.normal(size=(2, 4)))  # regularized
    plain_mat = cl.tensor(rng.normal(size=(2, 4)), requires_grad=True)  # plain 2-D: decayed
    ps = [bias, gamma, plain_vec, weight, plain_mat]
    copies = [cl.tensor(p.data.copy(), requires_grad=True) for p in ps]
    with_decay = cls(ps, lr=0.01, weight_decay=0.5)
    without = cls(copies, lr=0.01, weight_decay=0.0)
    for _ in range(3):
        for p, c in zip(ps, copies):
            p.grad = p.data.copy()
            c.grad = c.data.copy()
        with_decay.step()
        without.step()
    for p, c in zip(ps[:3], copies[:3]):
        np.testing.assert_array_equal(p.data, c.data)
    for p, c in zip(ps[3:], copies[3:]):
        assert np.abs(p.data).sum() < np.abs(c.data).sum()  # decay shrinks the weights


def test_adamw_decoupled_decay_by_hand():
    # W *= 1 - lr * wd before the Adam step; step 1 of Adam moves each entry by lr * sign(g)
    w = cl.tensor(np.array([[2.0, -4.0]]), requires_grad=True)
    opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
    w.grad = np.array([[1.0, 1.0]])
    opt.step()
    shrunk = np.array([[2.0, -4.0]]) * (1 - 0.1 * 0.5)
    np.testing.assert_allclose(w.data, shrunk - 0.1 / (1 + 1e-8), rtol=1e-12)


# --------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_stays_float32_and_updates_in_place(name):
    params, curv = quadratic(11, dtype=np.float32)
    arrays = [p.data for p in params]
    opt = OPTIMIZERS[name](params)
    for g in opt.param_groups:
        g["lr"] = np.float64(g["lr"])  # a NumPy scalar set by hand must not upcast either
    run(opt, params, curv, make_noise(12, 3, [p.shape for p in params]))
    for p, a in zip(params, arrays):
        assert p.data is a and p.data.dtype == np.float32
        for value in opt.state[p].values():
            assert not isinstance(value, np.ndarray) or value.dtype == np.float32
    for value in opt.state_dict()["state"].values():
        assert value.dtype in (np.float32, np.int64)


def test_float32_matches_float64_closely():
    p64, curv = quadratic(13)
    p32 = [Parameter(p.data.astype(np.float32), regularize=p.regularize) for p in p64]
    noise = make_noise(14, 5, [p.shape for p in p64])
    for params in (p64, p32):
        run(optim.Adam(params, lr=0.01), params, curv, noise)
    for a, b in zip(p32, p64):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-4, atol=1e-5)
