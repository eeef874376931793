"""Gradient descent, vectorised over learning rates, against the closed form and torch.optim.SGD."""

import numpy as np
import pytest
import torch

from lessons_lib import descent, landscapes


def test_quadratic_closed_form_for_many_learning_rates():
    bowl = landscapes.quadratic([0.5, 2.0, 10.0])
    lrs = np.array([0.01, 0.1, 0.19])
    path = descent.gradient_descent(bowl, [1.0, -2.0, 3.0], lrs, steps=25)
    factors = 1 - np.outer(lrs, bowl.curvatures)  # (k, dim)
    expected = factors[None] ** np.arange(26)[:, None, None] * np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(path.w, expected, rtol=1e-12, atol=1e-14)
    assert path.w.shape == (26, 3, 3) and path.loss.shape == (26, 3)
    assert not path.diverged.any()


def test_matches_torch_sgd_on_rosenbrock():
    surface = landscapes.rosenbrock()
    lr, w0 = 1e-3, np.array([-1.5, 2.0])
    path = descent.gradient_descent(surface, w0, lr, steps=200)
    w = torch.tensor(w0, requires_grad=True)
    opt = torch.optim.SGD([w], lr=lr)
    for t in range(200):
        opt.zero_grad()
        surface.loss(w).backward()
        opt.step()
        np.testing.assert_allclose(path.w[t + 1, 0], w.detach().numpy(), rtol=1e-10)


def test_divergence_is_flagged_and_stopped_not_nan_poisoned():
    bowl = landscapes.parabola(1.0)
    path = descent.gradient_descent(bowl, [1.0], [0.5, 2.5], steps=100)
    assert path.diverged.tolist() == [False, True]
    assert np.isfinite(path.loss[:, 0]).all()
    assert np.isinf(path.loss[-1, 1])  # inf after the blow-up, never NaN
    assert not np.isnan(path.loss).any()


def test_threshold_is_two_over_lambda_max():
    """Catches a stability threshold other than 2/λmax, or one given for a non-quadratic."""
    bowl = landscapes.quadratic([1.0, 4.0])
    assert descent.gd_threshold(bowl) == 0.5
    path = descent.gradient_descent(bowl, [1.0, 1.0], [0.499, 0.501], steps=5000)
    assert path.diverged.tolist() == [False, True]
    with pytest.raises(ValueError, match=r"^landscape must be a quadratic \(constant curvature\), "
                                         r"got rosenbrock"):
        descent.gd_threshold(landscapes.rosenbrock())


def test_step_length_is_lr_times_gradient_norm():
    path = descent.gradient_descent(landscapes.valley(), [-4.0, 1.5], [0.01, 0.05], steps=30)
    np.testing.assert_allclose(path.step_length, path.lrs * path.grad_norm[:-1], rtol=1e-12)


def test_steps_to_target():
    path = descent.gradient_descent(landscapes.parabola(1.0), [1.0], [0.5, 1e-4], steps=50)
    steps = path.steps_to(0.5 * 0.25**2 * 1.0001)
    assert steps[0] == 2 and np.isinf(steps[1])


def test_noise_is_seeded():
    bowl = landscapes.valley()
    a = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=3)
    b = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=3)
    c = descent.gradient_descent(bowl, [1.0, 1.0], 0.01, steps=20, noise=0.5, seed=4)
    assert np.array_equal(a.w, b.w) and not np.array_equal(a.w, c.w)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lr": -0.1}, r"^lr must be finite and > 0; got -0\.1"),
        ({"lr": 0.0}, r"^lr must be finite and > 0; got 0\.0"),
        ({"lr": np.nan}, r"^lr must be finite and > 0; got nan"),
        ({"lr": np.inf}, r"^lr must be finite and > 0; got inf"),
        ({"lr": [0.1, -1.0]}, r"^lr must be finite and > 0; got \[0\.1, -1\.0\]"),
        ({"lr": []}, r"^lr must hold at least one learning rate, got an empty array"),
        ({"lr": "fast"},
         r"^lr must be a number or an array of numbers, finite and > 0; got the string 'fast'"),
        ({"steps": 0}, r"^steps must be an integer >= 1, got 0"),
        ({"steps": 2.5}, r"^steps must be an integer >= 1, got 2\.5"),
        ({"w0": [1.0, 2.0, 3.0]},
         r"^w0 must have a last axis of length 2 for quadratic\(1\.0, 20\.0\), got shape \(3,\)"),
        ({"w0": [np.nan, 1.0]}, r"^w0 must contain only finite numbers \(no NaN or inf\)"),
        ({"noise": -1.0}, r"^noise must be a finite number in \[0, inf\), got -1\.0"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, match):
    """Catches bad input accepted, or refused by a message that does not start with the argument
    and what it allows."""
    args = {"w0": [1.0, 1.0], "lr": 0.1, "steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        descent.gradient_descent(landscapes.valley(), **args)
