"""The pieces the training loops share: the minibatch order, evaluation mode, the optimizer registry.

- ``data.minibatch_indices`` is the one source of the minibatch order of ``train.fit``,
  ``lr_finder.lr_range_test`` and ``batched``. It must give exactly the batches of the loop the
  four copies used to write out (below, as the reference), or every lesson's numbers change.
- ``train.evaluate`` evaluates in ``eval()`` mode and puts every module's mode back.
- ``optimizers.torch_optimizer`` builds the torch twin of ``optimizers.make_optimizer`` from the
  one registry.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import data, models, optimizers, train


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
