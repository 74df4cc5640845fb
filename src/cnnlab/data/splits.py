"""Split a dataset into train / dev (/ test) parts, at random or stratified by class.

The parts are disjoint and together hold every item once. Sizes: a float fraction f in (0, 1)
gives round(f * N) items, an int gives that many. Stratified splits give each class c (with
N_c items) its share N_c * size / N of each part, rounded by largest remainders so that the
part sizes are still exact; class proportions are then kept to within one item per class.
Items keep their original order inside each part.
"""

from __future__ import annotations

import numpy as np

from cnnlab.data._random import as_generator
from cnnlab.data.dataset import ArrayDataset, ArrayView, Subset, _batch_of

__all__ = ["split_indices", "train_dev_split", "train_dev_test_split"]


def _part_size(op: str, what: str, value, n: int) -> int:
    if isinstance(value, bool):
        value = None  # rejected below
    if isinstance(value, (int, np.integer)):
        if not 0 <= value <= n:
            raise ValueError(f"{op}: {what} as a count must be in [0, {n}]; received {value}")
        return int(value)
    if isinstance(value, (float, np.floating)) and 0.0 <= value < 1.0:
        return round(float(value) * n)
    raise ValueError(
        f"{op}: {what} must be a fraction in [0, 1) or an item count; received {value!r}"
    )


def _largest_remainder(shares: np.ndarray, total: int) -> np.ndarray:
    """Integers that sum to ``total``, each floor(share) or floor(share) + 1."""
    base = np.floor(shares).astype(np.int64)
    extra = total - int(base.sum())
    order = np.argsort(-(shares - base), kind="stable")
    base[order[:extra]] += 1
    return base


def split_indices(n_or_labels, sizes, seed=None, stratify: bool = False) -> list[np.ndarray]:
    """Disjoint sorted index arrays, of the given ``sizes``, then one with the rest.

    ``n_or_labels``: the item count N, or the labels (N,) (needed for ``stratify``).
    """
    rng = as_generator(seed)
    if np.ndim(n_or_labels) == 0:
        if stratify:
            raise ValueError("split_indices: stratify=True needs the labels, not only a count")
        n, labels = int(n_or_labels), None
    else:
        labels = np.asarray(n_or_labels)
        n = len(labels)
    sizes = [int(s) for s in sizes]
    if sum(sizes) > n:
        raise ValueError(f"split_indices: the parts ({sizes}) add up to more than {n} items")
    if not stratify:
        perm = rng.permutation(n)
        cuts = np.cumsum(sizes)
        return [np.sort(p) for p in np.split(perm, cuts)]
    if labels.ndim != 1 or labels.dtype.kind not in "iub":
        raise ValueError(
            f"split_indices: stratify needs 1-D integer class labels; received "
            f"shape {labels.shape}, dtype {labels.dtype}"
        )
    classes, counts = np.unique(labels, return_counts=True)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in classes]
    taken = np.zeros(len(classes), dtype=np.int64)  # items of each class already assigned
    parts = []
    for size in sizes:
        quota = _largest_remainder(counts * size / n, size)
        quota = np.minimum(quota, counts - taken)  # tiny classes: never more than remain
        parts.append(
            np.concatenate([m[t : t + q] for m, t, q in zip(members, taken, quota)] + [[]])
        )
        taken += quota
    parts.append(np.concatenate([m[t:] for m, t in zip(members, taken)] + [[]]))
    return [np.sort(p.astype(np.intp)) for p in parts]


def _labels_of(data) -> np.ndarray:
    if isinstance(data, tuple):
        return np.asarray(data[1])
    if isinstance(data, ArrayDataset):
        return data.y
    return _batch_of(data, np.arange(len(data)))[1]


def _take(data, idx: np.ndarray):
    if isinstance(data, tuple):
        return tuple(np.asarray(a)[idx] for a in data)
    if isinstance(data, ArrayView):  # a view of a view: one view of the base
        return ArrayView(data.base, data.indices[idx])
    if isinstance(data, ArrayDataset):  # a view: the images stay in memory once
        return ArrayView(data, idx)
    return Subset(data, idx)


def _split(op, data, fractions, seed, stratify):
    if isinstance(data, tuple):
        if len(data) != 2 or len(data[0]) != len(data[1]):
            raise ValueError(f"{op}: data must be a Dataset or a pair (x, y) of equal length")
        n = len(data[0])
    else:
        n = len(data)
    sizes = [_part_size(op, what, f, n) for what, f in fractions]
    if sum(sizes) >= n > 0:
        raise ValueError(
            f"{op}: {' + '.join(what for what, _ in fractions)} leave no training items "
            f"({sizes} of {n})"
        )
    if stratify:
        idx = split_indices(_labels_of(data), sizes, seed, stratify=True)
    else:
        idx = split_indices(n, sizes, seed)
    train, *rest = [idx[-1]] + idx[:-1]
    return tuple(_take(data, i) for i in [train, *rest])


def train_dev_split(data, dev_fraction, seed=None, stratify: bool = False):
    """Split into (train, dev): dev gets ``dev_fraction`` of the items, train the rest.

    data          an ArrayDataset (parts are ArrayViews: ArrayDatasets over the same images,
                  nothing copied; classes kept), a pair of arrays
                  (x, y) (parts are pairs), or any Dataset (parts are Subsets)
    dev_fraction  a fraction in [0, 1), or a count of items
    seed          int or Generator: the same seed gives the same split
    stratify      keep each class's proportion in both parts (integer labels)

    >>> import numpy as np
    >>> train, dev = train_dev_split((np.zeros((10, 2)), np.arange(10) % 2), 0.2, seed=0)
    >>> train[0].shape, dev[0].shape
    ((8, 2), (2, 2))
    """
    return _split("train_dev_split", data, [("dev_fraction", dev_fraction)], seed, stratify)


def train_dev_test_split(data, dev_fraction, test_fraction, seed=None, stratify: bool = False):
    """Split into (train, dev, test); as :func:`train_dev_split` with a third part."""
    return _split(
        "train_dev_test_split",
        data,
        [("dev_fraction", dev_fraction), ("test_fraction", test_fraction)],
        seed,
        stratify,
    )
