"""Batch transforms: each maps a whole batch (N, H, W, C) at once, vectorised over the batch.

Legend: N batch, H/W height and width, C channels; (dy, dx) a shift in pixels, rows down and
columns right.

A transform is called as ``t(x)`` or ``t(x, rng)``. Random transforms draw from ``rng`` when
one is given (the DataLoader passes a Generator derived from its seed, the epoch and the batch
number, so a resumed run reproduces an epoch's augmentation) and from their own Generator,
made from ``seed``, otherwise. The same seed gives the same outputs. Inputs are never modified
in place; float inputs keep their dtype.

>>> import numpy as np
>>> t = Compose([Scale(), RandomShift(2, seed=0), Normalize(0.1307, 0.3081)])
>>> t(np.zeros((8, 28, 28, 1), np.uint8)).shape
(8, 28, 28, 1)
"""

from __future__ import annotations

import numpy as np

from cnnlab.data._random import as_generator

__all__ = [
    "Compose",
    "Normalize",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "Scale",
    "Transform",
]


def _check_batch(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name}: x must be a 4-D batch (N, H, W, C); received x.shape={x.shape}")
    return x


def _check_float(name: str, x: np.ndarray) -> None:
    if x.dtype.kind != "f":
        raise TypeError(
            f"{name}: x must be a float batch (apply Scale() first); received dtype {x.dtype}"
        )


def _pair(name: str, what: str, v) -> tuple:
    """``v`` as a pair: a number ``v`` -> (v, v); a pair stays."""
    if np.ndim(v) == 0:
        return (v, v)
    if len(v) != 2:
        raise ValueError(f"{name}: {what} must be a number or a pair; received {v!r}")
    return tuple(v)


class Transform:
    """Base class: ``__call__(x, rng=None)`` -> transformed batch. ``seed``: int or Generator."""

    def __init__(self, seed=None):
        self.rng = as_generator(seed)

    def __call__(self, x, rng=None):
        return self.apply(x, self.rng if rng is None else rng)

    def apply(self, x, rng: np.random.Generator):
        raise NotImplementedError

    def _settings(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"


class Compose(Transform):
    """Apply ``transforms`` in order, passing each the same ``rng`` (plain callables get x)."""

    def __init__(self, transforms):
        super().__init__(None)
        self.transforms = list(transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = t(x, rng) if isinstance(t, Transform) else t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class Scale(Transform):
    """y = x / divisor as ``dtype``: uint8 pixels 0..255 -> float32 in [0, 1] by default."""

    def __init__(self, divisor: float = 255.0, dtype=np.float32):
        super().__init__(None)
        if not divisor > 0:
            raise ValueError(f"Scale: divisor must be > 0; received {divisor}")
        self.divisor, self.dtype = float(divisor), np.dtype(dtype)

    def apply(self, x, rng):
        x = np.asarray(x)
        return x.astype(self.dtype) / self.dtype.type(self.divisor)

    def _settings(self) -> str:
        return f"divisor={self.divisor:g}, dtype={self.dtype.name}"


class Normalize(Transform):
    """y = (x - mean) / std, per channel (``mean``, ``std``: a number or one per channel C)."""

    def __init__(self, mean, std):
        super().__init__(None)
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError(
                f"Normalize: mean and std must be numbers or one value per channel; received "
                f"shapes {self.mean.shape} and {self.std.shape}"
            )
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be > 0; received {self.std.tolist()}")

    def apply(self, x, rng):
        x = _check_batch("Normalize", x)
        _check_float("Normalize", x)
        for what, v in (("mean", self.mean), ("std", self.std)):
            if v.ndim == 1 and v.shape[0] not in (1, x.shape[-1]):
                raise ValueError(
                    f"Normalize: {what} has {v.shape[0]} values but x has {x.shape[-1]} "
                    f"channels; received x.shape={x.shape}"
                )
        mean, std = self.mean.astype(x.dtype), self.std.astype(x.dtype)
        return (x - mean) / std

    def _settings(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


def _windows(xp: np.ndarray, top, left, h: int, w: int) -> np.ndarray:
    """Per-item windows: out[n] = xp[n, top[n]:top[n]+h, left[n]:left[n]+w] (one gather)."""
    n = xp.shape[0]
    rows = top[:, None] + np.arange(h)  # (N, h)
    cols = left[:, None] + np.arange(w)  # (N, w)
    return xp[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (N, h, w, C)


class RandomShift(Transform):
    """Shift each image by a random whole number of pixels, filling the border with ``fill``.

    out[n, i, j] = x[n, i - dy_n, j - dx_n] (``fill`` where that is outside the image), with
    dy_n, dx_n uniform integers in [-max_shift, max_shift] (a number, or (rows, cols)).
    Shape: (N, H, W, C) -> (N, H, W, C).
    """

    def __init__(self, max_shift, seed=None, fill: float = 0.0):
        super().__init__(seed)
        self.max_shift = tuple(int(s) for s in _pair("RandomShift", "max_shift", max_shift))
        if min(self.max_shift) < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0; received {max_shift}")
        self.fill = fill

    def apply(self, x, rng):
        x = _check_batch("RandomShift", x)
        n, h, w, _ = x.shape
        sy, sx = self.max_shift
        dy = rng.integers(-sy, sy + 1, size=n)
        dx = rng.integers(-sx, sx + 1, size=n)
        xp = np.pad(x, ((0, 0), (sy, sy), (sx, sx), (0, 0)), constant_values=self.fill)
        return _windows(xp, sy - dy, sx - dx, h, w)  # xp[i + sy] = x[i]

    def _settings(self) -> str:
        return f"max_shift={self.max_shift}, fill={self.fill}"


class RandomCrop(Transform):
    """Pad each side by ``padding`` (with ``fill``), then crop a random ``size`` window.

    out[n] = pad(x)[n, t_n : t_n + h, l_n : l_n + w], t_n uniform in [0, H + 2p - h],
    l_n uniform in [0, W + 2p - w]. ``size``: h or (h, w); ``padding``: p or (p_h, p_w).
    Shape: (N, H, W, C) -> (N, h, w, C).
    """

    def __init__(self, size, padding=0, seed=None, fill: float = 0.0):
        super().__init__(seed)
        self.size = tuple(int(s) for s in _pair("RandomCrop", "size", size))
        self.padding = tuple(int(p) for p in _pair("RandomCrop", "padding", padding))
        if min(self.size) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"RandomCrop: size must be >= 1 and padding >= 0; received size={size}, "
                f"padding={padding}"
            )
        self.fill = fill

    def apply(self, x, rng):
        x = _check_batch("RandomCrop", x)
        n, h, w, _ = x.shape
        (ph, pw), (ch, cw) = self.padding, self.size
        if ch > h + 2 * ph or cw > w + 2 * pw:
            raise ValueError(
                f"RandomCrop: crop size {self.size} is larger than the padded image "
                f"({h + 2 * ph}, {w + 2 * pw}); received x.shape={x.shape}"
            )
        top = rng.integers(0, h + 2 * ph - ch + 1, size=n)
        left = rng.integers(0, w + 2 * pw - cw + 1, size=n)
        xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=self.fill)
        return _windows(xp, top, left, ch, cw)

    def _settings(self) -> str:
        return f"size={self.size}, padding={self.padding}, fill={self.fill}"


class RandomAffine(Transform):
    """Small random rotation and zoom about the image centre, bilinear sampling.

    Each image gets an angle a uniform in ``degrees`` (d -> [-d, d]; positive turns the
    content counterclockwise) and a zoom s uniform in ``scale`` ((lo, hi); None -> 1; s > 1
    enlarges). Output pixel (i, j), taken relative to the centre c = ((H-1)/2, (W-1)/2) as
    (u, v) = (i - c_y, j - c_x), samples the input at

        src_y = c_y + ( cos(a) u + sin(a) v) / s
        src_x = c_x + (-sin(a) u + cos(a) v) / s

    by bilinear interpolation of the four neighbours (``fill`` outside the image). Angle 0
    and zoom 1 give the input back exactly. These are the distortions of LeCun et al. (1998).
    Shape: (N, H, W, C) -> (N, H, W, C).
    """

    def __init__(self, degrees, scale=None, seed=None, fill: float = 0.0):
        super().__init__(seed)
        if np.ndim(degrees) == 0:
            if degrees < 0:
                raise ValueError(f"RandomAffine: degrees must be >= 0; received {degrees}")
            degrees = (-degrees, degrees)
        self.degrees = tuple(float(d) for d in _pair("RandomAffine", "degrees", degrees))
        lo, hi = (1.0, 1.0) if scale is None else _pair("RandomAffine", "scale", scale)
        if not 0 < lo <= hi:
            raise ValueError(f"RandomAffine: scale must be a pair 0 < lo <= hi; received {scale!r}")
        self.scale = (float(lo), float(hi))
        self.fill = fill

    def apply(self, x, rng):
        x = _check_batch("RandomAffine", x)
        _check_float("RandomAffine", x)
        n, h, w, _ = x.shape
        angle = np.deg2rad(rng.uniform(*self.degrees, size=n))[:, None, None]  # (N, 1, 1)
        zoom = rng.uniform(*self.scale, size=n)[:, None, None]  # (N, 1, 1)
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        u = np.arange(h, dtype=np.float32)[None, :, None] - np.float32(cy)  # (1, H, 1)
        v = np.arange(w, dtype=np.float32)[None, None, :] - np.float32(cx)  # (1, 1, W)
        cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
        zoom = zoom.astype(np.float32)
        src_y = cy + (cos * u + sin * v) / zoom  # (N, H, W)
        src_x = cx + (-sin * u + cos * v) / zoom  # (N, H, W)
        return _bilinear(x, src_y, src_x, self.fill)

    def _settings(self) -> str:
        return f"degrees={self.degrees}, scale={self.scale}, fill={self.fill}"


def _bilinear(x: np.ndarray, src_y: np.ndarray, src_x: np.ndarray, fill: float) -> np.ndarray:
    """Sample x (N, H, W, C) at real coordinates (N, H', W') by bilinear interpolation.

    With y0 = floor(src_y), wy = src_y - y0 (and x0, wx likewise),

        out = (1 - wy) [(1 - wx) x[y0, x0] + wx x[y0, x0+1]]
              +    wy  [(1 - wx) x[y0+1, x0] + wx x[y0+1, x0+1]]

    where a neighbour outside the image reads ``fill``: the image gets a one-pixel border of
    ``fill`` and neighbour rows/columns are clipped into [-1, H] / [-1, W], so any outside
    neighbour lands on that border. Each neighbour is one gather on the flat padded image.
    """
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=fill)  # (N, H+2, W+2, C)
    flat = xp.reshape(n * (h + 2) * (w + 2), c)
    y0, x0 = np.floor(src_y), np.floor(src_x)
    wy = (src_y - y0)[..., None].astype(x.dtype)  # (N, H', W', 1)
    wx = (src_x - x0)[..., None].astype(x.dtype)
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    batch = np.arange(n).reshape(n, 1, 1) * (h + 2)
    rows = [(batch + np.clip(y0 + a, -1, h) + 1) * (w + 2) for a in (0, 1)]  # (N, H', W')
    cols = [np.clip(x0 + b, -1, w) + 1 for b in (0, 1)]  # (N, H', W')

    (v00, v01), (v10, v11) = [
        [np.take(flat, rows[a] + cols[b], axis=0) for b in (0, 1)] for a in (0, 1)
    ]  # each (N, H', W', C)
    top = v00 + wx * (v01 - v00)
    bottom = v10 + wx * (v11 - v10)
    return top + wy * (bottom - top)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``: out[n, i, j] = x[n, i, W-1-j].

    Off for digits (a mirrored 2 is not a 2); for natural images. Shape: unchanged.
    """

    def __init__(self, p: float = 0.5, seed=None):
        super().__init__(seed)
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1]; received {p}")
        self.p = float(p)

    def apply(self, x, rng):
        x = _check_batch("RandomHorizontalFlip", x)
        flip = rng.random(x.shape[0]) < self.p  # (N,)
        return np.where(flip[:, None, None, None], x[:, :, ::-1, :], x)

    def _settings(self) -> str:
        return f"p={self.p}"
