"""train/dev(/test) splits: sizes, disjointness, seeds, stratification."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import ArrayDataset, Dataset, Subset, train_dev_split, train_dev_test_split


def _imbalanced():
    y = np.repeat([0, 1, 2], [700, 200, 100])
    x = np.arange(1000, dtype=np.float32)[:, None]  # x remembers the item's position
    return ArrayDataset(x, y, classes=["a", "b", "c"])


def _positions(ds):
    return ds.x[:, 0].astype(int)


def test_random_split_partitions_and_is_seeded():
    ds = _imbalanced()
    train, dev = train_dev_split(ds, 0.2, seed=0)
    assert isinstance(train, ArrayDataset) and train.classes == ["a", "b", "c"]
    assert len(train) == 800 and len(dev) == 200
    p_train, p_dev = _positions(train), _positions(dev)
    assert sorted(np.concatenate([p_train, p_dev]).tolist()) == list(range(1000))
    assert np.array_equal(ds.y[p_dev], dev.y)  # labels travel with their images
    again = train_dev_split(ds, 0.2, seed=0)[1]
    other = train_dev_split(ds, 0.2, seed=1)[1]
    assert np.array_equal(_positions(again), p_dev)
    assert not np.array_equal(_positions(other), p_dev)
    assert np.all(np.diff(p_train) > 0)  # original order kept inside a part


def test_stratified_keeps_class_proportions():
    ds = _imbalanced()
    train, dev = train_dev_split(ds, 0.2, seed=0, stratify=True)
    assert np.bincount(dev.y).tolist() == [140, 40, 20]
    assert np.bincount(train.y).tolist() == [560, 160, 80]
    # odd sizes: each class within one item of its exact share, the total exact
    train, dev = train_dev_split(ds, 0.137, seed=3, stratify=True)
    assert len(dev) == 137
    share = np.array([700, 200, 100]) * 0.137
    assert np.all(np.abs(np.bincount(dev.y, minlength=3) - share) < 1)


def test_three_way_stratified():
    ds = _imbalanced()
    train, dev, test = train_dev_test_split(ds, 0.1, 0.2, seed=0, stratify=True)
    assert np.bincount(test.y).tolist() == [140, 40, 20]
    assert np.bincount(dev.y).tolist() == [70, 20, 10]
    assert np.bincount(train.y).tolist() == [490, 140, 70]
    parts = [_positions(p) for p in (train, dev, test)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))


def test_counts_pairs_and_generic_datasets():
    x, y = np.arange(10.0), np.arange(10) % 2
    (x_tr, y_tr), (x_dev, y_dev) = train_dev_split((x, y), 3, seed=0)
    assert len(x_dev) == 3 and len(x_tr) == 7
    assert np.array_equal(y_dev, x_dev.astype(int) % 2)
    assert np.array_equal(y_tr, x_tr.astype(int) % 2)
    _, (_, y_dev) = train_dev_split((x, y), 4, seed=0, stratify=True)
    assert np.bincount(y_dev).tolist() == [2, 2]

    class Plain(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return np.zeros(2), i % 3

    train, dev, test = train_dev_test_split(Plain(), 0.25, 0.25, seed=0, stratify=True)
    assert all(isinstance(p, Subset) for p in (train, dev, test))
    assert [len(p) for p in (train, dev, test)] == [6, 3, 3]
    assert sorted(dev.batch(np.arange(3))[1].tolist()) == [0, 1, 2]


def test_bad_fractions():
    ds = _imbalanced()
    with pytest.raises(
        ValueError,
        match=r"train_dev_split: dev_fraction must be a fraction in \[0, 1\) or an item count; "
        r"received 1.0",
    ):
        train_dev_split(ds, 1.0)
    with pytest.raises(ValueError, match="leave no training items"):
        train_dev_test_split(ds, 0.5, 0.5)
    with pytest.raises(ValueError, match="count must be in"):
        train_dev_split(ds, 5000)
    with pytest.raises(ValueError, match="stratify needs 1-D integer class labels"):
        train_dev_split((np.zeros(4), np.array([0.5, 1.5, 0.5, 1.5])), 0.5, stratify=True)
