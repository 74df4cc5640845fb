"""Conv/pool arithmetic (cnnlab.ops.geometry) against hand-computed numbers, brute-force
enumeration, TensorFlow's 'same' rule and explicit slicing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnlab.ops.geometry import output_size, pad_nhwc, pair, resolve_padding, windows


def _count_positions(n: int, k: int, s: int, before: int, after: int, d: int) -> int:
    """Brute force: how many windows (taps d apart, start every s) fit in the padded row."""
    span = d * (k - 1) + 1
    return sum(1 for start in range(0, n + before + after, s) if start + span <= n + before + after)


# ----------------------------------------------------------------------------- output_size
@pytest.mark.parametrize(
    "n,k,s,pad,d,expected",
    [
        (28, 5, 1, (0, 0), 1, 24),  # LeNet-5 C1, 'valid'
        (32, 3, 2, (1, 1), 1, 16),  # ResNet-style downsampling
        (7, 3, 1, (0, 0), 2, 3),  # dilation 2: a 3-tap kernel spans 5 pixels
        (9, 3, 1, (0, 0), 2, 5),
        (227, 11, 4, (0, 0), 1, 55),  # AlexNet conv1
        (224, 7, 2, (3, 3), 1, 112),  # ResNet conv1
        (6, 3, 2, (0, 0), 1, 2),  # floor: the last column is not reached
        (5, 5, 1, (0, 0), 1, 1),  # kernel as large as the input
        (4, 2, 2, (0, 1), 1, 2),  # asymmetric padding
        (1, 1, 3, (0, 0), 1, 1),
    ],
)
def test_output_size_known_cases(n, k, s, pad, d, expected):
    assert output_size(n, k, s, pad, d) == expected


def test_output_size_default_dilation_is_one():
    assert output_size(28, 5, 1, (0, 0)) == 24


def test_output_size_matches_enumeration():
    for n in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for d in (1, 2):
                    for before, after in [(0, 0), (1, 1), (0, 2), (2, 1)]:
                        want = _count_positions(n, k, s, before, after, d)
                        if want == 0:
                            # the kernel does not fit: the caller checks for <= 0
                            assert output_size(n, k, s, (before, after), d) <= 0
                        else:
                            assert output_size(n, k, s, (before, after), d) == want, (
                                n,
                                k,
                                s,
                                d,
                                before,
                                after,
                            )


# ----------------------------------------------------------------------------- padding words
def _tf_same(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's rule (tf.nn.conv2d padding='SAME'), written out here as the oracle."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("d", [1, 2])
def test_same_gives_ceil_n_over_s(s, k, d):
    for n in range(1, 14):
        (top, bottom), (left, right) = resolve_padding(
            "same", (n, n + 1), (k, k), (s, s), (d, d), "op"
        )
        assert (top, bottom) == _tf_same(n, k, s, d)
        assert (left, right) == _tf_same(n + 1, k, s, d)
        # output ceil(n / s) by brute-force counting, extra (if any) at the bottom/right
        assert _count_positions(n, k, s, top, bottom, d) == math.ceil(n / s)
        assert _count_positions(n + 1, k, s, left, right, d) == math.ceil((n + 1) / s)
        assert output_size(n, k, s, (top, bottom), d) == math.ceil(n / s)
        assert bottom - top in (0, 1) and right - left in (0, 1)
        # and it is the least padding that gives that many positions
        total = top + bottom
        if total > 0:
            assert _count_positions(n, k, s, 0, total - 1, d) < math.ceil(n / s)


@pytest.mark.parametrize(
    "in_hw,kernel,stride,dilation,expected",
    [
        ((28, 28), (5, 5), (1, 1), (1, 1), ((2, 2), (2, 2))),
        ((5, 5), (2, 2), (2, 2), (1, 1), ((0, 1), (0, 1))),  # odd total: extra bottom/right
        ((4, 4), (2, 2), (1, 1), (1, 1), ((0, 1), (0, 1))),  # even kernel, stride 1
        ((6, 6), (4, 4), (1, 1), (1, 1), ((1, 2), (1, 2))),
        ((7, 7), (3, 3), (1, 1), (2, 2), ((2, 2), (2, 2))),  # dilation 2: span 5
        ((6, 6), (3, 3), (2, 2), (1, 1), ((0, 1), (0, 1))),  # TF: out 3, total 1
        ((7, 7), (3, 3), (2, 2), (1, 1), ((1, 1), (1, 1))),
        ((8, 5), (3, 2), (3, 1), (1, 2), ((0, 1), (1, 1))),  # per-axis settings
        ((3, 3), (1, 1), (3, 3), (1, 1), ((0, 0), (0, 0))),
    ],
)
def test_same_known_cases(in_hw, kernel, stride, dilation, expected):
    assert resolve_padding("same", in_hw, kernel, stride, dilation, "op") == expected


def test_valid_and_full():
    assert resolve_padding("valid", (9, 9), (3, 3), (2, 2), (1, 1), "op") == ((0, 0), (0, 0))
    assert resolve_padding("full", (9, 9), (3, 3), (1, 1), (1, 1), "op") == ((2, 2), (2, 2))
    # full = d (k - 1) on each side, per axis
    assert resolve_padding("full", (9, 9), (3, 3), (1, 1), (2, 2), "op") == ((4, 4), (4, 4))
    assert resolve_padding("full", (9, 9), (2, 5), (2, 1), (1, 3), "op") == ((1, 1), (12, 12))
    assert resolve_padding("full", (9, 9), (1, 1), (1, 1), (1, 1), "op") == ((0, 0), (0, 0))
    # 'full' with stride 1: every overlap of kernel and input, n + d (k - 1) positions
    (pt, pb), _ = resolve_padding("full", (6, 6), (4, 4), (1, 1), (2, 2), "op")
    assert output_size(6, 4, 1, (pt, pb), 2) == 6 + 2 * 3


def test_padding_words_ignore_case():
    assert resolve_padding("SAME", (5, 5), (2, 2), (2, 2), (1, 1), "op") == ((0, 1), (0, 1))
    assert resolve_padding("Valid", (5, 5), (2, 2), (2, 2), (1, 1), "op") == ((0, 0), (0, 0))


@pytest.mark.parametrize(
    "padding,expected",
    [
        (0, ((0, 0), (0, 0))),
        (2, ((2, 2), (2, 2))),
        ((1, 2), ((1, 1), (2, 2))),
        ([0, 3], ((0, 0), (3, 3))),
        (np.int64(1), ((1, 1), (1, 1))),
    ],
)
def test_int_and_pair_padding(padding, expected):
    assert resolve_padding(padding, (5, 5), (3, 3), (1, 1), (1, 1), "op") == expected


@pytest.mark.parametrize(
    "padding,match",
    [
        (-1, r"^op: padding must be >= 0; received padding=-1$"),
        ((1, -2), r"^op: padding must be >= 0; received padding=\(1, -2\)$"),
        (1.5, r"^op: padding must be an int or a pair of ints; received 1\.5$"),
        (True, r"^op: padding must be an int or a pair of ints; received True$"),
        ((1, 2, 3), r"^op: padding must be an int or a pair of ints; received \(1, 2, 3\)$"),
        ((1.0, 2), r"^op: padding must be an int or a pair of ints; received \(1\.0, 2\)$"),
        (None, r"^op: padding must be an int or a pair of ints; received None$"),
        (
            "half",
            (
                r"^op: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
                r"received 'half'$"
            ),
        ),
        (
            "",
            (
                r"^op: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
                r"received ''$"
            ),
        ),
    ],
)
def test_bad_padding(padding, match):
    with pytest.raises(ValueError, match=match):
        resolve_padding(padding, (5, 5), (3, 3), (1, 1), (1, 1), "op")


# ----------------------------------------------------------------------------- pair
def test_pair():
    assert pair(3, "stride", "op") == (3, 3)
    assert pair((2, 1), "stride", "op") == (2, 1)
    assert pair([1, 4], "stride", "op") == (1, 4)
    assert pair(np.int32(2), "stride", "op") == (2, 2)
    assert all(type(v) is int for v in pair(np.int32(2), "stride", "op"))
    assert pair(0, "padding", "op", minimum=0) == (0, 0)


@pytest.mark.parametrize(
    "value,match",
    [
        (0, r"^op: stride must be >= 1; received stride=0$"),
        ((1, 0), r"^op: stride must be >= 1; received stride=\(1, 0\)$"),
        (2.0, r"^op: stride must be an int or a pair of ints; received 2\.0$"),
        (False, r"^op: stride must be an int or a pair of ints; received False$"),
        ((2,), r"^op: stride must be an int or a pair of ints; received \(2,\)$"),
        ("2", r"^op: stride must be an int or a pair of ints; received '2'$"),
    ],
)
def test_pair_rejects(value, match):
    with pytest.raises(ValueError, match=match):
        pair(value, "stride", "op")


# ----------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    "kernel,stride,dilation",
    [
        ((3, 3), (1, 1), (1, 1)),
        ((2, 2), (2, 2), (1, 1)),
        ((3, 2), (2, 1), (1, 1)),
        ((3, 3), (1, 1), (2, 2)),
        ((2, 3), (3, 2), (2, 1)),
        ((1, 1), (2, 3), (1, 1)),
        ((2, 2), (1, 2), (3, 2)),
        ((9, 8), (1, 1), (1, 1)),  # one window: the whole image
    ],
)
def test_windows_equal_explicit_slicing(kernel, stride, dilation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 8, 3))
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    view = windows(x, kernel, stride, dilation)
    oh = _count_positions(9, kh, sh, 0, 0, dh)
    ow = _count_positions(8, kw, sw, 0, 0, dw)
    assert view.shape == (2, oh, ow, kh, kw, 3)
    for i in range(oh):
        for j in range(ow):
            r, c = i * sh, j * sw
            window = x[:, r : r + dh * (kh - 1) + 1 : dh, c : c + dw * (kw - 1) + 1 : dw, :]
            np.testing.assert_array_equal(view[:, i, j], window)


def test_windows_default_stride_dilation_and_no_copy():
    x = np.arange(2 * 5 * 4 * 3, dtype=np.float32).reshape(2, 5, 4, 3)
    view = windows(x, (2, 2))
    assert view.shape == (2, 4, 3, 2, 2, 3)
    assert view.dtype == np.float32
    assert np.shares_memory(view, x)
    with pytest.raises(ValueError):
        view[0, 0, 0, 0, 0, 0] = 1.0  # read-only
    np.testing.assert_array_equal(view[1, 2, 1, 1, 0], x[1, 3, 1])


def test_windows_of_a_non_contiguous_array():
    rng = np.random.default_rng(1)
    big = rng.normal(size=(2, 3, 10, 9))  # NCHW
    x = big.transpose(0, 2, 3, 1)[:, ::2]  # (2, 5, 9, 3), neither C- nor F-contiguous
    view = windows(x, (2, 3), (1, 2), (2, 1))
    assert view.shape == (2, 3, 4, 2, 3, 3)
    for i in range(3):
        for j in range(4):
            np.testing.assert_array_equal(view[:, i, j], x[:, i : i + 3 : 2, 2 * j : 2 * j + 3])


# ----------------------------------------------------------------------------- pad_nhwc
def test_pad_nhwc_equals_np_pad():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    pads = ((1, 2), (0, 3))
    got = pad_nhwc(x, pads)
    want = np.pad(x, ((0, 0), (1, 2), (0, 3), (0, 0)))
    assert got.shape == (2, 6, 7, 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_pad_nhwc_with_a_value():
    x = np.ones((1, 2, 2, 1))
    got = pad_nhwc(x, ((1, 0), (0, 1)), value=-np.inf)
    want = np.array([[-np.inf, -np.inf, -np.inf], [1, 1, -np.inf], [1, 1, -np.inf]])
    np.testing.assert_array_equal(got[0, :, :, 0], want)


def test_pad_nhwc_no_padding_returns_input():
    x = np.zeros((1, 3, 3, 2))
    assert pad_nhwc(x, ((0, 0), (0, 0))) is x
