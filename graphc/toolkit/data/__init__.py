"""Data utilities: minibatches, scaling, splits, IDX/MNIST files and small datasets.

Nothing here downloads: datasets come from installed packages (scikit-learn's
bundled digits), from local files (``load_mnist(directory)``) or from seeds.

Example::

    import graphc as gc
    x, y = gc.data.load_digits()
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = gc.data.train_val_test_split(
        x, y, val=0.1, test=0.2, seed=0, stratify=y)
    for xb, yb in gc.data.batches((x_tr, y_tr), 64, seed=0):
        ...
"""

from .batching import Batches, as_arrays, batches
from .datasets import CROSS, cross_images, has_cross, load_digits, regression_line, spirals, two_moons, xor
from .idx import MNIST_FILES, DatasetNotFoundError, IDXError, load_mnist, read_idx, write_idx
from .preprocess import (
    MinMaxScaler,
    Standardizer,
    kfold,
    minmax_scale,
    one_hot,
    standardize,
    train_val_test_split,
)

__all__ = [
    "CROSS",
    "MNIST_FILES",
    "Batches",
    "DatasetNotFoundError",
    "IDXError",
    "MinMaxScaler",
    "Standardizer",
    "as_arrays",
    "batches",
    "cross_images",
    "has_cross",
    "kfold",
    "load_digits",
    "load_mnist",
    "minmax_scale",
    "one_hot",
    "read_idx",
    "regression_line",
    "spirals",
    "standardize",
    "train_val_test_split",
    "two_moons",
    "write_idx",
    "xor",
]
