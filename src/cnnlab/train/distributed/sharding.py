"""Each process's share of every global batch, in the order one process would use.

Legend: B the global batch size (``--batch-size``), p processes, b the batch number in an epoch.

Epoch k's order is the single-process loader's, ``default_rng([seed, k]).permutation(N)``, cut
into the same global batches of B items. Global batch b is then split into p contiguous shares
whose sizes differ by at most one (``np.array_split``): rank r takes share r. The union of the
shares is exactly the batch one process would train on, so a step that averages the p
gradients with weights n_r / B is the single-process step (up to summation order).

Augmentation draws from ``default_rng([seed, k, b, r])``: its own stream per rank, derived from
the seed, so a run with p processes is reproducible (but not the single-process augmentation,
which draws one stream for the whole batch).

A global batch with fewer items than processes (the tail of an epoch, fewer than p images) is
skipped, so that every process always has a non-empty share (batch norm needs one).
"""

from __future__ import annotations

import numpy as np

from cnnlab.data.dataset import _batch_of
from cnnlab.data.loader import DataLoader
from cnnlab.data.transforms import Transform

__all__ = ["ShardedLoader", "share_bounds"]


def share_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """[lo, hi) of rank's contiguous share of n items split into ``size`` near-equal parts
    (the first n % size shares have one item more, as ``np.array_split``)."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


class ShardedLoader(DataLoader):
    """A DataLoader that yields this rank's share of each global batch.

    ``len(loader)`` is the number of global batches (steps) in an epoch, the same on every
    rank; ``global_size(b)`` is the size of global batch b (the weight of the shares).
    """

    def __init__(self, dataset, batch_size: int, rank: int, size: int, shuffle: bool = False,
                 seed=None, transform=None, prefetch: bool = True):
        super().__init__(dataset, batch_size, shuffle=shuffle, seed=seed, transform=transform,
                         prefetch=prefetch)
        if batch_size < size:
            raise ValueError(f"data-parallel training: the global batch size ({batch_size}) "
                             f"must be at least the number of processes ({size}), so that "
                             "every process gets images")
        self.rank, self.size = int(rank), int(size)

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        full, tail = divmod(n, b)
        return full + (tail >= self.size)

    def global_size(self, b: int) -> int:
        """Items in global batch ``b`` (B, or fewer for the last one)."""
        return min(self.batch_size, len(self.dataset) - b * self.batch_size)

    def _batch(self, order: np.ndarray, epoch: int, b: int):
        idx = order[b * self.batch_size : (b + 1) * self.batch_size]  # (B,) global batch b
        lo, hi = share_bounds(len(idx), self.size, self.rank)
        x, y = _batch_of(self.dataset, idx[lo:hi])  # (n_r, ...) this rank's share
        if self.transform is not None:
            if isinstance(self.transform, Transform) and self.seeded:
                x = self.transform(x, np.random.default_rng([self.seed, epoch, b, self.rank]))
            else:
                x = self.transform(x)
        return x, y
