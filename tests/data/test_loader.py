"""DataLoader: each epoch covers every item once, seeded shuffles per epoch, the prefetch thread."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

from cnnlab.data import ArrayDataset, DataLoader, Dataset, RandomShift, Subset


def _dataset(n=23):
    x = np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 4, 1), np.float32)
    return ArrayDataset(x, np.arange(n))


def _epoch(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


@pytest.mark.parametrize("prefetch", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_item_once_per_epoch(prefetch, shuffle):
    loader = DataLoader(_dataset(23), 5, shuffle=shuffle, seed=1, prefetch=prefetch)
    assert len(loader) == 5
    for _ in range(3):
        batches = _epoch(loader)
        assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
        ys = np.concatenate([y for _, y in batches])
        assert sorted(ys.tolist()) == list(range(23))
        for x, y in batches:  # x travels with its y
            assert np.array_equal(x[:, 0, 0, 0], y.astype(np.float32))
        if not shuffle:
            assert ys.tolist() == list(range(23))


def test_drop_last():
    loader = DataLoader(_dataset(23), 5, shuffle=True, seed=0, drop_last=True)
    assert len(loader) == 4
    batches = _epoch(loader)
    assert [len(y) for _, y in batches] == [5, 5, 5, 5]
    assert len(set(np.concatenate([y for _, y in batches]).tolist())) == 20
    assert len(DataLoader(_dataset(20), 5, drop_last=True)) == 4
    assert len(DataLoader(_dataset(3), 5, drop_last=True)) == 0
    assert _epoch(DataLoader(_dataset(3), 5, drop_last=True)) == []


def _orders(loader, epochs=3):
    return [np.concatenate([y for _, y in loader]).tolist() for _ in range(epochs)]


def test_shuffle_deterministic_per_seed_and_epoch():
    a = _orders(DataLoader(_dataset(50), 8, shuffle=True, seed=7))
    b = _orders(DataLoader(_dataset(50), 8, shuffle=True, seed=7))
    c = _orders(DataLoader(_dataset(50), 8, shuffle=True, seed=8))
    assert a == b
    assert a != c
    assert a[0] != a[1] != a[2]  # a new permutation each epoch
    # a resumed run: set_epoch(k) on a fresh loader replays epoch k
    resumed = DataLoader(_dataset(50), 8, shuffle=True, seed=7)
    resumed.set_epoch(2)
    assert _orders(resumed, 1)[0] == a[2]
    assert resumed.epoch == 3
    assert DataLoader(_dataset(50), 8, shuffle=True, seed=7).order(1).tolist() == a[1]


def test_seed_from_generator_and_none():
    a = _orders(DataLoader(_dataset(30), 4, shuffle=True, seed=np.random.default_rng(3)), 2)
    b = _orders(DataLoader(_dataset(30), 4, shuffle=True, seed=np.random.default_rng(3)), 2)
    assert a == b
    unseeded = _orders(DataLoader(_dataset(30), 4, shuffle=True), 2)
    assert all(sorted(o) == list(range(30)) for o in unseeded)


@pytest.mark.parametrize("seed", [5, None])
def test_prefetch_gives_the_same_batches(seed):
    def make(prefetch):
        # seed None: the order is 0..N-1 and the transform draws from its own Generator
        return DataLoader(
            _dataset(40),
            6,
            shuffle=seed is not None,
            seed=seed,
            transform=RandomShift(1, seed=3),
            prefetch=prefetch,
        )

    with_thread, without = make(True), make(False)
    for _ in range(2):
        a, b = _epoch(with_thread), _epoch(without)
        assert len(a) == len(b) == 7
        for (xa, ya), (xb, yb) in zip(a, b):
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)


def test_seeded_augmentation_reproducible_per_epoch():
    def run(epoch):
        loader = DataLoader(_dataset(20), 5, shuffle=True, seed=2, transform=RandomShift(1))
        loader.set_epoch(epoch)
        return _epoch(loader)

    first, again, other = run(4), run(4), run(5)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_thread_stops_when_iterator_abandoned_or_closed():
    loader = DataLoader(_dataset(100), 2, shuffle=True, seed=0)
    it = iter(loader)
    next(it)
    thread = it._thread
    assert thread.daemon and thread.is_alive()
    del it
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()

    it = iter(loader)
    next(it)
    it.close()
    assert not it._thread.is_alive()
    with pytest.raises(StopIteration):
        next(it)

    for _ in loader:  # a finished epoch leaves no thread behind
        pass
    gc.collect()
    assert not [t for t in threading.enumerate() if t.name == "cnnlab-prefetch" and t.is_alive()]


class _Faulty(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 7:
            raise RuntimeError("bad item 7")
        return np.full((2,), i, np.float32), i


@pytest.mark.parametrize("prefetch", [False, True])
def test_error_in_a_batch_reaches_the_consumer(prefetch):
    loader = DataLoader(_Faulty(), 3, prefetch=prefetch)
    got = []
    with pytest.raises(RuntimeError, match="bad item 7"):
        for _x, y in loader:
            got.append(y.tolist())
    assert got == [[0, 1, 2], [3, 4, 5]]


class _Plain(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.full((3, 3, 1), i, np.float32), i


def test_generic_dataset_and_pairs():
    batches = _epoch(DataLoader(_Plain(), 3))
    assert [x.shape for x, _ in batches] == [(3, 3, 3, 1), (3, 3, 3, 1), (1, 3, 3, 1)]
    assert np.concatenate([y for _, y in batches]).tolist() == list(range(7))
    x, y = np.zeros((5, 2)), np.arange(5)
    assert [b[1].tolist() for b in DataLoader((x, y), 2)] == [[0, 1], [2, 3], [4]]
    sub = Subset(_dataset(10), [9, 2, 4])
    assert [b[1].tolist() for b in DataLoader(sub, 2)] == [[9, 2], [4]]


def test_array_dataset_batches_without_item_loop():
    class Counting(ArrayDataset):
        calls = 0

        def __getitem__(self, i):
            Counting.calls += 1
            return super().__getitem__(i)

    ds = Counting(np.zeros((30, 2, 2, 1)), np.arange(30))
    assert sum(len(y) for _, y in DataLoader(ds, 4, shuffle=True, seed=0)) == 30
    assert Counting.calls == 0


def test_plain_callable_transform():
    loader = DataLoader(_dataset(6), 3, transform=lambda x: x * 2)
    assert [x[:, 0, 0, 0].tolist() for x, _ in loader] == [[0, 2, 4], [6, 8, 10]]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"DataLoader: batch_size must be an int >= 1; received 0"):
        DataLoader(_dataset(), 0)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_dataset(), 2.5)
    with pytest.raises(TypeError, match="DataLoader: dataset must have __len__"):
        DataLoader(42, 2)
    with pytest.raises(TypeError, match="transform must be callable"):
        DataLoader(_dataset(), 2, transform=3)
    with pytest.raises(ValueError, match="set_epoch: epoch must be an int >= 0"):
        DataLoader(_dataset(), 2).set_epoch(-1)


def test_array_dataset():
    ds = ArrayDataset(np.zeros((4, 2), np.float32), np.array([0, 1, 2, 1], np.uint8), classes="abc")
    assert ds.y.dtype == np.int64 and ds.num_classes == 3 and len(ds) == 4
    assert ArrayDataset(np.zeros((4, 2)), [0, 5, 1, 1]).num_classes == 6
    x, y = ds[1]
    assert x.shape == (2,) and y == 1
    with pytest.raises(IndexError, match="ArrayDataset: index 4 is out of range for 4 items"):
        ds[4]
    with pytest.raises(
        ValueError,
        match=r"same number of items; received x.shape=\(4, 2\) \(4 items\) and y.shape=\(3,\)",
    ):
        ArrayDataset(np.zeros((4, 2)), np.zeros(3))
