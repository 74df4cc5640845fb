"""cnnlab.kernels' dispatch: the rule's choice per geometry, ``use`` forcing a kernel (the
window matrix where the forced one is not eligible), its checks, chunk sizes, that a context
is per thread; and the prepared (inference) kernel against the nested loops."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import cnnlab as cl
from cnnlab import functional as F
from cnnlab import kernels
from cnnlab.kernels import base
from cnnlab.reference.conv import conv_forward
from tests.kernels.test_kernels import assert_rel, geometry


@pytest.mark.parametrize(
    "x_shape,w_shape,options,dtype,want",
    [
        ((64, 32, 32, 16), (3, 3, 16, 16), {"padding": 1}, np.float32, "winograd_rows"),
        ((64, 16, 16, 32), (3, 3, 32, 32), {"padding": 1}, np.float32, "winograd"),
        ((64, 32, 32, 16), (3, 3, 16, 32), {"padding": 1}, np.float32, "winograd_rows"),
        ((64, 32, 32, 4), (3, 3, 4, 16), {"padding": 1}, np.float32, "banded"),  # < 8 in
        ((64, 8, 8, 64), (3, 3, 64, 64), {"padding": 1}, np.float32, "winograd"),
        ((64, 8, 8, 64), (3, 3, 64, 64), {"padding": 1}, np.float64, "window"),  # float64
        ((64, 32, 32, 3), (3, 3, 3, 16), {"padding": 1}, np.float32, "banded"),  # few channels
        ((128, 28, 28, 1), (5, 5, 1, 6), {"padding": 2}, np.float32, "banded"),  # LeNet-5
        ((64, 32, 32, 16), (3, 3, 16, 32), {"stride": 2, "padding": 1}, np.float32, "window"),
        ((64, 16, 16, 32), (3, 3, 32, 32), {"padding": 1, "dilation": 2}, np.float32, "window"),
        ((64, 16, 16, 32), (3, 3, 8, 32), {"padding": 1, "groups": 4}, np.float32, "window"),
        ((64, 16, 16, 32), (1, 1, 32, 64), {}, np.float32, "window"),
    ],
)
def test_the_rule_per_geometry(x_shape, w_shape, options, dtype, want):
    geom = geometry(x_shape, w_shape, dtype=dtype, **options)
    assert kernels.select(geom, np.zeros(1, dtype)).name == want


def test_use_forces_where_eligible_and_falls_back_to_the_window_matrix():
    x = cl.tensor(np.ones((1, 6, 6, 4)), requires_grad=True)
    w = cl.tensor(np.ones((3, 3, 4, 4)))
    with kernels.use("winograd"):
        assert kernels.forced() == ("winograd",)
        assert F.conv2d(x, w, padding=1)._ctx.kernel.name == "winograd"
        assert F.conv2d(x, w, stride=2)._ctx.kernel.name == "window"  # not eligible
    with kernels.use("winograd", "banded"):  # in order of preference
        assert F.conv2d(x, w, dilation=2, padding=2)._ctx.kernel.name == "banded"
    assert kernels.forced() is None
    assert F.conv2d(x, w, padding=1)._ctx.kernel.name == "banded"  # the rule: float64, 4 channels


@pytest.mark.parametrize(
    "args,kwargs,match",
    [
        (("fft",), {}, r"kernels.use: unknown kernel 'fft'; expected one of banded, prepared, "
                       r"window, winograd, winograd_rows"),
        (("window",), {"chunk_images": 0}, r"chunk_images must be an int >= 1 or None; received 0"),
        ((), {"chunk_images": 1.5}, r"chunk_images must be an int >= 1 or None; received 1.5"),
    ],
)
def test_use_checks_its_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        with kernels.use(*args, **kwargs):
            pass


def test_chunk_images_sets_the_chunks_and_nests():
    assert base.chunks(5, 1) == [slice(0, 5)]  # by bytes: one chunk
    with kernels.use(chunk_images=2):
        assert base.chunks(5, 1) == [slice(0, 2), slice(2, 4), slice(4, 5)]
        with kernels.use("window"):
            assert kernels.forced() == ("window",)
            assert len(base.chunks(5, 1)) == 3  # kept from the outer context
        assert kernels.forced() is None


def test_a_forced_kernel_is_per_thread():
    seen = []
    with kernels.use("window"):
        other = threading.Thread(target=lambda: seen.append(kernels.forced()))
        other.start()
        other.join()
    assert seen == [None]


def test_every_kernel_says_what_it_keeps():
    for cls in kernels.KERNELS.values():
        assert isinstance(cls.keeps, str) and cls.keeps and cls.keeps != base.Kernel.keeps


# ----------------------------------------------------------------------------- prepared
@pytest.mark.parametrize(
    "stride,padding,dilation,groups,c_in,c_out,kernel,path",
    [
        (1, "same", 1, 1, 1, 6, (5, 5), "band"),  # LeNet-5's first layer: banded, padded
        (1, "valid", 1, 1, 6, 16, (5, 5), "band"),  # LeNet-5's second: banded, unpadded
        (1, 1, 2, 1, 3, 4, (3, 3), "band"),  # banded, dilated
        (1, 1, 1, 1, 16, 16, (3, 3), "cols"),  # ResNet-20's 3x3: the window matrix
        (2, 1, 1, 1, 9, 12, (3, 3), "cols"),  # strided
        ((2, 1), "same", (1, 2), 1, 10, 3, (2, 3), "cols"),  # uneven stride, dilated, 'same'
        (2, "valid", 1, 1, 12, 20, (1, 1), "cols"),  # a 1x1 projection with stride
        (1, 1, 1, 1, 1, 20, (3, 3), "forward"),  # one channel, too many filters to band
        (1, 1, 1, 2, 4, 6, (3, 3), "forward"),  # groups
    ],
)
@pytest.mark.parametrize("bias,relu", [(True, False), (False, True), (True, True)])
def test_prepared_matches_reference(stride, padding, dilation, groups, c_in, c_out, kernel,
                                    path, bias, relu):
    """kernels.prepare (the Predictor's convolution) against the loops: two calls with
    different inputs (the buffers are reused), the first call's result left intact."""
    kh, kw = kernel
    rng = np.random.default_rng(c_in * c_out)
    x1, x2 = rng.normal(size=(2, 2, 9, 10, c_in))
    w = rng.normal(size=(kh, kw, c_in // groups, c_out))
    b = rng.normal(size=c_out) if bias else None
    geom = geometry(x1.shape, w.shape, stride, padding, dilation, groups)
    assert kernels.Prepared.eligible(geom) == (path != "forward")
    assert kernels.Banded.eligible(geom) == (path == "band")
    run = kernels.prepare(geom, w, b, relu)
    assert run.__name__ == {"band": "run", "cols": "run", "forward": "run_forward"}[path]
    got1 = run(x1)
    kept = got1.copy()
    got2 = run(x2)
    for x, got in ((x1, got1), (x2, got2)):
        want, _ = conv_forward(x, w, b, stride, padding, dilation, groups)
        assert_rel(got, np.maximum(want, 0) if relu else want, 1e-10, path)
    np.testing.assert_array_equal(got1, kept)


def test_prepared_walks_chunks_when_the_batch_is_large():
    """A batch that needs several chunks runs each call's selected kernel (with its threads)."""
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(4, 6, 6, 5)), rng.normal(size=(3, 3, 5, 7))
    with kernels.use(chunk_images=1):
        run = kernels.prepare(geometry(x.shape, w.shape, 1, 1), w, None, True)
        assert run.__name__ == "run_forward"
        got = run(x)
    assert_rel(got, np.maximum(conv_forward(x, w, None, 1, 1)[0], 0), 1e-10, "chunked")


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_prepared_banded_takes_the_window_matrix_for_non_finite_inputs(bad):
    rng = np.random.default_rng(4)
    x, w, b = rng.normal(size=(1, 14, 14, 6)), rng.normal(size=(5, 5, 6, 16)), \
        rng.normal(size=16)
    run = kernels.prepare(geometry(x.shape, w.shape), w, b)
    assert_rel(run(x), conv_forward(x, w, b)[0], 1e-10, "finite")
    x[0, 6, 3, 0] = bad
    got, want = run(x), conv_forward(x, w, b)[0]
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(got), kind(want))
    assert_rel(got[np.isfinite(want)], want[np.isfinite(want)], 1e-10, "non-finite")


# ------------------------------------------------------------------- prepared Winograd
@pytest.mark.parametrize("name", ["winograd", "winograd_rows"])
@pytest.mark.parametrize(
    "n,hw,padding,chunk_images,threads",
    [
        (1, (32, 32), 1, None, 1),  # ResNet-20's batch 1
        (1, (7, 9), 1, None, 1),  # odd sizes: partial tiles
        (2, (6, 6), 0, None, 1),  # unpadded
        (5, (8, 8), 1, 2, 1),  # several chunks, a tail of one image
        (5, (8, 8), 1, 1, 2),  # chunks dealt to two threads: a buffer set per share
    ],
)
@pytest.mark.parametrize("bias,relu", [(True, False), (False, True), (True, True)])
def test_prepared_winograd_matches_reference(name, n, hw, padding, chunk_images, threads, bias,
                                             relu):
    """kernels.prepare with a Winograd kernel (the Predictor's 3x3 layers) against the loops,
    in float64 (the transforms' rounding only) and float32 (within the 1e-4 kernels/winograd.py
    states); two calls with different inputs (the buffers are reused), the first call's result
    left intact; the bias, added inside the transform (M at position 1), as the loops add it."""
    rng = np.random.default_rng(n * hw[0])
    x1, x2 = rng.normal(size=(2, n, *hw, 8))
    w = rng.normal(size=(3, 3, 8, 12)) / np.sqrt(72)
    b = rng.normal(size=12) if bias else None
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
        cast = [None if a is None else a.astype(dtype) for a in (x1, x2, w, b)]
        geom = geometry(x1.shape, w.shape, 1, padding, dtype=dtype)
        with cl.runtime.configure(threads=threads), \
                kernels.use(name, chunk_images=chunk_images):
            run = kernels.prepare(geom, cast[2], cast[3], relu)
            assert run.kernel == name
            got1 = run(cast[0])
            kept = got1.copy()
            got2 = run(cast[1])
        assert got1.dtype == dtype
        for x, got in ((x1, got1), (x2, got2)):
            want, _ = conv_forward(x, w, b, 1, padding)
            assert_rel(got, np.maximum(want, 0) if relu else want, tol, f"{name} {dtype}")
        np.testing.assert_array_equal(got1, kept)


@pytest.mark.parametrize(
    "x_shape,w_shape,options,dtype,want",
    [
        ((1, 32, 32, 16), (3, 3, 16, 16), {"padding": 1}, np.float32, "winograd"),  # 2-D at 1
        ((1, 16, 16, 32), (3, 3, 32, 32), {"padding": 1}, np.float32, "winograd"),
        ((1, 8, 8, 64), (3, 3, 64, 64), {"padding": 1}, np.float32, "winograd"),
        ((64, 32, 32, 16), (3, 3, 16, 16), {"padding": 1}, np.float32, "winograd_rows"),
        ((1, 32, 32, 16), (3, 3, 16, 16), {"padding": 1}, np.float64, "prepared"),  # float64
        ((1, 32, 32, 3), (3, 3, 3, 16), {"padding": 1}, np.float32, "prepared"),  # 3 channels
        ((1, 16, 16, 32), (3, 3, 32, 64), {"stride": 2, "padding": 1}, np.float32, "prepared"),
        ((1, 28, 28, 1), (5, 5, 1, 6), {"padding": 2}, np.float32, "prepared"),  # LeNet-5
        ((256, 16, 16, 32), (3, 3, 32, 64), {"stride": 2}, np.float32, None),  # chunks: per call
    ],
)
def test_the_rule_of_prepare(x_shape, w_shape, options, dtype, want):
    geom = geometry(x_shape, w_shape, dtype=dtype, **options)
    w = np.zeros(w_shape, dtype)
    assert kernels.prepare(geom, w).kernel == want


def test_use_picks_the_first_kernel_that_can_be_prepared():
    geom = geometry((1, 8, 8, 16), (3, 3, 16, 16), 1, 1, dtype=np.float32)
    w = np.zeros((3, 3, 16, 16), np.float32)
    with kernels.use("window", "winograd_rows", "prepared"):  # the window matrix has no prepare
        assert kernels.prepare(geom, w).kernel == "winograd_rows"
    with kernels.use("window"):
        assert kernels.prepare(geom, w).kernel is None  # each call's selected kernel
    strided = geometry((1, 8, 8, 16), (3, 3, 16, 16), 2, 1, dtype=np.float32)
    with kernels.use("winograd", "prepared"):  # Winograd not eligible for stride 2
        assert kernels.prepare(strided, w).kernel == "prepared"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf
@pytest.mark.parametrize("name", ["winograd", "winograd_rows"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_prepared_winograd_takes_the_window_matrix_for_non_finite_inputs(name, bad):
    """A transform would spread an inf or NaN over its tile: such an input takes the window
    matrix, whose outputs hold it only where their windows do (as the loops)."""
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(1, 9, 9, 8)), rng.normal(size=(3, 3, 8, 8)), rng.normal(size=8)
    with kernels.use(name):
        run = kernels.prepare(geometry(x.shape, w.shape, 1, 1), w, b, True)
    assert_rel(run(x), np.maximum(conv_forward(x, w, b, 1, 1)[0], 0), 1e-10, "finite")
    x[0, 4, 2, 3] = bad
    got, want = run(x), np.maximum(conv_forward(x, w, b, 1, 1)[0], 0)
    for kind in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(kind(got), kind(want))
    assert_rel(got[np.isfinite(want)], want[np.isfinite(want)], 1e-10, "non-finite")
