"""Data: datasets, a batching loader with a prefetch thread, batch transforms, splits.

>>> from cnnlab import data
>>> train = data.mnist("train")                      # the subset shipped inside cnnlab
>>> loader = data.DataLoader(train, 64, shuffle=True, seed=0,
...                          transform=data.RandomShift(2))
>>> x, y = next(iter(loader))
>>> x.shape, y.shape
((64, 28, 28, 1), (64,))

Images are channels-last (N, H, W, C) float32 in [0, 1]; labels int64. Files that are
missing, corrupt or truncated raise DataError (a ValueError) naming the file.
"""

from cnnlab.data.dataset import ArrayDataset, ArrayView, Dataset, Subset
from cnnlab.data.datasets import cifar10, fashion_mnist, load_idx_pair, mnist
from cnnlab.data.errors import DataError, DataFileNotFoundError
from cnnlab.data.fetch import cache_dir, download
from cnnlab.data.idx import read_idx, write_idx
from cnnlab.data.images import image_folder, load_image
from cnnlab.data.loader import DataLoader
from cnnlab.data.shift import mnist_shifted, shift_images
from cnnlab.data.splits import split_indices, train_dev_split, train_dev_test_split
from cnnlab.data.transforms import (
    Compose,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShift,
    Scale,
    Transform,
)

__all__ = [
    "ArrayDataset",
    "ArrayView",
    "Compose",
    "DataError",
    "DataFileNotFoundError",
    "DataLoader",
    "Dataset",
    "Normalize",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "Scale",
    "Subset",
    "Transform",
    "cache_dir",
    "cifar10",
    "download",
    "fashion_mnist",
    "image_folder",
    "load_idx_pair",
    "load_image",
    "mnist",
    "mnist_shifted",
    "read_idx",
    "shift_images",
    "split_indices",
    "train_dev_split",
    "train_dev_test_split",
    "write_idx",
]
