"""Every convolution kernel, forced with ``cnnlab.kernels.use``, against the nested loops of the
course notes (float64: forward and all three gradients) for every geometry of a grid it accepts,
in chunks of one or two images, on 1 and 3 threads; against PyTorch in float32 on
hypothesis-drawn geometries; with an inf or NaN in A_prev or dZ (the kernels that mix values
step aside for the window matrix, which keeps it in its windows); and the prepared (inference)
kernel against the loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import kernels
from cnnlab.kernels.banded import band_width
from cnnlab.ops.geometry import pair, resolve_padding
from cnnlab.reference.conv import conv_backward, conv_forward

TRAINING = ["window", "banded", "winograd", "winograd_rows"]
# float64 tolerance against the loops, relative to max |want|: the window matrix and banded
# rows sum the same products in another order; Winograd's transforms add ~10x rounding (1e-14)
REL64 = {"window": 1e-10, "banded": 1e-10, "winograd": 1e-10, "winograd_rows": 1e-10}
# float32 against PyTorch: F(4x4, 3x3) rounds up to ~1e-5 of max |Z| (kernels/winograd.py)
REL32 = {"window": 2e-5, "banded": 2e-5, "winograd": 1e-4, "winograd_rows": 1e-4}


def assert_rel(got, want, rel, what=""):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.max(np.abs(got - want), initial=0.0))
    scale = float(np.max(np.abs(want), initial=0.0))
    assert err <= rel * max(scale, 1e-300), f"{what}: max error {err:.3e}, max |want| {scale:.3e}"


def geometry(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, dtype=np.float64):
    s, d = pair(stride, "stride", "t"), pair(dilation, "dilation", "t")
    pads = resolve_padding(padding, x_shape[1:3], w_shape[:2], s, d, "t")
    return kernels.Geometry(tuple(x_shape), tuple(w_shape), s, pads, d, groups, np.dtype(dtype))


def run(name, x, w, b, gy, chunk_images=None, **kw):
    """conv2d with kernel ``name`` forced: (kernel taken, y, dA_prev, dW, db)."""
    xt, wt = cl.tensor(x, requires_grad=True), cl.tensor(w, requires_grad=True)
    bt = None if b is None else cl.tensor(b, requires_grad=True)
    with kernels.use(name, chunk_images=chunk_images):
        y = F.conv2d(xt, wt, bt, **kw)
        y.backward(gy)
    return y._ctx.kernel.name, y.numpy(), xt.grad, wt.grad, None if bt is None else bt.grad


# stride, padding, dilation, groups, C_in, C_out, kernel: shapes every kernel meets, and some
# only the window matrix accepts
GRID = [
    (1, 1, 1, 1, 4, 6, (3, 3)),  # 3x3 'same'-like: all three
    (1, "valid", 1, 1, 3, 5, (3, 3)),
    (1, "full", 1, 1, 2, 3, (3, 3)),  # padding 2
    (1, (1, 0), 1, 1, 5, 4, (3, 3)),  # uneven padding
    (1, "same", 1, 1, 1, 6, (5, 5)),  # LeNet-5's first: banded, one channel
    (1, "valid", 1, 1, 6, 16, (5, 5)),  # LeNet-5's second: banded
    (1, 1, 2, 1, 3, 4, (3, 3)),  # dilated: banded, not Winograd
    (1, "same", 1, 1, 1, 3, (3, 2)),  # one channel, even kernel width
    (1, 1, 1, 1, 2, 6, (3, 2)),  # C_out >= 2 C_in: the window's fold
    (1, "valid", 2, 1, 9, 10, (2, 3)),  # the window's flipped kernel, dilated
    (2, "same", 1, 1, 3, 4, (3, 3)),  # stride 2: the window's col2im
    ((2, 1), 2, 1, 2, 4, 6, (3, 3)),  # groups, an uneven stride
    (1, "valid", 1, 4, 4, 4, (3, 3)),  # depthwise
    (1, 0, 1, 1, 12, 20, (1, 1)),  # 1x1
]


def _grid_id(case):
    s, p, d, g, ci, co, (kh, kw) = case
    return f"s{s}-p{p}-d{d}-g{g}-{ci}to{co}-k{kh}x{kw}".replace(" ", "")


CASES = [(name, case) for name, case in itertools.product(TRAINING, GRID)
         if kernels.KERNELS[name].eligible(
             geometry((5, 9, 10, case[4]), (*case[6], case[4] // case[3], case[5]), case[0],
                      case[1], case[2], case[3]))]


def test_every_kernel_meets_several_geometries():
    taken = {name: sum(n == name for n, _ in CASES) for name in TRAINING}
    assert taken == {"window": len(GRID), "banded": 7, "winograd": 4, "winograd_rows": 4}


@pytest.mark.parametrize("threads", [1, 3], indirect=True)
@pytest.mark.parametrize("chunk_images", [1, 2])
@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{_grid_id(c)}" for n, c in CASES])
def test_kernel_matches_the_loops(threads, chunk_images, name, case):
    """Forward, dA_prev, dW and db of the forced kernel: 5 images of 9x10, in chunks of one or
    two (a tail of one), on 1 or 3 threads."""
    stride, padding, dilation, groups, c_in, c_out, (kh, kw) = case
    rng = np.random.default_rng(c_in * 100 + c_out)
    x = rng.normal(size=(5, 9, 10, c_in))
    w = rng.normal(size=(kh, kw, c_in // groups, c_out))
    b = rng.normal(size=c_out)
    z, cache = conv_forward(x, w, b, stride, padding, dilation, groups)
    gy = rng.normal(size=z.shape)
    taken, y, gx, gw, gb = run(name, x, w, b, gy, chunk_images, stride=stride, padding=padding,
                               dilation=dilation, groups=groups)
    assert taken == name
    d_a, d_w, d_b = conv_backward(gy, cache)
    for got, want, what in [(y, z, "Z"), (gx, d_a, "dA_prev"), (gw, d_w, "dW"), (gb, d_b, "db")]:
        assert_rel(got, want, REL64[name], what)


@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("needs", list(itertools.product([False, True], repeat=3)))
def test_each_set_of_gradients(name, needs):
    """Only the gradients asked for are computed, each as the loops give it (the banded method
    takes db from its product when dW is computed too, else from dZ)."""
    need_x, need_w, need_b = needs
    rng = np.random.default_rng(sum(needs))
    x_np, w_np, b_np = rng.normal(size=(3, 9, 10, 4)), rng.normal(size=(3, 3, 4, 6)), \
        rng.normal(size=6)
    z, cache = conv_forward(x_np, w_np, b_np, 1, 1)
    gy = rng.normal(size=z.shape)
    x, w = cl.tensor(x_np, requires_grad=need_x), cl.tensor(w_np, requires_grad=need_w)
    b = cl.tensor(b_np, requires_grad=need_b)
    with kernels.use(name, chunk_images=1):
        y = F.conv2d(x, w, b, padding=1)
        assert_rel(y.numpy(), z, REL64[name], "Z")
        if not y.requires_grad:
            return
        assert y._ctx.kernel.name == name
        y.backward(gy)
    for tensor, want, what in zip((x, w, b), conv_backward(gy, cache), ("dA", "dW", "db")):
        if tensor.requires_grad:
            assert_rel(tensor.grad, want, REL64[name], what)
        else:
            assert tensor.grad is None, what


@pytest.mark.parametrize(
    "width,padding,dilation,kernel,c_in,c_out,classes",
    [
        (10, "same", 1, (3, 3), 2, 5, 2),  # OW 10, B 5, Q 7: two classes of blocks
        (14, "valid", 1, (5, 5), 6, 16, 2),  # LeNet-5's second convolution: B 5, Q 9
        (12, "same", 1, (3, 4), 1, 6, 2),  # an even kernel width, one channel: B 6, Q 9
        (13, "valid", 3, (2, 3), 3, 4, 7),  # OW 7 (prime), B 1, Q 7: seven classes
        (11, 1, 2, (3, 3), 4, 3, 3),  # dilated: OW 9, B 3, Q 7: three classes
        (5, "valid", 1, (3, 3), 2, 3, 2),  # one block per row, fewer blocks than classes
    ],
)
@pytest.mark.parametrize("threads", [1, 3], indirect=True)
def test_banded_block_classes_match_the_loops(threads, width, padding, dilation, kernel, c_in,
                                              c_out, classes):
    """The banded input gradient adds its blocks in ceil(Q/B) classes: each count of classes
    against the loops, chunks of two images."""
    kh, kw = kernel
    rng = np.random.default_rng(width)
    x, w, b = rng.normal(size=(5, 9, width, c_in)), rng.normal(size=(kh, kw, c_in, c_out)), \
        rng.normal(size=c_out)
    z, cache = conv_forward(x, w, b, 1, padding, dilation, 1)
    band = band_width(z.shape[2], kw)
    assert -(-(band + dilation * (kw - 1)) // band) == classes
    gy = rng.normal(size=z.shape)
    taken, *got = run("banded", x, w, b, gy, 2, padding=padding, dilation=dilation)
    assert taken == "banded"
    for g, want, what in zip(got, (z, *conv_backward(gy, cache)), ("Z", "dA", "dW", "db")):
        assert_rel(g, want, 1e-10, what)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_kernel_matches_pytorch_float32(torch, data):
    """float32, geometries drawn for each kernel from what it accepts, against PyTorch."""
    name = data.draw(st.sampled_from(TRAINING), "kernel")
    kh, kw = (3, 3) if name.startswith("winograd") else data.draw(
        st.tuples(st.integers(1, 5), st.integers(3 if name == "banded" else 1, 5)), "kernel size")
    strided = name == "window" and data.draw(st.booleans(), "strided")
    stride = data.draw(st.integers(1, 3), "stride") if strided else 1
    dilation = 1 if name.startswith("winograd") else data.draw(st.integers(1, 2), "dilation")
    c_in = data.draw(st.integers(1, 8 if name == "banded" else 12), "C_in")
    c_out = data.draw(st.integers(1, 16), "C_out")
    pad = data.draw(st.integers(0, 2), "padding")
    n = data.draw(st.integers(1, 5), "batch")
    h = data.draw(st.integers(dilation * (kh - 1) + 1, 13), "H")
    wd = data.draw(st.integers(dilation * (kw - 1) + 1, 13), "W")
    seed = data.draw(st.integers(0, 2**16), "seed")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, h, wd, c_in)).astype(np.float32)
    w = (rng.normal(size=(kh, kw, c_in, c_out)) / np.sqrt(kh * kw * c_in)).astype(np.float32)
    b = rng.normal(size=c_out).astype(np.float32)
    out_h = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    out_w = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    gy = rng.normal(size=(n, out_h, out_w, c_out)).astype(np.float32)
    taken, y, gx, gw, gb = run(name, x, w, b, gy, data.draw(st.sampled_from([None, 1, 2])),
                               stride=stride, padding=pad, dilation=dilation)
    assert taken == name

    tx = torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), requires_grad=True)
    tw = torch.tensor(np.ascontiguousarray(w.transpose(3, 2, 0, 1)), requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    tz = torch.nn.functional.conv2d(tx, tw, tb, stride, pad, dilation)
    tz.backward(torch.tensor(np.ascontiguousarray(gy.transpose(0, 3, 1, 2))))
    want = [tz.detach().numpy().transpose(0, 2, 3, 1), tx.grad.numpy().transpose(0, 2, 3, 1),
            tw.grad.numpy().transpose(2, 3, 1, 0), tb.grad.numpy()]
    for got, ref, what in zip((y, gx, gw, gb), want, ("Z", "dA", "dW", "db")):
        assert got.dtype == np.float32, what
        assert_rel(got, ref, REL32[name], what)


def assert_same_non_finite(got, want, what):
    """NaN, +inf and -inf in the same places; the finite values agree."""
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(got), kind(want), f"{what}: {kind.__name__}")
    finite = np.isfinite(want)
    assert_rel(got[finite], want[finite], 1e-10, what)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("threads", [1, 3], indirect=True)
def test_non_finite_input_stays_in_its_windows(threads, name, bad):
    """An inf or NaN in A_prev reaches only the outputs (and dW) whose windows hold it, as in
    the loops: banded rows and Winograd (whose transforms mix a tile) take the window matrix
    for that call; finite inputs keep the forced kernel."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 10, 10, 4))
    w, b = rng.normal(size=(3, 3, 4, 6)), rng.normal(size=6)
    x_bad = x.copy()
    x_bad[1, 6, 3, 0] = bad
    z, cache = conv_forward(x_bad, w, b, 1, 1)
    gy = rng.normal(size=z.shape)
    taken, y, gx, gw, gb = run(name, x_bad, w, b, gy, 1, padding=1)
    assert taken == "window"
    assert_same_non_finite(y, z, "Z")
    assert np.isfinite(z[[0, 2]]).all() and not np.isfinite(z[1]).all()
    for got, want, what in zip((gx, gw, gb), conv_backward(gy, cache), ("dA", "dW", "db")):
        assert_same_non_finite(got, want, what)
    assert run(name, x, w, b, gy, 1, padding=1)[0] == name


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("need_x", [True, False])
@pytest.mark.parametrize("threads", [1, 3], indirect=True)
def test_non_finite_output_gradient_stays_in_its_windows(threads, name, bad, need_x):
    """An inf or NaN in dZ reaches only the input pixels its window covers, and dW and db as
    the loops give them (one image a chunk, 1 or 3 threads)."""
    rng = np.random.default_rng(7)
    x_np = rng.normal(size=(3, 10, 10, 4))
    w_np, b_np = rng.normal(size=(3, 3, 4, 6)), rng.normal(size=6)
    z, cache = conv_forward(x_np, w_np, b_np, 1, "same")
    gy = rng.normal(size=z.shape)
    gy[1, 4, 7, 3] = bad
    x = cl.tensor(x_np, requires_grad=need_x)
    w, b = cl.tensor(w_np, requires_grad=True), cl.tensor(b_np, requires_grad=True)
    with kernels.use(name, chunk_images=1):
        y = F.conv2d(x, w, b, padding="same")
        assert y._ctx.kernel.name == name
        y.backward(gy)
    d_a, d_w, d_b = conv_backward(gy, cache)
    assert_same_non_finite(w.grad, d_w, "dW")
    assert_same_non_finite(b.grad, d_b, "db")
    if need_x:
        assert_same_non_finite(x.grad, d_a, "dA_prev")
        assert np.isfinite(x.grad[[0, 2]]).all() and not np.isfinite(x.grad[1]).all()
    else:
        assert x.grad is None
