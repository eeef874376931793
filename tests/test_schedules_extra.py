"""Tests of the schedule pieces that chapter 3 added: OneCycleLR's momentum, the per-run scheduled
SGD that trains many schedules in one batched loop, and the chapter's shared schedule colours.

- :func:`schedules.one_cycle_momentum` against the momentum torch's ``OneCycleLR`` writes into
  the optimizer (SGD's ``momentum``, Adam's first beta), step by step, for random settings;
- :func:`schedules.scheduled_sgd` in :func:`batched.fit_mlps`: each run equals the same run
  trained alone with ``fit_mlps(lr_factor=...)`` (itself checked against ``train.fit`` in
  ``test_batched.py``), and a one-cycle run with cycled momentum equals a plain torch loop with
  ``torch.optim.SGD(momentum=...)`` driven by ``OneCycleLR`` (the reference);
- bad arguments are refused with a message that names them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from lessons_lib import batched, data, models, plots
from lessons_lib import schedules as S

STEPS = 40


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny models here train several times faster on one thread than on two; conftest's
    restore_global_state puts the thread count back after each test."""
    torch.set_num_threads(1)


def torch_momenta(make_scheduler, n_steps, optimizer="sgd"):
    """The momentum (SGD) or first beta (Adam) in force after 0 … n_steps scheduler steps."""
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = (torch.optim.SGD([weight], lr=0.1, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam([weight], lr=0.1))
    sched = make_scheduler(opt)

    def read():
        group = opt.param_groups[0]
        return group["momentum"] if optimizer == "sgd" else group["betas"][0]

    values = [read()]
    for _ in range(n_steps):
        opt.step()
        sched.step()
        values.append(read())
    return np.array(values)


@pytest.mark.parametrize("seed", range(20))
def test_one_cycle_momentum_equals_torch(seed):
    """Catches a momentum phase in the wrong order, off by a step, or wrongly interpolated."""
    rng = np.random.default_rng(seed)
    total = int(rng.integers(10, 80))
    kw = dict(pct_start=float(rng.uniform(0.1, 0.45)),
              anneal_strategy=str(rng.choice(["cos", "linear"])),
              base_momentum=float(rng.uniform(0.5, 0.85)),
              max_momentum=float(rng.uniform(0.86, 0.99)),
              three_phase=bool(rng.random() < 0.5))
    optimizer = "sgd" if seed % 4 else "adam"
    theirs = torch_momenta(lambda o: L.OneCycleLR(o, max_lr=0.1, total_steps=total, **kw),
                           total, optimizer)
    ours = S.one_cycle_momentum(np.arange(total + 1), total, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_one_cycle_momentum_defaults_mirror_the_rate():
    """Catches default bounds other than torch's (0.85, 0.95) or a momentum that does not fall
    while the rate climbs."""
    t = np.arange(101)
    mom, rate = S.one_cycle_momentum(t, 100), S.one_cycle(t, 1.0, 100)
    assert mom[0] == pytest.approx(0.95) and mom.min() == pytest.approx(0.85)
    assert mom.argmin() == rate.argmax() == 29
    assert np.all(np.sign(np.diff(mom)) == -np.sign(np.diff(rate)))


def torch_one_cycle_run(digits, seed, max_lr, steps):
    """The reference: plain SGD with momentum in a torch loop, driven by OneCycleLR."""
    model = models.mlp(digits.n_features, digits.n_outputs, width=16, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=max_lr, momentum=0.9)
    sched = L.OneCycleLR(opt, max_lr=max_lr, total_steps=steps)  # cycle_momentum=True
    losses = []
    for idx in data.minibatch_indices(len(digits.X_train), 64, steps, seed):
        loss = torch.nn.functional.cross_entropy(model(digits.X_train[idx]), digits.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return np.array(losses)


def test_scheduled_sgd_with_cycled_momentum_equals_torch_one_cycle(digits):
    """Catches a momentum buffer that differs from torch.optim.SGD's (first step, order of
    μ·buf + g) or a momentum schedule applied a step early or late."""
    t = np.arange(STEPS)
    make = S.scheduled_sgd(S.one_cycle(t, 1.0, STEPS), momentum=S.one_cycle_momentum(t, STEPS))
    runs = batched.fit_mlps(digits, lrs=[0.05, 0.3], seeds=[0, 1], steps=STEPS, width=16,
                            optimizer=make, eval_every=STEPS)
    for k, (lr, seed) in enumerate([(0.05, 0), (0.3, 1)]):
        np.testing.assert_allclose(runs.train_loss[k], torch_one_cycle_run(digits, seed, lr, STEPS),
                                   rtol=5e-4, atol=1e-5)


def test_each_run_follows_its_own_row(digits):
    """Catches rows applied to the wrong run (transposed or shared factors): three runs with three
    schedules in one loop equal each run trained alone with fit_mlps' lr_factor."""
    t = np.arange(STEPS)
    shapes = np.stack([S.cosine(t, 1.0, STEPS), S.one_cycle(t, 1.0, STEPS),
                       S.step_decay(t, 1.0, step_size=10, gamma=0.3)])
    lrs, seeds = [0.5, 0.8, 0.3], [0, 1, 0]
    together = batched.fit_mlps(digits, lrs=lrs, seeds=seeds, steps=STEPS, width=16,
                                optimizer=S.scheduled_sgd(shapes), eval_every=20)
    for k in range(3):
        alone = batched.fit_mlps(digits, lrs=lrs[k], seeds=seeds[k], steps=STEPS, width=16,
                                 eval_every=20, lr_factor=lambda step, k=k: shapes[k, step])
        np.testing.assert_allclose(together.train_loss[k], alone.train_loss[0], rtol=5e-4,
                                   atol=1e-5)
        np.testing.assert_allclose(together.val_loss[k], alone.val_loss[0], rtol=5e-4, atol=1e-5)


def test_a_shared_row_with_constant_momentum_equals_torch_momentum(digits):
    """Catches a constant momentum treated differently from fit_mlps' own 'momentum' optimizer
    (torch.optim.SGD(momentum=0.9)) when one row serves every run."""
    runs = batched.fit_mlps(digits, lrs=[0.01, 0.05], seeds=[2, 3], steps=STEPS, width=16,
                            optimizer=S.scheduled_sgd(np.ones(STEPS), momentum=0.9),
                            eval_every=STEPS)
    ref = batched.fit_mlps(digits, lrs=[0.01, 0.05], seeds=[2, 3], steps=STEPS, width=16,
                           optimizer="momentum", eval_every=STEPS)
    np.testing.assert_allclose(runs.train_loss, ref.train_loss, rtol=5e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr_factors=np.ones((2, 3, 4))), "lr_factors must have shape"),
    (dict(lr_factors=[]), "lr_factors must have shape"),
    (dict(lr_factors=[1.0, -0.1]), "lr_factors must be .*finite and >= 0"),
    (dict(lr_factors=[1.0, np.nan]), "lr_factors must be .*finite and >= 0"),
    (dict(lr_factors=np.ones(5), momentum=[0.9] * 4 + [np.nan]),
     "momentum must contain only finite"),
    (dict(lr_factors=np.ones(5), momentum=np.ones(4) * 0.9), "momentum must be a number or 5"),
    (dict(lr_factors=np.ones(5), momentum=1.0), r"momentum must be in \[0, 1\)"),
    (dict(lr_factors=np.ones(5), momentum=-0.1), r"momentum must be in \[0, 1\)"),
])
def test_scheduled_sgd_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.scheduled_sgd(**kwargs)


def test_scheduled_sgd_refuses_more_updates_than_its_schedule(digits):
    with pytest.raises(ValueError, match="the schedule has 5 updates; update 6 asked"):
        batched.fit_mlps(digits, lrs=0.1, steps=6, width=16, eval_every=6,
                         optimizer=S.scheduled_sgd(np.ones(5)))


def test_scheduled_sgd_refuses_rows_that_do_not_match_the_runs(digits):
    with pytest.raises(ValueError, match="lr_factors has 3 rows"):
        batched.fit_mlps(digits, lrs=[0.1, 0.2], steps=4, width=16, eval_every=4,
                         optimizer=S.scheduled_sgd(np.ones((3, 4))))


@pytest.mark.parametrize("kwargs, message", [
    (dict(base_momentum=1.0), "base_momentum"),
    (dict(max_momentum=-0.1), "max_momentum"),
    (dict(pct_start=0.0), "pct_start"),
    (dict(anneal_strategy="exp"), "anneal_strategy"),
])
def test_one_cycle_momentum_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        S.one_cycle_momentum(np.arange(5), 10, **kwargs)


def test_schedule_style_gives_each_schedule_its_own_look():
    """Catches two schedules of chapter 3 drawn alike, or a name the lessons use missing."""
    names = ["constant", "step decay", "multistep", "exponential", "cosine", "cosine restarts",
             "warmup + cosine", "one-cycle", "reduce on plateau"]
    assert all(name in plots.SCHEDULE_STYLE for name in names)
    looks = [plots.SCHEDULE_STYLE[name] for name in names]
    assert len(set(looks)) == len(looks)
    assert plots.SCHEDULE_STYLE["fixed"] == plots.SCHEDULE_STYLE["constant"]
