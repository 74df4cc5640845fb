"""Datasets: anything with a length and (x, y) items; ArrayDataset holds them in two arrays.

Legend: N items, H/W image height and width, C channels. Images are channels-last
(N, H, W, C); after scaling they are float32 in [0, 1]. Class labels are int64.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ArrayDataset", "ArrayView", "Dataset", "Subset"]


class Dataset:
    """The dataset protocol: ``len(ds)`` items, ``ds[i] -> (x, y)``.

    Subclasses implement ``__len__`` and ``__getitem__``. ``batch(indices)`` returns the stacked
    items ``(x[indices], y[indices])``; the default stacks ``ds[i]`` one by one, and array-backed
    datasets override it with one fancy-indexing gather. ``classes`` (a list of class names, or
    None) names the labels 0..K-1.
    """

    classes: list[str] | None = None

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, i):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """The items at ``indices`` stacked: ``(x (B, ...), y (B, ...))``."""
        items = [self[int(i)] for i in indices]
        xs = np.stack([np.asarray(x) for x, _ in items])
        ys = np.stack([np.asarray(y) for _, y in items])
        return xs, ys

    @property
    def num_classes(self) -> int | None:
        """Number of classes: ``len(classes)`` when named, else None (ArrayDataset counts)."""
        return None if self.classes is None else len(self.classes)


def _check_index(name: str, i, n: int):
    if isinstance(i, (int, np.integer)) and not -n <= i < n:
        raise IndexError(f"{name}: index {i} is out of range for {n} items")


class ArrayDataset(Dataset):
    """A dataset over two arrays: ``x`` (N, ...) inputs and ``y`` (N, ...) targets.

    Integer labels are stored as int64; ``x`` is kept as given (images: (N, H, W, C), float32
    in [0, 1] after scaling, or uint8 to be scaled per batch by ``transforms.Scale``).
    ``ds[i]`` gives one item, ``ds.batch(idx)`` a batch by one fancy-indexing gather (no
    Python loop over items). ``classes`` optionally names the labels 0..K-1.

    Shape: x (N, ...), y (N,) or (N, ...).

    >>> import numpy as np
    >>> ds = ArrayDataset(np.zeros((10, 28, 28, 1), np.float32), np.arange(10) % 3)
    >>> ds.batch([0, 4, 7])[0].shape, ds.y.dtype
    ((3, 28, 28, 1), dtype('int64'))
    """

    def __init__(self, x, y, classes=None):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(
                f"ArrayDataset: x and y need a leading item axis; received x.shape={x.shape}, "
                f"y.shape={y.shape}"
            )
        if len(x) != len(y):
            raise ValueError(
                f"ArrayDataset: x and y must have the same number of items; received "
                f"x.shape={x.shape} ({len(x)} items) and y.shape={y.shape} ({len(y)} items)"
            )
        if y.dtype.kind in "iub" and y.dtype != np.int64:
            y = y.astype(np.int64)
        self.x, self.y = x, y
        self.classes = None if classes is None else [str(c) for c in classes]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        _check_index("ArrayDataset", i, len(self))
        return self.x[i], self.y[i]

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.intp)
        return self.x[indices], self.y[indices]  # (B, ...), (B, ...)

    @property
    def num_classes(self) -> int | None:
        """``len(classes)`` when named; else max label + 1 for integer labels; else None."""
        if self.classes is not None:
            return len(self.classes)
        if self.y.dtype.kind in "iu" and self.y.ndim == 1 and len(self.y):
            return int(self.y.max()) + 1
        return None

    def __repr__(self) -> str:
        extra = f", classes={len(self.classes)}" if self.classes is not None else ""
        return (
            f"ArrayDataset(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype}{extra})"
        )


class ArrayView(ArrayDataset):
    """The items of an ArrayDataset at ``indices``, without copying its images: an
    ArrayDataset (``y``, ``classes``, ``batch``) whose batches are gathered from the parent's
    ``x``, so that splitting a dataset keeps it in memory once. ``view.x`` gathers a copy of
    all its images when it is asked for (use ``batch`` for a part).

    >>> import numpy as np
    >>> base = ArrayDataset(np.arange(10.0)[:, None], np.arange(10) % 2)
    >>> view = ArrayView(base, [1, 4])
    >>> len(view), view.batch([1])[0].tolist(), view.y.tolist()
    (2, [[4.0]], [1, 0])
    """

    def __init__(self, base: ArrayDataset, indices):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.intp)  # (n,) positions in base
        n = len(base.x)
        if self.indices.ndim != 1 or (
            len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n)
        ):
            raise IndexError(
                f"ArrayView: indices must be a 1-D array of positions in [0, {n}); received "
                f"{self.indices.shape} indices"
            )
        self.y = base.y[self.indices]  # (n, ...): labels are small, kept as an array
        self.classes = base.classes

    @property
    def x(self) -> np.ndarray:
        return self.base.x[self.indices]  # (n, ...) a gathered copy

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        _check_index("ArrayView", i, len(self))
        return self.base.x[self.indices[i]], self.y[i]

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.intp)
        return self.base.x[self.indices[indices]], self.y[indices]  # (B, ...), (B, ...)

    def __repr__(self) -> str:
        shape = (len(self), *self.base.x.shape[1:])
        extra = f", classes={len(self.classes)}" if self.classes is not None else ""
        return (f"ArrayView(x={shape} {self.base.x.dtype} of {len(self.base)}, "
                f"y={self.y.shape} {self.y.dtype}{extra})")


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order (a view: nothing is copied).

    >>> import numpy as np
    >>> sub = Subset(ArrayDataset(np.zeros((10, 2)), np.arange(10)), [1, 3, 5])
    >>> len(sub), sub.batch([0, 2])[1]
    (3, array([1, 5]))
    """

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.intp)
        n = len(dataset)
        if self.indices.ndim != 1 or (
            len(self.indices) and (self.indices.min() < -n or self.indices.max() >= n)
        ):
            raise IndexError(
                f"Subset: indices must be a 1-D array of positions in [0, {n}); received "
                f"{self.indices.shape} indices"
            )
        self.classes = getattr(dataset, "classes", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        _check_index("Subset", i, len(self))
        return self.dataset[int(self.indices[i])]

    def batch(self, indices) -> tuple[np.ndarray, np.ndarray]:
        return _batch_of(self.dataset, self.indices[np.asarray(indices, dtype=np.intp)])

    @property
    def num_classes(self) -> int | None:
        return getattr(self.dataset, "num_classes", None)


def _batch_of(dataset, indices) -> tuple[np.ndarray, np.ndarray]:
    """``dataset.batch(indices)`` when it has one, else stack its items (any (x, y) sequence)."""
    if hasattr(dataset, "batch"):
        return dataset.batch(indices)
    return Dataset.batch(dataset, indices)
