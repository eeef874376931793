"""Tests of lessons_lib.batches: epochs and iterations, per-example values, minibatch noise.

References:

- ``iterations_per_epoch``: the length of a real ``torch.utils.data.DataLoader`` and the number
  of batches it yields, with and without ``drop_last``;
- ``per_example_losses`` / ``per_example_gradients``: ``cross_entropy(reduction="none")`` and a
  loop of single-sample ``loss.backward()``;
- ``predicted_spread``: every minibatch of a tiny data set enumerated (``itertools.combinations``),
  the exact standard deviation of their means; ``minibatch_spread`` within its standard error;
- ``gradient_noise_scale``: the mean and unbiased variance of the per-example gradients computed
  with plain Python loops; ``noise_scale_from_batches``: that exact value.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import cross_entropy
from torch.utils.data import DataLoader, TensorDataset

from lessons_lib import batches, models


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def loader_counts(n, batch_size, drop_last):
    """len() of a DataLoader over n samples and the number of batches it actually yields."""
    loader = DataLoader(TensorDataset(torch.arange(n)), batch_size=batch_size, drop_last=drop_last)
    return len(loader), sum(1 for _ in loader)


def random_sizes(count=40, seed=0):
    """(N, B) pairs with 1 <= B <= N, plus the edge cases B = N, B = 1 and B not dividing N."""
    rng = np.random.default_rng(seed)
    pairs = [(4000, 400), (10, 10), (10, 1), (10, 3), (1, 1), (101, 50), (7, 7)]
    for _ in range(count):
        n = int(rng.integers(1, 300))
        pairs.append((n, int(rng.integers(1, n + 1))))
    return pairs


# --- iterations per epoch ---------------------------------------------------------------------

def test_iterations_per_epoch_of_the_articles_example():
    """Catches the articles' example going wrong: 4000 samples in batches of 400 are 10 updates,
    however the (absent) last batch is treated, as a DataLoader counts them."""
    for drop_last in (False, True):
        assert batches.iterations_per_epoch(4000, 400, drop_last=drop_last) == 10
        assert loader_counts(4000, 400, drop_last) == (10, 10)


@pytest.mark.parametrize("drop_last", [False, True])
def test_iterations_per_epoch_is_what_a_dataloader_gives(drop_last):
    """Catches ⌈N/B⌉ and ⌊N/B⌋ swapped, an off-by-one when B does not divide N (or divides it),
    or a wrong default of drop_last: for many random (N, B) the count must be the DataLoader's
    len() and the number of batches it yields."""
    for n, b in random_sizes():
        expected, yielded = loader_counts(n, b, drop_last)
        assert expected == yielded
        assert batches.iterations_per_epoch(n, b, drop_last=drop_last) == expected, (n, b)
        if not drop_last:  # the default is DataLoader's default, keep the last batch
            assert batches.iterations_per_epoch(n, b) == expected, (n, b)


def test_iterations_per_epoch_bad_input():
    """Catches a batch larger than the data, an empty batch or a non-bool drop_last accepted."""
    with pytest.raises(ValueError, match=r"^batch_size must be an integer in \[1, 10\], got 0$"):
        batches.iterations_per_epoch(10, 0)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer in \[1, 10\], got 11$"):
        batches.iterations_per_epoch(10, 11)
    with pytest.raises(ValueError, match=r"^n_samples must be an integer >= 1, got 0$"):
        batches.iterations_per_epoch(0, 1)
    with pytest.raises(ValueError, match=r"^drop_last must be True or False, got 1$"):
        batches.iterations_per_epoch(10, 3, drop_last=1)
    with pytest.raises(ValueError, match=r"^drop_last must be True or False, got the string"):
        batches.iterations_per_epoch(10, 3, drop_last="yes")


# --- per-example losses and gradients --------------------------------------------------------

def small_problem(n=12, n_in=64, n_out=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=gen), torch.randint(0, n_out, (n,), generator=gen)


def looped_gradients(model, X, y):
    """Row i: the trainable parameters' .grad after loss(model(X[i:i+1]), y[i:i+1]).backward(),
    flattened in model.parameters() order."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    rows = []
    for i in range(len(X)):
        for p in trainable:
            p.grad = None
        cross_entropy(model(X[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in trainable]))
    for p in trainable:
        p.grad = None
    return torch.stack(rows)


NETS = {
    "mlp": lambda: models.mlp(64, 10, width=16, depth=2, seed=3),
    "small_cnn": lambda: models.small_cnn(10, channels=4, image_size=8, seed=3),
}


@pytest.mark.parametrize("net", NETS)
def test_per_example_gradients_are_single_sample_backward_passes(net):
    """Catches rows that are not each sample's own gradient (mixed samples, a missing 1/N or
    an extra one, parameters in another order), a model's weights or .grad touched, and rows
    whose mean is not the full-batch gradient."""
    model = NETS[net]()
    X, y = small_problem()
    before = [p.detach().clone() for p in model.parameters()]
    got = batches.per_example_gradients(model, cross_entropy, X, y)
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    expected = looped_gradients(model, X, y)
    assert got.shape == (len(X), models.count_parameters(model))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    full = torch.autograd.grad(cross_entropy(model(X), y), list(model.parameters()))
    torch.testing.assert_close(got.mean(0), torch.cat([g.reshape(-1) for g in full]),
                               rtol=1e-5, atol=1e-6)


def test_per_example_gradients_leave_frozen_weights_out():
    """Catches columns for a frozen parameter (requires_grad=False), or the frozen weights not
    used in the forward pass: only the trainable weights' gradients, with the frozen values."""
    model = models.mlp(64, 10, width=16, depth=2, seed=1)
    model[2].weight.requires_grad_(False)  # the middle layer's matrix
    X, y = small_problem(seed=1)
    got = batches.per_example_gradients(model, cross_entropy, X, y)
    assert got.shape == (len(X), models.count_parameters(model))
    assert got.shape[1] == sum(p.numel() for p in model.parameters()) - 16 * 16
    torch.testing.assert_close(got, looped_gradients(model, X, y), rtol=1e-5, atol=1e-6)


def test_per_example_losses_are_cross_entropy_without_reduction():
    """Catches per-example losses that are averaged, mixed up between samples, or computed with
    gradients recorded."""
    model = models.small_cnn(10, channels=4, seed=2)
    X, y = small_problem(n=20, seed=2)
    got = batches.per_example_losses(model, cross_entropy, X, y)
    with torch.no_grad():
        expected = cross_entropy(model(X), y, reduction="none")
    assert got.shape == (20,) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


# --- the spread of a minibatch average --------------------------------------------------------

def test_predicted_spread_is_the_exact_spread_over_every_minibatch():
    """Catches the formula s·√(1/B − 1/N) broken (the population instead of the unbiased
    variance, 1/B alone as for draws with replacement): for 7 values, every subset of each size B
    is enumerated and the population standard deviation of their means is the exact answer."""
    values = np.random.default_rng(0).normal(3.0, 2.0, size=7)
    n, s = values.size, values.std(ddof=1)
    exact = []
    for b in range(1, n + 1):
        means = [np.mean(subset) for subset in itertools.combinations(values, b)]
        exact.append(np.std(means))  # every subset equally likely: population std
        assert batches.predicted_spread(values, b) == pytest.approx(exact[-1], abs=1e-12)
        assert batches.predicted_spread(values, b) == pytest.approx(
            s * math.sqrt(1 / b - 1 / n), abs=1e-12)
    np.testing.assert_allclose(batches.predicted_spread(values, np.arange(1, n + 1)), exact,
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(batches.predicted_spread(torch.tensor(values), np.arange(1, n + 1)),
                               exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("b", [1, 5, 40, 95])
def test_minibatch_spread_approaches_the_prediction(b):
    """Catches minibatch_spread drawing with replacement, drawing batches of another size, or not
    averaging over the batch: over 20 000 draws it must be within 5 standard errors of the exact
    spread (relative standard error of a standard deviation ≈ 1/√(2·draws) for near-normal
    means)."""
    values = np.random.default_rng(1).exponential(size=100)
    draws = 20_000
    predicted = float(batches.predicted_spread(values, b))
    measured = batches.minibatch_spread(values, b, draws=draws, seed=0)
    assert measured == pytest.approx(predicted, rel=5 / math.sqrt(2 * draws))


def test_minibatch_spread_of_the_whole_data_is_zero():
    """Catches draws with replacement: a batch of all N values drawn without replacement is the
    whole data set every time, so its mean never moves."""
    values = np.random.default_rng(2).normal(size=30)
    assert batches.minibatch_spread(values, 30, draws=50) == pytest.approx(0.0, abs=1e-12)
    assert batches.predicted_spread(values, 30) == 0.0


def test_spread_bad_input():
    """Catches a batch larger than the data or empty, too few draws, or non-finite values
    accepted."""
    values = np.arange(7.0)
    for bad in (0, 8):
        with pytest.raises(ValueError, match=rf"^batch_size must be an integer in \[1, 7\], "
                                             rf"got {bad}$"):
            batches.minibatch_spread(values, bad)
        with pytest.raises(ValueError, match=r"^batch_size must be integers in \[1, 7\] "
                                             r"\(the number of values\)"):
            batches.predicted_spread(values, bad)
    with pytest.raises(ValueError, match=r"^batch_size must be integers in \[1, 7\]"):
        batches.predicted_spread(values, np.array([1, 8]))
    with pytest.raises(ValueError, match=r"^batch_size must be integers in \[1, 7\]"):
        batches.predicted_spread(values, 2.5)
    with pytest.raises(ValueError, match=r"^draws must be an integer >= 2, got 1$"):
        batches.minibatch_spread(values, 3, draws=1)
    with pytest.raises(ValueError, match=r"^values must be a flat array of at least 2 finite "):
        batches.minibatch_spread([1.0, np.nan, 2.0], 2)
    with pytest.raises(ValueError, match=r"^values must be a flat array of at least 2 finite "):
        batches.predicted_spread([1.0], 1)


# --- the gradient noise scale -----------------------------------------------------------------

def test_noise_scale_of_a_zero_gradient_is_infinite():
    """Catches a ZeroDivisionError (or 0) when the full gradient vanishes."""
    assert batches.NoiseScale(grad_sq=0.0, trace_cov=1.5).b_simple == math.inf
    assert batches.NoiseScale(grad_sq=2.0, trace_cov=3.0).b_simple == 1.5


def test_gradient_noise_scale_is_mean_and_summed_unbiased_variance(wine):
    """Catches ‖G‖² or tr(Σ) computed another way than from the definition (the biased variance,
    the mean of the squares, a square root too many): plain loops over the per-example gradients
    of single-sample backward passes give the reference."""
    model = models.mlp(13, 3, width=8, seed=0)
    X, y = wine.X_train[:30], wine.y_train[:30]
    rows = looped_gradients(model, X, y).double().tolist()
    n, p = len(rows), len(rows[0])
    mean = [math.fsum(row[j] for row in rows) / n for j in range(p)]
    grad_sq = math.fsum(m * m for m in mean)
    trace = math.fsum(math.fsum((row[j] - mean[j]) ** 2 for row in rows) / (n - 1)
                      for j in range(p))
    got = batches.gradient_noise_scale(model, cross_entropy, X, y)
    assert got.grad_sq == pytest.approx(grad_sq, rel=1e-4)
    assert got.trace_cov == pytest.approx(trace, rel=1e-4)
    assert got.b_simple == pytest.approx(trace / grad_sq, rel=1e-4)


@pytest.fixture(scope="module")
def digits300(digits):
    return digits.X_train[:300], digits.y_train[:300]


def test_noise_scale_from_batches_estimates_the_exact_one(digits300):
    """Catches a wrong solution of the two equations (E‖G_B‖² = ‖G‖² + tr Σ·(1/B − 1/N)), batches
    of the wrong size, or a model changed by the estimate: with 400 draws of batches of 4 and 64
    out of 300 digits, each part is within 10 % of the exact per-example value (the spread over
    seeds is about 2 %), and the weights and their .grad are as before."""
    X, y = digits300
    model = models.mlp(64, 10, width=32, seed=0)
    exact = batches.gradient_noise_scale(model, cross_entropy, X, y)
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = [(p.detach().clone(), p.grad.clone()) for p in model.parameters()]
    est = batches.noise_scale_from_batches(model, cross_entropy, X, y, small=4, big=64, draws=400)
    for (weight, grad), p in zip(before, model.parameters()):
        assert torch.equal(weight, p) and torch.equal(grad, p.grad)
    assert est.grad_sq == pytest.approx(exact.grad_sq, rel=0.10)
    assert est.trace_cov == pytest.approx(exact.trace_cov, rel=0.10)
    assert est.b_simple == pytest.approx(exact.b_simple, rel=0.10)


def test_noise_scale_from_batches_with_the_whole_data_has_the_exact_signal(digits300):
    """Catches 1/B used instead of 1/B − 1/N: when the big batch is all N samples, every big
    gradient is the full gradient, so the estimated ‖G‖² is exact whatever the small batches
    gave (with 1/B alone it would be off by tr Σ/N, about 14 % here)."""
    X, y = digits300
    model = models.mlp(64, 10, width=32, seed=0)
    exact = batches.gradient_noise_scale(model, cross_entropy, X, y)
    est = batches.noise_scale_from_batches(model, cross_entropy, X, y, small=10, big=len(X),
                                           draws=3)
    assert est.grad_sq == pytest.approx(exact.grad_sq, rel=1e-5)


def test_model_and_data_bad_input(wine):
    """Catches a model that is not a Module, X and y of different lengths, a big batch not
    larger than the small one, or no draws accepted: each message names the argument."""
    model = models.mlp(13, 3, width=8)
    X, y = wine.X_train[:40], wine.y_train[:40]
    for fn in (batches.per_example_losses, batches.per_example_gradients,
               batches.gradient_noise_scale):
        with pytest.raises(ValueError, match=r"^model must be a torch.nn.Module, got function$"):
            fn(lambda x: x, cross_entropy, X, y)
        with pytest.raises(ValueError, match=r"^X and y must be tensors with one row per sample"):
            fn(model, cross_entropy, X, y[:-1])
        with pytest.raises(ValueError, match=r"^loss_fn must be a function"):
            fn(model, "cross_entropy", X, y)
    with pytest.raises(ValueError, match=r"^model must be a torch.nn.Module, got Tensor$"):
        batches.noise_scale_from_batches(torch.zeros(3), cross_entropy, X, y, small=2, big=4)
    with pytest.raises(ValueError, match=r"^X and y must be tensors with one row per sample"):
        batches.noise_scale_from_batches(model, cross_entropy, X[:-1], y, small=2, big=4)
    with pytest.raises(ValueError, match=r"^X and y must be tensors with one row per sample"):
        batches.noise_scale_from_batches(model, cross_entropy, X.numpy(), y, small=2, big=4)
    for small, big in ((8, 8), (8, 4)):
        with pytest.raises(ValueError, match=rf"^big must be larger than small, got small={small} "
                                             rf"and big={big}$"):
            batches.noise_scale_from_batches(model, cross_entropy, X, y, small=small, big=big)
    with pytest.raises(ValueError, match=r"^big must be an integer in \[1, 40\], got 41$"):
        batches.noise_scale_from_batches(model, cross_entropy, X, y, small=2, big=41)
    with pytest.raises(ValueError, match=r"^small must be an integer in \[1, 40\], got 0$"):
        batches.noise_scale_from_batches(model, cross_entropy, X, y, small=0, big=4)
    with pytest.raises(ValueError, match=r"^draws must be an integer >= 1, got 0$"):
        batches.noise_scale_from_batches(model, cross_entropy, X, y, small=2, big=4, draws=0)
    with pytest.raises(ValueError, match=r"^X must hold at least 2 samples, got 1$"):
        batches.per_example_gradients(model, cross_entropy, X[:1], y[:1])


def test_nn_module_subclasses_are_models():
    """Catches the model check refusing a user's own Module subclass (only Sequential allowed)."""

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 3)

        def forward(self, x):
            return self.layer(x)

    X, y = small_problem(n=5, n_in=4, n_out=3)
    assert batches.per_example_gradients(Linear(), cross_entropy, X, y).shape == (5, 15)
