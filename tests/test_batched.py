"""Tests of lessons_lib.batched: each of the K runs trained together equals train.fit run alone.

Both stacks are checked: ``fit_mlps`` against ``models.mlp`` and ``fit_cnns`` against
``models.small_cnn``, each trained by ``train.fit``.

The reference for run k is ``train.fit(models.mlp(..., seed=seeds[k]), data, lr=lrs[k], ...)``
with the matching torch optimizer (``torch.optim.Adam(weight_decay=l2)`` for the L2 penalty,
``torch.optim.AdamW(weight_decay=decay)`` for decoupled decay, a step-decay ``lr_schedule`` for
``lr_factor``). The runs differ only by float32 rounding (batched versus single matrix products),
so the losses must agree to 5e-4 and the accuracies to within two validation images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lessons_lib import batched, data, models, optimizers, train

STEPS = 40


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def reference(digits, lr, seed, optimizer, depth=1, width=16, lr_schedule=None):
    model = models.mlp(digits.n_features, digits.n_outputs, width=width, depth=depth, seed=seed)
    return train.fit(model, digits, lr=lr, steps=STEPS, optimizer=optimizer, eval_every=10,
                     seed=seed, lr_schedule=lr_schedule)


def assert_same(runs, k, hist):
    assert bool(runs.diverged[k]) == hist.diverged
    n = len(hist.train_loss)
    np.testing.assert_allclose(runs.train_loss[k, :n], hist.train_loss, rtol=5e-4, atol=1e-5)
    assert np.isnan(runs.train_loss[k, n:]).all()
    if not hist.diverged:
        np.testing.assert_allclose(runs.val_loss[k], hist.val_loss, rtol=5e-4, atol=1e-5)
        np.testing.assert_allclose(runs.val_acc[k], hist.val_acc, atol=0.004)
        assert runs.final_val_loss[k] == pytest.approx(hist.final_val_loss, rel=5e-4)
    else:
        assert runs.final_val_loss[k] == np.inf and runs.final_val_acc[k] == 0.0


@pytest.mark.parametrize("optimizer", optimizers.TORCH_OPTIMIZERS)
def test_each_run_equals_train_fit(digits, optimizer):
    lrs = {"sgd": [0.01, 0.3, 50.0], "momentum": [0.01, 0.1, 20.0],
           "rmsprop": [1e-4, 1e-3, 1e-2]}.get(optimizer, [1e-3, 1e-2, 0.1])
    seeds = [0, 1, 2]
    runs = batched.fit_mlps(digits, lrs=lrs, seeds=seeds, steps=STEPS, optimizer=optimizer,
                            width=16, eval_every=10)
    assert runs.train_loss.shape == (3, STEPS) and runs.eval_steps.tolist() == [10, 20, 30, 40]
    for k, (lr, seed) in enumerate(zip(lrs, seeds)):
        assert_same(runs, k, reference(digits, lr, seed, optimizer))


def test_divergence_is_detected_like_train_fit(digits):
    runs = batched.fit_mlps(digits, lrs=[0.05, 50.0], seeds=0, steps=STEPS, width=16,
                            eval_every=10)
    assert runs.diverged.tolist() == [False, True]
    assert_same(runs, 1, reference(digits, 50.0, 0, "sgd"))


def test_deeper_networks_and_broadcast_seeds(digits):
    runs = batched.fit_mlps(digits, lrs=1e-3, seeds=[3, 4], steps=STEPS, optimizer="adam",
                            depth=3, width=16, eval_every=10)
    assert runs.lrs.tolist() == [1e-3, 1e-3]
    for k, seed in enumerate([3, 4]):
        assert_same(runs, k, reference(digits, 1e-3, seed, "adam", depth=3))


@pytest.mark.parametrize("penalty, torch_optimizer, lrs, amounts, seed", [
    ("l2", torch.optim.Adam, [1e-3, 3e-3], [0.1, 0.01], 0),      # L2 in the gradient = Adam's wd
    ("decay", torch.optim.AdamW, [1e-3, 1e-2], [0.5, 0.05], 1),  # decoupled decay = AdamW's wd
])
def test_weight_penalties_equal_torch(digits, penalty, torch_optimizer, lrs, amounts, seed):
    runs = batched.fit_mlps(digits, lrs=lrs, seeds=seed, steps=STEPS, optimizer="adam",
                            width=16, eval_every=10, **{penalty: amounts})
    for k in range(2):
        def opt(p, lr, wd=amounts[k]):
            return torch_optimizer(p, lr=lr, weight_decay=wd)
        assert_same(runs, k, reference(digits, lrs[k], seed, opt))


def test_callable_optimizer_adabelief(digits):
    import adabelief_pytorch  # a requirement of `make test`: missing means FAIL, not skip

    def make(p, lr):
        return adabelief_pytorch.AdaBelief(p, lr=lr, eps=1e-16, weight_decouple=True,
                                           rectify=False, print_change_log=False)

    runs = batched.fit_mlps(digits, lrs=[1e-3, 1e-2], seeds=[0, 1], steps=STEPS, optimizer=make,
                            width=16, eval_every=10)
    for k, (lr, seed) in enumerate([(1e-3, 0), (1e-2, 1)]):
        assert_same(runs, k, reference(digits, lr, seed, make))


def test_lr_factor_equals_lr_schedule(digits):
    factor = lambda t: 0.1 ** (t // 15)  # noqa: E731
    runs = batched.fit_mlps(digits, lrs=[0.1, 0.5], seeds=[0, 0], steps=STEPS,
                            optimizer="momentum", width=16, eval_every=10, lr_factor=factor)
    for k, lr in enumerate([0.1, 0.5]):
        hist = reference(digits, lr, 0, "momentum", lr_schedule=lambda t, lr=lr: lr * factor(t))
        assert_same(runs, k, hist)


def test_regression_task():
    X, y = data.linear_regression(n=200, d=5, seed=0)
    split = data._split("linreg", X, y, "regression", 0.25, 0)
    runs = batched.fit_mlps(split, lrs=[1e-2, 1e-1], seeds=[0, 1], steps=STEPS, width=8,
                            eval_every=10)
    for k, (lr, seed) in enumerate([(1e-2, 0), (1e-1, 1)]):
        model = models.mlp(5, 1, width=8, seed=seed)
        hist = train.fit(model, split, lr=lr, steps=STEPS, eval_every=10, seed=seed)
        assert_same(runs, k, hist)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_each_cnn_equals_train_fit_of_small_cnn(digits, optimizer):
    lrs = [0.01, 0.1, 30.0] if optimizer == "momentum" else [1e-3, 1e-2, 0.1]
    runs = batched.fit_cnns(digits, lrs=lrs, seeds=[0, 1, 2], steps=STEPS, optimizer=optimizer,
                            eval_every=10, channels=4)
    for k, (lr, seed) in enumerate(zip(lrs, [0, 1, 2])):
        hist = train.fit(models.small_cnn(10, channels=4, seed=seed), digits, lr=lr, steps=STEPS,
                         optimizer=optimizer, eval_every=10, seed=seed)
        assert_same(runs, k, hist)
    expected = [False, False, True] if optimizer == "momentum" else [False] * 3
    assert runs.diverged.tolist() == expected


def test_cnn_with_schedule_and_l2(digits):
    factor = lambda t: 0.1 ** (t // 20)  # noqa: E731
    runs = batched.fit_cnns(digits, lrs=[0.05], seeds=[3], l2=[1e-3], steps=STEPS,
                            optimizer="momentum", eval_every=10, lr_factor=factor)
    opt = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=1e-3)  # noqa: E731
    hist = train.fit(models.small_cnn(seed=3), digits, lr=0.05, steps=STEPS, optimizer=opt,
                     eval_every=10, seed=3, lr_schedule=lambda t: 0.05 * factor(t))
    assert_same(runs, 0, hist)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"channels": 0}, r"^channels must be an integer >= 1, got 0"),
     ({"image_size": 7}, r"^image_size must be even and image_size² must equal the number of "
                         r"features \(64\), got image_size=7"),
     ({"image_size": 4}, r"^image_size must be even and image_size² must equal the number of "
                         r"features \(64\), got image_size=4")],
)
def test_fit_cnns_bad_arguments(digits, kwargs, match):
    """Catches a CNN setting that does not fit the images accepted, or refused by a message that
    does not start with the argument and what it allows."""
    with pytest.raises(ValueError, match=match):
        batched.fit_cnns(digits, lrs=0.1, steps=2, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lrs": [-0.1]}, r"^lrs must be finite and > 0; got \[-0\.1\]"),
        ({"lrs": [np.nan]}, r"^lrs must be finite and > 0; got \[nan\]"),
        ({"lrs": []}, r"^lrs must hold at least one learning rate, got an empty array"),
        ({"lrs": [0.0]}, r"^lrs must be finite and > 0; got \[0\.0\]"),
        ({"lrs": 0.1, "seeds": -1}, r"^seeds must be an integer >= 0 or an array of them, got -1"),
        ({"lrs": 0.1, "seeds": [0.5]},
         r"^seeds must be an integer >= 0 or an array of them, got \[0\.5\]"),
        ({"lrs": 0.1, "seeds": []},
         r"^seeds must be an integer >= 0 or an array of them, got \[\]"),
        ({"lrs": [0.1, 0.2], "seeds": [0, 1, 2]},
         r"^lrs, seeds, l2 and decay must have one value or the same number of values, "
         r"got 2, 3, 1 and 1"),
        ({"lrs": 0.1, "l2": -1.0}, r"^l2 must be finite and >= 0; got -1\.0"),
        ({"lrs": 0.1, "decay": np.inf}, r"^decay must be finite and >= 0; got inf"),
        ({"lrs": 0.1, "steps": 0}, r"^steps must be an integer >= 1, got 0"),
        ({"lrs": 0.1, "batch_size": 0}, r"^batch_size must be an integer in \[1, 1258\], got 0"),
        ({"lrs": 0.1, "batch_size": 10_000},
         r"^batch_size must be an integer in \[1, 1258\], got 10000"),
        ({"lrs": 0.1, "eval_every": 0}, r"^eval_every must be an integer >= 1, got 0"),
        ({"lrs": 0.1, "width": 0}, r"^width must be an integer >= 1, got 0"),
        ({"lrs": 0.1, "depth": -1}, r"^depth must be an integer >= 0, got -1"),
        ({"lrs": 0.1, "diverge": 1.0}, r"^diverge must be a finite number in \(1, inf\), got 1\.0"),
        ({"lrs": 0.1, "optimizer": "lbfgs"},
         r"^optimizer must be one of \['adagrad', 'adam', .*'sgd'\], got 'lbfgs'"),
        ({"lrs": 0.1, "lr_factor": 0.5},
         r"^lr_factor must be a function of the step or None, got 0\.5"),
    ],
)
def test_bad_arguments_raise_value_error(digits, kwargs, match):
    """Catches a bad sweep setting accepted, or refused by a message that does not start with the
    argument and what it allows."""
    kwargs = {"steps": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        batched.fit_mlps(digits, **kwargs)
