"""Argument checks, data sets, models, the training loop and setup()."""

import math

import numpy as np
import pytest
import torch

from lessons_lib import _checks, data, models, setup, train


def test_check_learning_rate_accepts_arrays_and_allow_zero():
    assert _checks.check_learning_rate("lr", [0.1, 1.0]).tolist() == [0.1, 1.0]
    assert _checks.check_learning_rate("lr", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match=r"lr must be finite and > 0; got -0.5"):
        _checks.check_learning_rate("lr", -0.5)


def test_check_real_and_int_messages_show_the_allowed_range():
    with pytest.raises(ValueError, match=r"gamma must be a finite number in \(0, inf\)"):
        _checks.check_real("gamma", 0.0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"p must be a finite number in \[0, 1\)"):
        _checks.check_real("p", 1.0, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match="x must be a real number"):
        _checks.check_real("x", True)
    with pytest.raises(ValueError, match=r"n must be an integer in \[1, 5\]"):
        _checks.check_int("n", 6, low=1, high=5)
    with pytest.raises(ValueError, match=r"name must be one of \['a', 'b'\]"):
        _checks.check_choice("name", "c", ("a", "b"))


def test_setup_is_reproducible_and_sets_threads():
    info = setup(seed=3)
    a = (np.random.rand(), torch.rand(1).item())
    setup(seed=3)
    assert (np.random.rand(), torch.rand(1).item()) == a
    assert info["torch_threads"] == torch.get_num_threads() == 2
    with pytest.raises(ValueError, match="seed"):
        setup(seed=-1)


def test_sklearn_dataset_is_standardised_and_seeded():
    d = data.sklearn_dataset("digits", seed=0)
    assert d.n_features == 64 and d.n_outputs == 10
    assert len(d.X_train) + len(d.X_val) == 1797
    assert torch.allclose(d.X_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.equal(d.X_val, data.sklearn_dataset("digits", seed=0).X_val)
    with pytest.raises(ValueError, match="name must be one of"):
        data.sklearn_dataset("mnist")
    with pytest.raises(ValueError, match="val_fraction"):
        data.sklearn_dataset("wine", val_fraction=1.0)


def test_synthetic_regression_curvature_grows_with_correlation():
    X, _ = data.linear_regression(4000, 50, correlation=0.5, seed=0)
    lam_max = np.linalg.eigvalsh(X.T @ X / len(X)).max()
    assert abs(lam_max - (1 + 0.5 * 49)) / (1 + 0.5 * 49) < 0.1
    with pytest.raises(ValueError, match="correlation"):
        data.linear_regression(correlation=1.0)


def test_mlp_init_scale_and_seed():
    a, b = models.mlp(4, 2, width=8, seed=1), models.mlp(4, 2, width=8, seed=1, init_scale=2.0)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(2 * pa, pb)
    assert models.count_parameters(a) == 4 * 8 + 8 + 8 * 2 + 2
    with pytest.raises(ValueError, match="init_scale"):
        models.mlp(4, 2, init_scale=0.0)


def test_fit_learns_is_deterministic_and_flags_divergence():
    d = data.sklearn_dataset("wine")
    h1 = train.fit(models.mlp(13, 3, seed=0), d, lr=0.1, steps=60, batch_size=16, eval_every=20)
    h2 = train.fit(models.mlp(13, 3, seed=0), d, lr=0.1, steps=60, batch_size=16, eval_every=20)
    assert h1.train_loss == h2.train_loss and h1.eval_steps == [20, 40, 60]
    assert h1.val_acc[-1] > 0.85 and not h1.diverged
    bad = train.fit(models.mlp(13, 3, seed=0), d, lr=500.0, steps=60, batch_size=16)
    assert bad.diverged and math.isinf(bad.final_val_loss)


def test_fit_follows_a_schedule_and_accepts_an_optimizer_factory():
    d = data.sklearn_dataset("wine")
    h = train.fit(models.mlp(13, 3), d, lr=0.1, steps=10, lr_schedule=lambda t: 0.1 / (t + 1),
                  optimizer=lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9))
    assert np.allclose(h.lrs, [0.1 / (t + 1) for t in range(10)])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"lr": -1.0}, "lr"), ({"lr": math.nan}, "lr"), ({"steps": 0}, "steps"),
     ({"batch_size": 10_000}, "batch_size"), ({"optimizer": "lbfgs"}, "optimizer must be one of"),
     ({"lr_schedule": 0.1}, "lr_schedule"), ({"lr_schedule": lambda t: -1.0}, "lr_schedule")],
)
def test_fit_bad_input(kwargs, match):
    d = data.sklearn_dataset("wine")
    args = {"lr": 0.1, "steps": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        train.fit(models.mlp(13, 3), d, **args)


def test_fit_linear_many_matches_a_plain_loop_and_flags_divergence():
    X, y = data.linear_regression(256, 5, seed=0)
    lrs = np.array([0.01, 0.1, 50.0])
    final = train.fit_linear_many(X, y, lrs, epochs=2, batch_size=32, seed=0)
    rng = np.random.default_rng(0)
    w, b = np.zeros(5), 0.0
    for _ in range(2):
        order = rng.permutation(256)
        for s in range(0, 256, 32):
            idx = order[s:s + 32]
            r = X[idx] @ w + b - y[idx]
            w, b = w - 0.1 * r @ X[idx] / 32, b - 0.1 * r.mean()
    assert np.isclose(final[1], 0.5 * np.mean((X @ w + b - y) ** 2))
    assert np.isinf(final[2]) and final[1] < final[0]
    with pytest.raises(ValueError, match="loss must be one of"):
        train.fit_linear_many(X, y, lrs, loss="hinge")


def test_smooth_is_a_bias_corrected_moving_average():
    assert np.allclose(train.smooth([2.0, 2.0, 2.0]), 2.0)
    with pytest.raises(ValueError, match="weight"):
        train.smooth([1.0], weight=1.0)
