"""The pieces the training loops share: the minibatch order, evaluation mode, the optimizer registry.

- ``data.minibatch_indices`` is the one source of the minibatch order of ``train.fit``,
  ``lr_finder.lr_range_test`` and ``batched``. It must give exactly the batches of the loop the
  four copies used to write out (below, as the reference), or every lesson's numbers change.
- ``train.evaluate`` evaluates in ``eval()`` mode and puts every module's mode back.
- ``optimizers.torch_optimizer`` builds the torch twin of ``optimizers.make_optimizer`` from the
  one registry.
- ``train.EarlyStopping`` / ``train.early_stopping_point``: the rule on hand-made curves (expected
  indices worked out by hand), and ``fit(early_stopping=...)`` on a run that overfits: where it
  stops, ``best_step``, and the weights it leaves (checked with ``train.evaluate``).
- ``fit(epochs=...)``: E·(N // B) updates, the count of a ``DataLoader`` with ``drop_last=True``.
- ``batched.trained_mlp``: run k of ``fit_mlps`` as a network reproduces that run's recorded
  validation loss and accuracy.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lessons_lib import batched, data, models, optimizers, train


def reference_batches(n, batch_size, steps, seed):
    """The loop that train.fit, lr_range_test, batched and test_lr_finder each had a copy of."""
    gen = torch.Generator().manual_seed(seed)
    order, pos, out = torch.randperm(n, generator=gen), 0, []
    for _ in range(steps):
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        out.append(order[pos:pos + batch_size])
        pos += batch_size
    return torch.stack(out)


@pytest.mark.parametrize("n, batch_size, steps, seed", [
    case for case in itertools.product([1, 7, 64, 1258], [1, 3, 64], [1, 5, 300], [0, 1, 4321])
    if case[1] <= case[0]
])
def test_minibatch_indices_is_the_order_the_lessons_were_computed_with(n, batch_size, steps,
                                                                        seed):
    """Catches any change of the minibatch order (another generator, a reshuffle rule that keeps
    the leftover samples, a partial last batch): every lesson's numbers would move."""
    got = data.minibatch_indices(n, batch_size, steps, seed)
    assert got.shape == (steps, batch_size) and got.dtype == torch.int64
    assert torch.equal(got, reference_batches(n, batch_size, steps, seed))


def test_fit_trains_on_the_minibatches_of_minibatch_indices(wine):
    """Catches train.fit drawing its batches some other way: with a learning rate of 0 the model
    never changes, so the loss of step t is the loss on batch t."""
    model = models.mlp(13, 3, width=8, seed=0)
    hist = train.fit(model, wine, lr=0.1, steps=20, batch_size=16, seed=5, eval_every=100,
                     optimizer=lambda params, lr: torch.optim.SGD(params, lr=0.0))
    batches = data.minibatch_indices(len(wine.X_train), 16, 20, 5)
    with torch.no_grad():
        expected = [nn.functional.cross_entropy(model(wine.X_train[i]), wine.y_train[i]).item()
                    for i in batches]
    assert hist.train_loss == expected


def dropout_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3))


def test_evaluate_uses_eval_mode(wine):
    """Catches evaluate() running with dropout on: the result would be random and differ from the
    network without dropout."""
    net = dropout_net()
    first = train.evaluate(net, wine.X_val, wine.y_val, "classification")
    assert train.evaluate(net, wine.X_val, wine.y_val, "classification") == first
    without_dropout = nn.Sequential(net[0], net[1], net[3])
    assert first == train.evaluate(without_dropout, wine.X_val, wine.y_val, "classification")


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_evaluate_puts_every_module_back_in_its_mode(wine, mode):
    """Catches evaluate() leaving the model in eval mode (the next training steps would run
    without dropout), or restoring a mixed model with one model.train(...) call."""
    net = dropout_net()
    net.train(mode != "eval")
    if mode == "mixed":
        net[2].eval()
    before = [m.training for m in net.modules()]
    train.evaluate(net, wine.X_val, wine.y_val, "classification")
    assert [m.training for m in net.modules()] == before


@pytest.mark.parametrize("name", optimizers.TORCH_OPTIMIZERS)
def test_torch_optimizer_is_the_twin_of_make_optimizer(name):
    """Catches the torch and NumPy sides of the registry disagreeing on a name's settings
    (e.g. "nesterov" without nesterov=True): same hyper-parameters, same class name."""
    ours = optimizers.make_optimizer(name, lr=0.1)
    twin = optimizers.torch_optimizer(name, [torch.zeros(2, requires_grad=True)], 0.1)
    assert type(twin).__name__ == type(ours).__name__
    settings = twin.param_groups[0]
    for key in ("lr", *ours.hyper_parameters):
        expected = getattr(ours, key)
        assert settings[key] == (tuple(expected) if isinstance(expected, tuple) else expected), key


def test_torch_optimizer_passes_extra_settings_on():
    opt = optimizers.torch_optimizer("momentum", [torch.zeros(1, requires_grad=True)], 0.1,
                                     momentum=0.5, weight_decay=1e-3)
    assert (opt.defaults["momentum"], opt.defaults["weight_decay"]) == (0.5, 1e-3)


def test_adam_decoupled_weight_decay_is_adamw():
    """torch.optim.Adam(decoupled_weight_decay=True) is AdamW; so is ours."""
    rng = np.random.default_rng(0)
    a = optimizers.Adam(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True)
    b = optimizers.AdamW(lr=0.05, weight_decay=0.1)
    x = y = rng.normal(size=4)
    for _ in range(20):
        g = rng.normal(size=4)
        x, y = a.step(x, g), b.step(y, g)
    np.testing.assert_array_equal(x, y)
    assert "decoupled_weight_decay=True" in repr(a)


# --- early stopping ---------------------------------------------------------------------------

@pytest.mark.parametrize("curve, patience, min_delta, expected", [
    # the worked example: best 3 at index 2; 3.5 and 3.6 do not improve -> stop at index 4
    ([5, 4, 3, 3.5, 3.6, 3.7, 2], 2, 0.0, (2, 4)),
    # patience 0 stops at the first evaluation that does not improve
    ([5, 4, 3, 3.5, 3.6, 3.7, 2], 0, 0.0, (2, 3)),
    # an equal loss is not an improvement
    ([5, 4, 4, 4], 1, 0.0, (1, 2)),
    # an improvement of 0.05 does not count with min_delta 0.1; one of 0.5 does
    ([5, 4, 3.95, 3.9, 3.4, 3.38], 2, 0.1, (1, 3)),
    ([5, 4, 3.95, 3.4, 3.38, 3.37], 2, 0.1, (3, 5)),
    # without min_delta the same tiny improvements count
    ([5, 4, 3.95, 3.9, 3.4, 3.38], 2, 0.0, (5, 5)),
    # a curve that keeps improving never stops: stop = the last index
    ([5, 4, 3, 2, 1], 0, 0.0, (4, 4)),
    # not enough bad evaluations left to reach the patience
    ([5, 4, 3, 3.1, 3.2], 3, 0.0, (2, 4)),
    ([7.0], 0, 0.0, (0, 0)),
])
def test_early_stopping_point_on_hand_made_curves(curve, patience, min_delta, expected):
    """Catches the rule of EarlyStopping broken: the counter not reset by an improvement, an
    off-by-one in the patience (patience 0 must stop at the first non-improvement, as in Keras
    and Lightning), min_delta ignored, ties counted as improvements, or a stop reported for a
    curve that never stalls. Each expected (best, stop) was worked out by hand."""
    assert train.early_stopping_point(curve, patience, min_delta=min_delta) == expected
    rule = train.EarlyStopping(patience, min_delta=min_delta)
    stops = [rule.update(v) for v in curve[:expected[1] + 1]]
    assert rule.best_index == expected[0]
    assert stops[:-1] == [False] * expected[1]


def test_early_stopping_bad_input():
    """Catches a negative patience or min_delta, a non-bool restore_best, or an empty curve
    accepted."""
    with pytest.raises(ValueError, match=r"^patience must be an integer >= 0, got -1$"):
        train.EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match=r"^patience must be an integer >= 0, got 1.5$"):
        train.early_stopping_point([3, 2], 1.5)
    with pytest.raises(ValueError, match=r"^min_delta must be a finite number in \[0, inf\), "
                                         r"got -0.1$"):
        train.EarlyStopping(min_delta=-0.1)
    with pytest.raises(ValueError, match=r"^restore_best must be True or False, got 1$"):
        train.EarlyStopping(restore_best=1)
    with pytest.raises(ValueError, match=r"^val_losses must hold at least one validation loss"):
        train.early_stopping_point([], 2)


@pytest.fixture(scope="module")
def overfit(digits):
    """200 digits to train on, the whole validation set: a wide MLP overfits within ~25 epochs."""
    return dataclasses.replace(digits, X_train=digits.X_train[:200], y_train=digits.y_train[:200])


def fit_overfitting(split, early_stopping, epochs=100):
    model = models.mlp(64, 10, width=128, depth=2, seed=0)
    hist = train.fit(model, split, lr=1e-3, optimizer="adam", batch_size=20, epochs=epochs,
                     eval_every="epoch", early_stopping=early_stopping)
    return model, hist


@pytest.mark.parametrize("patience", [0, 3])
def test_fit_stops_early_and_restores_the_best_weights(overfit, patience):
    """Catches fit not stopping when the validation loss stalls (or stopping at another point than
    the rule), best_step not the evaluation with the smallest loss, and the best weights not put
    back: the model fit returns must have exactly the smallest recorded validation loss."""
    model, hist = fit_overfitting(overfit, train.EarlyStopping(patience=patience))
    assert hist.stopped_early and len(hist.eval_steps) < 100
    best = int(np.argmin(hist.val_loss))
    assert hist.best_step == hist.eval_steps[best]
    assert train.early_stopping_point(hist.val_loss, patience) == (best, len(hist.val_loss) - 1)
    assert len(hist.val_loss) - 1 - best == max(patience, 1)  # 0 stops at the first stall
    loss, acc = train.evaluate(model, overfit.X_val, overfit.y_val, "classification")
    assert loss == min(hist.val_loss) and acc == hist.val_acc[best]
    assert hist.val_loss[-1] > loss  # the weights were really changed back


def test_fit_without_restore_best_keeps_the_last_weights(overfit):
    """Catches restore_best=False ignored: the model keeps the weights of its last evaluation."""
    model, hist = fit_overfitting(overfit, train.EarlyStopping(patience=2, restore_best=False))
    assert hist.stopped_early
    assert hist.best_step == hist.eval_steps[int(np.argmin(hist.val_loss))]
    loss, _ = train.evaluate(model, overfit.X_val, overfit.y_val, "classification")
    assert loss == hist.val_loss[-1] and loss > min(hist.val_loss)


def test_fit_restores_the_best_weights_when_it_never_stops(overfit):
    """Catches restore_best applied only when the rule stopped the run: a run whose patience is
    never used up still ends with the weights of its best evaluation."""
    model, hist = fit_overfitting(overfit, train.EarlyStopping(patience=1000), epochs=30)
    assert not hist.stopped_early and len(hist.eval_steps) == 30
    loss, _ = train.evaluate(model, overfit.X_val, overfit.y_val, "classification")
    assert loss == min(hist.val_loss) and hist.val_loss[-1] > loss


def test_fit_refuses_a_used_early_stopping_rule(wine):
    """Catches an EarlyStopping object reused for a second run (its best loss and counter would
    carry over and stop the new run at once), or something else passed as the rule."""
    rule = train.EarlyStopping(patience=1)
    train.fit(models.mlp(13, 3, width=8), wine, lr=0.1, steps=10, batch_size=16, eval_every=5,
              early_stopping=rule)
    with pytest.raises(ValueError, match=r"^early_stopping must be a fresh train.EarlyStopping"):
        train.fit(models.mlp(13, 3, width=8), wine, lr=0.1, steps=10, early_stopping=rule)
    with pytest.raises(ValueError, match=r"^early_stopping must be a train.EarlyStopping or None, "
                                         r"got 3$"):
        train.fit(models.mlp(13, 3, width=8), wine, lr=0.1, steps=10, early_stopping=3)


# --- epochs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size, epochs", [(16, 3), (25, 2), (125, 4), (1, 1)])
def test_fit_epochs_are_full_batches_of_the_data(wine, batch_size, epochs):
    """Catches an epoch counted as ⌈N/B⌉ (a partial last batch), evaluations not at the ends of
    the epochs, or per-update timings missing or cumulative: E epochs are E times the batches of
    a DataLoader with drop_last=True, and the same updates as fit(steps=E·(N // B))."""
    n = len(wine.X_train)
    per_epoch = len(DataLoader(TensorDataset(wine.X_train), batch_size=batch_size,
                               drop_last=True))
    started = time.perf_counter()
    hist = train.fit(models.mlp(13, 3, width=8, seed=0), wine, lr=0.05, epochs=epochs,
                     batch_size=batch_size, eval_every="epoch", seed=2)
    elapsed = time.perf_counter() - started
    assert per_epoch == n // batch_size and hist.steps_per_epoch == per_epoch
    assert len(hist.train_loss) == len(hist.lrs) == epochs * per_epoch
    assert hist.eval_steps == [per_epoch * (e + 1) for e in range(epochs)]
    assert len(hist.step_seconds) == len(hist.train_loss)
    assert all(t > 0 for t in hist.step_seconds) and sum(hist.step_seconds) <= elapsed
    same = train.fit(models.mlp(13, 3, width=8, seed=0), wine, lr=0.05,
                     steps=epochs * per_epoch, batch_size=batch_size, eval_every=per_epoch, seed=2)
    assert same.train_loss == hist.train_loss and same.val_loss == hist.val_loss
    assert same.steps_per_epoch == per_epoch


def test_fit_eval_every_epoch_with_steps(wine):
    """Catches eval_every="epoch" understood only together with epochs=: with steps= it still
    means every N // B updates (and the last one)."""
    hist = train.fit(models.mlp(13, 3, width=8), wine, lr=0.05, steps=20, batch_size=16,
                     eval_every="epoch")
    assert hist.steps_per_epoch == 7 and hist.eval_steps == [7, 14, 20]


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 10, "epochs": 2}, r"^give exactly one of steps and epochs, got steps=10 and "
                                 r"epochs=2$"),
    ({}, r"^give exactly one of steps and epochs, got steps=None and epochs=None$"),
    ({"epochs": 0}, r"^epochs must be an integer >= 1, got 0$"),
    ({"epochs": 1.5}, r"^epochs must be an integer >= 1, got 1.5$"),
    ({"epochs": 1, "batch_size": 126}, r"^batch_size must be an integer in \[1, 125\], got 126$"),
    ({"steps": 5, "batch_size": 0}, r"^batch_size must be an integer in \[1, 125\], got 0$"),
    ({"epochs": 1, "early_stopping": "x"}, r"^early_stopping must be a train.EarlyStopping or "
                                           r"None, got 'x'$"),
])
def test_fit_length_bad_input(wine, kwargs, match):
    """Catches both or neither of steps and epochs accepted, no epochs, or a batch larger than
    the 125 training samples of wine."""
    assert len(wine.X_train) == 125
    with pytest.raises(ValueError, match=match):
        train.fit(models.mlp(13, 3, width=8), wine, lr=0.1, **kwargs)


# --- one run of a batched sweep as a network --------------------------------------------------

@pytest.mark.parametrize("depth", [0, 1, 2])
def test_trained_mlp_is_the_network_a_run_ended_with(digits, depth):
    """Catches trained_mlp building another architecture, copying the weights of another run
    (or the initial ones), or the layers in the wrong order: evaluated as an ordinary network,
    run k has the final validation loss and accuracy fit_mlps recorded for it."""
    lrs, seeds = [0.05, 0.2, 0.05, 0.2], [0, 0, 1, 1]
    runs = batched.fit_mlps(digits, lrs=lrs, seeds=seeds, steps=30, width=16, depth=depth,
                            eval_every=10)
    assert not runs.diverged.any()
    losses = []
    for k in range(len(lrs)):
        net = batched.trained_mlp(runs, k)
        assert isinstance(net, nn.Sequential) and len(net) == 2 * depth + 1
        loss, acc = train.evaluate(net, digits.X_val, digits.y_val, "classification")
        assert loss == pytest.approx(runs.val_loss[k, -1], abs=1e-5)
        assert acc == pytest.approx(runs.val_acc[k, -1], abs=1e-5)
        losses.append(loss)
    assert len(set(losses)) == len(lrs)  # four different networks
    with pytest.raises(ValueError, match=r"^k must be an integer in \[0, 3\], got 4$"):
        batched.trained_mlp(runs, 4)
    with pytest.raises(ValueError, match=r"^k must be an integer in \[0, 3\], got -1$"):
        batched.trained_mlp(runs, -1)


def test_trained_mlp_refuses_a_history_without_mlp_weights(digits):
    """Catches a history without weights (built by hand) accepted."""
    runs = batched.fit_mlps(digits, lrs=0.1, steps=2, width=8)
    with pytest.raises(ValueError, match=r"^history must come from batched.fit_mlps"):
        batched.trained_mlp(dataclasses.replace(runs, params=()), 0)


def test_trained_mlp_refuses_a_cnn_history(digits):
    """Catches the weights of fit_cnns (conv filters, then a linear layer) taken for an MLP's."""
    runs = batched.fit_cnns(digits, lrs=0.1, steps=2, channels=4)
    with pytest.raises(ValueError, match=r"^history must come from batched.fit_mlps"):
        batched.trained_mlp(runs, 0)


def test_fit_eval_every_message_names_epoch(wine):
    """Catches a bad eval_every refused without saying that "epoch" is allowed too."""
    with pytest.raises(ValueError, match=r"^eval_every must be .*'epoch'"):
        train.fit(models.mlp(13, 3, width=8), wine, lr=0.1, steps=5, eval_every="epochs")
