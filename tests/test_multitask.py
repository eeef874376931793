"""Tests of lessons_lib.multitask: the two-headed network, the multitask loop (against
``train.fit`` when one task is switched off, against the loss written out) and its batched twin
(run by run against the loop)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import models, multitask, train
from lessons_lib.data import Split, minibatch_indices


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def part(digits, start, n, labels=None) -> Split:
    """n training images from ``start`` (optionally relabelled) and 80 validation images."""
    y = digits.y_train[start:start + n]
    y_val = digits.y_val[:80]
    if labels is not None:  # a second task on the same kind of images, e.g. parity
        y, y_val = labels(y), labels(y_val)
    return Split(f"part{start}", digits.X_train[start:start + n], y, digits.X_val[:80], y_val,
                 "classification")


@pytest.fixture(scope="module")
def tasks(digits):
    return [part(digits, 0, 150), part(digits, 300, 60, labels=lambda y: y % 2)]


def test_multitask_mlp_is_an_mlp_with_extra_heads(digits):
    """Catches a trunk or first head that differ from models.mlp with the same seed, heads that
    ignore the seed, or a constructor that disturbs the global random state."""
    state = torch.random.get_rng_state()
    net = multitask.multitask_mlp(64, [10, 2, 3], width=16, depth=2, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    ref = models.mlp(64, 10, width=16, depth=2, seed=4)
    x = digits.X_val[:20]
    torch.testing.assert_close(net(x, 0), ref(x))
    assert [net(x, t).shape[1] for t in range(3)] == [10, 2, 3]
    same, other = (multitask.multitask_mlp(64, [10, 2, 3], width=16, depth=2, seed=s)
                   for s in (4, 5))
    assert torch.equal(net(x, 2), same(x, 2)) and not torch.equal(net(x, 2), other(x, 2))


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_task_of_weight_zero_leaves_its_head_untouched(tasks, optimizer):
    """Catches a weight that does not multiply its task's loss: with weight 0, that head must not
    move at all, while the other head and the trunk do."""
    net = multitask.multitask_mlp(64, [10, 2], width=16, seed=1)
    before = copy.deepcopy(net)
    lr = 1e-2 if optimizer == "adam" else 0.1
    multitask.fit_multitask(net, tasks, weights=[0.0, 1.0], lr=lr, steps=20, batch_size=16,
                            optimizer=optimizer)
    for p, q in zip(net.heads[0].parameters(), before.heads[0].parameters()):
        assert torch.equal(p, q)
    for part_ in ("trunk", "heads"):
        moved = [not torch.equal(p, q) for p, q in zip(getattr(net, part_).parameters(),
                                                          getattr(before, part_).parameters())]
        assert any(moved)


def test_one_task_switched_off_is_single_task_training(tasks):
    """Catches a switched-off task that still reaches the trunk, or batches that differ from
    train.fit's: weights (0, 1) must train the trunk and head B exactly as train.fit trains the
    network trunk → head B on task B alone."""
    net = multitask.multitask_mlp(64, [10, 2], width=16, seed=3)
    single = nn.Sequential(copy.deepcopy(net.trunk), copy.deepcopy(net.heads[1]))
    hist = multitask.fit_multitask(net, tasks, weights=[0.0, 1.0], lr=0.2, steps=25,
                                   batch_size=16, seed=6, eval_every=10)
    ref = train.fit(single, tasks[1], lr=0.2, steps=25, batch_size=16, seed=6, eval_every=10)
    np.testing.assert_allclose(hist.train_loss, ref.train_loss, rtol=1e-5)
    np.testing.assert_allclose(np.array(hist.val_acc)[:, 1], ref.val_acc)
    for p, q in zip(nn.Sequential(net.trunk, net.heads[1]).parameters(), single.parameters()):
        torch.testing.assert_close(p, q)


def test_loss_is_the_weighted_sum_of_the_tasks(tasks):
    """Catches a loss that averages instead of summing, ignores a weight, or feeds a task to the
    wrong head or the wrong minibatch."""
    w = [0.3, 2.0]
    net = multitask.multitask_mlp(64, [10, 2], width=16, seed=2)
    fresh = copy.deepcopy(net)
    hist = multitask.fit_multitask(net, tasks, weights=w, lr=0.1, steps=1, batch_size=16, seed=8)
    with torch.no_grad():
        expected = sum(
            w_t * nn.functional.cross_entropy(fresh(t.X_train[i], k), t.y_train[i]).item()
            for k, (t, w_t) in enumerate(zip(tasks, w))
            for i in [minibatch_indices(len(t.X_train), 16, 1, 8)[0]])
    assert hist.train_loss[0] == pytest.approx(expected, rel=1e-5)
    assert hist.eval_steps == [1] and len(hist.val_acc[0]) == 2


def test_each_batched_run_equals_fit_multitask(digits):
    """Catches the batched loop mixing runs, or giving a run another's weights, rate, seed or
    training sets."""
    runs_tasks = [[part(digits, 0, 150), part(digits, 300 + 60 * k, 60, labels=lambda y: y % 2)]
                  for k in range(3)]
    weights = [[1.0, 1.0], [0.0, 1.0], [2.0, 0.5]]
    lrs, seeds = [0.1, 0.3, 0.05], [0, 1, 2]
    runs = multitask.fit_multitask_mlps(runs_tasks, weights=weights, lrs=lrs, seeds=seeds,
                                        steps=30, width=16, batch_size=16, eval_every=10)
    assert runs.val_acc.shape == (3, 2, 3) and runs.final_val_acc.shape == (3, 2)
    for k in range(3):
        hist = multitask.fit_multitask(multitask.multitask_mlp(64, [10, 2], width=16,
                                                               seed=seeds[k]),
                                       runs_tasks[k], weights=weights[k], lr=lrs[k], steps=30,
                                       batch_size=16, seed=seeds[k], eval_every=10)
        np.testing.assert_allclose(runs.train_loss[k], hist.train_loss, rtol=5e-4, atol=1e-6)
        np.testing.assert_allclose(runs.val_loss[k].T, hist.val_loss, rtol=5e-4, atol=1e-6)
        np.testing.assert_allclose(runs.val_acc[k].T, hist.val_acc, atol=0.013)


def test_a_batched_run_that_diverges_stops_alone(tasks):
    """Catches one diverging run poisoning the others, or a diverged run reported as finished."""
    runs = multitask.fit_multitask_mlps(tasks, weights=[1.0, 1.0], lrs=[0.1, 1e4], seeds=0,
                                        steps=20, width=16, batch_size=16, eval_every=10)
    assert runs.diverged.tolist() == [False, True]
    assert np.isfinite(runs.final_val_loss[0]).all() and (runs.final_val_acc[1] == 0).all()


@pytest.mark.parametrize("kwargs, name", [
    ({"weights": [1.0]}, "weights"), ({"weights": [-1.0, 1.0]}, r"weights\[0\]"),
    ({"weights": [0.0, 0.0]}, "weights"), ({"weights": [1.0, float("nan")]}, r"weights\[1\]"),
    ({"lr": -0.1}, "lr"), ({"batch_size": 61}, "batch_size"), ({"steps": 0}, "steps"),
])
def test_fit_multitask_refuses_bad_input(tasks, kwargs, name):
    """Catches bad settings reaching the loop (a negative weight would train a task *away*)."""
    args = {"weights": [1.0, 1.0], "lr": 0.1, "steps": 5, "batch_size": 16} | kwargs
    net = multitask.multitask_mlp(64, [10, 2], width=8)
    with pytest.raises(ValueError, match=name):
        multitask.fit_multitask(net, tasks, **args)


def test_fit_multitask_refuses_a_model_or_tasks_that_do_not_fit(tasks):
    """Catches a plain network (no heads) or a number of tasks other than the number of heads."""
    with pytest.raises(ValueError, match="model"):
        multitask.fit_multitask(models.mlp(64, 10), tasks, weights=[1, 1], lr=0.1, steps=5)
    net = multitask.multitask_mlp(64, [10, 2, 2], width=8)
    with pytest.raises(ValueError, match="tasks"):
        multitask.fit_multitask(net, tasks, weights=[1, 1], lr=0.1, steps=5)


@pytest.mark.parametrize("kwargs, name", [
    ({"n_outs": []}, "n_outs"), ({"n_outs": [10, 0]}, r"n_outs\[1\]"), ({"depth": 0}, "depth"),
    ({"seed": -1}, "seed"), ({"width": 0}, "width"),
])
def test_multitask_mlp_refuses_bad_input(kwargs, name):
    """Catches a network without a trunk, a head without outputs, or a negative seed."""
    args = {"n_in": 64, "n_outs": [10, 2]} | kwargs
    with pytest.raises(ValueError, match=name):
        multitask.multitask_mlp(args.pop("n_in"), args.pop("n_outs"), **args)


def test_fit_multitask_mlps_refuses_bad_input(digits, tasks):
    """Catches weights of the wrong shape, per-run tasks that cannot be stacked, or a bad seed."""
    with pytest.raises(ValueError, match="weights"):
        multitask.fit_multitask_mlps(tasks, weights=[[1.0, 1.0, 1.0]], lrs=0.1, seeds=0, steps=5)
    other = [tasks[0], dataclasses.replace(tasks[1], X_train=tasks[1].X_train[:50],
                                           y_train=tasks[1].y_train[:50])]
    with pytest.raises(ValueError, match="tasks"):
        multitask.fit_multitask_mlps([tasks, other], weights=[1.0, 1.0], lrs=0.1, seeds=[0, 1],
                                     steps=5, batch_size=16)
    with pytest.raises(ValueError, match="seeds"):
        multitask.fit_multitask_mlps(tasks, weights=[1.0, 1.0], lrs=0.1, seeds=-1, steps=5)
    with pytest.raises(ValueError, match="lrs"):
        multitask.fit_multitask_mlps(tasks, weights=[1.0, 1.0], lrs=-0.1, seeds=0, steps=5)
