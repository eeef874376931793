"""Tests of lessons_lib.diagnostics (claim TL-9's panel).

Each number is checked on curves whose answer is known by hand (a falling line, a zig-zag, a
curve with one spike), the training-loss estimate against the minibatch losses it averages, and
the exact gap against scikit-learn's log-loss and accuracy on a trained model.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from lessons_lib import diagnostics as D, models, train


def make_history(losses, grads=None, eval_every=None, val=None, lr=0.1, diverged=False):
    h = train.History(lr=lr)
    h.train_loss = list(map(float, losses))
    h.grad_norm = list(map(float, grads if grads is not None else np.ones(len(losses))))
    if eval_every:
        h.eval_steps = list(range(eval_every, len(losses) + 1, eval_every))
        h.val_loss = list(val if val is not None else [1.0] * len(h.eval_steps))
        h.val_acc = [0.5] * len(h.eval_steps)
    h.diverged = diverged
    return h


def test_rise_share_known_curves():
    assert D.rise_share(np.linspace(2, 1, 50)) == 0.0
    assert D.rise_share(np.linspace(1, 2, 50)) == 1.0
    assert D.rise_share([1, 2, 1, 2, 1]) == 0.5


def test_spike_share_and_loss_ratio():
    curve = np.full(100, 1.0)
    curve[50] = 3.0
    assert D.spike_share(curve) == pytest.approx(1 / 99)
    assert D.spike_share(np.linspace(2, 1, 100)) == 0.0
    assert D.loss_ratio(np.r_[np.full(10, 2.0), np.full(80, 1.5), np.full(10, 0.5)]) == 0.25
    assert D.loss_ratio([4.0, 1.0]) == 0.25


def test_grad_norm_stability():
    cv, peak = D.grad_norm_stability(np.r_[np.full(50, 100.0), np.full(49, 1.0), 10.0])
    last = np.r_[np.full(49, 1.0), 10.0]
    assert cv == pytest.approx(last.std() / last.mean())
    assert peak == pytest.approx(10.0)


def test_train_val_gap_estimate():
    losses = np.arange(1, 101, dtype=float)
    h = make_history(losses, eval_every=25, val=[10, 20, 30, 40])
    steps, tr, val = D.train_val_gap(h)
    assert list(steps) == [25, 50, 75, 100]
    np.testing.assert_allclose(tr, [13.0, 38.0, 63.0, 88.0])
    np.testing.assert_allclose(val, [10, 20, 30, 40])
    assert D.diagnose(h).gap == pytest.approx(40 - 88.0)


def test_diagnose_and_hints():
    rng = np.random.default_rng(0)
    flat = make_history(2.0 + 0.01 * rng.standard_normal(200), eval_every=50, val=[2.0] * 4)
    d = D.diagnose(flat)
    assert d.loss_ratio == pytest.approx(1.0, abs=0.02) and not d.diverged
    assert any(h.startswith("flat") for h in D.hints(d))
    jag = np.exp(np.linspace(0, -3, 200))
    jag[::5] *= 4.0
    grads = np.ones(200)
    grads[150] = 50.0
    d = D.diagnose(make_history(jag, grads, eval_every=50, val=[1.0] * 4))
    assert d.spike_share > 0.15 and d.grad_norm_peak == pytest.approx(50.0)
    hs = D.hints(d)
    assert any(h.startswith("jagged") for h in hs) and any(h.startswith("gap") for h in hs)
    good = make_history(np.exp(np.linspace(0, -3, 200)), eval_every=50,
                        val=np.exp(np.linspace(0, -3, 200))[49::50])
    assert D.hints(D.diagnose(good)) == ["no warning sign"]
    div = make_history([1.0, 5.0, math.inf], grads=[1.0, 2.0], diverged=True)
    d = D.diagnose(div)
    assert d.diverged and math.isnan(d.gap) and D.hints(d)[0].startswith("diverged")
    assert "η = 0.1" in d.row() and "DIVERGED" in d.row()


def test_on_a_real_run_and_exact_gap(wine):
    """Catches diagnose() reading the wrong curve for its numbers (e.g. the rise share of the
    smoothed or of the falling steps) and evaluate_gap() disagreeing with scikit-learn."""
    from sklearn.metrics import accuracy_score, log_loss

    split = wine
    model = models.mlp(split.n_features, split.n_outputs, width=16, seed=0)
    h = train.fit(model, split, lr=0.1, steps=120, batch_size=32, eval_every=40)
    d = D.diagnose(h)
    assert d.steps == 120 and d.loss_ratio < 0.5
    # the share of the 119 step-to-step changes of the minibatch loss that went up
    rises = sum(b > a for a, b in zip(h.train_loss, h.train_loss[1:]))
    assert 0 < rises < 119 and 2 * rises != 119  # a value that tells "up" from "down" apart
    assert d.rise_share == rises / 119
    gap = D.evaluate_gap(model, split)
    with torch.no_grad():
        p_tr = torch.softmax(model(split.X_train).double(), 1).numpy()
        p_va = torch.softmax(model(split.X_val).double(), 1).numpy()
    assert gap["train_loss"] == pytest.approx(log_loss(split.y_train, p_tr, labels=[0, 1, 2]),
                                              rel=1e-4)
    assert gap["val_loss"] == pytest.approx(log_loss(split.y_val, p_va, labels=[0, 1, 2]), rel=1e-4)
    assert gap["val_acc"] == pytest.approx(accuracy_score(split.y_val, p_va.argmax(1)))
    assert gap["loss_gap"] == pytest.approx(gap["val_loss"] - gap["train_loss"])
    axes = D.plot_diagnostics([h, h], labels=["a", "b"])
    assert len(axes) == 3 and axes[0].get_yscale() == "log"
    matplotlib.pyplot.close("all")


def test_bad_arguments():
    """Catches a bad argument accepted, or refused with a message that does not start with the
    argument's name and what it allows."""
    with pytest.raises(ValueError, match="^losses must hold at least 2 values, got 1"):
        D.rise_share([1.0])
    with pytest.raises(ValueError, match=r"^factor must be a finite number in \(1, inf\), got 1"):
        D.spike_share([1.0, 2.0], factor=1.0)
    with pytest.raises(ValueError, match=r"^weight must be a finite number in \[0, 1\), got 1\.0"):
        D.spike_share([1.0, 2.0], weight=1.0)
    with pytest.raises(ValueError, match=r"^part must be a finite number in \(0, 0\.5\], got 0\.7"):
        D.loss_ratio([1.0, 2.0], part=0.7)
    with pytest.raises(ValueError, match=r"^tail must be a finite number in \(0, 1\], got 0"):
        D.grad_norm_stability([1.0, 2.0], tail=0)
    with pytest.raises(ValueError, match="^grad_norms must hold at least 2 values, got 1"):
        D.grad_norm_stability([1.0])
    with pytest.raises(ValueError, match=r"^history must be a train\.History, got list"):
        D.diagnose([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^history must be a train\.History, got str"):
        D.train_val_gap("run")
    with pytest.raises(ValueError, match="^history must hold at least 2 training steps"):
        D.diagnose(make_history([1.0]))
    with pytest.raises(ValueError, match=r"^histories must be a train\.History or a non-empty"):
        D.plot_diagnostics([])
    with pytest.raises(ValueError, match=r"^labels must have one entry per history \(1\), got 2"):
        D.plot_diagnostics([make_history([1.0, 2.0])], labels=["a", "b"])
