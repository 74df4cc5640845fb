"""Registry entries for conv2d: gradcheck samples over the geometry options, and the error cases
with their pinned messages (run by tests/test_opinfo.py)."""

import numpy as np

import cnnlab as cl
from cnnlab import functional as F
from tests.opinfo import ErrorCase, OpInfo, Sample


def _conv_samples(r):
    """Small inputs (batch 1-2, 5x5 images, few channels) so the float64 gradcheck is quick."""

    def n(*shape):
        return r.normal(size=shape)

    return [
        Sample((n(2, 5, 5, 3), n(3, 3, 3, 4), n(4)), name="3x3 valid with bias"),
        Sample((n(1, 5, 5, 2), n(3, 3, 2, 3)), {"stride": 2, "padding": 1}, name="s2 p1 no bias"),
        Sample(
            (n(2, 5, 5, 2), n(2, 3, 2, 3), n(3)),
            {"stride": (2, 1), "padding": (1, 2)},
            name="2x3 kernel, pair stride and padding",
        ),
        Sample(
            (n(1, 5, 5, 2), n(2, 2, 2, 3), n(3)),
            {"stride": 2, "padding": "same"},
            name="same, stride 2, even kernel (asymmetric)",
        ),
        Sample(
            (n(1, 5, 4, 2), n(4, 2, 2, 2), n(2)),
            {"padding": "same"},
            name="same, stride 1, 4x2 kernel (asymmetric)",
        ),
        Sample(
            (n(1, 5, 5, 2), n(2, 2, 2, 2), n(2)),
            {"padding": "full", "dilation": 2},
            name="full, dilation 2",
        ),
        Sample(
            (n(2, 5, 5, 2), n(2, 2, 2, 3)),
            {"dilation": (2, 1), "stride": (1, 2)},
            name="pair dilation",
        ),
        Sample((n(1, 5, 5, 4), n(3, 3, 2, 6), n(6)), {"groups": 2, "padding": 1}, name="groups 2"),
        Sample(
            (n(2, 5, 5, 3), n(3, 3, 1, 6), n(6)),
            {"groups": 3, "stride": 2, "padding": "same"},
            name="depthwise, multiplier 2",
        ),
        Sample((n(2, 5, 5, 3), n(1, 1, 3, 2), n(2)), {"stride": 2}, name="1x1, stride 2"),
        Sample(
            (n(1, 5, 5, 2), n(2, 2, 2, 2)), {"stride": 3}, name="stride 3: last row/column unused"
        ),
        Sample((n(2, 5, 5, 2), n(5, 5, 2, 3), n(3)), name="kernel as large as the input"),
        Sample((n(1, 1, 1, 2), n(1, 1, 2, 2), n(2)), name="1x1 image"),
    ]


def _conv_errors():
    x = np.ones((2, 5, 5, 3))
    w = np.ones((3, 3, 3, 4))
    return [
        ErrorCase(
            (np.ones((5, 5, 3)), w),
            {},
            ValueError,
            r"^conv2d: x must be 4-D \(N, H, W, C_in\); received x\.shape=\(5, 5, 3\)$",
        ),
        ErrorCase(
            (x, np.ones((3, 3, 3))),
            {},
            ValueError,
            r"^conv2d: w must be 4-D \(KH, KW, C_in // groups, C_out\); "
            r"received w\.shape=\(3, 3, 3\)$",
        ),
        ErrorCase(
            (np.ones((8, 6, 6, 3)), np.ones((3, 3, 16, 64))),
            {},
            ValueError,
            r"^conv2d: x has 3 channels but w expects 16 \(w is \(KH, KW, C_in // groups, "
            r"C_out\) = \(3, 3, 16, 64\), groups=1\); received x\.shape=\(8, 6, 6, 3\)$",
        ),
        ErrorCase(
            (np.ones((1, 5, 5, 4)), np.ones((3, 3, 4, 6))),
            {"groups": 2},
            ValueError,
            r"^conv2d: x has 4 channels but w expects 8",
        ),
        ErrorCase(
            (np.ones((1, 3, 3, 1)), np.ones((5, 5, 1, 1))),
            {},
            ValueError,
            r"^conv2d: the kernel \(5x5, dilation \(1, 1\)\) spans 5x5 pixels, larger than "
            r"the padded input 3x3; received x\.shape=\(1, 3, 3, 1\), "
            r"w\.shape=\(5, 5, 1, 1\), padding=0$",
        ),
        ErrorCase(
            (np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 1))),
            {"dilation": 2},
            ValueError,
            r"^conv2d: the kernel \(3x3, dilation \(2, 2\)\) spans 5x5 pixels, larger than "
            r"the padded input 4x4",
        ),
        ErrorCase(
            (np.ones((1, 4, 3, 1)), np.ones((2, 4, 1, 1))),
            {"padding": (1, 0)},
            ValueError,
            r"larger than the padded input 6x3",
        ),
        ErrorCase(
            (x, w), {"stride": 0}, ValueError, r"^conv2d: stride must be >= 1; received stride=0$"
        ),
        ErrorCase(
            (x, w),
            {"stride": (1, 0)},
            ValueError,
            r"^conv2d: stride must be >= 1; received stride=\(1, 0\)$",
        ),
        ErrorCase(
            (x, w),
            {"stride": 1.5},
            ValueError,
            r"^conv2d: stride must be an int or a pair of ints; received 1\.5$",
        ),
        ErrorCase(
            (x, w),
            {"dilation": 0},
            ValueError,
            r"^conv2d: dilation must be >= 1; received dilation=0$",
        ),
        ErrorCase(
            (np.ones((1, 5, 5, 4)), np.ones((3, 3, 1, 6))),
            {"groups": 3},
            ValueError,
            r"^conv2d: groups=3 must divide both C_in=4 and C_out=6; "
            r"received x\.shape=\(1, 5, 5, 4\), w\.shape=\(3, 3, 1, 6\)$",
        ),
        ErrorCase(
            (np.ones((1, 5, 5, 4)), np.ones((3, 3, 2, 5))),
            {"groups": 2},
            ValueError,
            r"^conv2d: groups=2 must divide both C_in=4 and C_out=5",
        ),
        ErrorCase(
            (x, w),
            {"groups": 0},
            ValueError,
            r"^conv2d: groups must be a positive int; received groups=0$",
        ),
        ErrorCase(
            (cl.tensor(np.ones((2, 5, 5, 3), dtype=np.int64)), w),
            {},
            TypeError,
            r"^conv2d: x must be a floating-point tensor \(float32 or float64\); "
            r"received dtype int64$",
        ),
        ErrorCase(
            (x, np.ones((3, 3, 3, 4), dtype=np.int32)),
            {},
            TypeError,
            r"^conv2d: w must be a floating-point tensor",
        ),
        ErrorCase(
            (x.astype(np.float32), w),
            {},
            TypeError,
            r"^conv2d: x is float32 but w is float64; convert one with \.astype\(\)",
        ),
        ErrorCase(
            (x, w, np.ones(4, dtype=np.float32)),
            {},
            TypeError,
            r"^conv2d: x is float64 but b is float32",
        ),
        ErrorCase(
            (x, w, np.ones(3)),
            {},
            ValueError,
            r"^conv2d: b must have shape \(4,\) to match w\.shape=\(3, 3, 3, 4\); "
            r"received b\.shape=\(3,\)$",
        ),
        ErrorCase(
            (x, w, np.ones((1, 1, 1, 4))),
            {},
            ValueError,
            r"^conv2d: b must have shape \(4,\) .*received b\.shape=\(1, 1, 1, 4\)$",
        ),
        ErrorCase(
            (x, w),
            {"padding": "half"},
            ValueError,
            r"^conv2d: padding must be 'valid', 'same', 'full', an int or a pair of ints; "
            r"received 'half'$",
        ),
        ErrorCase(
            (x, w),
            {"padding": -1},
            ValueError,
            r"^conv2d: padding must be >= 0; received padding=-1$",
        ),
    ]


OPS = [
    OpInfo("conv2d", F.conv2d, _conv_samples, errors=_conv_errors),
]
