"""Data sets for the lessons: synthetic ones, and the small ones bundled with scikit-learn.

Nothing is downloaded. Every split is seeded and standardised with the training set's statistics,
so a lesson gets the same numbers on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lessons_lib._checks import check_choice, check_int, check_real, check_seed


@dataclass(frozen=True)
class Split:
    """A supervised data set split into train and validation parts, as float32 / int64 tensors."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    task: str  # "classification" or "regression"

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        return int(self.y_train.max()) + 1 if self.task == "classification" else 1


def _split(name, X, y, task, val_fraction, seed) -> Split:
    rng = np.random.default_rng(check_seed("seed", seed))
    order = rng.permutation(len(X))
    n_val = int(round(val_fraction * len(X)))
    val, train = order[:n_val], order[n_val:]
    mean, std = X[train].mean(0), X[train].std(0)
    std[std == 0] = 1.0
    X = (X - mean) / std
    y_dtype = torch.int64 if task == "classification" else torch.float32
    as_x = lambda idx: torch.as_tensor(X[idx], dtype=torch.float32)  # noqa: E731
    as_y = lambda idx: torch.as_tensor(y[idx], dtype=y_dtype)  # noqa: E731
    return Split(name, as_x(train), as_y(train), as_x(val), as_y(val), task)


def sklearn_dataset(name: str = "digits", *, val_fraction: float = 0.3, seed: int = 0) -> Split:
    """One of scikit-learn's bundled data sets, split and standardised.

    ``name``: "digits" (8×8 images of handwritten digits, 10 classes, 1797 samples),
    "breast_cancer" (30 measurements, 2 classes, 569 samples) or "wine" (13 features, 3 classes).
    """
    from sklearn import datasets

    loaders = {"digits": datasets.load_digits, "breast_cancer": datasets.load_breast_cancer,
               "wine": datasets.load_wine}
    check_choice("name", name, loaders)
    val_fraction = check_real("val_fraction", val_fraction, low=0, high=1, low_open=True,
                              high_open=True)
    X, y = loaders[name](return_X_y=True)
    return _split(name, X.astype(float), y, "classification", val_fraction, seed)


def linear_regression(n: int = 1000, d: int = 10, *, correlation: float = 0.0, noise: float = 0.5,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic regression data y = X w* + noise, with standardised features.

    Features are Gaussian with unit variance and pairwise correlation ``correlation`` (a shared
    factor), which sets the curvature of the squared loss: its largest Hessian eigenvalue is about
    1 + correlation·(d − 1). Returns NumPy arrays ``X (n, d)`` and ``y (n,)``.
    """
    n, d = check_int("n", n, low=2), check_int("d", d, low=1)
    rho = check_real("correlation", correlation, low=0, high=1, high_open=True)
    noise = check_real("noise", noise, low=0)
    rng = np.random.default_rng(check_seed("seed", seed))
    shared = rng.standard_normal((n, 1))
    X = np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.standard_normal((n, d))
    w_true = rng.standard_normal(d) / np.sqrt(d)
    y = X @ w_true + noise * rng.standard_normal(n)
    return X, y


def logistic_regression(n: int = 1000, d: int = 10, *, correlation: float = 0.0, seed: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary classification: P(y=1 | x) = sigmoid(x · w*), features as in
    :func:`linear_regression`. Returns ``X (n, d)`` and labels ``y (n,)`` in {0, 1}."""
    X, _ = linear_regression(n, d, correlation=correlation, noise=0.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    w_true = 3 * rng.standard_normal(d) / np.sqrt(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ w_true))).astype(float)
    return X, y


def minibatch_indices(n: int, batch_size: int, steps: int, seed: int = 0) -> torch.Tensor:
    """The order in which training visits the samples: ``steps`` minibatches of ``batch_size``
    indices into ``range(n)``, as a tensor of shape ``(steps, batch_size)``.

    The batches are consecutive slices of a random permutation (``torch.randperm`` with a
    ``torch.Generator`` seeded with ``seed``); when the next batch no longer fits in what is left
    of the permutation, the leftover samples are skipped and a new permutation is drawn. So every
    batch is full and no sample appears twice within an epoch. This one function gives the
    minibatches of :func:`lessons_lib.train.fit`, :func:`lessons_lib.lr_finder.lr_range_test` and
    :mod:`lessons_lib.batched`: runs with the same ``seed`` see the same batches.
    """
    n = check_int("n", n)
    batch_size = check_int("batch_size", batch_size, low=1, high=n)
    steps = check_int("steps", steps)
    gen = torch.Generator().manual_seed(check_seed("seed", seed))
    per_epoch = n // batch_size  # the batches one permutation gives
    epochs = -(-steps // per_epoch)
    order = [torch.randperm(n, generator=gen)[:per_epoch * batch_size] for _ in range(epochs)]
    return torch.cat(order).view(-1, batch_size)[:steps]


def one_hot_subset(split: Split, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training samples of a classification ``split`` and their labels as one-hot
    rows: ``X (n, features)`` and ``Y (n, classes)``, float32, where ``Y[i, c] = 1`` if sample ``i``
    is of class ``c`` and 0 otherwise (targets for a squared-error loss).

    A fixed subset for full-batch experiments: every step can see all ``n`` samples.
    """
    if not isinstance(split, Split) or split.task != "classification":
        raise ValueError(f"split must be a classification data.Split, got {split!r:.60}")
    n = check_int("n", n, high=len(split.X_train))
    Y = torch.nn.functional.one_hot(split.y_train[:n], split.n_outputs).float()
    return split.X_train[:n], Y
