"""DataLoader: batches of (x, y) from a dataset, shuffled per epoch, prefetched by a thread.

Legend: N items, B batch size, n_batches = ceil(N / B) (floor with drop_last).

Epoch k's order is a function of (seed, k) alone: ``np.random.default_rng([seed, k])
.permutation(N)``. Iterating the loader runs epoch ``loader.epoch`` and then counts it up, so
a fresh loader gives epochs 0, 1, 2, ...; a resumed run calls ``loader.set_epoch(k)`` to get
epoch k's exact order (and augmentation, see below) back.
"""

from __future__ import annotations

import queue
import threading
import weakref

import numpy as np

from cnnlab.data._random import as_seed
from cnnlab.data.dataset import ArrayDataset, _batch_of
from cnnlab.data.transforms import Transform

__all__ = ["DataLoader"]


class DataLoader:
    """Iterate a dataset in batches: ``for x, y in loader: ...`` yields NumPy arrays.

    dataset     a Dataset (``len``, ``ds[i] -> (x, y)``; ``ds.batch(idx)`` used when present:
                ArrayDataset gathers a batch with one fancy index), or a pair of arrays (x, y)
    batch_size  items per batch B >= 1
    shuffle     a new permutation each epoch, from (seed, epoch); else the dataset's order
    seed        int or Generator (an int is drawn from it once); None draws one at random
    drop_last   drop the last batch when it has fewer than B items
    transform   applied to each batch's x (see cnnlab.data.transforms). When ``seed`` is given,
                a cnnlab Transform gets a Generator made from (seed, epoch, batch number), so
                the augmentation of epoch k is reproducible too; with seed None it uses its
                own Generator. Any other callable is called as ``transform(x)``.
    prefetch    build the next batch in a background (daemon) thread while the current one is
                used; the batches are the same as without it. Abandoning the iterator (or
                calling its ``close()``) stops the thread.

    Shape: each batch is x (B, ...), y (B, ...), in the dataset's dtypes unless transformed.

    >>> import numpy as np
    >>> loader = DataLoader((np.zeros((10, 28, 28, 1)), np.arange(10)), 4, shuffle=True, seed=0)
    >>> [x.shape[0] for x, y in loader], len(loader)
    ([4, 4, 2], 3)
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        shuffle: bool = False,
        seed=None,
        drop_last: bool = False,
        transform=None,
        prefetch: bool = True,
    ):
        if isinstance(dataset, tuple) and len(dataset) == 2:
            dataset = ArrayDataset(*dataset)
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(
                f"DataLoader: dataset must have __len__ and __getitem__ (a Dataset) or be a "
                f"pair (x, y) of arrays; received {type(dataset).__name__}"
            )
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or (batch_size < 1)
        ):
            raise ValueError(f"DataLoader: batch_size must be an int >= 1; received {batch_size!r}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader: transform must be callable; received {type(transform).__name__}"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seeded = seed is not None
        self.seed = as_seed(seed)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.prefetch = bool(prefetch)
        self.epoch = 0

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration run epoch ``epoch`` (its order and augmentation)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: epoch must be an int >= 0; received {epoch!r}")
        self.epoch = int(epoch)

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The item order of ``epoch`` (default: the next one): a permutation, or 0..N-1."""
        epoch = self.epoch if epoch is None else epoch
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _batch(self, order: np.ndarray, epoch: int, b: int):
        idx = order[b * self.batch_size : (b + 1) * self.batch_size]  # (B,)
        x, y = _batch_of(self.dataset, idx)
        if self.transform is not None:
            if isinstance(self.transform, Transform) and self.seeded:
                x = self.transform(x, np.random.default_rng([self.seed, epoch, b]))
            else:
                x = self.transform(x)
        return x, y

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        order = self.order(epoch)
        n_batches = len(self)

        def produce(b):
            return self._batch(order, epoch, b)

        if self.prefetch:
            return _PrefetchIterator(produce, n_batches)
        return _PlainIterator(produce, n_batches)

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.dataset)} items, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, prefetch={self.prefetch})"
        )


class _PlainIterator:
    """Batches built on demand in the calling thread."""

    def __init__(self, produce, n_batches: int):
        self._produce, self._n, self._b = produce, n_batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._b >= self._n:
            raise StopIteration
        self._b += 1
        return self._produce(self._b - 1)

    def __len__(self) -> int:
        return self._n - self._b

    def close(self) -> None:
        self._b = self._n


def _worker(produce, n_batches: int, q: queue.Queue, stop: threading.Event) -> None:
    """Thread body: put ("batch", (x, y)) for each batch, then ("end", None) or ("error", e).

    It holds no reference to the iterator, so dropping the iterator runs its finalizer, which
    sets ``stop`` and drains the queue; a blocked put then returns and the loop ends.
    """
    try:
        for b in range(n_batches):
            if stop.is_set():
                return
            item = produce(b)
            if stop.is_set():
                return
            q.put(("batch", item))
    except BaseException as exc:  # noqa: BLE001 (handed to the consumer, raised there)
        if not stop.is_set():
            q.put(("error", exc))
        return
    if not stop.is_set():
        q.put(("end", None))


def _shutdown(stop: threading.Event, q: queue.Queue, thread: threading.Thread) -> None:
    stop.set()
    while True:  # free the slot a blocked put waits for; at most one more put follows
        try:
            q.get_nowait()
        except queue.Empty:
            break
    if thread is not threading.current_thread():
        thread.join()


class _PrefetchIterator:
    """Batches built one ahead by a daemon thread, handed over through a one-slot queue."""

    def __init__(self, produce, n_batches: int):
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._left = n_batches
        self._thread = threading.Thread(
            target=_worker,
            args=(produce, n_batches, self._queue, self._stop),
            name="cnnlab-prefetch",
            daemon=True,
        )
        self._thread.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._stop, self._queue, self._thread)

    def __iter__(self):
        return self

    def __next__(self):
        if not self._finalizer.alive:
            raise StopIteration
        kind, item = self._queue.get()
        if kind == "batch":
            self._left -= 1
            return item
        self.close()
        if kind == "error":
            raise item
        raise StopIteration

    def __len__(self) -> int:
        return self._left if self._finalizer.alive else 0

    def close(self) -> None:
        """Stop the prefetch thread and wait for it (also run when the iterator is dropped)."""
        self._finalizer()
