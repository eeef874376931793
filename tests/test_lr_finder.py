"""Tests of lessons_lib.lr_finder, the learning-rate range test (claim TL-7).

Reference: the ``torch-lr-finder`` package (0.2.2, David Silva's ``LRFinder``), run on the same
model (a copy of the same initial weights), the same minibatches (a DataLoader whose batch sampler
yields exactly the batches ``lr_range_test`` draws) and the same settings. Both must record the
same learning rates and the same smoothed losses at every step, stop at the same step, and
suggest the same learning rate (torch-lr-finder's ``plot(suggest_lr=True)``, steepest gradient
after skipping 10 points at the start and 5 at the end).

The other tests check that the call leaves the model and optimizer exactly as they were, and
that every bad argument raises a ValueError naming it.
"""

from __future__ import annotations

import copy

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from lessons_lib import data, lr_finder, optimizers
from lessons_lib.lr_finder import LRFinderResult, exponential_lrs, lr_range_test

F = nn.functional.cross_entropy
TORCH_LR_FINDER_VERSION = "0.2.2"


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as the lessons run (conftest puts the thread count back after each
    test): these tiny models only lose time to a second thread."""
    torch.set_num_threads(1)


def toy_data(n=300, d=8, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen)
    w = torch.randn(d, classes, generator=gen)
    y = (X @ w + 0.5 * torch.randn(n, classes, generator=gen)).argmax(1)
    return X, y


def toy_model(seed=0, d=8, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, classes))


def our_batches(n, batch_size, num_iter, seed):
    """The index lists lr_range_test draws (those of train.fit: data.minibatch_indices)."""
    return data.minibatch_indices(n, batch_size, num_iter, seed).tolist()


def reference(model, opt, X, y, *, batch_size, start_lr, end_lr, num_iter, smooth_f, diverge_th,
              seed):
    """torch-lr-finder on the same batches: (lrs, smoothed losses, suggested lr)."""
    import torch_lr_finder  # a requirement of `make test`: missing means FAIL, not skip

    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(X, y),
                        batch_sampler=our_batches(len(X), batch_size, num_iter, seed))
    finder = torch_lr_finder.LRFinder(model, opt, F)
    finder.range_test(loader, start_lr=start_lr, end_lr=end_lr, num_iter=num_iter,
                      smooth_f=smooth_f, diverge_th=diverge_th)
    lrs, losses = np.array(finder.history["lr"]), np.array(finder.history["loss"])
    _, suggestion = finder.plot(suggest_lr=True)
    matplotlib.pyplot.close("all")
    return lrs, losses, suggestion


def test_reference_version():
    import importlib.metadata

    assert importlib.metadata.version("torch-lr-finder") == TORCH_LR_FINDER_VERSION


@pytest.mark.parametrize("optimizer, settings", [
    ("sgd", dict(batch_size=32, start_lr=1e-5, end_lr=100.0, num_iter=80, smooth_f=0.05,
                 diverge_th=5.0, seed=0)),
    ("sgd", dict(batch_size=50, start_lr=1e-4, end_lr=10.0, num_iter=60, smooth_f=0.0,
                 diverge_th=3.0, seed=3)),
    ("adam", dict(batch_size=64, start_lr=1e-6, end_lr=1.0, num_iter=100, smooth_f=0.1,
                  diverge_th=4.0, seed=1)),
    ("momentum", dict(batch_size=16, start_lr=1e-6, end_lr=10.0, num_iter=90, smooth_f=0.2,
                      diverge_th=5.0, seed=2)),
])
def test_same_curve_as_torch_lr_finder(optimizer, settings):
    X, y = toy_data()
    model = toy_model()
    ref_model = copy.deepcopy(model)
    ref_opt = optimizers.torch_optimizer(optimizer, ref_model.parameters(), settings["start_lr"])
    ref_lrs, ref_losses, ref_suggestion = reference(ref_model, ref_opt, X, y, **settings)
    ours = lr_range_test(model, F, X, y, optimizer=optimizer, **settings)
    assert len(ours) == len(ref_lrs) >= 12
    np.testing.assert_allclose(ours.lrs, ref_lrs, rtol=1e-12)
    # same float32 arithmetic in the same order: equal up to rounding of the float64 smoothing
    np.testing.assert_allclose(ours.losses, ref_losses, rtol=1e-6, atol=1e-7)
    assert ours.suggestion == pytest.approx(ref_suggestion, rel=1e-12)
    assert ours.diverged == (len(ours) < settings["num_iter"])


def test_the_sweep_reaches_divergence_and_stops():
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X, y, start_lr=1e-4, end_lr=1e4, num_iter=100)
    assert res.diverged and len(res) < 100
    assert res.losses[-1] > 5.0 * res.losses.min()
    assert res.lrs[0] < res.suggestion < res.lrs[-1]
    assert res.suggestion < res.min_loss_lr  # the loss falls fastest before its lowest point
    # the smoothed curve obeys its own definition
    s = [res.raw_losses[0]]
    for raw in res.raw_losses[1:]:
        s.append(0.05 * raw + 0.95 * s[-1])
    np.testing.assert_allclose(res.losses, s, rtol=1e-12)


def test_exponential_rates():
    lrs = exponential_lrs(1e-7, 10.0, 100)
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    np.testing.assert_allclose(np.diff(np.log(lrs)), np.log(1e8) / 99, rtol=1e-9)


def snapshot(model, opt=None):
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    opt_state = copy.deepcopy(opt.state_dict()) if opt is not None else None
    return state, grads, model.training, opt_state, torch.random.get_rng_state().clone()


def assert_same(before, after):
    (s0, g0, t0, o0, r0), (s1, g1, t1, o1, r1) = before, after
    assert s0.keys() == s1.keys()
    for k in s0:
        assert torch.equal(s0[k], s1[k]), k
    for a, b in zip(g0, g1):
        assert (a is None and b is None) or torch.equal(a, b)
    assert t0 == t1
    assert torch.equal(r0, r1)
    if o0 is not None:
        assert o0["param_groups"] == o1["param_groups"]
        for key in o0["state"]:
            for name, v in o0["state"][key].items():
                w = o1["state"][key][name]
                assert torch.equal(v, w) if torch.is_tensor(v) else v == w


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "momentum"])
def test_model_left_exactly_as_it_was(optimizer):
    X, y = toy_data()
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
    model.eval()  # a mode the test must restore
    F(model(X), y).backward()  # leave gradients in place
    before = snapshot(model)
    res = lr_range_test(model, F, X, y, optimizer=optimizer, start_lr=1e-5, end_lr=1e3,
                        num_iter=50)
    assert len(res) > 10
    assert_same(before, snapshot(model))


def test_given_optimizer_state_restored():
    X, y = toy_data()
    model = toy_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.95))
    for _ in range(5):  # give Adam some moments and a step count
        opt.zero_grad()
        F(model(X), y).backward()
        opt.step()
    before = snapshot(model, opt)
    res = lr_range_test(model, F, X, y, optimizer=opt, start_lr=1e-6, end_lr=10.0, num_iter=60)
    assert len(res) > 10
    assert_same(before, snapshot(model, opt))
    # and training afterwards is unaffected: same result as a fresh copy trained the same way
    twin = copy.deepcopy(model)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=3e-3, betas=(0.8, 0.95))
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (twin, twin_opt)):
        o.zero_grad()
        F(m(X), y).backward()
        o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_factory_and_numpy_inputs():
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X.numpy(), y.numpy(), num_iter=30,
                        optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.5))
    assert isinstance(res, LRFinderResult) and len(res) == 30 and not res.diverged


def test_nan_loss_stops_without_recording_it():
    X, y = toy_data()
    calls = []

    def loss_fn(out, target):
        calls.append(1)
        loss = F(out, target)
        return loss * float("nan") if len(calls) > 20 else loss

    res = lr_range_test(toy_model(), loss_fn, X, y, num_iter=50)
    assert res.diverged and len(res) == 20 and np.isfinite(res.losses).all()


def test_plot_runs():
    """Catches the range-test plot not drawing on a log axis, or plotting a non-result."""
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X, y, start_lr=1e-4, end_lr=1e3, num_iter=60)
    ax = lr_finder.plot_lr_finder(res, label="toy")
    assert ax.get_xscale() == "log"
    matplotlib.pyplot.close("all")
    with pytest.raises(ValueError, match="^result must be an LRFinderResult, got str"):
        lr_finder.plot_lr_finder("not a result")


@pytest.mark.parametrize("kwargs, match", [
    (dict(start_lr=1.0, end_lr=1.0),
     r"^start_lr must be smaller than end_lr, got start_lr=1\.0 >= end_lr=1\.0"),
    (dict(start_lr=10.0, end_lr=1.0),
     r"^start_lr must be smaller than end_lr, got start_lr=10\.0 >= end_lr=1\.0"),
    (dict(start_lr=0.0), r"^start_lr must be finite and > 0; got 0\.0"),
    (dict(start_lr=-1e-3), r"^start_lr must be finite and > 0; got -0\.001"),
    (dict(end_lr=-1.0), r"^end_lr must be finite and > 0; got -1\.0"),
    (dict(end_lr=float("nan")), r"^end_lr must be finite and > 0; got nan"),
    (dict(end_lr=float("inf")), r"^end_lr must be finite and > 0; got inf"),
    (dict(num_iter=1), r"^num_iter must be an integer >= 2, got 1"),
    (dict(num_iter=2.5), r"^num_iter must be an integer >= 2, got 2\.5"),
    (dict(batch_size=301), r"^batch_size must be an integer in \[1, 300\], got 301"),
    (dict(batch_size=0), r"^batch_size must be an integer in \[1, 300\], got 0"),
    (dict(optimizer="sgdd"),
     r"^optimizer must be one of \['adagrad', 'adam', .*'sgd'\], got 'sgdd'"),
    (dict(optimizer=3), r"^optimizer must be one of \['adagrad', 'adam', .*'sgd'\], a function "
                        r"\(params, lr\) -> torch optimizer, or a torch\.optim\.Optimizer"),
    (dict(smooth_f=1.0), r"^smooth_f must be a finite number in \[0, 1\), got 1\.0"),
    (dict(smooth_f=-0.1), r"^smooth_f must be a finite number in \[0, 1\), got -0\.1"),
    (dict(diverge_th=1.0), r"^diverge_th must be a finite number in \(1, inf\), got 1\.0"),
    (dict(seed=-1), r"^seed must be an integer >= 0, got -1"),
    (dict(skip_start=-1), r"^skip_start must be an integer >= 0, got -1"),
])
def test_bad_arguments(kwargs, match):
    """Catches a bad range-test setting accepted, or refused by a message that does not start
    with the argument and what it allows."""
    X, y = toy_data()
    with pytest.raises(ValueError, match=match):
        lr_range_test(toy_model(), F, X, y, **kwargs)


def test_bad_model_loss_and_data():
    """Catches a non-model, a non-function loss or mismatched X, y reaching the sweep."""
    X, y = toy_data()
    with pytest.raises(ValueError, match=r"^model must be a torch\.nn\.Module, got str"):
        lr_range_test("model", F, X, y)
    with pytest.raises(ValueError, match=r"^loss_fn must be a function \(outputs, targets\) -> "
                                         r"loss, got 'ce'"):
        lr_range_test(toy_model(), "ce", X, y)
    with pytest.raises(ValueError, match=r"^X and y must hold the same non-zero number of "
                                         r"samples, got 300 and 299"):
        lr_range_test(toy_model(), F, X, y[:-1])
    with pytest.raises(ValueError, match=r"^lrs and losses must be non-empty and of the same "
                                         r"length, got \(2,\) and \(1,\)"):
        lr_finder.steepest_descent_lr([1.0, 2.0], [1.0])


# --- the readings: fastai's valley and minimum, transcribed, and the choice by name ----------

def fastai_valley(lrs, losses, num_it):
    """fastai's ``valley`` (fastai/callback/schedule.py, fastai 2.7), transcribed line by line."""
    n = len(losses)
    max_start, max_end = 0, 0

    # find the longest valley
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]

    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)

    return float(lrs[idx]), (float(lrs[idx]), losses[idx])


def fastai_minimum(lrs, losses, num_it):
    """fastai's ``minimum`` (same file), transcribed."""
    lr_min = lrs[losses.argmin()].item()
    loss_idx = losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - lr_min))]
    return lr_min / 10, (lr_min, loss_idx)


def fastai_trim(lrs, losses, num_it):
    """What ``Learner.lr_find`` hands the readings: ``[num_it//10:-5]`` of the recorded curve (as
    float64 tensors here; fastai's are float32, which could only break ties differently)."""
    return (torch.tensor(np.asarray(lrs)[num_it // 10:-5]),
            torch.tensor(np.asarray(losses)[num_it // 10:-5]))


def test_valley_is_fastais_on_random_curves():
    """Catches the vectorised valley drifting from fastai's double loop: random walks, curves with
    ties (rounded values), monotone curves (where fastai's start index is -1) and tiny ones."""
    rng = np.random.default_rng(0)
    curves = [np.cumsum(rng.normal(size=n)) for n in (1, 2, 3, 5, 17, 60, 120) for _ in range(6)]
    curves += [np.round(rng.normal(size=40), 1) for _ in range(10)]  # many ties
    curves += [np.linspace(3, 1, 30), np.linspace(1, 3, 30), np.ones(12),
               np.r_[np.linspace(2, 1, 10), np.linspace(1, 5, 10)]]
    for losses in curves:
        lrs = np.geomspace(1e-6, 1.0, losses.size)
        expected, _ = fastai_valley(torch.tensor(lrs), torch.tensor(losses), 100)
        assert lr_finder.valley_lr(lrs, losses) == expected


@pytest.mark.parametrize("optimizer, end_lr", [("sgd", 1e4), ("adam", 1e4)])
def test_readings_are_fastais_on_range_test_curves(optimizer, end_lr):
    """Catches "valley" or "min/10" reading a different part of the curve than fastai's
    ``lr_find`` does: the same curve, trimmed fastai's way, through the transcribed functions."""
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X, y, optimizer=optimizer, start_lr=1e-6, end_lr=end_lr)
    assert res.diverged and len(res) > 30
    lrs, losses = fastai_trim(res.lrs, res.losses, 100)
    assert res.reading("valley") == fastai_valley(lrs, losses, 100)[0]
    assert res.reading("min/10") == pytest.approx(fastai_minimum(lrs, losses, 100)[0], rel=1e-15)


def test_each_named_reading_is_returned_as_the_suggestion():
    """Catches ``suggestion=`` ignored, a reading computed on another curve than the one
    returned, or "midway" / "by_optimizer" not being what they are documented to be."""
    X, y = toy_data()
    results = {name: lr_range_test(toy_model(), F, X, y, start_lr=1e-5, end_lr=1e3,
                                   suggestion=name) for name in lr_finder.SUGGESTIONS}
    first = results["steepest"]
    for name, res in results.items():
        np.testing.assert_array_equal(res.losses, first.losses)  # one curve, read five ways
        assert res.suggestion_name == name
        assert res.suggestion == res.reading(name) == lr_finder.read_suggestion(
            res.lrs, res.losses, name, sgd=True)
    steep, valley = first.reading("steepest"), first.reading("valley")
    assert steep != valley  # else "midway" would be tested on nothing
    assert first.reading("midway") == pytest.approx(np.sqrt(steep * valley), rel=1e-12)
    trimmed = first.losses[10:len(first) - 5]
    assert first.reading("min/10") == first.lrs[10 + int(np.argmin(trimmed))] / 10


@pytest.mark.parametrize("optimizer, sgd", [
    ("sgd", True), ("momentum", True), ("adam", False), ("rmsprop", False),
    (lambda p, lr: torch.optim.SGD(p, lr=lr, nesterov=True, momentum=0.8), True),
    (lambda p, lr: torch.optim.AdamW(p, lr=lr), False),
])
def test_by_optimizer_reads_min10_for_sgd_and_valley_otherwise(optimizer, sgd):
    """Catches the by-optimizer reading taking the wrong rule for an optimizer given by name or by
    a factory."""
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X, y, optimizer=optimizer, start_lr=1e-5, end_lr=1e2,
                        suggestion="by_optimizer")
    assert res.sgd is sgd
    assert res.suggestion == res.reading("min/10" if sgd else "valley")


def test_bad_reading_names():
    """Catches an unknown reading accepted, or refused without naming the argument and the
    allowed names."""
    X, y = toy_data()
    allowed = r"\['by_optimizer', 'midway', 'min/10', 'steepest', 'valley'\]"
    with pytest.raises(ValueError, match=rf"^suggestion must be one of {allowed}, got 'fastest'"):
        lr_range_test(toy_model(), F, X, y, suggestion="fastest")
    res = lr_range_test(toy_model(), F, X, y, num_iter=30)
    with pytest.raises(ValueError, match=rf"^name must be one of {allowed}, got 'min'"):
        res.reading("min")
    with pytest.raises(ValueError, match=rf"^name must be one of {allowed}, got None"):
        lr_finder.read_suggestion(res.lrs, res.losses, None)
    with pytest.raises(ValueError, match=rf"^readings must be one of {allowed}, got 'x'"):
        lr_finder.plot_lr_finder(res, readings=["valley", "x"])
    with pytest.raises(ValueError, match=r"^lrs and losses must be non-empty and of the same "
                                         r"length, got \(3,\) and \(2,\)"):
        lr_finder.valley_lr([1.0, 2.0, 3.0], [1.0, 2.0])


def test_plot_marks_the_readings_asked_for():
    """Catches a reading drawn at another rate than it reads, or without its legend label."""
    X, y = toy_data()
    res = lr_range_test(toy_model(), F, X, y, start_lr=1e-4, end_lr=1e3, num_iter=60)
    ax = lr_finder.plot_lr_finder(res, readings=["steepest", "valley", "min/10"])
    marks = {line.get_label(): line.get_xdata()[0] for line in ax.lines
             if line.get_label() in lr_finder.SUGGESTIONS}
    assert marks == {name: res.reading(name) for name in ("steepest", "valley", "min/10")}
    matplotlib.pyplot.close("all")


# --- the study of the readings against full sweeps ------------------------------------------


def test_study_miniature_matches_direct_runs():
    """A 2-seed miniature of :func:`reading_study` on two small tasks. Catches a reading that is
    not the range test's, a sweep loss that is not the training it claims (checked against
    ``train.fit`` for one rate and seed), a loss at a reading paired with the wrong seed, and a
    swept best that is not the lowest mean loss."""
    from lessons_lib import models, train

    study = lr_finder.reading_study(["wine, MLP, Adam", "breast cancer, logistic, SGD"],
                                    seeds=(0, 1), steps=60, per_decade=2)
    assert list(study) == ["wine, MLP, Adam", "breast cancer, logistic, SGD"]
    wine = lr_finder.study_data("wine")
    res = study["wine, MLP, Adam"]
    assert res.grid.size == 7 and res.sweep_loss.shape == (7, 2)  # 10^-4 … 10^-1, 2 a decade
    np.testing.assert_allclose(np.log10(res.grid), np.arange(-4.0, -0.9, 0.5))
    for k, seed in enumerate((0, 1)):
        found = lr_range_test(models.mlp(13, 3, width=16, seed=seed), F, wine.X_train,
                              wine.y_train, optimizer="adam", seed=seed)
        for name in lr_finder.SUGGESTIONS:
            assert res.readings[name][k] == found.reading(name)
        valley = found.reading("valley")
        hist = train.fit(models.mlp(13, 3, width=16, seed=seed), wine, lr=valley, steps=60,
                         optimizer="adam", seed=seed)
        assert res.loss_at["valley"][k] == pytest.approx(hist.final_val_loss, rel=1e-4)
    hist = train.fit(models.mlp(13, 3, width=16, seed=1), wine, lr=float(res.grid[3]), steps=60,
                     optimizer="adam", seed=1)
    assert res.sweep_loss[3, 1] == pytest.approx(hist.final_val_loss, rel=1e-4)
    assert res.best_lr == res.grid[np.argmin(res.sweep_loss.mean(1))]
    assert res.best_loss == res.sweep_loss.mean(1).min()
    assert res.ratio("valley") == pytest.approx(
        np.sqrt(res.readings["valley"].prod()) / res.best_lr)
    assert res.regret("valley") == pytest.approx(res.loss_at["valley"].mean() / res.best_loss)
    np.testing.assert_array_equal(res.loss_at["by_optimizer"], res.loss_at["valley"])  # Adam
    cancer = study["breast cancer, logistic, SGD"]
    np.testing.assert_array_equal(cancer.loss_at["by_optimizer"], cancer.loss_at["min/10"])
    np.testing.assert_allclose(np.log10(cancer.grid), np.arange(-2.5, 0.6, 0.5))


def test_study_cnn_and_regression_tasks_run():
    """Catches the CNN branch or the regression loss of the study breaking (one seed, few
    steps)."""
    for name in ("digits, CNN, momentum", "diabetes, MLP, SGD"):
        res = lr_finder.study_task(name, seeds=0, steps=20, per_decade=1)
        assert res.sweep_loss.shape == (res.grid.size, 1)
        assert np.isfinite(res.sweep_loss).any()
        assert all(np.isfinite(res.readings[n]).all() for n in lr_finder.SUGGESTIONS)


def test_study_tasks_and_data():
    """Catches a study task whose data set or optimizer does not exist, or data that are not
    what the docstring says (sizes, standardised regression target)."""
    from lessons_lib.optimizers import TORCH_OPTIMIZERS

    for task in lr_finder.STUDY_TASKS.values():
        assert task.optimizer in TORCH_OPTIMIZERS and task.model in ("mlp", "cnn")
    assert sum(t.held_out for t in lr_finder.STUDY_TASKS.values()) == 7
    sizes = {"moons": 600, "diabetes": 442, "linear": 1000}
    for name, n in sizes.items():
        split = lr_finder.study_data(name)
        assert len(split.X_train) + len(split.X_val) == n
    y = torch.cat([lr_finder.study_data("diabetes").y_train,
                   lr_finder.study_data("diabetes").y_val])
    assert abs(float(y.mean())) < 1e-5 and float(y.std(unbiased=False)) == pytest.approx(1, 1e-5)
    with pytest.raises(ValueError, match=r"^name must be one of \[.*'wine, MLP, SGD'\], got 'x'"):
        lr_finder.study_task("x")
    with pytest.raises(ValueError, match=r"^name must be one of \['breast_cancer', 'diabetes', "):
        lr_finder.study_data("iris")
    with pytest.raises(ValueError, match=r"^names must hold at least one task"):
        lr_finder.reading_study([])
