"""conv2d (cnnlab.ops.conv) against three independent oracles: hand-computed numbers, the
nested-loop reference of the course notes (a grid of geometry options, forward and all three
gradients), and PyTorch on hypothesis-generated configurations; plus dtype and graph properties.
These run the kernel the dispatch chooses; tests/kernels holds every kernel, forced, against the
same oracles. Gradient checks and error messages live in the registry, tests/ops/opinfo_conv.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import kernels
from cnnlab.reference.conv import conv_backward, conv_forward


def assert_rel(got, want, rel, what=""):
    """max |got - want| <= rel * max |want| (a norm-relative bound: entries near zero are fine)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got - want), initial=0.0))
    scale = float(np.max(np.abs(want), initial=0.0))
    assert err <= rel * max(scale, 1e-300), f"{what}: max error {err:.3e}, max |want| {scale:.3e}"


def run_conv(x, w, b, gy, **kw):
    """conv2d forward and backward with cotangent gy: (y, gx, gw, gb) as arrays."""
    xt = cl.tensor(x, requires_grad=True)
    wt = cl.tensor(w, requires_grad=True)
    bt = None if b is None else cl.tensor(b, requires_grad=True)
    y = F.conv2d(xt, wt, bt, **kw)
    y.backward(gy)
    return y.numpy(), xt.grad, wt.grad, None if bt is None else bt.grad


def assert_loops_agree(got, z_ref, gy, cache, rel):
    """conv2d's (y, gx, gw, gb) against the loops' forward Z and their three gradients for gy."""
    y, gx, gw, gb = got
    dA, dW, db = conv_backward(gy, cache)
    assert_rel(y, z_ref, rel, "forward")
    assert_rel(gx, dA, rel, "dA_prev")
    assert_rel(gw, dW, rel, "dW")
    assert_rel(gb, db, rel, "db")


# ----------------------------------------------------------------------------- hand-computed
def test_hand_computed_4x4():
    # x[i, j] = 4 i + j, filter [[1, 2], [3, 4]]: Z[i, j] = 40 i + 10 j + 34 (+ b); by hand
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(2, 2, 1, 1)
    y, gx, gw, gb = run_conv(x, w, np.array([0.5]), np.ones((1, 3, 3, 1)))
    np.testing.assert_array_equal(
        y[0, :, :, 0], [[34.5, 44.5, 54.5], [74.5, 84.5, 94.5], [114.5, 124.5, 134.5]]
    )
    np.testing.assert_array_equal(gb, [9.0])
    np.testing.assert_array_equal(gw[:, :, 0, 0], [[45, 54], [81, 90]])
    np.testing.assert_array_equal(
        gx[0, :, :, 0], [[1, 3, 3, 2], [4, 10, 10, 6], [4, 10, 10, 6], [3, 7, 7, 4]]
    )
    y2 = F.conv2d(cl.tensor(x), cl.tensor(w), stride=2, dilation=1).numpy()
    np.testing.assert_array_equal(y2[0, :, :, 0], [[34, 54], [114, 134]])
    y3 = F.conv2d(cl.tensor(x), cl.tensor(w), dilation=2).numpy()
    np.testing.assert_array_equal(y3[0, :, :, 0], [[68, 78], [108, 118]])


# ----------------------------------------------------------------------------- reference grid
STRIDES = [1, 2, 3, (2, 1)]
PADDINGS = [0, 1, (1, 2), "valid", "same", "full"]
DILATIONS = [1, 2]
GROUPS = ["1", "2", "depthwise"]
KERNELS = [(1, 1), (2, 2), (3, 3), (5, 5), (2, 3)]
BIAS = [True, False]
BATCH = [1, 2]
AXES = [STRIDES, PADDINGS, DILATIONS, GROUPS, KERNELS, BIAS, BATCH]


def _pairwise_grid():
    """Every stride x padding x dilation combination (48), the other options chosen greedily so
    that every pair of values of any two options occurs in at least one case (all-pairs)."""
    idx = [range(len(a)) for a in AXES]
    uncovered = {
        (a, i, b, j)
        for a, b in itertools.combinations(range(len(AXES)), 2)
        for i in idx[a]
        for j in idx[b]
    }

    def pairs(case):
        return {(a, case[a], b, case[b]) for a, b in itertools.combinations(range(len(case)), 2)}

    cases = []
    for base in itertools.product(*idx[:3]):
        best = max(
            itertools.product(*idx[3:]), key=lambda rest: len(pairs(base + rest) & uncovered)
        )
        cases.append(base + best)
        uncovered -= pairs(base + best)
    while uncovered:  # top up (not needed with these option lists, kept for safety)
        best = max(itertools.product(*idx), key=lambda c: len(pairs(c) & uncovered))
        cases.append(best)
        uncovered -= pairs(best)
    return [tuple(AXES[a][i] for a, i in enumerate(c)) for c in cases]


GRID = _pairwise_grid()


def _case_id(c):
    s, p, d, g, (kh, kw), bias, n = c
    return f"s{s}-p{p}-d{d}-g{g}-k{kh}x{kw}-b{int(bias)}-n{n}".replace(" ", "")


def test_grid_covers_every_pair_of_options():
    for a, b in itertools.combinations(range(len(AXES)), 2):
        seen = {(case[a], case[b]) for case in GRID}
        assert seen == set(itertools.product(AXES[a], AXES[b])), (a, b)


@pytest.mark.parametrize(
    "stride,padding,dilation,groups,kernel,bias,batch",
    GRID,
    ids=[_case_id(c) for c in GRID],
)
def test_matches_reference(stride, padding, dilation, groups, kernel, bias, batch):
    c_in = 4
    g, c_out = {"1": (1, 3), "2": (2, 4), "depthwise": (c_in, c_in)}[groups]
    case = (stride, padding, dilation, groups, kernel, bias, batch)
    rng = np.random.default_rng(GRID.index(case))  # a fixed seed per case
    x = rng.normal(size=(batch, 11, 9, c_in))  # odd sizes; a 5x5 kernel, dilation 2 still fits
    w = rng.normal(size=(*kernel, c_in // g, c_out))
    b = rng.normal(size=c_out) if bias else None
    z_ref, cache = conv_forward(x, w, b, stride, padding, dilation, g)
    gy = rng.normal(size=z_ref.shape)
    y, gx, gw, gb = run_conv(
        x, w, b, gy, stride=stride, padding=padding, dilation=dilation, groups=g
    )
    assert y.dtype == np.float64
    assert_rel(y, z_ref, 1e-10, "forward")
    dA, dW, db = conv_backward(gy, cache)
    assert_rel(gx, dA, 1e-10, "dA_prev")
    assert_rel(gw, dW, 1e-10, "dW")
    if bias:
        assert_rel(gb, db, 1e-10, "db")


# ----------------------------------------------------------------------------- PyTorch oracle
def _explicit_pads(padding, hw, k, s, d):
    """((top, bottom), (left, right)) written out independently of cnnlab.ops.geometry."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "full":
        return tuple((di * (ki - 1), di * (ki - 1)) for ki, di in zip(k, d))
    if padding == "same":  # TensorFlow: out = ceil(n / s), the odd one at the bottom/right
        out = []
        for n, ki, si, di in zip(hw, k, s, d):
            total = max((math.ceil(n / si) - 1) * si + di * (ki - 1) + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return tuple(out)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph), (pw, pw)


@st.composite
def conv_configs(draw):
    groups = draw(st.sampled_from([1, 2, 3]))
    c_in = groups * draw(st.integers(1, 6 // groups))
    c_out = groups * draw(st.integers(1, 6 // groups))
    kind = draw(st.sampled_from(["int", "pair", "valid", "same", "full"]))
    if kind == "int":
        padding = draw(st.integers(0, 2))
    elif kind == "pair":
        padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    else:
        padding = kind
    return {
        "n": draw(st.integers(1, 3)),
        "hw": (draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        "c_in": c_in,
        "c_out": c_out,
        "groups": groups,
        "k": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "s": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "d": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "padding": padding,
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from([np.float64, np.float32])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs())
def test_matches_pytorch(torch, cfg):
    k, s, d, hw = cfg["k"], cfg["s"], cfg["d"], cfg["hw"]
    pads = _explicit_pads(cfg["padding"], hw, k, s, d)
    for n, (p0, p1), ki, di in zip(hw, pads, k, d):
        assume(n + p0 + p1 >= di * (ki - 1) + 1)  # the kernel must fit the padded input
    dtype = cfg["dtype"]
    rng = np.random.default_rng(cfg["seed"])
    x = rng.normal(size=(cfg["n"], *hw, cfg["c_in"])).astype(dtype)
    w = rng.normal(size=(*k, cfg["c_in"] // cfg["groups"], cfg["c_out"])).astype(dtype)
    b = rng.normal(size=cfg["c_out"]).astype(dtype) if cfg["bias"] else None

    # PyTorch, NCHW / OIHW
    # (contiguous copies: torch's CPU conv backward rejects a strided weight)
    xt = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    wt = torch.tensor(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    padding = cfg["padding"]
    xin = xt
    if padding == "same" and s == (1, 1):
        tpad = "same"  # torch's own 'same' (stride 1 only)
    elif padding == "same":
        (pt, pb), (pl, pr) = pads
        xin = torch.nn.functional.pad(xt, (pl, pr, pt, pb))
        tpad = 0
    elif padding == "full":
        tpad = (pads[0][0], pads[1][0])
    else:
        tpad = padding
    yt = torch.nn.functional.conv2d(
        xin, wt, bt, stride=s, padding=tpad, dilation=d, groups=cfg["groups"]
    )
    gy = rng.normal(size=yt.shape).astype(dtype)  # NCHW cotangent
    yt.backward(torch.tensor(gy))
    if dtype == np.float32:
        # torch 2.13's float32 CPU kernel returns garbage for some shapes (seen: one input
        # channel, output width 1, stride_w > 1, stride_h 1). When its float32 result disagrees
        # with its own float64 result, compare with the float64 one instead.
        x64, w64 = (torch.tensor(t.detach().numpy().astype(np.float64), requires_grad=True)
                    for t in (xt, wt))
        b64 = None if bt is None else torch.tensor(b.astype(np.float64), requires_grad=True)
        if xin is not xt:
            (pt, pb), (pl, pr) = pads
            xin64 = torch.nn.functional.pad(x64, (pl, pr, pt, pb))
        else:
            xin64 = x64
        y64 = torch.nn.functional.conv2d(
            xin64, w64, b64, stride=s, padding=tpad, dilation=d, groups=cfg["groups"]
        )
        y64.backward(torch.tensor(gy.astype(np.float64)))
        ref = y64.detach().numpy()
        if np.abs(yt.detach().numpy() - ref).max() > 1e-3 * max(np.abs(ref).max(), 1.0):
            yt, xt, wt, bt = y64, x64, w64, b64

    y, gx, gw, gb = run_conv(
        x,
        w,
        b,
        gy.transpose(0, 2, 3, 1),
        stride=s,
        padding=padding,
        dilation=d,
        groups=cfg["groups"],
    )
    rel = 1e-9 if dtype == np.float64 else 1e-4
    assert y.dtype == dtype and gx.dtype == dtype and gw.dtype == dtype
    assert_rel(y, yt.detach().numpy().transpose(0, 2, 3, 1), rel, "forward")
    assert_rel(gx, xt.grad.numpy().transpose(0, 2, 3, 1), rel, "gx")
    assert_rel(gw, wt.grad.numpy().transpose(2, 3, 1, 0), rel, "gw")
    if b is not None:
        assert gb.dtype == dtype
        assert_rel(gb, bt.grad.numpy(), rel, "gb")


# ----------------------------------------------------------------------------- properties
@pytest.mark.parametrize(
    "w_shape,kw",
    [
        ((3, 3, 4, 5), {}),
        ((2, 2, 2, 6), {"groups": 2, "stride": 2, "padding": "same"}),
        ((2, 3, 1, 4), {"groups": 4, "dilation": 2, "padding": "full"}),
        ((1, 1, 4, 3), {}),
    ],
)
def test_float32_stays_float32(w_shape, kw):
    rng = np.random.default_rng(5)
    x64, w64 = rng.normal(size=(2, 7, 6, 4)), rng.normal(size=w_shape)
    b64 = rng.normal(size=w_shape[-1])
    z_ref, cache = conv_forward(
        x64,
        w64,
        b64,
        kw.get("stride", 1),
        kw.get("padding", 0),
        kw.get("dilation", 1),
        kw.get("groups", 1),
    )
    gy = rng.normal(size=z_ref.shape)
    y, gx, gw, gb = run_conv(
        x64.astype(np.float32),
        w64.astype(np.float32),
        b64.astype(np.float32),
        gy.astype(np.float32),
        **kw,
    )
    assert y.dtype == gx.dtype == gw.dtype == gb.dtype == np.float32
    assert_loops_agree((y, gx, gw, gb), z_ref, gy, cache, 1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_1x1_conv_is_a_per_pixel_dense_layer(dtype):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 5, 4, 3)).astype(dtype)
    w = rng.normal(size=(1, 1, 3, 6)).astype(dtype)
    b = rng.normal(size=6).astype(dtype)
    gy = rng.normal(size=(2, 5, 4, 6)).astype(dtype)
    y, gx, gw, gb = run_conv(x, w, b, gy)
    rel = 1e-12 if dtype == np.float64 else 1e-5
    x2, gy2 = x.reshape(-1, 3).astype(np.float64), gy.reshape(-1, 6).astype(np.float64)
    w2 = w[0, 0].astype(np.float64)
    assert_rel(y, (x2 @ w2 + b).reshape(2, 5, 4, 6), rel, "y = x W + b")
    assert_rel(gx, (gy2 @ w2.T).reshape(x.shape), rel, "gx = gy W^T")
    assert_rel(gw, (x2.T @ gy2).reshape(w.shape), rel, "gW = x^T gy")
    assert_rel(gb, gy2.sum(axis=0), rel, "gb = sum gy")


def test_1x1_conv_stride_2_is_dense_on_every_other_pixel():
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(1, 5, 6, 3)), rng.normal(size=(1, 1, 3, 2))
    gy = rng.normal(size=(1, 3, 3, 2))
    y, gx, gw, _ = run_conv(x, w, None, gy, stride=2)
    sub = x[:, ::2, ::2, :]
    assert_rel(y, sub @ w[0, 0], 1e-12, "y")
    want_gx = np.zeros_like(x)
    want_gx[:, ::2, ::2, :] = gy @ w[0, 0].T
    assert_rel(gx, want_gx, 1e-12, "gx")  # skipped rows and columns get exactly zero
    assert_rel(gw[0, 0], sub.reshape(-1, 3).T @ gy.reshape(-1, 2), 1e-12, "gw")


def test_no_graph_without_requires_grad():
    rng = np.random.default_rng(8)
    x, w, b = (cl.tensor(rng.normal(size=s)) for s in [(1, 5, 5, 2), (3, 3, 2, 2), (2,)])
    y = F.conv2d(x, w, b, padding=1)
    assert not y.requires_grad and y.is_leaf
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_no_graph_under_no_grad():
    rng = np.random.default_rng(9)
    x = cl.tensor(rng.normal(size=(1, 5, 5, 2)), requires_grad=True)
    w = cl.tensor(rng.normal(size=(3, 3, 2, 2)), requires_grad=True)
    with cl.no_grad():
        y = F.conv2d(x, w, stride=2)
    assert not y.requires_grad and y.is_leaf
    assert F.conv2d(x, w, stride=2).requires_grad  # and back on afterwards


def test_input_gradient_skipped_when_x_needs_none(monkeypatch):
    rng = np.random.default_rng(10)
    x_np, w_np = rng.normal(size=(2, 6, 5, 2)), rng.normal(size=(3, 2, 2, 4))
    x = cl.tensor(x_np)
    w = cl.tensor(w_np, requires_grad=True)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the input gradient was computed although x needs none")

    monkeypatch.setattr(kernels.Window, "input_grad", must_not_run)  # stride 2: the window matrix
    y = F.conv2d(x, w, stride=2, padding="same")
    gy = rng.normal(size=y.shape)
    y.backward(gy)
    assert x.grad is None
    _, cache = conv_forward(x_np, w_np, None, 2, "same")
    assert_rel(w.grad, conv_backward(gy, cache)[1], 1e-10, "dW")


def test_weight_gradient_skipped_when_w_needs_none():
    rng = np.random.default_rng(11)
    x_np, w_np = rng.normal(size=(1, 5, 5, 4)), rng.normal(size=(2, 2, 2, 4))
    x = cl.tensor(x_np, requires_grad=True)
    w = cl.tensor(w_np)
    y = F.conv2d(x, w, groups=2, dilation=2)
    gy = rng.normal(size=y.shape)
    y.backward(gy)
    assert w.grad is None
    _, cache = conv_forward(x_np, w_np, None, 1, 0, 2, 2)
    assert_rel(x.grad, conv_backward(gy, cache)[0], 1e-10, "dA_prev")


def test_inputs_are_not_modified():
    rng = np.random.default_rng(12)
    x, w, b = rng.normal(size=(2, 5, 5, 3)), rng.normal(size=(3, 3, 3, 2)), rng.normal(size=2)
    copies = [a.copy() for a in (x, w, b)]
    run_conv(x, w, b, rng.normal(size=(2, 3, 3, 2)), stride=1)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


def test_non_contiguous_inputs():
    # arrays arriving from NCHW / OIHW by transposition are strided views, not copies
    rng = np.random.default_rng(13)
    x_nchw, w_oihw = rng.normal(size=(2, 4, 7, 6)), rng.normal(size=(6, 2, 3, 2))
    x, w = x_nchw.transpose(0, 2, 3, 1), w_oihw.transpose(2, 3, 1, 0)
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    kw = {"stride": (2, 1), "padding": (1, 0), "groups": 2}
    z_ref, cache = conv_forward(x, w, None, kw["stride"], kw["padding"], 1, kw["groups"])
    gy = rng.normal(size=z_ref.shape)
    y, gx, gw, _ = run_conv(x, w, None, gy, **kw)
    dA, dW, _ = conv_backward(gy, cache)
    assert_rel(y, z_ref, 1e-10, "forward")
    assert_rel(gx, dA, 1e-10, "gx")
    assert_rel(gw, dW, 1e-10, "gw")


def test_numpy_integer_settings_are_accepted():
    # settings read from arrays or configs are often NumPy integers; they mean what ints mean
    rng = np.random.default_rng(14)
    x, w = rng.normal(size=(1, 6, 6, 4)), rng.normal(size=(3, 3, 2, 4))
    want, _ = conv_forward(x, w, None, 2, 1, 2, 2)
    i = np.int64
    y = F.conv2d(x, w, stride=i(2), padding=i(1), dilation=i(2), groups=i(2))
    assert_rel(y.numpy(), want, 1e-10, "forward")
